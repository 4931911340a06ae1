"""Data sets held as arrays, fetched a whole batch at a time.

A data set is anything with ``__len__`` and ``__getitem__`` returning ``(image, label)``, as in
PyTorch. The ones here also have ``get_batch(indices)``, which returns the whole batch as two
arrays in one vectorised step: ``images`` float32 (B, C, H, W) in [0, 1] (after the transform)
and ``labels`` int64 (B,). :class:`~minicnn.data.DataLoader` uses it, so loading 128 images
is one fancy-indexing operation, not 128 Python calls.
"""
import numpy as np

from minicnn.data import transforms as T
from minicnn.data.errors import DatasetNotFoundError


def find_or_download(dataset, root, download):
    """The folder holding ``dataset``'s files: found by its ``_locate(root)``, else fetched by
    its ``download(root)`` when ``download`` is set, else a DatasetNotFoundError saying how to
    get the files (MNIST, Fashion-MNIST and CIFAR-10 all follow this order)."""
    folder = dataset._locate(root)
    if folder is None and download:
        folder = dataset.download(root)
    if folder is None:
        raise DatasetNotFoundError(dataset._not_found_message(root))
    return folder


def _as_nchw(images):
    """uint8/float images (N, H, W) or (N, C, H, W) -> the same array viewed as (N, C, H, W)."""
    if images.ndim == 3:
        return images[:, None]
    if images.ndim == 4:
        return images
    raise ValueError(f"images must have shape (N, H, W) or (N, C, H, W), got {images.shape}")


class ArrayDataset:
    """Images and labels held in memory: ``ArrayDataset(images, targets, transform=None)``.

    ``images`` (N, H, W) or (N, C, H, W), uint8 (scaled to [0, 1] when fetched) or float;
    ``targets`` (N,) class indices (or (N, H, W) masks). ``transform`` is a batch transform from
    :mod:`minicnn.data.transforms` applied to every fetched batch of float32 (B, C, H, W) images.
    """

    classes = None

    def __init__(self, images, targets, transform=None, classes=None):
        images, targets = np.asarray(images), np.asarray(targets)
        if len(images) != len(targets):
            raise ValueError(f"ArrayDataset: {len(images)} images but {len(targets)} targets")
        _as_nchw(images)  # checks the shape
        self.data = images
        self.targets = (targets.astype(np.int64, copy=False) if targets.dtype.kind in "iub"
                        else targets)
        self.transform = transform
        if classes is not None:
            self.classes = list(classes)

    def __len__(self):
        return len(self.data)

    def get_batch(self, indices):
        """``(images float32 (B, C, H, W), targets)`` for the given indices, transform applied."""
        indices = np.asarray(indices, dtype=np.int64)
        images = T.to_float32(_as_nchw(self.data[indices]))
        if self.transform is not None:
            images = self.transform(images)
        return images, self.targets[indices]

    def __getitem__(self, index):
        if isinstance(index, slice):
            raise TypeError(f"{type(self).__name__} takes one index; use get_batch(indices) for "
                            "several")
        n = len(self)
        index = int(index)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for {type(self).__name__} of "
                             f"length {n}")
        images, targets = self.get_batch([index % n])
        target = targets[0]
        return images[0], (int(target) if np.ndim(target) == 0 else target)

    def describe(self):
        """One line: which data set, which split, how many images, from where."""
        name = getattr(self, "title", type(self).__name__)
        split = {True: " train", False: " test"}.get(getattr(self, "train", None), "")
        source = getattr(self, "source", None)
        return f"{name}{split}: {len(self):,} images" + (f", {source}" if source else "")

    @property
    def class_to_idx(self):
        return {c: i for i, c in enumerate(self.classes or [])}

    def __repr__(self):
        lines = [f"{type(self).__name__}: {len(self):,} images of shape "
                 f"{tuple(_as_nchw(self.data[:1]).shape[1:])}"]
        source = getattr(self, "source", None)
        if source:
            lines.append(f"  source: {source}")
        if self.transform is not None:
            lines.append(f"  transform: {self.transform!r}")
        return "\n".join(lines)


class Subset:
    """The samples ``indices`` of ``dataset`` (a train/validation split, say), batch path kept."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        n = len(dataset)
        if self.indices.size and (self.indices.min() < -n or self.indices.max() >= n):
            raise IndexError(f"Subset: indices must lie in [0, {n}) for a data set of length {n}")
        self.classes = getattr(dataset, "classes", None)
        if not callable(getattr(dataset, "get_batch", None)):
            self.get_batch = None  # no batch path underneath: the loader falls back to [i]

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]

    def get_batch(self, indices):
        return self.dataset.get_batch(self.indices[np.asarray(indices, dtype=np.int64)])
