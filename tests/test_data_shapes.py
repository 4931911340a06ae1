"""SyntheticShapes: deterministic, masks agree with the pictures, vectorised and quick."""
import time

import numpy as np
import pytest

import minicnn as mc
import minicnn.data as D


def test_shapes_dtypes_and_classes():
    ds = D.SyntheticShapes(16, size=(40, 48), channels=3, seed=1)
    assert ds.images.shape == (16, 3, 40, 48) and ds.images.dtype == np.float32
    assert ds.masks.shape == (16, 40, 48) and ds.masks.dtype == np.int64
    assert ds.classes == ["background", "circle", "square", "triangle"]
    assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0
    image, mask = ds[2]
    assert image.shape == (3, 40, 48) and mask.shape == (40, 48)
    x, y = ds.get_batch([0, 5])
    np.testing.assert_array_equal(y, ds.masks[[0, 5]])
    np.testing.assert_array_equal(x, ds.images[[0, 5]])


def test_deterministic_with_a_seed_and_independent_of_the_global_generator():
    mc.manual_seed(0)
    a = D.SyntheticShapes(20, seed=7)
    mc.manual_seed(99)
    mc.random.get_generator().random(100)
    b = D.SyntheticShapes(20, seed=7)
    c = D.SyntheticShapes(20, seed=8)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.masks, b.masks)
    assert not np.array_equal(a.masks, c.masks)


def test_every_class_appears_and_labels_are_in_range():
    masks = D.SyntheticShapes(100, size=32, seed=0).masks
    assert set(np.unique(masks)) == {0, 1, 2, 3}


def test_one_shape_without_noise_matches_its_geometry_exactly():
    ds = D.SyntheticShapes(60, size=48, max_shapes=1, noise=0.0, seed=3)
    p = ds.params
    yy, xx = np.mgrid[0:48, 0:48]
    for i in range(60):
        label, cy, cx, r = p["label"][i, 0], p["cy"][i, 0], p["cx"][i, 0], p["r"][i, 0]
        dy, dx = yy - cy, xx - cx
        expected = {1: dy ** 2 + dx ** 2 <= r ** 2,
                    2: (abs(dy) <= 0.85 * r) & (abs(dx) <= 0.85 * r),
                    3: (dy >= -r) & (dy <= r) & (abs(dx) <= (dy + r) / 2)}[label]
        np.testing.assert_array_equal(ds.masks[i], np.where(expected, label, 0))
        inside, outside = ds.images[i, 0][expected], ds.images[i, 0][~expected]
        assert np.ptp(inside) == 0 and np.ptp(outside) == 0  # flat shape, flat background
        assert inside[0] >= 0.55 > 0.25 >= outside[0]         # the shape is the bright part


def test_masks_match_the_images_with_noise_and_overlaps():
    ds = D.SyntheticShapes(200, size=32, max_shapes=4, noise=0.05, seed=5)
    fg = ds.masks > 0
    assert ds.images[:, 0][fg].mean() > ds.images[:, 0][~fg].mean() + 0.4
    # the last shape drawn lies on top: its centre pixel carries its label
    p = ds.params
    last = p["count"] - 1
    rows = np.arange(200)
    cy = np.round(p["cy"][rows, last]).astype(int)
    cx = np.round(p["cx"][rows, last]).astype(int)
    # the pixel nearest the centre (the triangle's centre is well inside too)
    np.testing.assert_array_equal(ds.masks[rows, cy, cx], p["label"][rows, last])
    assert (p["count"] > 1).any()


def test_geometric_transforms_are_refused_and_normalize_applies():
    with pytest.raises(ValueError, match="masks would not"):
        D.SyntheticShapes(4, transform=D.Compose([D.Normalize(0.5, 0.5), D.RandomCrop(32)]))
    ds = D.SyntheticShapes(4, transform=D.Normalize(0.5, 0.25), seed=0)
    x, _ = ds.get_batch([1])
    np.testing.assert_allclose(x[0], (ds.images[1] - 0.5) / 0.25, rtol=1e-6, atol=1e-6)


def test_loader_serves_images_and_masks():
    ds = D.SyntheticShapes(10, size=16, seed=0)
    images, masks = next(iter(D.DataLoader(ds, batch_size=4, shuffle=True, seed=0)))
    assert images.shape == (4, 1, 16, 16) and images.dtype == np.float32
    assert masks.shape == (4, 16, 16) and masks.dtype == np.int64
    assert "synthetic shapes" in ds.describe()


def test_bad_arguments():
    with pytest.raises(ValueError, match="channels"):
        D.SyntheticShapes(2, channels=2)
    with pytest.raises(ValueError, match="unknown shape"):
        D.SyntheticShapes(2, shapes=("circle", "star"))


def test_generation_is_fast():
    start = time.perf_counter()
    D.SyntheticShapes(1000, size=64, seed=0)
    assert time.perf_counter() - start < 3.0  # ~0.15 s vectorised; a per-pixel loop takes minutes
