"""The files minicnn writes: atomic writes, and the archive weights files and checkpoints share.

Two kinds of files, one format underneath:

- a WEIGHTS file (:mod:`minicnn.weights`) is a zip archive holding one ``.npy`` member per
  array, exactly what ``np.savez`` writes (``np.load(path)`` opens it);
- a CHECKPOINT (:mod:`minicnn.checkpoint`) is the same archive plus a ``metadata.json`` member
  holding everything else: plain nested data in which every array appears as
  ``{"__array__": "optimizer/state/0/momentum_buffer"}``, the name of its ``.npy`` member
  (``unzip -p checkpoint.npz metadata.json | python -m json.tool`` prints it).

No pickle anywhere: loading a file from someone else cannot run their code (a pickle can).
This module knows the bytes (:func:`write_archive`, :func:`read_archive`), the JSON encoding of
nested data (:func:`encode`, :func:`decode`) and the checkpoint's format tag and version
(:func:`unpack_checkpoint`), so that ``weights`` can read the model part of a checkpoint and
``checkpoint`` can save weights without either importing the other's internals.

Writes are ATOMIC (:func:`atomic_write`): the file is written under a temporary name in the same
folder, flushed to disk, and only then renamed onto the target. A rename within one folder
replaces the old file in one step, so a crash, a full disk or Ctrl-C in the middle of a save
leaves the previous file untouched (at worst a stray ``.*.tmp`` file stays behind after the
process was killed outright).
"""
import contextlib
import errno
import json
import math
import os
import uuid
import zipfile

import numpy as np

from minicnn import backend

__all__ = ["CheckpointError", "atomic_write", "write_archive", "read_archive", "encode",
           "decode", "unpack_checkpoint", "sniff_format", "check_metadata", "CHECKPOINT_FORMAT",
           "CHECKPOINT_VERSION", "METADATA"]

#: the ``format`` tag in a checkpoint's metadata, and the newest format version this code reads
CHECKPOINT_FORMAT = "minicnn-checkpoint"
CHECKPOINT_VERSION = 1
#: the archive member holding a checkpoint's metadata
METADATA = "metadata.json"


class CheckpointError(RuntimeError):
    """A checkpoint or weights file that cannot be read, or that does not fit what it is
    loaded into. The message names the file."""


