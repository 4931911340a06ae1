"""mc.data.random_split (PyTorch's shape and split sizes), the validation part held out of a
training set, and load_data(val_fraction=...)."""
import warnings

import numpy as np
import pytest

import minicnn as mc
from minicnn.data import transforms as T
from minicnn.data.split import hold_out_validation, split_lengths


def _indices(parts):
    return [np.asarray(part.indices) for part in parts]


@pytest.mark.parametrize("lengths", [[3, 7], [0.3, 0.7], [0.25, 0.25, 0.5], [10, 0],
                                     [0.1] * 10, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]])
def test_parts_are_disjoint_and_cover_everything(lengths):
    parts = mc.data.random_split(range(10), lengths, seed=3)
    together = np.concatenate(_indices(parts))
    assert sorted(together.tolist()) == list(range(10))
    assert [len(p) for p in parts] == split_lengths(10, lengths)


def test_a_seed_gives_the_same_split_and_another_seed_another():
    data = mc.data.ArrayDataset(np.zeros((100, 4, 4), np.uint8), np.arange(100))
    first = _indices(mc.data.random_split(data, [0.8, 0.2], seed=7))
    again = _indices(mc.data.random_split(data, [0.8, 0.2], seed=7))
    other = _indices(mc.data.random_split(data, [0.8, 0.2], seed=8))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[1], other[1])
    # a numpy Generator is taken as it is
    from_generator = _indices(mc.data.random_split(data, [80, 20],
                                                   seed=np.random.default_rng(7)))
    assert all(np.array_equal(a, b) for a, b in zip(first, from_generator))


def test_without_a_seed_minicnn_s_generator_decides():
    mc.manual_seed(5)
    first = _indices(mc.data.random_split(range(50), [25, 25]))
    mc.manual_seed(5)
    again = _indices(mc.data.random_split(range(50), [25, 25]))
    assert np.array_equal(first[0], again[0])
    following = _indices(mc.data.random_split(range(50), [25, 25]))  # the generator moved on
    assert not np.array_equal(first[0], following[0])


def test_the_parts_fetch_the_right_samples_in_batches():
    images = np.arange(20, dtype=np.uint8).reshape(20, 1, 1)
    data = mc.data.ArrayDataset(images, np.arange(20))
    train, val = mc.data.random_split(data, [15, 5], seed=0)
    x, y = val.get_batch(np.arange(5))
    assert np.array_equal(y, val.indices)
    assert np.allclose(x[:, 0, 0, 0] * 255, val.indices)
    batches = list(mc.data.DataLoader(train, batch_size=4))
    assert sum(len(b[1].data) for b in batches) == 15


# every length in 0..60 against a few fraction lists that do not divide evenly
FRACTIONS = [[0.3, 0.7], [0.1, 0.2, 0.7], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.25, 0.25], [0.9, 0.1],
             [0.15, 0.15, 0.3, 0.4], [0.0, 1.0]]


def _torch_sizes(n, fractions):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: the split sizes are "
                                                "compared with torch.utils.data.random_split")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # torch warns about empty parts, as minicnn does
        parts = torch.utils.data.random_split(range(n), fractions,
                                              generator=torch.Generator().manual_seed(0))
    return [len(p) for p in parts]


@pytest.mark.parametrize("fractions", FRACTIONS)
def test_fraction_rounding_gives_torch_s_sizes(fractions):
    for n in list(range(1, 61)) + [999, 1000, 6000, 60000]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = split_lengths(n, fractions)
        assert ours == _torch_sizes(n, fractions), (n, fractions)


def test_the_rounding_left_over_goes_to_the_first_parts():
    # floor(10 * 1/3) = 3 each, 1 left over: the first part gets it
    assert split_lengths(10, [1 / 3, 1 / 3, 1 / 3]) == [4, 3, 3]
    assert split_lengths(11, [1 / 3, 1 / 3, 1 / 3]) == [4, 4, 3]
    with pytest.warns(UserWarning, match="part 1 is empty"):
        assert split_lengths(3, [0.9, 0.1]) == [3, 0]


