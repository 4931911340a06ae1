"""DataLoader (batches, seeded shuffling, drop_last, devices) and the batch transforms."""
import time

import numpy as np
import pytest

import minicnn as mc
import minicnn.data as D
from minicnn.data import transforms as T


def numbered(n, channels=1, size=4):
    """A data set whose labels are the sample indices, images filled with the index too."""
    images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None],
                             (n, channels, size, size)).copy()
    return D.ArrayDataset(images, np.arange(n))


class ItemsOnly:
    """A plain PyTorch-style data set: __len__ and __getitem__, nothing else."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.full((1, 2, 2), i, dtype=np.float32), i


def labels_of(loader):
    return [y.numpy().tolist() for _, y in loader]


# ---- batching -------------------------------------------------------------------------------

def test_batches_len_and_last_partial_batch():
    loader = D.DataLoader(numbered(10), batch_size=3)
    assert len(loader) == 4
    assert labels_of(loader) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    dropped = D.DataLoader(numbered(10), batch_size=3, drop_last=True)
    assert len(dropped) == 3 and labels_of(dropped) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    exact = D.DataLoader(numbered(9), batch_size=3, drop_last=True)
    assert len(exact) == 3 and len(labels_of(exact)) == 3
    assert len(D.DataLoader(numbered(0), batch_size=4)) == 0 and labels_of(
        D.DataLoader(numbered(0), batch_size=4)) == []


def test_batch_tensors_dtypes_and_scaling():
    images, labels = next(iter(D.DataLoader(numbered(6), batch_size=4)))
    assert isinstance(images, mc.Tensor) and isinstance(labels, mc.Tensor)
    assert images.dtype == np.float32 and images.shape == (4, 1, 4, 4)
    assert labels.dtype == np.int64 and images.device == "cpu" and not images.requires_grad
    np.testing.assert_allclose(images.numpy()[:, 0, 0, 0], np.arange(4) / 255, rtol=1e-6)


def test_every_sample_once_per_epoch_when_shuffled():
    loader = D.DataLoader(numbered(103), batch_size=10, shuffle=True, seed=1)
    for _ in range(3):
        seen = np.concatenate(labels_of(loader))
        assert sorted(seen.tolist()) == list(range(103))
        assert seen.tolist() != list(range(103))


def test_seeded_shuffle_is_reproducible_and_differs_between_epochs():
    a = D.DataLoader(numbered(50), batch_size=50, shuffle=True, seed=123)
    b = D.DataLoader(numbered(50), batch_size=50, shuffle=True, seed=123)
    a0, a1 = labels_of(a), labels_of(a)
    mc.manual_seed(5)
    mc.random.get_generator().random(10)  # other draws do not disturb a seeded loader
    assert labels_of(b) == a0 and labels_of(b) == a1
    assert a0 != a1 and a.epoch == 2
    other = D.DataLoader(numbered(50), batch_size=50, shuffle=True, seed=124)
    assert labels_of(other) != a0
    b.set_epoch(1)
    assert labels_of(b) == a1  # resume at epoch 1
    resumed = D.DataLoader(numbered(50), batch_size=50, shuffle=True, seed=123)
    resumed.load_state_dict({"epoch": 1})
    assert labels_of(resumed) == a1 and resumed.state_dict() == {"epoch": 2}


def test_unseeded_shuffle_follows_manual_seed():
    loader = D.DataLoader(numbered(40), batch_size=40, shuffle=True)
    mc.manual_seed(3)
    first = labels_of(loader), labels_of(loader)
    mc.manual_seed(3)
    again = labels_of(loader), labels_of(loader)
    mc.manual_seed(4)
    different = labels_of(loader)
    assert first == again and first[0] != first[1] and different != first[0]


def test_order_is_drawn_when_iteration_starts():
    loader = D.DataLoader(numbered(30), batch_size=30, shuffle=True)
    mc.manual_seed(0)
    it = iter(loader)
    mc.manual_seed(1)  # too late to change the order already drawn
    drawn = next(it)[1].numpy().tolist()
    mc.manual_seed(0)
    assert labels_of(loader) == [drawn]


def test_generic_dataset_without_get_batch():
    loader = D.DataLoader(ItemsOnly(7), batch_size=4, shuffle=True, seed=0)
    batches = list(loader)
    images, labels = batches[0]
    assert images.shape == (4, 1, 2, 2) and images.dtype == np.float32
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(images.numpy()[:, 0, 0, 0], labels.numpy())
    assert sorted(np.concatenate([y.numpy() for _, y in batches]).tolist()) == list(range(7))


def test_subset_keeps_the_batch_path():
    ds = numbered(20)
    sub = D.Subset(ds, [5, 7, 9, 11])
    assert labels_of(D.DataLoader(sub, batch_size=3)) == [[5, 7, 9], [11]]
    generic = D.Subset(ItemsOnly(20), [3, 4])
    assert generic.get_batch is None
    assert labels_of(D.DataLoader(generic, batch_size=2)) == [[3, 4]]


def test_loader_transform_is_applied():
    loader = D.DataLoader(numbered(4), batch_size=4, transform=T.Normalize(0.0, 0.5))
    images, _ = next(iter(loader))
    np.testing.assert_allclose(images.numpy()[:, 0, 0, 0], np.arange(4) / 255 / 0.5, rtol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        D.DataLoader(numbered(4), batch_size=0)
    with pytest.raises(ValueError, match="seed"):
        D.DataLoader(numbered(4), seed=-1)
    with pytest.raises(TypeError, match="not a data set"):
        D.DataLoader(42)
    with pytest.raises(ValueError, match="unknown device"):
        D.DataLoader(numbered(4), device="tpu")


def test_batches_land_on_the_device(device):
    images, labels = next(iter(D.DataLoader(numbered(8), batch_size=8, device=device)))
    assert images.device == device and labels.device == device
    assert images.dtype == np.float32 and labels.dtype == np.int64


def test_augmented_pipeline_is_repeatable_with_manual_seed():
    ds = D.FashionMNIST(subset=True, transform=T.Compose(
        [T.RandomCrop(28, padding=2), T.RandomHorizontalFlip(), T.Normalize(0.286, 0.353)]))
    loader = D.DataLoader(ds, batch_size=256, shuffle=True)

    def run(batches=3):
        mc.manual_seed(11)
        out = []
        for images, labels in loader:
            out.append((images.numpy(), labels.numpy()))
            if len(out) == batches:
                return out

    a, b = run(), run()
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    mc.manual_seed(12)
    assert not np.array_equal(next(iter(loader))[0].numpy(), a[0][0])


def test_loading_an_epoch_is_cheap():
    """Fetching + augmenting must not dominate training: a whole epoch of the 6,000-image
    subset at batch 128 with crop, flip and normalise is a small fraction of a second."""
    ds = D.FashionMNIST(subset=True, transform=T.Compose(
        [T.RandomCrop(28, padding=2), T.RandomHorizontalFlip(), T.Normalize(0.286, 0.353)]))
    loader = D.DataLoader(ds, batch_size=128, shuffle=True, seed=0)
    start = time.perf_counter()
    n = sum(len(y) for _, y in loader)
    assert n == 6000 and time.perf_counter() - start < 1.5  # ~0.02 s here


# ---- transforms -----------------------------------------------------------------------------

@pytest.fixture
def batch(rng):
    return rng.random((6, 3, 8, 10), dtype=np.float32)


def test_to_float_scales_uint8():
    x = np.array([[[[0, 51, 255]]]], dtype=np.uint8)
    out = T.ToFloat()(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.ravel(), [0.0, 0.2, 1.0], rtol=1e-6)
    assert T.ToTensor is T.ToFloat


def test_normalize_per_channel(batch):
    mean, std = [0.1, 0.5, 0.9], [0.2, 0.25, 4.0]
    out = T.Normalize(mean, std)(batch)
    assert out.dtype == np.float32 and out.shape == batch.shape
    for c in range(3):
        np.testing.assert_allclose(out[:, c], (batch[:, c] - mean[c]) / std[c], rtol=1e-5)
    np.testing.assert_allclose(T.Normalize(0.5, 2.0)(batch), (batch - 0.5) / 2.0, rtol=1e-6)


def test_normalize_errors(batch):
    with pytest.raises(ValueError, match="2 mean values for images with 3 channels"):
        T.Normalize([0.1, 0.2], [1.0, 1.0])(batch)
    with pytest.raises(ValueError, match="std must be positive"):
        T.Normalize(0.0, 0.0)
    with pytest.raises(TypeError, match="ToFloat"):
        T.Normalize(0.5, 0.5)(np.zeros((1, 1, 2, 2), np.uint8))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        T.Normalize(0.5, 0.5)(np.zeros((2, 2), np.float32))


def test_pad():
    x = np.ones((2, 1, 28, 28), np.float32)
    out = T.Pad(2)(x)
    assert out.shape == (2, 1, 32, 32) and out.sum() == x.sum()
    assert (out[:, :, 2:30, 2:30] == 1).all() and out[:, :, :2].sum() == 0


def test_random_crop_without_padding_at_full_size_is_identity(batch):
    np.testing.assert_array_equal(T.RandomCrop((8, 10))(batch), batch)


def test_random_crop_is_a_shifted_window_of_the_padded_image(rng):
    n, p = 64, 3
    x = rng.random((n, 2, 9, 9), dtype=np.float32) + 1.0  # nonzero, so padding is visible
    out = T.RandomCrop(9, padding=p, generator=0)(x)
    assert out.shape == x.shape and out.dtype == np.float32
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    offsets = []
    for i in range(n):
        matches = [(t, l) for t in range(2 * p + 1) for l in range(2 * p + 1)
                   if np.array_equal(out[i], padded[i, :, t:t + 9, l:l + 9])]
        assert len(matches) == 1, f"image {i} is not a window of its padded input"
        offsets.append(matches[0])
    assert len(set(offsets)) > 10  # each image gets its own offset
    assert {t for t, _ in offsets} == set(range(2 * p + 1))  # all positions reachable


def test_random_crop_smaller_than_the_image(rng):
    x = rng.random((5, 1, 10, 10), dtype=np.float32)
    out = T.RandomCrop((4, 6), generator=1)(x)
    assert out.shape == (5, 1, 4, 6)
    with pytest.raises(ValueError, match="does not fit"):
        T.RandomCrop(12, padding=0)(x)


def test_horizontal_flip(rng):
    x = rng.random((400, 2, 3, 5), dtype=np.float32)
    out = T.RandomHorizontalFlip(generator=2)(x)
    flipped = np.array([np.array_equal(o, xi[:, :, ::-1]) for o, xi in zip(out, x)])
    kept = np.array([np.array_equal(o, xi) for o, xi in zip(out, x)])
    assert (flipped ^ kept).all()             # each image either mirrored or untouched
    assert 0.4 < flipped.mean() < 0.6
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(x), x[..., ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=0.0)(x), x)


def test_transforms_do_not_modify_their_input(batch):
    before = batch.copy()
    for t in (T.RandomHorizontalFlip(p=1.0), T.RandomCrop(8, padding=2), T.Normalize(0.5, 0.5),
              T.Pad(1)):
        t(batch)
    np.testing.assert_array_equal(batch, before)


def test_random_transforms_follow_manual_seed(batch):
    t = T.Compose([T.RandomCrop((8, 10), padding=2), T.RandomHorizontalFlip()])
    mc.manual_seed(21)
    a = t(batch)
    b = t(batch)
    mc.manual_seed(21)
    np.testing.assert_array_equal(t(batch), a)
    assert not np.array_equal(a, b)


def test_an_own_generator_ignores_manual_seed(batch):
    mc.manual_seed(0)
    a = T.RandomCrop((8, 10), padding=2, generator=9)(batch)
    mc.manual_seed(1)
    b = T.RandomCrop((8, 10), padding=2, generator=9)(batch)
    np.testing.assert_array_equal(a, b)


def test_single_image_and_compose_flags(batch):
    out = T.Compose([T.Normalize(0.5, 0.5), T.RandomHorizontalFlip(p=1.0)])(batch[0])
    np.testing.assert_allclose(out, ((batch[0] - 0.5) / 0.5)[..., ::-1], rtol=1e-6)
    assert T.Compose([T.Normalize(0, 1), T.RandomCrop(4)]).random
    assert not T.Compose([T.Normalize(0, 1), T.Pad(1)]).random
    assert T.RandomHorizontalFlip.random and not T.Normalize.random
    assert "RandomCrop" in repr(T.Compose([T.RandomCrop(4, padding=1)]))
