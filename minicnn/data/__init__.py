"""Data: the standard image data sets, a batch loader and batch transforms.

    from minicnn.data import FashionMNIST, DataLoader, load_fashion_mnist, transforms as T

    train, test = load_fashion_mnist()   # the full set when installed, else the bundled subset
    loader = DataLoader(train, batch_size=128, shuffle=True, seed=0, device="auto")
    for images, labels in loader:        # float32 (128, 1, 28, 28) in [0, 1], int64 (128,)
        ...

* :func:`read_idx` reads the IDX files of (Fashion-)MNIST, gzipped or not, and checks them.
* :class:`FashionMNIST`, :class:`MNIST`, :class:`CIFAR10` find their files in ``root``,
  ``$MINICNN_DATA``, ``/usr/share/datasets/<name>`` and ``~/.cache/minicnn``; ``download=True``
  fetches the official files and checks their SHA-256. A small real Fashion-MNIST subset ships
  inside the package (``FashionMNIST(subset=True)``; ``subset="auto"`` and
  :func:`load_fashion_mnist` fall back to it and say so).
* :class:`SyntheticShapes`: images and per-pixel masks for segmentation (U-Net).
* :class:`DataLoader`: batches as tensors on a device, seeded shuffling, ``drop_last``.
* :mod:`minicnn.data.transforms`: batch-wise ``Normalize``, ``RandomCrop``,
  ``RandomHorizontalFlip``, ``Pad``, ``ToFloat``, ``Compose``.
* :func:`load_data` (:mod:`minicnn.data.presets`): a data set by name, normalised with its
  training set's mean and std (``NORMALIZE``), as ``minicnn train`` and the experiments use it;
  ``val_fraction=0.1`` holds a validation part out of its training split.
* :func:`random_split` (PyTorch's, :mod:`minicnn.data.split`): non-overlapping random parts of
  a data set, by counts or fractions, the same parts for the same ``seed``;
  :func:`hold_out_validation`: a validation part of a training set, without its augmentation.

Every problem with a file is a :class:`DataError` naming the file and what is wrong; a missing
data set is a :class:`DatasetNotFoundError` listing the folders searched and how to get it.
"""
from minicnn.data import transforms
from minicnn.data.cifar import CIFAR10, read_cifar_batch
from minicnn.data.dataset import ArrayDataset, Subset
from minicnn.data.errors import ChecksumError, DataError, DatasetNotFoundError
from minicnn.data.idx import read_idx, write_idx
from minicnn.data.loader import DataLoader
from minicnn.data.mnist import (MNIST, FashionMNIST, fashion_mnist_message, load_bundled_subset,
                                load_fashion_mnist)
from minicnn.data.presets import DATASETS, NORMALIZE, load_data
from minicnn.data.segmentation import SyntheticShapes
from minicnn.data.split import describe_splits, hold_out_validation, random_split
from minicnn.data.transforms import (Compose, Normalize, Pad, RandomCrop, RandomHorizontalFlip,
                                     ToFloat, ToTensor)

__all__ = ["read_idx", "write_idx", "FashionMNIST", "MNIST", "CIFAR10", "read_cifar_batch",
           "SyntheticShapes", "ArrayDataset", "Subset", "DataLoader", "load_fashion_mnist",
           "load_bundled_subset", "fashion_mnist_message", "transforms", "Compose", "ToFloat",
           "ToTensor", "Normalize", "Pad", "RandomCrop", "RandomHorizontalFlip", "DataError",
           "ChecksumError", "DatasetNotFoundError", "load_data", "NORMALIZE", "DATASETS",
           "random_split", "hold_out_validation", "describe_splits"]