# ---- atomic writes ------------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """``with atomic_write(path) as f: f.write(...)``: ``path`` gets the new contents all at
    once, or (on any error) keeps its old contents.

    The data goes to a temporary file next to ``path``; on success it is flushed and fsynced
    (so it is on the disk, not only in the operating system's cache), renamed onto ``path`` with
    ``os.replace`` (atomic within one file system), and the folder is fsynced so the rename
    itself survives a power cut. On an error the temporary file is removed and the error raised.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = os.path.join(directory,
                             f".{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.tmp")
    # O_EXCL: never write into someone else's file; 0o666 lets the umask decide permissions,
    # as for any new file (tempfile.mkstemp would make it private to the owner)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                 0o666)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException as exc:  # also KeyboardInterrupt: never leave a half-written file
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if isinstance(exc, OSError) and exc.errno is not None and not exc.filename:
            # NOTE: a full disk says only "No space left on device": name the file it hit
            raise type(exc)(exc.errno, f"{exc.strerror} (while writing {path}; the previous "
                            "file, if any, is untouched)", path) from exc
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Make a rename inside ``directory`` durable (POSIX; a no-op where folders cannot be
    opened, as on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---- the archive: .npy members plus metadata.json -----------------------------------------------

def write_archive(f, arrays, metadata=None):
    """Write ``arrays`` (name -> ndarray) as ``name.npy`` members of a zip into the open binary
    file ``f``, as ``np.savez`` does, plus ``metadata.json`` when given.
    ``allow_pickle=False``: object arrays are refused."""
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        if metadata is not None:
            archive.writestr(METADATA, json.dumps(metadata))
        for name, array in arrays.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)


def sniff_format(path):
    """What the file at ``path`` is, judged by its first bytes and not by its name:
    ``'torch'`` (a ``torch.save`` zip, which holds ``<name>/data.pkl``, or an old-style pickle),
    ``'npz'`` (any other zip: ``np.savez``, minicnn's weights and checkpoints), ``'safetensors'``
    (8 bytes of little-endian header length, then a JSON object) or None (none of these, or
    unreadable). Never raises for a damaged file: the reader of the format says what is wrong."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
            if head[:4] == b"PK\x03\x04" or head[:4] == b"PK\x05\x06":
                f.seek(0)
                try:
                    with zipfile.ZipFile(f) as archive:
                        names = archive.namelist()
                except Exception:  # a damaged zip is still a zip: its reader reports it
                    return "npz"
                return "torch" if any(n == "data.pkl" or n.endswith("/data.pkl")
                                      for n in names) else "npz"
    except OSError:
        return None
    if head[:1] == b"\x80" and len(head) > 1 and head[1:2] in b"\x02\x03\x04\x05":
        return "torch"   # torch.save(..., _use_new_zipfile_serialization=False): a raw pickle
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"
    return None


def check_metadata(path, metadata, what):
    """``metadata`` (parsed JSON) when it is a JSON object whose ``version`` (if any) is a
    non-negative integer; otherwise :class:`CheckpointError` naming the file. Checked before
    any field is used, so a hostile ``metadata.json`` of ``[1]`` or ``{"version": "x"}`` is a
    clear error rather than an AttributeError or a TypeError deep inside."""
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{os.fspath(path)!r} is not a readable minicnn {what}: its "
                              f"{METADATA} holds a {type(metadata).__name__}, not a JSON object "
                              "(the file is damaged or was not written by minicnn)")
    version = metadata.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise CheckpointError(f"{os.fspath(path)!r} is not a readable minicnn {what}: its format "
                              f"version is {version!r}, not a non-negative integer")
    return metadata


def _checked_npy_size(archive, info, path):
    """Read a ``.npy`` member's header and check it against the member's real size, so that a
    header claiming shape ``(10**12,)`` is refused before NumPy allocates anything.

    NOTE: sizes are multiplied as Python integers (``math.prod``), which never overflow; NumPy's
    int64 product of a hostile shape can wrap around to a small or negative number."""
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise ValueError(f".npy format version {version} is not supported")
        header_bytes = member.tell()
    if dtype.hasobject:
        raise ValueError(f"{info.filename} holds Python objects (a pickle): refused")
    needed = math.prod(shape) * dtype.itemsize
    available = info.file_size - header_bytes
    if needed != available:
        raise ValueError(f"{info.filename}: its header claims shape {shape} of {dtype}, "
                         f"{needed:,} bytes, but the member holds {available:,}")


def read_archive(path, what):
    """``(arrays, metadata or None)`` from a file written by :func:`write_archive`; ``what``
    ('checkpoint', 'weights') names the kind of file in the error messages.

    Every way a file can be damaged (missing end of the zip, a flipped byte caught by the zip's
    CRC-32 checksums, a short array, an array header claiming more bytes than the file holds,
    broken or hostile JSON) becomes one :class:`CheckpointError` naming the file, instead of a
    traceback from deep inside zipfile or NumPy. A PyTorch file is recognised by its content
    whatever its name (a ``.pth`` renamed ``.npz``) and refused with a message saying so.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, f"no {what} file at {path!r}", path)
    if sniff_format(path) == "torch":
        raise CheckpointError(f"{path!r} is a PyTorch file (torch.save), not a minicnn {what}, "
                              "whatever its name says: load it with "
                              "minicnn.weights.load(model, path) (needs PyTorch installed)")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            metadata = None
            if METADATA in archive.namelist():
                metadata = check_metadata(
                    path, json.loads(archive.read(METADATA).decode("utf-8")), what)
            arrays = {}
            for info in infos:
                if info.filename.endswith(".npy"):
                    _checked_npy_size(archive, info, path)
                    with archive.open(info) as member:
                        arrays[info.filename[:-len(".npy")]] = np.lib.format.read_array(
                            member, allow_pickle=False)
    except (PermissionError, IsADirectoryError):
        raise  # the file system's own message says it best
    except CheckpointError:
        raise
    except Exception as exc:  # NOTE: zipfile alone raises a dozen kinds (BadZipFile, OSError,
        # NotImplementedError for an odd compression flag, RuntimeError for "encrypted", zlib and
        # struct errors...), json a RecursionError on deep nesting: all mean "damaged"
        raise CheckpointError(
            f"{path!r} is not a readable minicnn {what}: it is truncated or corrupt (a save or "
            f"copy that did not finish?), or not such a file at all. Details: "
            f"{type(exc).__name__}: {exc}") from exc
    if not arrays and metadata is None and infos:
        members = ", ".join(i.filename for i in infos[:5]) + (", ..." if len(infos) > 5 else "")
        raise CheckpointError(f"{path!r} is a zip archive but not a minicnn {what}: it holds no "
                              f".npy arrays (its members: {members})")
    return arrays, metadata


