"""Splitting a data set: :func:`random_split` (PyTorch's) and a validation part held out of a
training set (:func:`hold_out_validation`).

    train_part, val_part = mc.data.random_split(train, [0.9, 0.1], seed=0)
    train_part, val_part = mc.data.random_split(train, [54_000, 6_000], seed=0)

Why a validation split at all: anything chosen while looking at a set of images (an epoch, a
learning rate, a head) is tuned to those images, so their accuracy is no longer a fair estimate
of accuracy on new ones. The test set stays untouched until the very end, evaluated once; the
choices are made on a validation part held out of the TRAINING images.
"""
import copy
import math
import numbers
import warnings

import numpy as np

from minicnn.data.dataset import Subset
from minicnn.random import get_generator

__all__ = ["random_split", "split_lengths", "hold_out_validation", "check_fraction",
           "with_transform", "describe_splits", "SPLIT_SEED"]

#: the seed of the validation split of ``minicnn train`` and the data presets: fixed, so that
#: every run (every training seed, a resumed run) holds out the same images
SPLIT_SEED = 0


def _is_count(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def split_lengths(n, lengths):
    """The size of each part when ``n`` items are split by ``lengths``: counts (integers that
    sum to ``n``) are returned as they are; fractions (floats that sum to 1) become
    ``floor(n * fraction)`` each, and the items this rounding leaves over are handed out one at
    a time to the parts in order, first part first (as ``torch.utils.data.random_split`` does,
    so both libraries cut a data set into parts of the same sizes)."""
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split: lengths is empty; give the size (or fraction) of each "
                         "part, e.g. [0.9, 0.1]")
    for i, value in enumerate(lengths):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"random_split: length at index {i} is {value!r}; each length must "
                            "be a count (int) or a fraction (float)")
    if all(_is_count(value) for value in lengths):
        counts = [int(value) for value in lengths]
        negative = [i for i, c in enumerate(counts) if c < 0]
        if negative:
            raise ValueError(f"random_split: length at index {negative[0]} is "
                             f"{counts[negative[0]]}; counts must be >= 0")
        if sum(counts) != n:
            raise ValueError(f"random_split: the counts {counts} sum to {sum(counts):,}, but the "
                             f"data set has {n:,} items; they must sum to its length (or give "
                             "fractions that sum to 1)")
        return counts
    fractions = [float(value) for value in lengths]
    for i, fraction in enumerate(fractions):
        if not 0 <= fraction <= 1:     # NaN fails this too
            raise ValueError(f"random_split: fraction at index {i} is {fraction}; fractions "
                             "must lie in [0, 1]")
    if not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"random_split: the fractions {fractions} sum to {sum(fractions):g}, "
                         "not 1 (for sizes, pass integers that sum to the data set's length)")
    counts = [math.floor(n * fraction) for fraction in fractions]
    for i in range(n - sum(counts)):   # the leftover of the rounding, round-robin from part 0
        counts[i % len(counts)] += 1
    for i, count in enumerate(counts):
        if count == 0:
            warnings.warn(f"random_split: part {i} is empty ({fractions[i]} of {n} items)",
                          stacklevel=3)
    return counts


def random_split(dataset, lengths, seed=None):
    """Split ``dataset`` at random into non-overlapping :class:`~minicnn.data.Subset` s whose
    sizes are ``lengths``: counts that sum to ``len(dataset)``, or fractions that sum to 1
    (see :func:`split_lengths` for the rounding, the same as PyTorch's).

    ``seed``: an int (the same seed always gives the same split), a NumPy ``Generator``, or
    None for minicnn's own generator (:func:`minicnn.manual_seed` then decides the split, and
    the draw advances that generator). Every item lands in exactly one part.
    """
    n = len(dataset)
    counts = split_lengths(n, lengths)
    if seed is None:
        rng = get_generator()
    elif isinstance(seed, np.random.Generator):
        rng = seed
    elif _is_count(seed) and seed >= 0:
        rng = np.random.default_rng(int(seed))
    else:
        raise TypeError(f"random_split: seed must be a non-negative int, a numpy Generator or "
                        f"None, got {seed!r}")
    order = rng.permutation(n)
    ends = np.cumsum(counts)
    return [Subset(dataset, order[end - count:end]) for end, count in zip(ends, counts)]


def with_transform(dataset, transform):
    """A shallow copy of ``dataset`` whose batches get ``transform`` instead (the images are
    shared, not copied). The validation part of a training set must be measured like the test
    set, without the random crops and flips that augment its training part."""
    if isinstance(dataset, Subset):     # a part of a part: replace it underneath
        return Subset(with_transform(dataset.dataset, transform), dataset.indices)
    if not hasattr(dataset, "transform"):
        raise TypeError(f"{type(dataset).__name__} has no transform to replace")
    twin = copy.copy(dataset)
    twin.transform = transform
    return twin


def check_fraction(fraction, error=ValueError):
    """Raise ``error`` unless ``fraction`` is a validation fraction: a number in [0, 1)."""
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or \
            not 0 <= fraction < 1:
        raise error(f"the validation fraction must be a number in [0, 1), got {fraction!r}")


def hold_out_validation(train, fraction, eval_transform=None, seed=SPLIT_SEED):
    """``(train part, validation part)``: ``round(fraction * len(train))`` images of ``train``
    drawn with ``seed`` are held out for validation, the rest trained on. ``fraction`` 0 holds
    out nothing: ``(train, None)``.

    ``eval_transform``: the transform the validation part gets instead of ``train``'s (give
    the test set's, normally just the normalisation, whenever ``train`` is augmented); None
    keeps ``train``'s. ``seed`` is fixed by default: the same images are held out on every run.
    """
    check_fraction(fraction)
    if fraction == 0:
        return train, None
    n = len(train)
    n_val = round(fraction * n)
    if not 0 < n_val < n:
        raise ValueError(f"a validation fraction of {fraction} of {n:,} training images leaves "
                         f"{n_val} for validation and {n - n_val} for training; both need one")
    train_part, val_part = random_split(train, [n - n_val, n_val], seed=seed)
    if eval_transform is not None:
        val_part = Subset(with_transform(train, eval_transform), val_part.indices)
    return train_part, val_part


def describe_splits(train, val, test):
    """The one line that says how many images each split has, before training::

        data: 54,000 train / 6,000 validation / 10,000 test images
        data: 60,000 train / 10,000 test images (no validation split)
    """
    if val is None:
        return f"data: {len(train):,} train / {len(test):,} test images (no validation split)"
    return f"data: {len(train):,} train / {len(val):,} validation / {len(test):,} test images"
