"""The IDX file format of MNIST and Fashion-MNIST: read it (gzip or raw), check it, write it.

An IDX file is a header and then the numbers, big-endian, in C order::

    bytes 0-1   0x00 0x00           the magic number starts with two zero bytes
    byte  2     type code           0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                                    0x0D float32, 0x0E float64
    byte  3     ndim                number of dimensions
    4 * ndim    the dimensions      each a big-endian uint32
    then        prod(dims) numbers  each big-endian, of the type above

so ``train-images-idx3-ubyte`` starts ``00 00 08 03 | 00 00 ea 60 | 00 00 00 1c | 00 00 00 1c``:
uint8, 3 dimensions, 60000 x 28 x 28. The files are usually distributed gzipped; :func:`read_idx`
tells the two apart by gzip's magic bytes (``1f 8b``), not by the file name.
"""
import gzip
import math
import os
import zlib

import numpy as np

from minicnn.data.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"

#: IDX type code -> big-endian NumPy dtype
IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path):
    """The file's bytes, decompressed when it is gzipped (detected by its magic bytes)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError as exc:
        raise DataError(
            f"{path}: the gzip stream is truncated ({len(raw):,} bytes on disk; {exc}). The file "
            "was probably not downloaded completely: delete it and get it again") from exc
    except (OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(
            f"{path}: corrupt gzip data ({exc}). Delete the file and get it again") from exc


def read_idx(path):
    """Read an IDX file (gzipped or not) and return its contents as a native-endian NumPy array.

    Checks the magic number, the type code, the number of dimensions and that the file holds
    exactly ``header + prod(dims) * itemsize`` bytes. Every problem is a :class:`DataError`
    that names the file and what is wrong::

        >>> images = read_idx("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
        >>> images.shape, images.dtype
        ((60000, 28, 28), dtype('uint8'))
    """
    path = os.fspath(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: truncated IDX file: {len(data)} bytes, shorter than the "
                        "4-byte magic number")
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{path}: not an IDX file: the magic number is 0x{data[:4].hex()}, but an IDX file "
            "starts with two zero bytes, a type code and the number of dimensions "
            "(0x00000803 for images, 0x00000801 for labels)")
    code, ndim = data[2], data[3]
    if code not in IDX_TYPES:
        known = ", ".join(f"0x{c:02X} {t.name}" for c, t in IDX_TYPES.items())
        raise DataError(f"{path}: unknown IDX data type code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise DataError(f"{path}: the IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX file: the header needs {header} bytes for "
                        f"{ndim} dimensions, the file has {len(data)}")
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_TYPES[code]
    # NOTE: Python integers: np.prod of a hostile header (e.g. four dimensions of 2**31) wraps
    # around int64 to 0 or a negative number, which would then "match" an empty file
    expected = header + math.prod(dims) * dtype.itemsize
    shape = " x ".join(str(d) for d in dims)
    if len(data) < expected:
        raise DataError(
            f"{path}: truncated IDX file: {shape} {dtype.name} values need {expected:,} bytes "
            f"({header} header + data) but the file has {len(data):,}; "
            "it was probably not downloaded completely: delete it and get it again")
    if len(data) > expected:
        raise DataError(
            f"{path}: wrong IDX file size: the header declares {shape} {dtype.name} values "
            f"({expected:,} bytes in all) but the file has {len(data):,} "
            f"({len(data) - expected:,} bytes too many)")
    # NOTE: a zero dimension makes the size 0 whatever the others are, but NumPy still refuses
    # a shape whose other dimensions multiply past what an array can index
    if math.prod(d for d in dims if d) * dtype.itemsize > np.iinfo(np.intp).max:
        raise DataError(f"{path}: the IDX header declares {shape} {dtype.name} values, a shape "
                        "too large for any array (a damaged header)")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="))  # a writable copy in native byte order


def write_idx(path, array):
    """Write ``array`` as an IDX file; gzipped (reproducibly, no timestamp) when ``path`` ends in
    ``.gz``. The inverse of :func:`read_idx`, used by the tests and the subset tool."""
    array = np.asarray(array)
    codes = {t.newbyteorder("=").str[1:]: c for c, t in IDX_TYPES.items()}
    key = array.dtype.newbyteorder("=").str[1:]
    if key not in codes:
        raise DataError(f"write_idx: IDX cannot store dtype {array.dtype} (it stores "
                        f"{', '.join(t.name for t in IDX_TYPES.values())})")
    code = codes[key]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes()
    if os.fspath(path).endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    with open(path, "wb") as f:
        f.write(payload)
