"""Fashion-MNIST and MNIST: the search order, the real files when installed, the bundled subset,
the missing-data-set error, and downloads (from file:// URLs and a fake urlopen; no internet)."""
import configparser
import fnmatch
import gzip
import io
import os
import pathlib
import urllib.error
import urllib.request

import numpy as np
import pytest

import minicnn.data as D
from minicnn.data import download as dl
from minicnn.data import make_subset
from minicnn.data.idx import write_idx
from minicnn.data.mnist import BUNDLED_DIR, BUNDLED_SUBSET

FASHION = pathlib.Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not FASHION.is_dir(),
    reason=f"{FASHION} is absent (sudo apt-get install dataset-fashion-mnist)")
ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No data anywhere: an empty HOME (so an empty ~/.cache/minicnn), no $MINICNN_DATA, and a
    system folder that does not exist. Returns tmp_path."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MINICNN_DATA", raising=False)
    monkeypatch.setattr(dl, "SYSTEM_DIRS", (tmp_path / "system",))
    return tmp_path


def fake_split(folder, n, train=True, gz=True, seed=0):
    """Write a small data set in the original file format; returns (images, labels)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    prefix = "train" if train else "t10k"
    suffix = ".gz" if gz else ""
    write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return images, labels


# ---- the full set, found in the search order ----------------------------------------------

def test_finds_files_in_minicnn_data_raw_or_gzipped(isolated, monkeypatch):
    images, labels = fake_split(isolated / "mine", 20, gz=False)
    fake_split(isolated / "mine", 10, train=False, gz=True)
    monkeypatch.setenv("MINICNN_DATA", str(isolated / "mine"))
    train = D.FashionMNIST(train=True)
    test = D.FashionMNIST(train=False)
    assert len(train) == 20 and len(test) == 10
    assert train.source == f"full: {isolated / 'mine'}" and not train.is_subset
    np.testing.assert_array_equal(train.data, images)
    assert train.targets.dtype == np.int64
    np.testing.assert_array_equal(train.targets, labels)


def test_search_order_root_then_env_then_system_then_cache(isolated, monkeypatch):
    for name in ("root", "env/fashion-mnist", "system/fashion-mnist",
                 "home/.cache/minicnn/fashion-mnist"):
        fake_split(isolated / name, 10, seed=len(name))
    monkeypatch.setenv("MINICNN_DATA", str(isolated / "env"))  # finds env/fashion-mnist
    assert D.FashionMNIST(root=isolated / "root").folder == isolated / "root"
    assert D.FashionMNIST().folder == isolated / "env" / "fashion-mnist"
    monkeypatch.delenv("MINICNN_DATA")
    assert D.FashionMNIST().folder == isolated / "system" / "fashion-mnist"
    monkeypatch.setattr(dl, "SYSTEM_DIRS", ())
    assert D.FashionMNIST().folder == isolated / "home" / ".cache" / "minicnn" / "fashion-mnist"


def test_items_and_batches(isolated):
    images, labels = fake_split(isolated / "d", 12)
    ds = D.FashionMNIST(root=isolated / "d")
    image, label = ds[3]
    assert image.shape == (1, 28, 28) and image.dtype == np.float32
    np.testing.assert_allclose(image[0], images[3] / 255.0, rtol=1e-6)
    assert label == 3 and isinstance(label, int)
    x, y = ds.get_batch([5, 0, 11])
    assert x.shape == (3, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(x[:, 0], images[[5, 0, 11]] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, labels[[5, 0, 11]])
    assert ds[-1][1] == ds[11][1]
    with pytest.raises(IndexError, match="out of range"):
        ds[12]
    assert len(ds.classes) == 10 and ds.classes[9] == "Ankle boot"


def test_transform_is_applied(isolated):
    fake_split(isolated / "d", 4)
    ds = D.FashionMNIST(root=isolated / "d", transform=D.Normalize(0.5, 0.25))
    plain = D.FashionMNIST(root=isolated / "d")
    np.testing.assert_allclose(ds.get_batch([1])[0], (plain.get_batch([1])[0] - 0.5) / 0.25,
                               rtol=1e-6, atol=1e-6)


def test_corrupt_file_is_an_error_not_a_silent_fallback(isolated):
    fake_split(isolated / "d", 10)
    path = isolated / "d" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(D.DataError, match="truncated"):
        D.FashionMNIST(root=isolated / "d", subset="auto")


def test_images_and_labels_that_do_not_belong_together(isolated):
    fake_split(isolated / "d", 10)
    write_idx(isolated / "d" / "train-labels-idx1-ubyte.gz", np.zeros(9, np.uint8))
    with pytest.raises(D.DataError, match="10 images .* but 9 labels"):
        D.FashionMNIST(root=isolated / "d")


# ---- missing ----------------------------------------------------------------------------------

def test_missing_data_set_says_where_it_looked_and_how_to_get_it(isolated, monkeypatch):
    monkeypatch.setenv("MINICNN_DATA", str(isolated / "nowhere"))
    with pytest.raises(D.DatasetNotFoundError) as info:
        D.FashionMNIST(root=isolated / "r")
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, D.DataError)
    assert "sudo apt-get install dataset-fashion-mnist" in message
    assert "download=True" in message and "MINICNN_DATA" in message
    assert "subset=True" in message
    for folder in (isolated / "r", isolated / "nowhere", isolated / "system" / "fashion-mnist",
                   isolated / "home" / ".cache" / "minicnn" / "fashion-mnist"):
        assert f"  {folder}\n" in message
    assert "train-images-idx3-ubyte[.gz]" in message


def test_missing_mnist(isolated):
    with pytest.raises(D.DatasetNotFoundError) as info:
        D.MNIST(train=False)
    message = str(info.value)
    assert "MNIST (test split) was not found" in message and "t10k-images-idx3-ubyte" in message
    assert "download=True" in message and "MINICNN_DATA" in message
    assert "apt-get" not in message  # no system package ships MNIST


def test_mnist_reads_its_own_folder(isolated, monkeypatch):
    fake_split(isolated / "data" / "mnist", 10)
    fake_split(isolated / "data" / "fashion-mnist", 20)
    monkeypatch.setenv("MINICNN_DATA", str(isolated / "data"))
    assert len(D.MNIST()) == 10 and len(D.FashionMNIST()) == 20
    assert D.MNIST().classes[0] == "0 - zero"


# ---- the bundled subset -----------------------------------------------------------------------

def test_bundled_subset_loads_with_no_data_installed_and_says_so(isolated, capsys):
    train = D.FashionMNIST(subset="auto")
    test = D.FashionMNIST(train=False, subset="auto")
    assert train.is_subset and train.fell_back and train.folder is None
    assert train.source == "bundled subset (6,000 of 60,000 training images)"
    assert test.source == "bundled subset (1,000 of 10,000 test images)"
    assert "full set was not found" in train.describe()
    np.testing.assert_array_equal(np.bincount(train.targets), [600] * 10)
    np.testing.assert_array_equal(np.bincount(test.targets), [100] * 10)
    assert train.data.dtype == np.uint8 and train.data.shape == (6000, 28, 28)
    x, y = train.get_batch(np.arange(64))
    assert x.dtype == np.float32 and x.shape == (64, 1, 28, 28) and 0 <= x.min() < x.max() <= 1
    assert "bundled subset" in repr(train)

    tr, te = D.load_fashion_mnist()
    line = capsys.readouterr().out.strip()
    assert tr.is_subset and te.is_subset and len(tr) == 6000 and len(te) == 1000
    assert line.startswith("Fashion-MNIST: using the small subset bundled with minicnn")
    assert "apt-get install dataset-fashion-mnist" in line and "\n" not in line


def test_subset_true_is_used_even_when_the_full_set_exists(isolated):
    fake_split(isolated / "d", 10)
    ds = D.FashionMNIST(root=isolated / "d", subset=True)
    assert ds.is_subset and len(ds) == 6000 and "as asked" in ds.describe()
    assert not D.FashionMNIST(root=isolated / "d", subset="auto").is_subset
    with pytest.raises(ValueError, match="subset must be"):
        D.FashionMNIST(subset="yes")


def test_load_fashion_mnist_prefers_the_full_set_and_says_where(isolated, capsys):
    fake_split(isolated / "d", 20)
    fake_split(isolated / "d", 10, train=False)
    train, test = D.load_fashion_mnist(root=isolated / "d", test_transform=D.Normalize(0, 2))
    line = capsys.readouterr().out.strip()
    assert line == f"Fashion-MNIST: full set from {isolated / 'd'} (20 train / 10 test images)"
    assert (len(train), len(test)) == (20, 10) and train.transform is None
    assert test.transform is not None
    train, test = D.load_fashion_mnist(root=isolated / "d", prefer_full=False, verbose=False)
    assert train.is_subset and test.is_subset and capsys.readouterr().out == ""


def test_bundled_files_are_listed_as_package_data():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert "minicnn.data" in cfg["options"]["packages"].split()
    patterns = [p.strip() for p in cfg["options.package_data"]["minicnn.data"].split(",")]
    files = [p.relative_to(BUNDLED_DIR.parent).as_posix() for p in BUNDLED_DIR.iterdir()]
    assert BUNDLED_SUBSET.name in {pathlib.Path(f).name for f in files}
    assert "bundled/LICENSE-fashion-mnist.txt" in files
    for f in files:
        assert any(fnmatch.fnmatch(f, p) for p in patterns), f"{f} would not be installed"
    assert BUNDLED_SUBSET.stat().st_size < 4_000_000
    assert "Zalando SE" in (BUNDLED_DIR / "LICENSE-fashion-mnist.txt").read_text()


@needs_fashion
def test_bundled_subset_is_real_fashion_mnist_chosen_as_documented():
    """Each bundled image equals the official one at its recorded index, and the indices are
    the first 600 (train) / 100 (test) of each class: what make_subset regenerates."""
    rebuilt = make_subset.build(FASHION, verify=False)  # the raw SHA-256s: test below
    with np.load(BUNDLED_SUBSET) as bundled:
        for key in rebuilt:
            np.testing.assert_array_equal(bundled[key], rebuilt[key], err_msg=key)
        full = D.FashionMNIST(root=FASHION)
        idx = bundled["train_indices"]
        np.testing.assert_array_equal(bundled["train_images"], full.data[idx])
        for c in range(10):
            assert set(idx[full.targets[idx] == c]) == set(np.flatnonzero(full.targets == c)[:600])


# ---- the real data set, when installed ----------------------------------------------------------

@needs_fashion
def test_real_fashion_mnist(monkeypatch):
    monkeypatch.delenv("MINICNN_DATA", raising=False)
    train = D.FashionMNIST(root=FASHION)
    test = D.FashionMNIST(root=FASHION, train=False)
    assert train.data.shape == (60000, 28, 28) and test.data.shape == (10000, 28, 28)
    assert train.data.dtype == np.uint8 and train.targets.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(train.targets), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(test.targets), [1000] * 10)
    assert train.source == f"full: {FASHION}" and not train.is_subset
    assert abs(train.data.mean() / 255 - 0.2860) < 1e-3  # the well-known statistics
    assert train.targets[0] == 9 and test.targets[0] == 9  # both files start with an ankle boot


# ---- downloading (no internet: file:// URLs and a fake urlopen) --------------------------------

def serve(tmp_path, cls, n_train=20, n_test=10):
    """Put a fake release of ``cls`` in a folder, point cls.mirrors at it by file:// URL and
    return the SHA-256 table of the files (to monkeypatch as cls.sha256)."""
    server = tmp_path / "server"
    fake_split(server, n_train, train=True)
    fake_split(server, n_test, train=False)
    return server, {f: dl.sha256_of(server / f) for f in cls.sha256}


@pytest.mark.parametrize("cls", [D.FashionMNIST, D.MNIST])
def test_download_fetches_verifies_and_loads(isolated, monkeypatch, cls):
    server, digests = serve(isolated, cls)
    monkeypatch.setattr(cls, "mirrors", (server.as_uri() + "/",))
    monkeypatch.setattr(cls, "sha256", digests)
    ds = cls(download=True, train=False)
    target = isolated / "home" / ".cache" / "minicnn" / cls.name
    assert ds.folder == target and len(ds) == 10
    assert sorted(p.name for p in target.iterdir()) == sorted(digests)  # all four, nothing else
    assert len(cls(train=True)) == 20  # found in the cache without download=True


def test_download_into_root(isolated, monkeypatch):
    server, digests = serve(isolated, D.FashionMNIST)
    monkeypatch.setattr(D.FashionMNIST, "mirrors", (server.as_uri() + "/",))
    monkeypatch.setattr(D.FashionMNIST, "sha256", digests)
    ds = D.FashionMNIST(root=isolated / "mine", download=True)
    assert ds.folder == isolated / "mine" and len(os.listdir(isolated / "mine")) == 4


def test_checksum_mismatch_is_an_error_and_leaves_nothing(isolated, monkeypatch):
    server, digests = serve(isolated, D.FashionMNIST)
    digests["train-images-idx3-ubyte.gz"] = "0" * 64
    monkeypatch.setattr(D.FashionMNIST, "mirrors", (server.as_uri() + "/",))
    monkeypatch.setattr(D.FashionMNIST, "sha256", digests)
    with pytest.raises(D.ChecksumError) as info:
        D.FashionMNIST(download=True)
    message = str(info.value)
    assert "0" * 64 in message and dl.sha256_of(server / "train-images-idx3-ubyte.gz") in message
    assert "not kept" in message
    target = isolated / "home" / ".cache" / "minicnn" / "fashion-mnist"
    assert not (target / "train-images-idx3-ubyte.gz").exists()
    assert not [p for p in target.iterdir() if p.name.startswith("train-images")]  # no .part


def test_real_checksum_tables_are_complete():
    for cls in (D.FashionMNIST, D.MNIST):
        assert set(cls.sha256) == {s + ".gz" for pair in (("train-images-idx3-ubyte",
               "train-labels-idx1-ubyte"), ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))
               for s in pair}
        assert all(len(v) == 64 and int(v, 16) >= 0 for v in cls.sha256.values())


@needs_fashion
def test_debian_files_hold_the_original_contents():
    """Debian recompressed the .gz files, but their contents are the originals."""
    import hashlib
    for stem, digest in D.FashionMNIST.raw_sha256.items():
        data = gzip.decompress((FASHION / (stem + ".gz")).read_bytes())
        assert hashlib.sha256(data).hexdigest() == digest, stem


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class BrokenResponse(FakeResponse):
    def read(self, size=-1):
        if self.tell() > 50:
            raise ConnectionResetError("connection reset by peer")
        return super().read(min(size, 30))


def test_falls_back_to_the_next_mirror_with_a_fake_urlopen(isolated, monkeypatch):
    server, digests = serve(isolated, D.MNIST)
    calls = []

    def urlopen(url, timeout=None):
        calls.append(url)
        if url.startswith("https://first/"):
            raise urllib.error.URLError("no route to host")
        return FakeResponse((server / url.rsplit("/", 1)[1]).read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(D.MNIST, "mirrors", ("https://first/", "https://second/"))
    monkeypatch.setattr(D.MNIST, "sha256", digests)
    assert len(D.MNIST(download=True)) == 20
    assert calls[:2] == ["https://first/train-images-idx3-ubyte.gz",
                         "https://second/train-images-idx3-ubyte.gz"]


def test_interrupted_download_leaves_nothing(isolated, monkeypatch):
    server, digests = serve(isolated, D.MNIST)
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout=None: BrokenResponse(b"x" * 1000))
    monkeypatch.setattr(D.MNIST, "mirrors", ("https://only/",))
    monkeypatch.setattr(D.MNIST, "sha256", digests)
    with pytest.raises(D.DataError) as info:
        D.MNIST(download=True)
    assert "could not download train-images-idx3-ubyte.gz" in str(info.value)
    assert "connection reset" in str(info.value) and "MINICNN_DATA" in str(info.value)
    target = isolated / "home" / ".cache" / "minicnn" / "mnist"
    assert list(target.iterdir()) == []
