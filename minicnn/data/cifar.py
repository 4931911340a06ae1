"""CIFAR-10 from its standard python-pickle batches (``cifar-10-batches-py/``).

The official archive ``cifar-10-python.tar.gz`` unpacks into ``cifar-10-batches-py/`` with
``data_batch_1`` ... ``data_batch_5`` (10,000 training images each), ``test_batch`` (10,000)
and ``batches.meta`` (the class names). Each batch is a pickled dict::

    b'data'    uint8 array (10000, 3072): each row one 32x32 image, the 1024 red values first
               (row by row), then the 1024 green, then the 1024 blue
    b'labels'  list of 10000 ints in 0..9

so ``data.reshape(-1, 3, 32, 32)`` is the batch in NCHW order, which is how :class:`CIFAR10`
keeps it (``data`` uint8 (N, 3, 32, 32); torchvision keeps (N, 32, 32, 3) instead).

Pickles can run code when loaded, so the batches are read with an unpickler that only accepts
the few NumPy globals an array needs; anything else is refused with a :class:`DataError`.
"""
import codecs
import io
import os
import pickle
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from minicnn.data.dataset import ArrayDataset, find_or_download
from minicnn.data.download import ENV_VAR, cache_dir, candidate_dirs, fetch
from minicnn.data.errors import DataError

try:  # NumPy 2 moved numpy.core to numpy._core; old pickles still name numpy.core
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric

