"""Checkpoints: save a training run to ONE file, and continue it later exactly where it stopped.

    mc.save_checkpoint("run/checkpoint.npz", model, optimizer, scheduler, epoch=3, history=h)
    info = mc.load_checkpoint("run/checkpoint.npz", model, optimizer, scheduler)
    info["epoch"]                                        # 3: the epochs already finished

    mc.save_weights("lenet5.npz", model)                 # only the weights, for inference
    mc.load_weights("lenet5.npz", model)

What a checkpoint holds, and why each part is needed for an EXACT resume:

- the model's ``state_dict()`` (parameters and buffers such as batch-norm running means);
- the optimiser's ``state_dict()``: its options and per-parameter memory (SGD's momentum
  buffers, Adam's moment estimates and step count); without it the first steps after a resume
  would differ;
- the learning-rate scheduler's ``state_dict()`` (which epoch of the schedule comes next);
- the state of minicnn's random generator (``minicnn.random``: initialisation, dropout masks,
  shuffling) and of NumPy's legacy global one, so the next epoch draws the same dropout masks
  and the same data order as a run that never stopped;
- the epoch and step counters, the training history, and anything you pass as ``extra``.

The file format: a zip archive holding one ``.npy`` file per array (exactly what ``np.savez``
writes, so ``np.load(path)`` opens it) and a ``metadata.json`` with everything else, readable
with ``unzip -p checkpoint.npz metadata.json``. Arrays inside the JSON appear as
``{"__array__": "optimizer/state/0/momentum_buffer"}``, the name of their ``.npy`` member
(``unzip -p checkpoint.npz metadata.json | python -m json.tool`` prints it indented).
No pickle anywhere: loading a checkpoint from someone else cannot run their code (a pickle can).

Writes are ATOMIC (:func:`atomic_write`): the file is written under a temporary name in the same
folder, flushed to disk, and only then renamed onto the target. A rename within one folder
replaces the old file in one step, so a crash, a full disk or Ctrl-C in the middle of a save
leaves the previous checkpoint untouched (at worst a stray ``.*.tmp`` file stays behind after
the process was killed outright).
"""
import contextlib
import datetime
import errno
import json
import os
import uuid
import zipfile

import numpy as np

from minicnn import backend
from minicnn import random as mc_random
from minicnn.nn.module import StateDictError

FORMAT = "minicnn-checkpoint"
VERSION = 1
_METADATA = "metadata.json"

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "read_checkpoint",
           "save_weights", "load_weights", "atomic_write"]


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
    except BaseException:  # also KeyboardInterrupt: never leave a half-written file behind
        with contextlib.suppress(OSError):
            os.remove(temporary)
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

def _write_archive(f, arrays, metadata=None):
    """Write ``arrays`` (name -> ndarray) as ``name.npy`` members of a zip, as ``np.savez``
    does, plus ``metadata.json`` when given. ``allow_pickle=False``: object arrays are refused."""
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        if metadata is not None:
            archive.writestr(_METADATA, json.dumps(metadata))
        for name, array in arrays.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)