@pytest.mark.parametrize("lengths, error, match", [
    ([3, 3], ValueError, "sum to 6, but the data set has 10"),
    ([11, -1], ValueError, "counts must be >= 0"),
    ([0.5, 0.6], ValueError, "sum to 1.1, not 1"),
    ([1.5, -0.5], ValueError, "fraction at index 0 is 1.5"),
    ([float("nan"), 1.0], ValueError, "fraction at index 0 is nan"),
    ([], ValueError, "lengths is empty"),
    (["5", 5], TypeError, "length at index 0 is '5'"),
    ([True, 9], TypeError, "must be a count"),
])
def test_bad_lengths_are_clear_errors(lengths, error, match):
    with pytest.raises(error, match=match):
        mc.data.random_split(range(10), lengths, seed=0)


def test_a_bad_seed_is_a_clear_error():
    with pytest.raises(TypeError, match="seed must be a non-negative int"):
        mc.data.random_split(range(10), [5, 5], seed=-1)
    with pytest.raises(TypeError, match="seed must be a non-negative int"):
        mc.data.random_split(range(10), [5, 5], seed=0.5)


# ---- the validation part of a training set ---------------------------------------------------

def test_the_validation_part_is_measured_without_the_training_augmentation():
    images = np.random.default_rng(0).integers(0, 256, (50, 8, 8), dtype=np.uint8)
    augment = T.Compose([T.RandomCrop(8, padding=2), T.Normalize(0.5, 0.25)])
    train = mc.data.ArrayDataset(images, np.arange(50), transform=augment)
    train_part, val = hold_out_validation(train, 0.2, eval_transform=T.Normalize(0.5, 0.25))
    assert (len(train_part), len(val)) == (40, 10)
    assert not set(train_part.indices) & set(val.indices)
    x, _ = val.get_batch(np.arange(10))
    expected = (images[val.indices][:, None].astype(np.float32) / 255 - 0.5) / 0.25
    np.testing.assert_allclose(x, expected, rtol=1e-6)   # the same on every fetch: no crop
    assert train.transform is augment and train_part.dataset.transform is augment
    # the same images are held out every time (a fixed seed), and nothing with 0
    again = hold_out_validation(train, 0.2, eval_transform=T.Normalize(0.5, 0.25))[1]
    assert np.array_equal(again.indices, val.indices)
    assert hold_out_validation(train, 0, None) == (train, None)


def test_a_validation_part_of_a_part_keeps_its_items():
    data = mc.data.ArrayDataset(np.zeros((30, 2, 2), np.uint8), np.arange(30))
    part = mc.data.Subset(data, np.arange(10, 30))
    train, val = hold_out_validation(part, 0.25, eval_transform=T.Normalize(0, 1))
    assert sorted(np.concatenate([train.get_batch(np.arange(15))[1],
                                  val.get_batch(np.arange(5))[1]])) == list(range(10, 30))


@pytest.mark.parametrize("fraction, match", [(1.0, r"in \[0, 1\)"), (-0.1, r"in \[0, 1\)"),
                                             ("0.1", r"in \[0, 1\)"), (0.001, "both need one")])
def test_bad_validation_fractions_are_clear_errors(fraction, match):
    data = mc.data.ArrayDataset(np.zeros((100, 2, 2), np.uint8), np.arange(100))
    with pytest.raises(ValueError, match=match):
        hold_out_validation(data, fraction)


def test_load_data_holds_out_a_validation_part_of_the_training_split_only_when_asked():
    train, test, channels, size = mc.data.load_data("fashion-mnist", "bundled", log=None)
    assert (len(train), len(test), channels, size) == (6000, 1000, 1, 28)
    train_part, val, test2, _, _ = mc.data.load_data("fashion-mnist", "bundled", augment=True,
                                                     log=None, val_fraction=0.1)
    assert (len(train_part), len(val), len(test2)) == (5400, 600, 1000)
    assert mc.data.describe_splits(train_part, val, test2) == \
        "data: 5,400 train / 600 validation / 1,000 test images"
    assert isinstance(val.dataset.transform, T.Normalize)          # no random crop
    assert isinstance(train_part.dataset.transform, T.Compose)     # the crop stays in training
    assert train_part.classes == train.classes
    no_val = mc.data.load_data("fashion-mnist", "bundled", log=None, val_fraction=0)
    assert no_val[1] is None and len(no_val[0]) == 6000
    assert mc.data.describe_splits(no_val[0], None, no_val[2]) == \
        "data: 6,000 train / 1,000 test images (no validation split)"
