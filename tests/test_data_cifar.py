"""CIFAR-10 from python-pickle batches that the tests write in the official format; corrupt,
missing and hostile files; the download with a file:// URL."""
import io
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest

import minicnn.data as D
from minicnn.data import download as dl
from minicnn.data.cifar import extract_cifar_archive, write_cifar_batch

PER_BATCH = 4


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MINICNN_DATA", raising=False)
    monkeypatch.setattr(dl, "SYSTEM_DIRS", (tmp_path / "system",))
    return tmp_path


def make_images(n, offset):
    """Images whose every value says where it is: channel c holds 10*c + offset, and pixel
    (0, 1) of every channel is 1 more than pixel (0, 0), to pin the row-major layout."""
    images = np.zeros((n, 3, 32, 32), dtype=np.uint8)
    for c in range(3):
        images[:, c] = 10 * c + offset
    images[:, :, 0, 1] += 1
    images[:, :, 1, 0] += 2
    return images


def write_release(folder, meta=True):
    """The cifar-10-batches-py folder with 5 training batches and a test batch."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        write_cifar_batch(folder / f"data_batch_{i}", make_images(PER_BATCH, offset=i),
                          [(i + k) % 10 for k in range(PER_BATCH)])
    write_cifar_batch(folder / "test_batch", make_images(PER_BATCH, offset=100), [9, 8, 7, 6])
    if meta:
        names = [f"class{i}".encode() for i in range(10)]
        (folder / "batches.meta").write_bytes(
            pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2))
    return folder


def test_reads_the_official_layout(isolated):
    write_release(isolated / "cifar-10-batches-py")
    train = D.CIFAR10(root=isolated)  # root may hold the folder...
    same = D.CIFAR10(root=isolated / "cifar-10-batches-py")  # ...or be it
    assert train.folder == same.folder == isolated / "cifar-10-batches-py"
    assert train.data.shape == (5 * PER_BATCH, 3, 32, 32) and train.data.dtype == np.uint8
    assert train.targets.dtype == np.int64
    np.testing.assert_array_equal(train.targets[:PER_BATCH], [1, 2, 3, 4])  # batch 1 first
    np.testing.assert_array_equal(train.targets[-PER_BATCH:], [5, 6, 7, 8])
    assert train.classes == [f"class{i}" for i in range(10)]  # from batches.meta
    image = train.data[PER_BATCH * 2]  # first image of batch 3
    assert image[:, 5, 5].tolist() == [3, 13, 23]  # R, G, B planes in that order
    assert image[0, 0, 1] == image[0, 0, 0] + 1 and image[0, 1, 0] == image[0, 0, 0] + 2
    x, y = train.get_batch([0])
    assert x.shape == (1, 3, 32, 32) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, :, 5, 5], np.array([1, 11, 21]) / 255, rtol=1e-6)
    test = D.CIFAR10(root=isolated, train=False)
    assert len(test) == PER_BATCH and test.targets.tolist() == [9, 8, 7, 6]
    assert test.data[0, 2, 9, 9] == 120


def test_without_meta_the_standard_class_names(isolated):
    write_release(isolated / "c", meta=False)
    assert D.CIFAR10(root=isolated / "c").classes[0] == "airplane"


def test_python3_pickles_with_str_keys_and_new_protocols(isolated):
    folder = write_release(isolated / "cifar-10-batches-py")
    data = make_images(2, 50).reshape(2, -1)
    (folder / "test_batch").write_bytes(pickle.dumps({"data": data, "labels": [3, 4]},
                                                     protocol=pickle.HIGHEST_PROTOCOL))
    assert D.CIFAR10(root=isolated, train=False).targets.tolist() == [3, 4]


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` (BINSTRING), as cPickle did for the official files."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        self.write(b"T" + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def test_python2_pickles_like_the_official_files(isolated):
    folder = write_release(isolated / "cifar-10-batches-py")
    images = make_images(3, 70)
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump({b"batch_label": b"testing batch 1 of 1",
                                         b"data": images.reshape(3, -1), b"labels": [0, 5, 9]})
    # NumPy 1.x, which wrote the official files, lived in numpy.core
    raw = buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in raw and b"T\x04\x00\x00\x00data" in raw
    (folder / "test_batch").write_bytes(raw)
    test = D.CIFAR10(root=isolated, train=False)
    np.testing.assert_array_equal(test.data, images)
    assert test.targets.tolist() == [0, 5, 9]


def test_found_through_minicnn_data_and_the_cache(isolated, monkeypatch):
    write_release(isolated / "home" / ".cache" / "minicnn" / "cifar-10-batches-py")
    assert len(D.CIFAR10()) == 20
    write_release(isolated / "env" / "cifar-10-batches-py")
    monkeypatch.setenv("MINICNN_DATA", str(isolated / "env"))
    assert D.CIFAR10().folder == isolated / "env" / "cifar-10-batches-py"


def test_missing_batch_gives_a_clear_error(isolated):
    folder = write_release(isolated / "cifar-10-batches-py")
    (folder / "data_batch_3").unlink()
    with pytest.raises(D.DatasetNotFoundError) as info:
        D.CIFAR10(root=isolated)
    message = str(info.value)
    assert "CIFAR-10 (train split) was not found" in message and "data_batch_3" in message
    assert f"  {folder}\n" in message
    assert "download=True" in message and "MINICNN_DATA" in message
    assert len(D.CIFAR10(root=isolated, train=False)) == PER_BATCH  # the test split is whole


@pytest.mark.parametrize("damage, expected", [
    (lambda p: p.write_bytes(p.read_bytes()[:200]), "corrupt or truncated"),
    (lambda p: p.write_bytes(b"not a pickle at all"), "corrupt or truncated"),
    (lambda p: p.write_bytes(pickle.dumps([1, 2, 3])), "expected a pickled dict"),
    (lambda p: p.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)})),
     "no 'labels'"),
    (lambda p: p.write_bytes(pickle.dumps({b"data": np.zeros((2, 1000), np.uint8),
                                           b"labels": [0, 1]})), r"shape \(N, 3072\)"),
    (lambda p: p.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8),
                                           b"labels": [0]})), "2 images but labels"),
    (lambda p: p.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8),
                                           b"labels": [0, 12]})), "labels must lie in 0..9"),
])
def test_corrupt_batches_give_clear_errors(isolated, damage, expected):
    folder = write_release(isolated / "cifar-10-batches-py")
    damage(folder / "data_batch_2")
    with pytest.raises(D.DataError, match=expected) as info:
        D.CIFAR10(root=isolated)
    assert str(folder / "data_batch_2") in str(info.value)


class _Hostile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_a_pickle_that_would_run_code_is_refused(isolated):
    folder = write_release(isolated / "cifar-10-batches-py")
    victim = str(isolated / "pwned")
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": _Hostile(victim), b"labels": []}))
    with pytest.raises(D.DataError, match="refusing to load the global"):
        D.CIFAR10(root=isolated, train=False)
    assert not os.path.exists(victim)


def make_archive(path, source, extra=None):
    with tarfile.open(path, "w:gz") as tar:
        tar.add(source, arcname="cifar-10-batches-py")
        if extra is not None:
            info = tarfile.TarInfo(extra)
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    return dl.sha256_of(path)


def test_download_fetches_verifies_and_unpacks(isolated, monkeypatch):
    source = write_release(isolated / "build" / "cifar-10-batches-py")
    archive = isolated / "server" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    digest = make_archive(archive, source)
    monkeypatch.setattr(D.CIFAR10, "url", archive.as_uri())
    monkeypatch.setattr(D.CIFAR10, "archive_sha256", digest)
    ds = D.CIFAR10(download=True)
    cache = isolated / "home" / ".cache" / "minicnn"
    assert ds.folder == cache / "cifar-10-batches-py" and len(ds) == 5 * PER_BATCH
    assert sorted(os.listdir(cache)) == ["cifar-10-batches-py"]  # archive and temp dirs gone
    assert len(D.CIFAR10(train=False)) == PER_BATCH


def test_download_checksum_mismatch_leaves_nothing(isolated, monkeypatch):
    source = write_release(isolated / "build" / "cifar-10-batches-py")
    archive = isolated / "server" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    make_archive(archive, source)
    monkeypatch.setattr(D.CIFAR10, "url", archive.as_uri())
    monkeypatch.setattr(D.CIFAR10, "archive_sha256", "f" * 64)
    with pytest.raises(D.ChecksumError, match="SHA-256"):
        D.CIFAR10(download=True)
    assert os.listdir(isolated / "home" / ".cache" / "minicnn") == []


def test_archive_with_a_member_outside_the_folder_is_refused(isolated):
    source = write_release(isolated / "build" / "cifar-10-batches-py")
    archive = isolated / "evil.tar.gz"
    make_archive(archive, source, extra="../escaped.txt")
    (isolated / "out").mkdir()
    with pytest.raises(D.DataError, match="refusing to unpack the member '../escaped.txt'"):
        extract_cifar_archive(archive, isolated / "out" / "cifar-10-batches-py")
    assert not (isolated / "escaped.txt").exists() and os.listdir(isolated / "out") == []


def test_truncated_archive_is_a_data_error(isolated):
    source = write_release(isolated / "build" / "cifar-10-batches-py")
    archive = isolated / "cut.tar.gz"
    make_archive(archive, source)
    archive.write_bytes(archive.read_bytes()[:300])
    (isolated / "out").mkdir()
    with pytest.raises(D.DataError, match="cannot unpack"):
        extract_cifar_archive(archive, isolated / "out" / "cifar-10-batches-py")
    assert os.listdir(isolated / "out") == []
