"""MNIST and Fashion-MNIST from their original IDX files, and the Fashion-MNIST subset that ships
inside minicnn.

    >>> train = FashionMNIST(train=True)            # the full set; error if it is nowhere
    >>> train = FashionMNIST(subset="auto")         # the full set if found, else the bundled one
    >>> train, test = load_fashion_mnist()          # same, both splits, and prints which it used
    >>> train.source
    'full: /usr/share/datasets/fashion-mnist'
    >>> x, y = train.get_batch([0, 1, 2])           # float32 (3, 1, 28, 28) in [0, 1], int64 (3,)

Files are found in the places listed in :mod:`minicnn.data.download` (``root``,
``$MINICNN_DATA``, ``/usr/share/datasets/<name>``, ``~/.cache/minicnn/<name>``), under their
original names, gzipped or not: ``train-images-idx3-ubyte(.gz)``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``.

Checksums (``download=True`` verifies the SHA-256 of every downloaded ``.gz`` file):

* Fashion-MNIST: the ``.gz`` SHA-256 values below are the ones of the files at the official URL
  as listed by TensorFlow Datasets (``url_checksums/fashion_mnist.txt``) and several other public
  projects, which pair them with the MD5 values published in Zalando's README (also below). The
  Debian package recompresses the files (its ``.gz`` files differ), but their *contents* are the
  originals: the MD5 of each decompressed file equals the published MD5 of the uncompressed
  originals (f4a8712d..., 9018921c..., 8181f547..., 15d48437...), checked when this was written.
  ``RAW_SHA256`` holds the SHA-256 of those decompressed contents, computed from the Debian files.
* MNIST: the ``.gz`` SHA-256 values are those listed by TensorFlow Datasets for the
  ``cvdf-datasets`` mirror and by other projects for Yann LeCun's original URLs (the same bytes);
  their MD5 values are torchvision's (``torchvision/datasets/mnist.py``). Not verifiable here
  (no MNIST files on this machine).
"""
from pathlib import Path

import numpy as np

from minicnn.data.dataset import ArrayDataset, find_or_download
from minicnn.data.download import ENV_VAR, cache_dir, candidate_dirs, fetch
from minicnn.data.errors import DataError
from minicnn.data.idx import read_idx

SPLIT_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
BUNDLED_SUBSET = BUNDLED_DIR / "fashion-mnist-subset.npz"
SUBSET_COMMAND = "python -m minicnn.data.make_subset"


def _find_file(folder, stem):
    """``folder/stem`` or ``folder/stem.gz``, whichever exists (raw first), else None."""
    for name in (stem, stem + ".gz"):
        path = folder / name
        if path.is_file():
            return path
    return None