def _read_archive(path, what):
    """(arrays, metadata or None) from a file written by :func:`_write_archive`.

    Every way a file can be damaged (missing end of the zip, a flipped byte caught by the zip's
    CRC-32 checksums, a short array, broken JSON) becomes one :class:`CheckpointError` naming
    the file, instead of a traceback from deep inside zipfile or NumPy.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, f"no {what} file at {path!r}", path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            metadata = None
            if _METADATA in names:
                metadata = json.loads(archive.read(_METADATA).decode("utf-8"))
            arrays = {}
            for name in names:
                if name.endswith(".npy"):
                    with archive.open(name) as member:
                        arrays[name[:-len(".npy")]] = np.lib.format.read_array(
                            member, allow_pickle=False)
    except (PermissionError, IsADirectoryError):
        raise  # the file system's own message says it best
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError,
            UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"{path!r} is not a readable minicnn {what}: it is truncated or corrupt (a save or "
            f"copy that did not finish?), or not such a file at all. Details: "
            f"{type(exc).__name__}: {exc}") from exc
    return arrays, metadata


# ---- nested Python data <-> JSON + arrays -------------------------------------------------------

def _encode(value, name, arrays):
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
        return {"__tuple__": [_encode(v, f"{name}/{i}", arrays) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{name}/{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, dict):
        prefix = f"{name}/" if name else ""
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: _encode(v, prefix + k, arrays) for k, v in value.items()}
        return {"__items__": [[_encode(k, f"{prefix}key{i}", arrays),
                               _encode(v, f"{prefix}{k}", arrays)]
                              for i, (k, v) in enumerate(value.items())]}
    raise TypeError(
        f"cannot store {name or 'a value'} in a checkpoint: a {type(value).__name__} is not an "
        "array, number, string, bool, None, list, tuple or dict (minicnn checkpoints hold plain "
        "data only, never pickled objects)")


def _decode(value, arrays):
    """The inverse of :func:`_encode`."""
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        array = arrays[value["__array__"]]
        return array[()] if value.get("scalar") else array
    if "__tuple__" in value:
        return tuple(_decode(v, arrays) for v in value["__tuple__"])
    if "__items__" in value:
        return {_decode(k, arrays): _decode(v, arrays) for k, v in value["__items__"]}
    return {k: _decode(v, arrays) for k, v in value.items()}


# ---- checkpoints --------------------------------------------------------------------------------

def save_checkpoint(path, model=None, optimizer=None, scheduler=None, epoch=None, step=None,
                    history=None, extra=None):
    """Write everything needed to continue training into ONE file, atomically.

    ``epoch``: the number of epochs finished; ``step``: the number of optimiser steps taken;
    ``history``: plain data such as the dict of lists :func:`minicnn.training.fit` returns;
    ``extra``: any other plain data (numbers, strings, lists, dicts, arrays). The random
    generators' states are always saved. Returns ``path``.
    """
    import minicnn

    contents = {
        "model": model.state_dict() if model is not None else None,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": {"minicnn": mc_random.get_rng_state(), "numpy": np.random.get_state()},
        "epoch": epoch, "step": step, "history": history, "extra": extra,
    }
    arrays = {}
    metadata = {
        "format": FORMAT, "version": VERSION, "minicnn_version": minicnn.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "optimizer_class": type(optimizer).__name__ if optimizer is not None else None,
        "scheduler_class": type(scheduler).__name__ if scheduler is not None else None,
        "contents": _encode(contents, "", arrays),
    }
    # encode everything BEFORE opening the file: a value that cannot be stored raises here
    with atomic_write(path) as f:
        _write_archive(f, arrays, metadata)
    return path


def read_checkpoint(path):
    """Read a checkpoint without touching any model or generator: a dict with ``model``,
    ``optimizer`` and ``scheduler`` (their state dicts, or None), ``rng``, ``epoch``, ``step``,
    ``history``, ``extra``, and the file's ``version``, ``minicnn_version``, ``created``."""
    return _unpack(path, *_read_archive(path, "checkpoint"))


def _unpack(path, arrays, metadata):
    """Check the metadata's format and version and rebuild the saved Python data."""
    if metadata is None or metadata.get("format") != FORMAT:
        hint = (" It holds only arrays: a weights file from save_weights? Load it with "
                "load_weights(path, model).") if metadata is None else ""
        raise CheckpointError(f"{os.fspath(path)!r} is not a minicnn checkpoint (no "
                              f"'{_METADATA}' of format {FORMAT!r} inside).{hint}")
    if metadata.get("version", 0) > VERSION:
        raise CheckpointError(
            f"{os.fspath(path)!r} was written by a newer minicnn ({metadata.get('minicnn_version')}"
            f", checkpoint format {metadata['version']}); this one reads format {VERSION}. "
            "Upgrade minicnn to load it.")
    try:
        contents = _decode(metadata["contents"], arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{os.fspath(path)!r}: the checkpoint's metadata does not match "
                              f"its arrays ({type(exc).__name__}: {exc}); the file is damaged"
                              ) from exc
    for key in ("version", "minicnn_version", "created", "optimizer_class", "scheduler_class"):
        contents[key] = metadata.get(key)
    return contents