# ---- nested Python data <-> JSON + arrays -------------------------------------------------------

def encode(value, name, arrays):
    """Return ``value`` as JSON-ready data, moving every array into ``arrays``.

    An array becomes ``{"__array__": member_name}``; a tuple ``{"__tuple__": [...]}`` (so Adam's
    ``betas`` come back as a tuple); a dict with non-string keys (the optimiser numbers its
    parameters 0, 1, 2...) ``{"__items__": [[key, value], ...]}``. ``name`` is the path to the
    value, used to name its arrays.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value  # NOTE: np.float64 is a float subclass; JSON keeps all its digits
    if isinstance(value, (np.ndarray, np.generic)) or backend.device_of(value) == "cuda":
        member = name or "array"
        while member in arrays:  # two paths that spell the same name: keep both
            member += "_"
        arrays[member] = backend.to_numpy(value) if not isinstance(value, np.generic) \
            else np.asarray(value)
        if isinstance(value, np.generic):  # a NumPy scalar such as np.float32(2.0)
            return {"__array__": member, "scalar": True}
        return {"__array__": member}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, f"{name}/{i}", arrays) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [encode(v, f"{name}/{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, dict):
        prefix = f"{name}/" if name else ""
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: encode(v, prefix + k, arrays) for k, v in value.items()}
        return {"__items__": [[encode(k, f"{prefix}key{i}", arrays),
                               encode(v, f"{prefix}{k}", arrays)]
                              for i, (k, v) in enumerate(value.items())]}
    raise TypeError(
        f"cannot store {name or 'a value'} in a checkpoint: a {type(value).__name__} is not an "
        "array, number, string, bool, None, list, tuple or dict (minicnn checkpoints hold plain "
        "data only, never pickled objects)")


def decode(value, arrays):
    """The inverse of :func:`encode`."""
    if isinstance(value, list):
        return [decode(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        array = arrays[value["__array__"]]
        return array[()] if value.get("scalar") else array
    if "__tuple__" in value:
        return tuple(decode(v, arrays) for v in value["__tuple__"])
    if "__items__" in value:
        return {decode(k, arrays): decode(v, arrays) for k, v in value["__items__"]}
    return {k: decode(v, arrays) for k, v in value.items()}


def unpack_checkpoint(path, arrays, metadata):
    """The saved Python data of a checkpoint read by :func:`read_archive`, with the file's
    ``version``, ``minicnn_version``, ``created``, ``optimizer_class`` and ``scheduler_class``
    added; checks the metadata's type, format tag and version first."""
    if metadata is not None:
        check_metadata(path, metadata, "checkpoint")
    if metadata is None or metadata.get("format") != CHECKPOINT_FORMAT:
        hint = (" It holds only arrays: a weights file from save_weights? Load it with "
                "load_weights(path, model).") if metadata is None else ""
        raise CheckpointError(f"{os.fspath(path)!r} is not a minicnn checkpoint (no "
                              f"'{METADATA}' of format {CHECKPOINT_FORMAT!r} inside).{hint}")
    if metadata.get("version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{os.fspath(path)!r} was written by a newer minicnn ({metadata.get('minicnn_version')}"
            f", checkpoint format {metadata['version']}); this one reads format "
            f"{CHECKPOINT_VERSION}. Upgrade minicnn to load it.")
    try:
        contents = decode(metadata["contents"], arrays)
        if not isinstance(contents, dict):
            raise TypeError(f"its contents are a {type(contents).__name__}, not a dict")
        for key in ("model", "optimizer", "scheduler", "rng", "epoch", "step", "history",
                    "extra"):
            contents.setdefault(key, None)
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{os.fspath(path)!r}: the checkpoint's metadata does not match "
                              f"its arrays ({type(exc).__name__}: {exc}); the file is damaged"
                              ) from exc
    for key in ("version", "minicnn_version", "created", "optimizer_class", "scheduler_class"):
        contents[key] = metadata.get(key)
    return contents
