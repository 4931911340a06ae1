"""``mc.save(obj, path)`` and ``mc.load(path)``: PyTorch's ``torch.save``/``torch.load`` habit
(``torch.save(net.state_dict(), PATH)``, ``net.load_state_dict(torch.load(PATH))``).

The file is minicnn's archive (:mod:`minicnn.serialization`): one ``.npy`` member per array,
plus a ``metadata.json`` holding the nesting (dicts, lists, tuples, numbers, strings). No pickle:
loading someone else's file cannot run their code, which is what ``torch.load(...,
weights_only=True)`` promises too. A state dict's arrays are stored under their own names, so
``np.load(path)`` opens the file as well. The write is atomic (a temporary file, then
``os.replace``): a crash mid-save leaves the previous file whole.

What comes back: arrays as NumPy arrays (a ``Tensor`` is saved as its array; minicnn's
``state_dict()`` values are arrays anyway), everything else as it was saved.
"""
import os

from minicnn import backend, weights
from minicnn.autograd import Tensor
from minicnn.serialization import (CheckpointError, atomic_write, decode, encode, read_archive,
                                   sniff_format, unpack_checkpoint, write_archive)

__all__ = ["save", "load"]

#: the ``format`` tag in the metadata of a file written by :func:`save`
FORMAT = "minicnn-object"
VERSION = 1


def _plain(value):
    """``value`` with every Tensor replaced by its array (on the host)."""
    if isinstance(value, Tensor):
        return backend.to_numpy(value.data)
    if isinstance(value, dict):   # (the order of the keys is kept)
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def save(obj, f):
    """Write ``obj`` (a state dict, or nested dicts/lists/tuples of arrays, Tensors, numbers
    and strings) to the path ``f``, atomically."""
    if not isinstance(f, (str, os.PathLike)):
        raise TypeError(f"save: expected a file path, got {type(f).__name__} (minicnn writes "
                        "through a temporary file and renames it, so it needs the path)")
    arrays = {}
    contents = encode(_plain(obj), "", arrays)
    with atomic_write(f) as out:
        write_archive(out, arrays, {"format": FORMAT, "version": VERSION, "contents": contents})
    return f


def load(f, map_location=None, weights_only=True):
    """Read what :func:`save` wrote (also: a weights file from ``save_weights`` / ``np.savez``,
    a training checkpoint, or a PyTorch ``.pth`` file when PyTorch is installed).

    ``map_location`` and ``weights_only`` are accepted for PyTorch's calls: arrays always come
    back on the host as NumPy arrays (``load_state_dict`` copies them onto the model's device),
    and no file is ever unpickled."""
    del map_location, weights_only  # NOTE: see the docstring; nothing to switch
    path = os.fspath(f)
    # the content decides, not the name: a PyTorch zip or a safetensors file renamed
    content = sniff_format(path) if os.path.exists(path) else None
    if content in ("torch", "safetensors"):
        return weights.read(path, format=content)
    arrays, metadata = read_archive(path, "saved file")   # (metadata checked to be a dict)
    if metadata is None:        # a plain archive of arrays: a weights file
        return dict(arrays)
    if metadata.get("format") == FORMAT:
        if metadata.get("version", 0) > VERSION:
            raise CheckpointError(f"{path!r} was written by a newer minicnn (format version "
                                  f"{metadata['version']}); upgrade minicnn to load it")
        try:
            return decode(metadata.get("contents"), arrays)
        except (KeyError, TypeError, ValueError, RecursionError) as exc:
            raise CheckpointError(f"{path!r}: the file's metadata does not match its arrays "
                                  f"({type(exc).__name__}: {exc}); the file is damaged") from exc
    return unpack_checkpoint(path, arrays, metadata)
