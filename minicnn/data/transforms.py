"""Batch transforms: each takes a whole batch, a NumPy array (N, C, H, W), and returns a new one.

Working on the whole batch at once keeps loading cheap next to training: a random crop of 128
images is one padded copy and one fancy-indexing gather, not 128 Python calls. A single image
(C, H, W) is accepted too and treated as a batch of one.

=========================  ==================================================  ===============
transform                  what it does                                        when
=========================  ==================================================  ===============
``ToFloat()``              uint8 [0, 255] -> float32 [0, 1]; floats -> float32  always
``Normalize(mean, std)``   ``(x - mean[c]) / std[c]`` per channel               always
``Pad(padding)``           zero padding around each image (28x28 -> 32x32)      always
``RandomCrop(size, pad)``  zero-pad, then crop each image at its own random     training only
                           position (translation augmentation)
``RandomHorizontalFlip``   mirror each image left-right with probability p      training only
                           (AlexNet's label-preserving augmentation)
``Compose([...])``         apply several in order
=========================  ==================================================  ===============

The random transforms (``random = True``) are data augmentation: use them on the training set
only, and give the test set just the deterministic ones (``ToFloat``, ``Pad``, ``Normalize``)::

    train_tf = T.Compose([T.RandomCrop(28, padding=2), T.RandomHorizontalFlip(),
                          T.Normalize(0.2860, 0.3530)])
    test_tf = T.Normalize(0.2860, 0.3530)

Every random draw comes from ``minicnn.random.get_generator()`` at call time (so
``mc.manual_seed(n)`` makes the augmentation repeatable), or from the ``generator`` given to the
transform (a NumPy ``Generator`` or an int seed), which then owns its own stream.
"""
import numbers

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from minicnn import random as _random


def to_float32(images):
    """uint8 images -> float32 in [0, 1]; any other dtype -> float32 with the same values."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255.0)
    return images.astype(np.float32, copy=False)


def _pair(value, name, what):
    if isinstance(value, numbers.Integral):
        return int(value), int(value)
    try:
        a, b = value
        return int(a), int(b)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {what} must be an int or a pair (h, w), got {value!r}") from None


class Transform:
    """Base class: subclasses implement ``apply(x)`` on a float batch (N, C, H, W)."""

    #: draws random numbers: data augmentation, for the training set only
    random = False
    #: moves pixels, so segmentation masks would have to move too
    geometric = False
    #: accepts uint8 input (all others expect floats: put ToFloat() first)
    accepts_uint8 = False

    def __call__(self, x):
        name = type(self).__name__
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{name}: expected a NumPy array (N, C, H, W), got {type(x).__name__}"
                            " (transforms run on the CPU, before the batch moves to its device)")
        if x.ndim not in (3, 4):
            raise ValueError(f"{name}: expected a batch (N, C, H, W) or one image (C, H, W), "
                             f"got an array of shape {x.shape}")
        if x.dtype == np.uint8 and not self.accepts_uint8:
            raise TypeError(f"{name}: got uint8 pixels; convert them to float32 in [0, 1] first "
                            "(put ToFloat() before it)")
        if x.dtype.kind not in "fu":
            raise TypeError(f"{name}: expected float32 (or uint8) images, got {x.dtype}")
        single = x.ndim == 3
        out = self.apply(x[None] if single else x)
        return out[0] if single else out

    def apply(self, x):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


class _RandomTransform(Transform):
    random = True

    def __init__(self, generator=None):
        if generator is not None and not isinstance(generator, np.random.Generator):
            generator = np.random.default_rng(generator)
        self.generator = generator

    def rng(self):
        """The generator to draw from now: our own, or minicnn's global one (looked up at call
        time, because ``mc.manual_seed`` replaces it)."""
        return self.generator if self.generator is not None else _random.get_generator()


class Compose(Transform):
    """Apply ``transforms`` in order: ``Compose([RandomCrop(28, 2), Normalize(0.5, 0.5)])``."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable")

    @property
    def random(self):
        return any(getattr(t, "random", False) for t in self.transforms)

    @property
    def geometric(self):
        return any(getattr(t, "geometric", False) for t in self.transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def __iter__(self):
        return iter(self.transforms)

    def __repr__(self):
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"


class ToFloat(Transform):
    """uint8 pixels [0, 255] -> float32 [0, 1] (PyTorch's ``ToTensor`` scaling); floats -> float32.
    """

    accepts_uint8 = True

    def apply(self, x):
        return to_float32(x)


ToTensor = ToFloat  # the name PyTorch users look for


class Normalize(Transform):
    """``(x - mean[c]) / std[c]`` for every channel c; ``mean``/``std`` a number or one per channel.

    Fashion-MNIST's training set has mean 0.2860 and std 0.3530 (pixels in [0, 1]).
    """

    def __init__(self, mean, std):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float32))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float32))
        if self.mean.ndim != 1 or self.std.ndim != 1:
            raise ValueError("Normalize: mean and std must be numbers or one value per channel")
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive, got {self.std.tolist()}")

    def apply(self, x):
        channels = x.shape[1]
        for label, v in (("mean", self.mean), ("std", self.std)):
            if len(v) not in (1, channels):
                raise ValueError(f"Normalize: {len(v)} {label} values for images with "
                                 f"{channels} channels (shape {x.shape})")
        mean = self.mean.reshape(1, -1, 1, 1)
        std = self.std.reshape(1, -1, 1, 1)
        return ((x - mean) / std).astype(np.float32, copy=False)

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