def load_checkpoint(path, model=None, optimizer=None, scheduler=None, restore_rng=True,
                    strict=True):
    """Restore what :func:`save_checkpoint` wrote into ``model``, ``optimizer`` and
    ``scheduler`` (each optional), and the random generators when ``restore_rng``.

    Create the objects as for a fresh run (same architecture, same optimiser class and
    parameter groups), then load: training continues exactly as if it had never stopped.
    Everything is checked before anything changes: a model whose keys or shapes differ raises
    :class:`~minicnn.nn.StateDictError` listing them, and nothing is loaded.

    Returns a dict with ``epoch``, ``step``, ``history``, ``extra``, ``version``,
    ``minicnn_version`` and ``created``.
    """
    path = os.fspath(path)
    contents = read_checkpoint(path)
    _check_part(path, contents, "model", model, None)
    _check_part(path, contents, "optimizer", optimizer, contents["optimizer_class"])
    _check_part(path, contents, "scheduler", scheduler, contents["scheduler_class"])

    # snapshots, to undo a partial load: the model loads fine but the optimiser does not fit
    model_before = model.state_dict() if model is not None else None
    optimizer_before = optimizer.state_dict() if optimizer is not None else None
    try:
        if model is not None:
            model.load_state_dict(contents["model"], strict=strict)
        if optimizer is not None:
            optimizer.load_state_dict(contents["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(contents["scheduler"])
    except StateDictError as exc:
        raise StateDictError(f"{path!r} does not fit this model. {exc}", exc.missing_keys,
                             exc.unexpected_keys, exc.mismatched) from None
    except (ValueError, KeyError, TypeError) as exc:
        if model is not None:
            model.load_state_dict(model_before)
        if optimizer is not None:
            optimizer.load_state_dict(optimizer_before)
        raise CheckpointError(f"{path!r}: the saved optimizer/scheduler state does not fit the "
                              f"one given: {exc}") from exc
    if restore_rng:
        mc_random.set_rng_state(contents["rng"]["minicnn"])
        np.random.set_state(contents["rng"]["numpy"])
    return {key: contents[key] for key in ("epoch", "step", "history", "extra", "version",
                                           "minicnn_version", "created")}


def _check_part(path, contents, part, obj, saved_class):
    if obj is None:
        return
    if contents[part] is None:
        raise CheckpointError(f"{path!r} holds no {part} state (it was saved without a "
                              f"{part}); pass {part}=None to load the rest")
    if saved_class is not None and saved_class != type(obj).__name__:
        raise CheckpointError(f"{path!r} holds the state of a {saved_class} {part}, but a "
                              f"{type(obj).__name__} was given; create the same kind as when "
                              "it was saved")


# ---- weights only -------------------------------------------------------------------------------

_OTHER_FORMATS = (".safetensors", ".pth", ".pt", ".bin")   # handled by minicnn.weights


def _read_weights_archive(path):
    """``(state, from_checkpoint)`` of an ``.npz`` written by :func:`save_weights` (or
    ``np.savez``), or the model part of a full checkpoint (``from_checkpoint`` True)."""
    arrays, metadata = _read_archive(path, "weights")
    if metadata is None:
        return arrays, False
    state = _unpack(path, arrays, metadata)["model"]
    if state is None:
        raise CheckpointError(f"{os.fspath(path)!r} is a checkpoint without model weights")
    return state, True


def save_weights(path, model):
    """Write ``model.state_dict()`` atomically as an ``.npz`` file (``np.load(path)`` reads it:
    one array per key, such as ``features.0.weight``). Returns ``path``. A ``.safetensors`` or
    ``.pth`` path is written in that format instead (see :mod:`minicnn.weights`)."""
    if os.fspath(path).lower().endswith(_OTHER_FORMATS):
        from minicnn import weights
        return weights.save(path, model)
    state = model.state_dict()
    with atomic_write(path) as f:
        _write_archive(f, state)
    return path


def load_weights(path, model, strict=True):
    """Load a file written by :func:`save_weights` (or ``np.savez(path, **state_dict)``, or the
    model part of a checkpoint) into ``model``. ``strict``: as in ``load_state_dict``; a key or
    shape mismatch raises :class:`~minicnn.nn.StateDictError` listing them. ``.safetensors``
    and PyTorch ``.pth`` files load too (:func:`minicnn.weights.load`, which also returns a
    report of every key that did not fit)."""
    path = os.fspath(path)
    if path.lower().endswith(_OTHER_FORMATS):
        from minicnn import weights
        from minicnn.nn.module import IncompatibleKeys
        report = weights.load(model, path, strict=strict)
        return IncompatibleKeys(report.missing, report.unexpected)
    state, _ = _read_weights_archive(path)
    try:
        return model.load_state_dict(state, strict=strict)
    except StateDictError as exc:
        raise StateDictError(f"{path!r} does not fit this model. {exc}", exc.missing_keys,
                             exc.unexpected_keys, exc.mismatched) from None
