"""Tests as attacks: flip bytes in and truncate every kind of file minicnn reads, and accept only
minicnn's own errors (``DataError``, ``CheckpointError``, ``StateDictError``) or a clean read.

A raw ``ValueError`` from NumPy, a ``KeyError`` from zipfile, an ``OverflowError`` from pickle or
a ``MemoryError`` from a hostile header is a failure: a student must be told which file is
damaged and what to do, not shown a traceback from deep inside a library.
"""
import gzip
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minicnn as mc
from minicnn import weights
from minicnn.checkpoint import read_checkpoint
from minicnn.data.cifar import read_cifar_batch, write_cifar_batch
from minicnn.data.errors import DataError
from minicnn.data.idx import read_idx, write_idx
from minicnn.nn.module import StateDictError
from minicnn.serialization import CheckpointError

MINICNN_ERRORS = (DataError, CheckpointError, StateDictError)
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _flips(size):
    """A list of (offset, xor mask) byte flips inside a file of ``size`` bytes."""
    return st.lists(st.tuples(st.integers(0, size - 1), st.integers(1, 255)), min_size=1,
                    max_size=8)


def _damage(data, flips):
    data = bytearray(data)
    for offset, mask in flips:
        data[offset] ^= mask
    return bytes(data)


def _attack(tmp_path, name, data, read):
    """Write ``data`` to ``tmp_path/name`` and read it: a result or one of minicnn's errors."""
    path = tmp_path / name
    path.write_bytes(data)
    try:
        read(path)
    except MINICNN_ERRORS as exc:
        assert str(path) in str(exc) or path.name in str(exc), str(exc)


# ---- the files ----------------------------------------------------------------------------------

def _idx_bytes(gzipped):
    buffer = io.BytesIO()
    images = np.arange(5 * 4 * 3, dtype=np.uint8).reshape(5, 4, 3)
    header = bytes([0, 0, 0x08, 3]) + np.asarray(images.shape, ">u4").tobytes()
    payload = header + images.tobytes()
    buffer.write(gzip.compress(payload, mtime=0) if gzipped else payload)
    return buffer.getvalue()


def _cifar_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("cifar") / "data_batch_1"
    rng = np.random.default_rng(0)
    write_cifar_batch(path, rng.integers(0, 256, (3, 3, 32, 32)), [1, 2, 3])
    return path.read_bytes()


def _model():
    mc.manual_seed(0)
    return mc.nn.Sequential(mc.nn.Conv2d(1, 2, 3), mc.nn.BatchNorm2d(2), mc.nn.Flatten(),
                            mc.nn.Linear(2 * 2 * 2, 3))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("files")
    model = _model()
    optimizer = mc.optim.Adam(model.parameters(), lr=1e-3)
    mc.save_checkpoint(folder / "checkpoint.npz", model, optimizer, epoch=2,
                       history={"loss": [1.0, 0.5]})
    weights.save(folder / "weights.npz", model)
    found = {"idx": _idx_bytes(False), "idx.gz": _idx_bytes(True),
             "cifar": _cifar_bytes(tmp_path_factory),
             "checkpoint": (folder / "checkpoint.npz").read_bytes(),
             "npz": (folder / "weights.npz").read_bytes()}
    try:
        weights.save(folder / "weights.safetensors", model)
        found["safetensors"] = (folder / "weights.safetensors").read_bytes()
    except ImportError:
        pass
    return found


def _read_checkpoint_into_a_model(path):
    model = _model()
    read_checkpoint(path)
    mc.load_checkpoint(path, model, mc.optim.Adam(model.parameters(), lr=1e-3))


def _load_weights(path):
    weights.load(_model(), path)


READERS = {
    "idx": ("train-images-idx3-ubyte", read_idx),
    "idx.gz": ("train-images-idx3-ubyte.gz", read_idx),
    "cifar": ("data_batch_1", read_cifar_batch),
    "checkpoint": ("checkpoint.npz", _read_checkpoint_into_a_model),
    "npz": ("weights.npz", _load_weights),
    "safetensors": ("weights.safetensors", _load_weights),
}


def _data(files, kind):
    if kind not in files:
        pytest.skip(f"{kind}: its package is not installed")
    return files[kind]


def test_the_undamaged_files_read(files, tmp_path):
    for kind, (name, read) in READERS.items():
        if kind in files:
            (tmp_path / name).write_bytes(files[kind])
            read(tmp_path / name)


@pytest.mark.parametrize("kind", sorted(READERS))
@FUZZ
@given(data=st.data())
def test_byte_flips_give_only_minicnn_errors(files, tmp_path, kind, data):
    original = _data(files, kind)
    flips = data.draw(_flips(len(original)))
    name, read = READERS[kind]
    _attack(tmp_path, name, _damage(original, flips), read)


@pytest.mark.parametrize("kind", sorted(READERS))
@FUZZ
@given(data=st.data())
def test_header_flips_give_only_minicnn_errors(files, tmp_path, kind, data):
    """The first 128 bytes hold every format's header: flips there reach the parsers."""
    original = _data(files, kind)
    flips = data.draw(st.lists(st.tuples(st.integers(0, min(127, len(original) - 1)),
                                         st.integers(1, 255)), min_size=1, max_size=4))
    name, read = READERS[kind]
    _attack(tmp_path, name, _damage(original, flips), read)


@pytest.mark.parametrize("kind", sorted(READERS))
@FUZZ
@given(data=st.data())
def test_truncations_give_only_minicnn_errors(files, tmp_path, kind, data):
    original = _data(files, kind)
    length = data.draw(st.integers(0, len(original) - 1))
    name, read = READERS[kind]
    path = tmp_path / name
    path.write_bytes(original[:length])
    with pytest.raises(MINICNN_ERRORS):
        read(path)


@FUZZ
@given(dims=st.lists(st.integers(0, 2 ** 32 - 1), min_size=1, max_size=6),
       code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]),
       extra=st.binary(max_size=64))
def test_any_idx_header_is_read_or_refused(tmp_path, dims, code, extra):
    """Hostile dimensions (whose product overflows 64 bits) never reach NumPy's reshape."""
    data = bytes([0, 0, code, len(dims)]) + np.asarray(dims, ">u4").tobytes() + extra
    _attack(tmp_path, "hostile-idx", data, read_idx)


def test_write_idx_round_trip_still_reads(tmp_path):
    write_idx(tmp_path / "x.gz", np.arange(6, dtype=np.int16).reshape(2, 3))
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz"),
                                  np.arange(6, dtype=np.int16).reshape(2, 3))


def test_a_zero_dimension_beside_huge_ones_is_refused_not_passed_to_numpy(tmp_path):
    """Found by the fuzzer above: the size is 0, so the file length matches, but NumPy refuses
    the shape (0, 82, 100288, 1058187, 1059899) with its own ValueError."""
    dims = [0, 82, 100288, 1058187, 1059899]
    path = tmp_path / "zero-and-huge.idx"
    path.write_bytes(bytes([0, 0, 0x08, len(dims)]) + np.asarray(dims, ">u4").tobytes())
    with pytest.raises(DataError, match="too large for any array"):
        read_idx(path)
