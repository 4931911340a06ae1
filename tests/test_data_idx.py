"""The IDX reader: good files (gzip and raw, told apart by content), and every kind of bad file
gives a DataError that names the file and the problem."""
import gzip
import struct

import numpy as np
import pytest

from minicnn.data import DataError, read_idx, write_idx

FASHION = "/usr/share/datasets/fashion-mnist"


def idx_bytes(code, dims, payload):
    """An IDX file assembled by hand (independently of write_idx)."""
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload


@pytest.fixture
def images():
    return np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) * 7


def test_reads_a_hand_made_raw_file(tmp_path, images):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(0x08, (2, 3, 4), images.tobytes()))
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, images)
    out[0, 0, 0] = 1  # a writable array, not a view of the file's bytes


def test_reads_gzip_and_detects_it_by_content_not_name(tmp_path, images):
    raw = idx_bytes(0x08, (2, 3, 4), images.tobytes())
    gz_named_raw = tmp_path / "images.idx"          # gzip content, no .gz in the name
    gz_named_raw.write_bytes(gzip.compress(raw))
    raw_named_gz = tmp_path / "images.gz"           # raw content with a .gz name
    raw_named_gz.write_bytes(raw)
    np.testing.assert_array_equal(read_idx(gz_named_raw), images)
    np.testing.assert_array_equal(read_idx(raw_named_gz), images)


def test_big_endian_types_are_converted(tmp_path):
    # int16 0x0102 = 258 and -2; float32 1.5 ; all stored big-endian
    shorts = tmp_path / "s.idx"
    shorts.write_bytes(idx_bytes(0x0B, (2,), b"\x01\x02\xff\xfe"))
    np.testing.assert_array_equal(read_idx(shorts), [258, -2])
    assert read_idx(shorts).dtype == np.dtype("int16") and read_idx(shorts).dtype.isnative
    floats = tmp_path / "f.idx"
    floats.write_bytes(idx_bytes(0x0D, (1, 1), struct.pack(">f", 1.5)))
    assert read_idx(floats).tolist() == [[1.5]]


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a-idx", "a-idx.gz"])
def test_write_then_read_roundtrips(tmp_path, dtype, name):
    array = (np.arange(30).reshape(5, 6) - 10).astype(dtype)
    write_idx(tmp_path / name, array)
    out = read_idx(tmp_path / name)
    assert out.dtype == array.dtype and out.shape == array.shape
    np.testing.assert_array_equal(out, array)


def _error(path):
    with pytest.raises(DataError) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message
    return message


def test_truncated_data(tmp_path, images):
    path = tmp_path / "cut-idx3-ubyte"
    path.write_bytes(idx_bytes(0x08, (2, 3, 4), images.tobytes())[:-5])
    message = _error(path)
    assert "truncated" in message and "need 40 bytes" in message and "has 35" in message


def test_truncated_header(tmp_path):
    (tmp_path / "tiny").write_bytes(b"\x00\x00")
    assert "truncated" in _error(tmp_path / "tiny")
    (tmp_path / "dims").write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x02")  # 3 dims, 1 given
    assert "truncated" in _error(tmp_path / "dims")


def test_truncated_gzip(tmp_path, images):
    path = tmp_path / "cut-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(0x08, (2, 3, 4), images.tobytes()))[:-12])
    message = _error(path)
    assert "gzip" in message and "truncated" in message


def test_corrupt_gzip(tmp_path):
    rng = np.random.default_rng(0)
    good = gzip.compress(idx_bytes(0x08, (50, 40), rng.integers(0, 255, 2000, np.uint8).tobytes()))
    bad = bytearray(good)
    bad[-8] ^= 0xFF  # the CRC32 of the data
    path = tmp_path / "crc.gz"
    path.write_bytes(bytes(bad))
    assert "corrupt gzip" in _error(path)
    path.write_bytes(b"\x1f\x8b" + b"\x00" * 40)  # gzip magic, then nonsense
    assert "gzip" in _error(path)


def test_wrong_magic(tmp_path, images):
    path = tmp_path / "html-idx3-ubyte"
    path.write_bytes(b"<html>" + images.tobytes())  # e.g. an error page saved by a download
    message = _error(path)
    assert "magic" in message and "not an IDX file" in message


def test_unknown_type_code(tmp_path):
    path = tmp_path / "t"
    path.write_bytes(idx_bytes(0x07, (2,), b"\x00\x00"))
    assert "type code 0x07" in _error(path)


def test_wrong_size_extra_bytes(tmp_path, images):
    path = tmp_path / "long-idx3-ubyte"
    path.write_bytes(idx_bytes(0x08, (2, 3, 4), images.tobytes() + b"\x00" * 3))
    message = _error(path)
    assert "wrong IDX file size" in message and "3 bytes too many" in message


def test_wrong_size_dimensions_disagree_with_data(tmp_path, images):
    path = tmp_path / "dims-idx3-ubyte"
    path.write_bytes(idx_bytes(0x08, (3, 3, 4), images.tobytes()))  # declares 36, holds 24
    assert "truncated" in _error(path)


def test_missing_file(tmp_path):
    assert "cannot be read" in _error(tmp_path / "nothing-here")


@pytest.mark.skipif(not __import__("os").path.isdir(FASHION),
                    reason=f"{FASHION} is absent (sudo apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist_files():
    labels = read_idx(f"{FASHION}/t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(labels), [1000] * 10)