class MNIST(ArrayDataset):
    """The MNIST handwritten digits: 60,000 training and 10,000 test images, 28x28, 10 classes.

    ``MNIST(root=None, train=True, download=False, transform=None)``. Attributes: ``data`` uint8
    (N, 28, 28), ``targets`` int64 (N,), ``classes``, ``source`` (where the files came from).
    ``dataset[i]`` is ``(image float32 (1, 28, 28) in [0, 1] after the transform, label)``;
    ``dataset.get_batch(indices)`` is the same for a whole batch, vectorised.
    """

    name = "mnist"
    title = "MNIST"
    torchvision_name = "MNIST"
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six",
               "7 - seven", "8 - eight", "9 - nine"]
    mirrors = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
               "http://yann.lecun.com/exdb/mnist/")
    #: SHA-256 of the official .gz files (TensorFlow Datasets; see the module docstring)
    sha256 = {
        "train-images-idx3-ubyte.gz":
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz":
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz":
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz":
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    }
    #: MD5 of the same files as torchvision lists them (for reference; SHA-256 is what is checked)
    md5 = {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    system_package = None  # no Debian package installs MNIST under /usr/share/datasets
    sizes = {True: 60000, False: 10000}

    def __init__(self, root=None, train=True, download=False, transform=None):
        self.train = bool(train)
        self.root = root
        folder = find_or_download(self, root, download)
        images, labels = self._load(folder)
        super().__init__(images, labels, transform=transform)
        self.folder = folder
        self.source = f"full: {folder}"
        self.is_subset = False

    # ---- finding and reading the files ---------------------------------------------------
    @classmethod
    def search_dirs(cls, root=None):
        """The folders searched, in order."""
        return candidate_dirs(cls.name, root,
                              aliases=(f"{cls.torchvision_name}/raw",))

    def _locate(self, root):
        """The first folder holding both files of this split, or None."""
        for folder in self.search_dirs(root):
            if all(_find_file(folder, stem) for stem in SPLIT_FILES[self.train]):
                return folder
        return None

    def _load(self, folder):
        image_stem, label_stem = SPLIT_FILES[self.train]
        image_path, label_path = _find_file(folder, image_stem), _find_file(folder, label_stem)
        images, labels = read_idx(image_path), read_idx(label_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataError(f"{image_path}: expected uint8 images of shape (N, H, W), got "
                            f"{images.dtype} {images.shape}")
        if labels.ndim != 1 or labels.dtype != np.uint8:
            raise DataError(f"{label_path}: expected uint8 labels of shape (N,), got "
                            f"{labels.dtype} {labels.shape}")
        if len(images) != len(labels):
            raise DataError(f"{folder}: {len(images):,} images ({image_path.name}) but "
                            f"{len(labels):,} labels ({label_path.name}); the two files do not "
                            "belong together")
        if labels.size and labels.max() >= len(self.classes):
            raise DataError(f"{label_path}: label {int(labels.max())} is out of range for "
                            f"{len(self.classes)} classes")
        return images, labels.astype(np.int64)

    def _how_to_get(self):
        ways = []
        if self.system_package:
            ways.append(f"install it system-wide: sudo apt-get install {self.system_package}")
        ways.append(f"download it: {type(self).__name__}(download=True) "
                    f"(into {self._download_dir(self.root)})")
        ways.append(f"point {ENV_VAR}=/path/to/folder at a folder that holds the files")
        return ways

    def _not_found_message(self, root):
        stems = SPLIT_FILES[self.train]
        lines = [f"{self.title} ({'train' if self.train else 'test'} split) was not found. "
                 f"Looked for {stems[0]}[.gz] and {stems[1]}[.gz] in:"]
        lines += [f"  {d}" for d in self.search_dirs(root)]
        lines.append("To get it:")
        lines += [f"  - {w}" for w in self._how_to_get()]
        return "\n".join(lines)

    # ---- downloading -----------------------------------------------------------------------
    @classmethod
    def _download_dir(cls, root):
        return Path(root).expanduser() if root is not None else cache_dir() / cls.name

    def download(self, root=None, quiet=False):
        """Fetch the four official files into ``root`` (or ``~/.cache/minicnn/<name>``), each
        verified against its published SHA-256 and renamed into place only then."""
        folder = self._download_dir(root)
        for filename, digest in self.sha256.items():
            if (folder / filename).is_file():
                continue
            fetch([m + filename for m in self.mirrors], folder / filename, digest, quiet=quiet)
        return folder


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: 70,000 28x28 grayscale photos of clothes in 10 classes, the
    lecture's default data set (a drop-in replacement for MNIST, harder: ~90% for LeNet-5).

    ``FashionMNIST(root=None, train=True, download=False, transform=None, subset=False)``

    ``subset`` picks between the full set and the small real subset bundled with minicnn:

    * ``False`` (default): the full set, found as described in :mod:`minicnn.data.download`
      (or downloaded with ``download=True``); a clear error if it is nowhere;
    * ``True``: the bundled subset (6,000 training / 1,000 test images, 600 / 100 per class);
    * ``"auto"``: the full set when it is found, the bundled subset otherwise.

    ``source`` says which was used (``"full: /usr/share/datasets/fashion-mnist"`` or
    ``"bundled subset (6,000 of 60,000 training images)"``) and ``is_subset`` is True for the
    subset. :func:`load_fashion_mnist` loads both splits from one source and says which.

    Fashion-MNIST is (c) 2017 Zalando SE, MIT licence:
    https://github.com/zalandoresearch/fashion-mnist
    """

    name = "fashion-mnist"
    title = "Fashion-MNIST"
    torchvision_name = "FashionMNIST"
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    sha256 = {
        "train-images-idx3-ubyte.gz":
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz":
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz":
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz":
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    }
    #: MD5 of the official .gz files, as published in Zalando's README
    md5 = {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    #: SHA-256 of the decompressed files (computed from the Debian package, whose decompressed
    #: MD5s equal the published ones of the original uncompressed files)
    raw_sha256 = {
        "train-images-idx3-ubyte":
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte":
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte":
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte":
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    }
    system_package = "dataset-fashion-mnist"

    def __init__(self, root=None, train=True, download=False, transform=None, subset=False):
        if subset not in (False, True, "auto"):
            raise ValueError(f"FashionMNIST: subset must be False, True or 'auto', got {subset!r}")
        self.train = bool(train)
        self.root = root
        fallback = subset == "auto" and not download and self._locate(root) is None
        if subset is True or fallback:
            images, labels = load_bundled_subset(train=self.train)
            ArrayDataset.__init__(self, images, labels, transform=transform)
            self.folder = None
            self.is_subset = True
            self.fell_back = fallback  # True: the full set was wanted but not found
            self.source = (f"bundled subset ({len(images):,} of {self.sizes[self.train]:,} "
                           f"{'training' if self.train else 'test'} images)")
            return
        super().__init__(root, train=train, download=download, transform=transform)
        self.fell_back = False

    def _how_to_get(self):
        return super()._how_to_get() + [
            "or use the small subset bundled with minicnn: FashionMNIST(subset=True), "
            "FashionMNIST(subset='auto') or load_fashion_mnist()"]

    def describe(self):
        """One line saying which data this is and where it came from (the CLI prints it)."""
        split = "train" if self.train else "test"
        if self.is_subset:
            why = ("the full set was not found (sudo apt-get install dataset-fashion-mnist, "
                   f"download=True, or {ENV_VAR}=/path)" if self.fell_back else "as asked")
            return f"Fashion-MNIST {split}: {self.source}, {why}"
        return super().describe()


def load_bundled_subset(train=True):
    """The bundled Fashion-MNIST subset: ``(images uint8 (N, 28, 28), labels int64 (N,))``.

    600 training and 100 test images of each class, the first ones of each class in the order
    of the official files; see ``bundled/README.md`` and :mod:`minicnn.data.make_subset`.
    """
    split = "train" if train else "test"
    try:
        with np.load(BUNDLED_SUBSET) as f:
            images, labels = f[f"{split}_images"], f[f"{split}_labels"]
    except FileNotFoundError as exc:
        raise DataError(f"the bundled Fashion-MNIST subset {BUNDLED_SUBSET} is missing from "
                        "this installation of minicnn; reinstall minicnn, or regenerate it from "
                        f"the full data set with: {SUBSET_COMMAND}") from exc
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"the bundled Fashion-MNIST subset {BUNDLED_SUBSET} is unreadable "
                        f"({exc}); regenerate it with: {SUBSET_COMMAND}") from exc
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28) \
            or labels.shape != (len(images),):
        raise DataError(f"{BUNDLED_SUBSET}: unexpected arrays {images.dtype} {images.shape} / "
                        f"{labels.shape}; regenerate it with: {SUBSET_COMMAND}")
    return images, labels.astype(np.int64)


def load_fashion_mnist(root=None, prefer_full=True, download=False, transform=None,
                       train_transform=None, test_transform=None, verbose=True):
    """Fashion-MNIST's training and test sets, from one source: ``(train, test)``.

    The full set when it is found (or downloaded with ``download=True``) and ``prefer_full``;
    the bundled subset otherwise. Either way it says which: ``train.source`` and, when
    ``verbose``, one printed line. ``transform`` applies to both splits; ``train_transform`` /
    ``test_transform`` override it per split (put augmentation in ``train_transform`` only).

        >>> train, test = load_fashion_mnist()
        Fashion-MNIST: full set from /usr/share/datasets/fashion-mnist (60,000 train / 10,000 test
        images)
    """
    train_tf = train_transform if train_transform is not None else transform
    test_tf = test_transform if test_transform is not None else transform
    if prefer_full:
        subset = "auto" if not download else False
        train = FashionMNIST(root, train=True, download=download, transform=train_tf,
                             subset=subset)
        # the test split comes from the same place as the training split
        test = FashionMNIST(train.folder if not train.is_subset else None, train=False,
                            transform=test_tf, subset=train.is_subset)
    else:
        train = FashionMNIST(train=True, transform=train_tf, subset=True)
        test = FashionMNIST(train=False, transform=test_tf, subset=True)
    if verbose:
        print(fashion_mnist_message(train, test, prefer_full))
    return train, test


def fashion_mnist_message(train, test, prefer_full=True):
    """The one line that says which Fashion-MNIST is in use."""
    counts = f"{len(train):,} train / {len(test):,} test images"
    if not train.is_subset:
        return f"Fashion-MNIST: full set from {train.folder} ({counts})"
    why = ("the full set was not found; for it: sudo apt-get install dataset-fashion-mnist, "
           f"download=True, or {ENV_VAR}=/path" if prefer_full else "as asked")
    return f"Fashion-MNIST: using the small subset bundled with minicnn ({counts}); {why}"
