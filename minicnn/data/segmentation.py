"""Synthetic shapes for semantic segmentation (U-Net): noisy images and their per-pixel masks.

Every image shows 1 to ``max_shapes`` shapes (circles, squares, triangles) of random size,
position and brightness on a dark background, with Gaussian noise on top; its mask gives each
pixel's class: 0 for background, then 1, 2, 3... in the order of ``shapes``. Shapes may overlap;
the one drawn later covers the earlier ones, in the image and in the mask alike.

    >>> ds = SyntheticShapes(512, size=64, seed=0)
    >>> ds.images.shape, ds.masks.shape, ds.classes
    ((512, 1, 64, 64), (512, 64, 64), ['background', 'circle', 'square', 'triangle'])

Generation is vectorised over the images (one pass per shape slot), and deterministic: the same
``seed`` gives the same data, whatever else has drawn random numbers.
"""
import numpy as np

from minicnn.data import transforms as T
from minicnn.data.dataset import ArrayDataset

SHAPES = ("circle", "square", "triangle")


def _inside(kind, dy, dx, r):
    """Boolean (N, H, W): which pixels lie inside a shape of half-size r centred at the origin
    (``dy``, ``dx`` are the pixel offsets from the centre)."""
    if kind == "circle":
        return dy * dy + dx * dx <= r * r
    if kind == "square":  # a bit smaller than the circle's bounding box, so areas are alike
        s = 0.85 * r
        return (np.abs(dy) <= s) & (np.abs(dx) <= s)
    if kind == "triangle":  # apex at the top, base at the bottom, as wide as it is tall
        return (dy >= -r) & (dy <= r) & (np.abs(dx) <= (dy + r) / 2)
    raise ValueError(f"unknown shape {kind!r}: choose from {SHAPES}")


class SyntheticShapes(ArrayDataset):
    """``SyntheticShapes(n, size=64, channels=1, max_shapes=3, noise=0.1, seed=0,
    shapes=("circle", "square", "triangle"), transform=None)``.

    ``images`` float32 (n, channels, H, W) in [0, 1]; ``masks`` int64 (n, H, W) of class indices
    (``classes[0]`` is ``"background"``). ``dataset[i]`` is ``(image, mask)`` and
    ``get_batch(indices)`` returns both for a batch. ``size`` is an int or a pair (H, W);
    ``channels`` is 1 (grey shapes) or 3 (coloured shapes). ``params`` holds what was drawn:
    ``count`` (n,) shapes per image and, per slot (n, max_shapes), ``label``, ``cy``, ``cx`` and
    ``r`` (slots at or after ``count`` are unused).

    ``transform`` applies to the images only, so it must not move pixels: ``Normalize`` is fine,
    ``RandomCrop``/``RandomHorizontalFlip``/``Pad`` are refused (the masks would not follow).
    """

    def __init__(self, n, size=64, channels=1, max_shapes=3, noise=0.1, seed=0,
                 shapes=SHAPES, transform=None):
        h, w = (size, size) if np.ndim(size) == 0 else size
        h, w, n = int(h), int(w), int(n)
        if n < 0 or h < 8 or w < 8:
            raise ValueError(f"SyntheticShapes: need n >= 0 and images of at least 8x8, got "
                             f"n={n}, size={size}")
        if channels not in (1, 3):
            raise ValueError(f"SyntheticShapes: channels must be 1 or 3, got {channels}")
        if max_shapes < 1:
            raise ValueError(f"SyntheticShapes: max_shapes must be >= 1, got {max_shapes}")
        shapes = tuple(shapes)
        for kind in shapes:
            if kind not in SHAPES:
                raise ValueError(f"SyntheticShapes: unknown shape {kind!r}: choose from {SHAPES}")
        for t in T.flatten(transform):
            if getattr(t, "geometric", False):
                raise ValueError(f"SyntheticShapes: {t!r} moves pixels, but the masks would not "
                                 "move with them; use only transforms such as Normalize here")

        rng = np.random.default_rng(seed)
        k = int(max_shapes)
        count = rng.integers(1, k + 1, size=n)
        label = rng.integers(1, len(shapes) + 1, size=(n, k))
        r = rng.uniform(0.08, 0.22, size=(n, k)) * min(h, w)
        cy = r + rng.random((n, k)) * (h - 2 * r)
        cx = r + rng.random((n, k)) * (w - 2 * r)
        background = rng.uniform(0.0, 0.25, size=(n, channels))
        low = 0.55 if channels == 1 else 0.35
        colour = rng.uniform(low, 1.0, size=(n, k, channels))

        yy = np.arange(h, dtype=np.float64)[None, :, None]  # 1, H, 1
        xx = np.arange(w, dtype=np.float64)[None, None, :]  # 1, 1, W
        images = np.broadcast_to(background[:, :, None, None], (n, channels, h, w)).copy()
        masks = np.zeros((n, h, w), dtype=np.int64)
        for slot in range(k):                          # later slots are drawn on top
            dy = yy - cy[:, slot, None, None]          # N, H, 1
            dx = xx - cx[:, slot, None, None]          # N, 1, W
            rr = r[:, slot, None, None]
            inside = np.zeros((n, h, w), dtype=bool)
            for index, kind in enumerate(shapes, start=1):
                chosen = (label[:, slot] == index)[:, None, None]
                inside |= chosen & _inside(kind, dy, dx, rr)
            inside &= (slot < count)[:, None, None]
            masks = np.where(inside, label[:, slot, None, None], masks)
            images = np.where(inside[:, None], colour[:, slot, :, None, None], images)
        images += rng.normal(0.0, noise, size=images.shape) if noise > 0 else 0.0
        images = np.clip(images, 0.0, 1.0).astype(np.float32)

        super().__init__(images, masks, transform=transform,
                         classes=["background"] + list(shapes))
        self.params = {"count": count, "label": label, "cy": cy, "cx": cx, "r": r}
        self.source = f"synthetic shapes (seed={seed})"
        self.is_subset = False

    @property
    def images(self):
        return self.data

    @property
    def masks(self):
        return self.targets