_ALLOWED_GLOBALS = {}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED_GLOBALS[(_module, "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED_GLOBALS[(_module, "scalar")] = _multiarray.scalar
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    if hasattr(_numeric, "_frombuffer"):
        _ALLOWED_GLOBALS[(_module, "_frombuffer")] = _numeric._frombuffer
_ALLOWED_GLOBALS[("numpy", "ndarray")] = np.ndarray
_ALLOWED_GLOBALS[("numpy", "dtype")] = np.dtype
# Python 3 writes bytes into a protocol-2 pickle as _codecs.encode(text, "latin1"); harmless
_ALLOWED_GLOBALS[("_codecs", "encode")] = codecs.encode


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and NumPy arrays, and nothing that runs code."""

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load the global {module}.{name}: a CIFAR batch holds only "
                "arrays, lists and strings") from None


def _load_pickle(path):
    try:
        with open(path, "rb") as f:
            # latin1: Python 2 pickles (the official files) store NumPy's raw bytes as str
            obj = _ArrayOnlyUnpickler(f, encoding="latin1").load()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    except Exception as exc:  # NOTE: a damaged pickle raises almost anything (UnpicklingError,
        # EOFError, OverflowError for a huge length, LookupError for a bad memo index,
        # MemoryError, RecursionError, errors from NumPy's array reconstruction): all "corrupt"
        raise DataError(f"{path}: not a readable CIFAR python batch, corrupt or truncated "
                        f"({type(exc).__name__}: {exc}); delete the folder and get the data "
                        "again") from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict, found {type(obj).__name__}")
    # keys are bytes in the official files (b'data'), str when written by Python 3 with str keys
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def read_cifar_batch(path):
    """One CIFAR-10 batch file -> ``(images uint8 (N, 3, 32, 32), labels int64 (N,))``."""
    batch = _load_pickle(path)
    missing = [k for k in ("data", "labels") if k not in batch]
    if missing:
        raise DataError(f"{path}: the batch has no {' or '.join(repr(k) for k in missing)} "
                        f"entry (its keys: {sorted(map(str, batch))})")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        shape = getattr(data, "shape", None)
        raise DataError(f"{path}: 'data' must be a uint8 array of shape (N, 3072), got "
                        f"{type(data).__name__} {getattr(data, 'dtype', '')} {shape}")
    try:
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: 'labels' is not a list of integers ({exc})") from exc
    if labels.shape != (len(data),):
        raise DataError(f"{path}: {len(data)} images but labels of shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: labels must lie in 0..9, found {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels


class CIFAR10(ArrayDataset):
    """CIFAR-10: 50,000 training and 10,000 test colour images, 32x32, 10 classes.

    ``CIFAR10(root=None, train=True, download=False, transform=None)``. The folder
    ``cifar-10-batches-py`` is searched in ``root``, ``$MINICNN_DATA`` and ``~/.cache/minicnn``
    (``root`` may also be that folder itself). ``download=True`` fetches the official archive
    (163 MB) into ``root`` or ``~/.cache/minicnn``, checks its SHA-256 and unpacks it safely.

    ``data`` uint8 (N, 3, 32, 32), ``targets`` int64 (N,), ``classes``; ``dataset[i]`` is
    ``(image float32 (3, 32, 32) in [0, 1] after the transform, label)``.
    """

    name = "cifar-10-batches-py"
    title = "CIFAR-10"
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]
    train_files = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_files = ("test_batch",)
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    archive_name = "cifar-10-python.tar.gz"
    #: SHA-256 of the official archive (as Keras and many projects pin it); its MD5, as published
    #: on the CIFAR page and used by torchvision, is ``archive_md5``
    archive_sha256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
    archive_md5 = "c58f30108f718f92721af3b95e74349a"

    def __init__(self, root=None, train=True, download=False, transform=None):
        self.train = bool(train)
        self.root = root
        folder = find_or_download(self, root, download)
        parts = [read_cifar_batch(folder / f) for f in self._files()]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        super().__init__(images, labels, transform=transform, classes=self._read_meta(folder))
        self.folder = folder
        self.source = f"full: {folder}"
        self.is_subset = False

    def _files(self):
        return self.train_files if self.train else self.test_files

    @classmethod
    def search_dirs(cls, root=None):
        return candidate_dirs(cls.name, root, system=False)

    def _locate(self, root):
        for folder in self.search_dirs(root):
            if all((folder / f).is_file() for f in self._files()):
                return folder
        return None

    def _read_meta(self, folder):
        path = folder / "batches.meta"
        if not path.is_file():
            return type(self).classes
        names = _load_pickle(path).get("label_names")
        if not isinstance(names, (list, tuple)) or len(names) != 10:
            raise DataError(f"{path}: expected 'label_names', a list of 10 class names")
        return [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names]

    def _not_found_message(self, root):
        lines = [f"CIFAR-10 ({'train' if self.train else 'test'} split) was not found. Looked for "
                 f"{', '.join(self._files())} in:"]
        lines += [f"  {d}" for d in self.search_dirs(root)]
        target = Path(root).expanduser() if root is not None else cache_dir()
        lines += ["To get it:",
                  f"  - download it: CIFAR10(download=True) (163 MB, into {target / self.name})",
                  f"  - or point {ENV_VAR}=/path/to/folder at a folder that holds "
                  f"{self.name}/ (unpacked from {self.archive_name}, {self.url})"]
        return "\n".join(lines)

    def download(self, root=None, quiet=False):
        """Fetch the archive, verify its SHA-256, unpack ``cifar-10-batches-py/`` next to it
        (refusing any member outside that folder), and remove the archive."""
        base = Path(root).expanduser() if root is not None else cache_dir()
        target = base / self.name
        archive = base / self.archive_name
        if not archive.is_file():
            fetch(self.url, archive, self.archive_sha256, quiet=quiet)
        extract_cifar_archive(archive, target)
        archive.unlink()
        return target


def extract_cifar_archive(archive, target):
    """Unpack ``cifar-10-batches-py/`` from ``archive`` into ``target`` safely and atomically:
    every member must be a plain file or folder inside ``cifar-10-batches-py/``; the files are
    extracted into a temporary folder that is renamed to ``target`` only when all is well."""
    archive, target = Path(archive), Path(target)
    top = CIFAR10.name
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                parts = Path(m.name).parts
                if m.name.startswith(("/", "\\")) or ".." in parts or not parts \
                        or parts[0] != top or not (m.isfile() or m.isdir()):
                    raise DataError(f"{archive}: refusing to unpack the member {m.name!r} "
                                    f"(only plain files inside {top}/ are expected)")
            tmp = Path(tempfile.mkdtemp(prefix=".cifar-", dir=target.parent))
            try:
                kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(tmp, members=members, **kwargs)
                if target.exists():
                    shutil.rmtree(target)
                os.replace(tmp / top, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{archive}: cannot unpack the archive ({exc}); delete it and download "
                        "again") from exc
    return target


def write_cifar_batch(path, images, labels, label_key="labels"):
    """Write a batch in the official format (for tests and tools): images uint8 (N, 3, 32, 32)
    or (N, 3072), labels a list of ints; keys as bytes, like the official files."""
    images = np.ascontiguousarray(np.asarray(images, dtype=np.uint8).reshape(len(images), -1))
    batch = {b"batch_label": b"written by minicnn", b"data": images,
             label_key.encode(): [int(v) for v in labels],
             b"filenames": [f"{i}.png".encode() for i in range(len(images))]}
    buffer = io.BytesIO()
    pickle.dump(batch, buffer, protocol=2)
    Path(path).write_bytes(buffer.getvalue())