def _pad(x, ph, pw, fill):
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), mode="constant", constant_values=fill)


class Pad(Transform):
    """Pad every image with ``fill`` on all sides: ``Pad(2)`` turns 28x28 into 32x32 (LeNet-5)."""

    geometric = True

    def __init__(self, padding, fill=0.0):
        self.padding = _pair(padding, "Pad", "padding")
        if min(self.padding) < 0:
            raise ValueError(f"Pad: padding must be >= 0, got {padding}")
        self.fill = fill

    def apply(self, x):
        return _pad(x, *self.padding, self.fill)

    def __repr__(self):
        return f"Pad(padding={self.padding})"


class RandomCrop(_RandomTransform):
    """Zero-pad by ``padding``, then cut a ``size`` window at a random place, per image.

    The translation augmentation of the CIFAR ResNets (``RandomCrop(32, padding=4)``). All
    offsets are drawn at once, top then left, each uniform over the valid positions, and the
    windows are gathered in one indexing operation from a strided view of the padded batch.
    """

    geometric = True

    def __init__(self, size, padding=0, fill=0.0, generator=None):
        super().__init__(generator)
        self.size = _pair(size, "RandomCrop", "size")
        self.padding = _pair(padding, "RandomCrop", "padding")
        if min(self.size) < 1 or min(self.padding) < 0:
            raise ValueError(f"RandomCrop: size must be >= 1 and padding >= 0, got size={size}, "
                             f"padding={padding}")
        self.fill = fill

    def apply(self, x):
        n = x.shape[0]
        h, w = self.size
        padded = _pad(x, *self.padding, self.fill)
        hp, wp = padded.shape[2:]
        if h > hp or w > wp:
            raise ValueError(f"RandomCrop: a {h}x{w} crop does not fit in {x.shape[2]}x"
                             f"{x.shape[3]} images padded by {self.padding} to {hp}x{wp}")
        rng = self.rng()
        top = rng.integers(0, hp - h + 1, size=n)
        left = rng.integers(0, wp - w + 1, size=n)
        windows = sliding_window_view(padded, (h, w), axis=(2, 3))  # N, C, hp-h+1, wp-w+1, h, w
        return windows[np.arange(n), :, top, left]                  # N, C, h, w (a copy)

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip(_RandomTransform):
    """Mirror each image left-right with probability ``p`` (a label-preserving augmentation for
    natural images and clothes; not for digits or text)."""

    geometric = True

    def __init__(self, p=0.5, generator=None):
        super().__init__(generator)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)

    def apply(self, x):
        flip = self.rng().random(x.shape[0]) < self.p
        out = x.copy()
        out[flip] = x[flip, :, :, ::-1]
        return out

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


def flatten(transform):
    """The leaf transforms inside ``transform`` (Compose expanded), in order."""
    if isinstance(transform, Compose):
        return [leaf for t in transform.transforms for leaf in flatten(t)]
    return [] if transform is None else [transform]
