"""Weights in and out: ``.npz`` (minicnn's own), ``.safetensors`` and PyTorch ``.pth`` files.

    import minicnn as mc
    from minicnn import weights

    model = mc.models.resnet18()
    report = weights.load(model, "resnet18-f37072fd.pth")     # torchvision's file, offline
    print(report)                                            # what was loaded, what did not fit
    weights.save("resnet18.safetensors", model)              # or .npz, or .pth

Why this works without any renaming: the model zoo builds every network with torchvision's
attribute names, so ``model.state_dict()`` has exactly the keys of torchvision's files
(``layer1.0.conv1.weight``, ``features.denseblock1.denselayer1.norm1.running_mean``...). A
weights file is a dict ``name -> array``; loading is matching names and shapes.

What each format is:

- ``.npz``: a zip of ``.npy`` arrays, one per key (``np.load`` opens it); what
  :func:`save_weights` (``mc.save_weights``) writes. A full training checkpoint also loads (its
  model part).
- ``.safetensors``: Hugging Face's format, a JSON header (names, dtypes, shapes, offsets) followed
  by the raw bytes; it cannot run code when loaded (a pickle can). Read and written through the
  ``safetensors`` package's NumPy API (``pip install safetensors``).
- ``.pth`` / ``.pt`` / ``.bin``: PyTorch's ``torch.save`` of a state dict (a pickle of tensors in
  a zip). Read through ``torch.load(weights_only=True)``, which refuses arbitrary objects;
  needs PyTorch installed. A file holding ``{"state_dict": ...}`` or ``{"model": ...}`` (common
  training checkpoints) and keys prefixed ``module.`` (saved from ``nn.DataParallel``) are
  unwrapped, and the report says so.

Every key that does not fit is reported: missing (the model has it, the file does not),
unexpected (the file has it, the model does not) and mismatched shapes. ``strict=True`` (the
default) raises :class:`~minicnn.nn.StateDictError` listing them all before anything is copied;
``strict=False`` loads what fits and returns the report. ``exclude=("fc.",)`` leaves keys with
those prefixes alone on both sides (a new head for fine-tuning keeps its fresh initialisation).
Every file is written atomically (:func:`minicnn.serialization.atomic_write`).

Two entry points work like ``np.savez``/``load_state_dict`` and are also ``mc.save_weights`` /
``mc.load_weights``: :func:`save_weights` and :func:`load_weights`. The training checkpoints
(:mod:`minicnn.checkpoint`) build on this module, never the other way round.
"""
import io
import os
from collections import OrderedDict

import numpy as np

from minicnn import backend
from minicnn.nn.module import IncompatibleKeys, StateDictError, _checkpoint_array, is_optional_key
from minicnn.serialization import (CheckpointError, atomic_write, read_archive, sniff_format,
                                   unpack_checkpoint, write_archive)

__all__ = ["FORMATS", "LoadReport", "read", "save", "load", "compare", "format_of",
           "save_weights", "load_weights"]

#: file extension -> format name
FORMATS = {".npz": "npz", ".safetensors": "safetensors", ".pth": "torch", ".pt": "torch",
           ".bin": "torch"}


def format_of(path, format=None):
    """The format of ``path`` (``'npz'``, ``'safetensors'`` or ``'torch'``), from ``format``
    when given, else from the file's extension."""
    if format is not None:
        if format not in set(FORMATS.values()):
            raise ValueError(f"weights: unknown format {format!r}; use one of "
                             f"{sorted(set(FORMATS.values()))}")
        return format
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in FORMATS:
        raise ValueError(f"weights: cannot tell the format of {os.fspath(path)!r} from its "
                         f"extension {ext!r}; use one of {', '.join(sorted(FORMATS))} or pass "
                         "format='npz' / 'safetensors' / 'torch'")
    return FORMATS[ext]


def _need(package, what):
    try:
        return __import__(package)
    except ImportError:
        hint = {"safetensors": "pip install safetensors",
                "torch": "pip install torch (the CPU build is enough)"}[package]
        raise ImportError(f"weights: {what} needs the '{package}' package, which is not "
                          f"installed: {hint}") from None


# ---- reading ------------------------------------------------------------------------------------

def read(path, format=None):
    """The state dict stored in ``path``: an ordered dict ``name -> ndarray`` (NumPy, on the
    CPU). ``.npz``, ``.safetensors``, ``.pth``/``.pt``/``.bin``; see the module docstring."""
    state, _ = _read_with_notes(path, format)
    return state


def _format_to_read(path, format=None):
    """``(format, notes)`` of an existing file: ``format`` when given, else what its CONTENT
    is (:func:`minicnn.serialization.sniff_format`), else what its extension says. A name
    that disagrees with the content (a ``.pth`` renamed ``.npz``) gets a note, not a
    "missing key" for every key of the model."""
    if format is not None:
        return format_of(path, format), []
    by_content = sniff_format(path)
    ext = os.path.splitext(path)[1].lower()
    if by_content is None:
        if ext not in FORMATS:
            raise CheckpointError(f"{path!r} is not a weights file minicnn knows: neither its "
                                  f"content nor its extension {ext!r} says .npz, .safetensors "
                                  "or PyTorch")
        return FORMATS[ext], []
    if ext in FORMATS and FORMATS[ext] != by_content:
        kind = {"torch": "PyTorch", "npz": ".npz", "safetensors": ".safetensors"}[by_content]
        return by_content, [f"the file is a {kind} file although its name ends in {ext}: it "
                            "was read as what it is"]
    return by_content, []


def _read_with_notes(path, format=None):
    """``(state, notes)``: notes are sentences about what had to be unwrapped or converted."""
    path = os.fspath(path)
    if format is not None:
        format_of(path, format)   # an unknown format name is an error before anything else
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights: no file at {path!r}")
    fmt, notes = _format_to_read(path, format)
    if fmt == "npz":
        state, from_checkpoint = _read_npz(path)
        return OrderedDict(state), notes + (["the file is a full training checkpoint: its "
                                             "model part was used"] if from_checkpoint else [])
    state, more = _read_safetensors(path) if fmt == "safetensors" else _read_torch(path)
    return state, notes + more


def _read_npz(path):
    """``(state, from_checkpoint)`` of an ``.npz`` written by :func:`save_weights` (or
    ``np.savez``), or the model part of a full checkpoint (``from_checkpoint`` True)."""
    arrays, metadata = read_archive(path, "weights")
    if metadata is None:
        return arrays, False
    state = unpack_checkpoint(path, arrays, metadata)["model"]
    if state is None:
        raise CheckpointError(f"{os.fspath(path)!r} is a checkpoint without model weights")
    return state, True


def _read_safetensors(path):
    _need("safetensors", "reading .safetensors files")
    import safetensors.numpy
    try:
        return OrderedDict(safetensors.numpy.load_file(path)), []
    except TypeError as exc:
        # NumPy has no bfloat16: such files load through torch when it is there
        try:
            import safetensors.torch
        except ImportError:
            raise CheckpointError(f"{path!r}: {exc} (a bfloat16 file? NumPy cannot hold "
                                  "bfloat16; install torch to convert it)") from exc
        tensors = safetensors.torch.load_file(path)
        return _torch_to_numpy(tensors, path)
    except Exception as exc:  # safetensors raises its own SafetensorError for damaged files
        raise CheckpointError(f"{path!r} is not a readable .safetensors file (truncated or "
                              f"corrupt?): {type(exc).__name__}: {exc}") from exc


def _torch_to_numpy(tensors, path):
    notes, state = [], OrderedDict()
    import torch
    converted = []
    for key, value in tensors.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path!r}: the value of {key!r} is a "
                                  f"{type(value).__name__}, not a tensor; this is not a state "
                                  "dict")
        value = value.detach().cpu()
        if value.dtype in (torch.bfloat16, torch.float16):
            converted.append(key)
            value = value.float()   # NumPy has no bfloat16; float16 gets float32 too
        state[key] = value.numpy()
    if converted:
        notes.append(f"{len(converted)} bfloat16/float16 tensors were converted to float32")
    return state, notes


def _read_torch(path):
    torch = _need("torch", f"reading {path!r}, a PyTorch file,")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path!r} is not a readable PyTorch weights file (truncated, "
                              "corrupt, or it holds Python objects that weights_only=True "
                              f"refuses): {type(exc).__name__}: {exc}") from exc
    notes = []
    if isinstance(obj, dict):
        for wrapper in ("state_dict", "model", "model_state_dict"):
            inner = obj.get(wrapper)
            if isinstance(inner, dict) and inner and \
                    all(isinstance(v, torch.Tensor) for v in inner.values()):
                notes.append(f"the file is a dict with a {wrapper!r} entry: that was used")
                obj = inner
                break
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path!r} holds a {type(obj).__name__}, not a state dict "
                              "(name -> tensor); save model.state_dict(), not the model")
    state, more = _torch_to_numpy(obj, path)
    return state, notes + more


def _strip_module_prefix(state):
    """Keys saved from ``nn.DataParallel`` all start with ``module.``: drop it."""
    if state and all(key.startswith("module.") for key in state):
        return OrderedDict((key[len("module."):], v) for key, v in state.items()), \
            ["every key started with 'module.' (saved from nn.DataParallel): stripped"]
    return state, []


# ---- writing ------------------------------------------------------------------------------------

def _state_of(model_or_state):
    if hasattr(model_or_state, "state_dict"):
        return model_or_state.state_dict()
    if not hasattr(model_or_state, "items"):
        raise TypeError(f"weights.save: expected a model or a dict name -> array, got "
                        f"{type(model_or_state).__name__}")
    return OrderedDict((k, backend.to_numpy(_checkpoint_array(v)))
                       for k, v in model_or_state.items())


def save(path, model_or_state, format=None):
    """Write a model's ``state_dict()`` (or a dict ``name -> array``) to ``path``, atomically,
    in the format its extension names (or ``format``). Returns ``path``."""
    fmt = format_of(path, format)
    state = _state_of(model_or_state)
    # NOTE: not np.ascontiguousarray, which turns 0-d arrays (num_batches_tracked) into 1-d
    state = OrderedDict((k, np.require(v, requirements="C")) for k, v in state.items())
    if fmt == "npz":
        data = io.BytesIO()
        write_archive(data, state)
    elif fmt == "safetensors":
        _need("safetensors", "writing .safetensors files")
        import safetensors.numpy
        data = io.BytesIO(safetensors.numpy.save(dict(state)))
    else:
        torch = _need("torch", "writing PyTorch .pth files")
        data = io.BytesIO()
        torch.save(OrderedDict((k, torch.from_numpy(v.copy())) for k, v in state.items()), data)
    # everything is encoded in memory first: an error leaves the old file untouched
    with atomic_write(path) as f:
        f.write(data.getbuffer())
    return path


# ---- matching and loading -----------------------------------------------------------------------

class LoadReport:
    """What matching a weights file against a model found.

    ``loaded``: keys copied (or that would be, for :func:`compare`); ``missing``: in the model,
    not in the file; ``unexpected``: in the file, not in the model; ``mismatched``: ``(key,
    file_shape, model_shape)``; ``excluded``: keys left alone because of ``exclude``;
    ``notes``: what was unwrapped or converted; ``kept``: optional buffers the file lacks
    (``*.num_batches_tracked``: torchvision's files predate that counter), left as they are, as
    ``Module.load_state_dict`` does. ``ok`` is True when every key fits.
    """

    def __init__(self, source, loaded, missing, unexpected, mismatched, excluded, notes,
                 kept=()):
        self.source, self.loaded, self.missing = source, loaded, missing
        self.unexpected, self.mismatched = unexpected, mismatched
        self.excluded, self.notes, self.kept = excluded, notes, list(kept)

    @property
    def ok(self):
        return not (self.missing or self.unexpected or self.mismatched)

    def problems(self):
        """One line per key that does not fit."""
        lines = [f"missing in the file: {key}" for key in self.missing]
        lines += [f"not in the model: {key}" for key in self.unexpected]
        lines += [f"shape mismatch for {key}: file {tuple(a)}, model {tuple(b)}"
                  for key, a, b in self.mismatched]
        return lines

    def __str__(self):
        lines = [f"{self.source}: {len(self.loaded)} tensors fit"
                 + (f", {len(self.excluded)} excluded" if self.excluded else "")
                 + ("" if self.ok else f"; {len(self.problems())} do not fit:")]
        lines += ["  " + line for line in self.problems()]
        if self.kept:
            lines.append(f"  note: not in the file, kept as they were: {', '.join(self.kept)}")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    __repr__ = __str__


def _match(model, state, exclude, source, notes):
    def excluded(key):
        return any(key.startswith(prefix) for prefix in exclude)

    targets = model.state_dict(keep_vars=True)
    loaded, missing, mismatched, skipped, kept = [], [], [], [], []
    for key, target in targets.items():
        if excluded(key):
            skipped.append(key)
        elif key not in state and is_optional_key(key):
            kept.append(key)   # as load_state_dict: a missing counter keeps its value
        elif key not in state:
            missing.append(key)
        elif tuple(np.shape(state[key])) != tuple(target.shape):
            mismatched.append((key, tuple(np.shape(state[key])), tuple(target.shape)))
        else:
            loaded.append(key)
    unexpected = [key for key in state if key not in targets and not excluded(key)]
    skipped += [key for key in state if key not in targets and excluded(key)]
    return LoadReport(source, loaded, missing, unexpected, mismatched, skipped, notes, kept)


def _source(path_or_state, format):
    if isinstance(path_or_state, (str, os.PathLike)):
        state, notes = _read_with_notes(path_or_state, format)
        source = repr(os.fspath(path_or_state))
    else:
        state, notes, source = _state_of(path_or_state), [], "state dict"
    state, more = _strip_module_prefix(state)
    return state, notes + more, source


def compare(model, path_or_state, exclude=(), format=None):
    """Match a weights file (or a state dict) against ``model`` without loading anything:
    returns a :class:`LoadReport`."""
    state, notes, source = _source(path_or_state, format)
    return _match(model, state, tuple(exclude), source, notes)


def load(model, path_or_state, strict=True, exclude=(), format=None):
    """Load a weights file (``.npz``, ``.safetensors``, ``.pth``) or a state dict into ``model``
    by key; returns a :class:`LoadReport`.

    ``strict=True``: any missing or unexpected key or shape mismatch raises
    :class:`~minicnn.nn.StateDictError` listing every one of them, and nothing is loaded.
    ``strict=False``: what fits is loaded, the rest is in the report (a mismatched shape is
    never loaded). ``exclude``: key prefixes to leave alone on both sides (``("fc.",)``: keep
    the model's new head). Values are cast to each parameter's dtype and copied in place, so an
    optimiser holding the parameters keeps working.
    """
    state, notes, source = _source(path_or_state, format)
    report = _match(model, state, tuple(exclude), source, notes)
    if strict and not report.ok:
        raise StateDictError(
            f"{source} does not fit {type(model).__name__} (nothing was loaded); "
            f"{len(report.problems())} problem(s):\n\t" + "\n\t".join(report.problems()) +
            "\n(strict=False loads what fits; exclude=('prefix.',) leaves a new head alone)",
            report.missing, report.unexpected, report.mismatched)
    model.load_state_dict(OrderedDict((key, state[key]) for key in report.loaded),
                          strict=False)
    return report


# ---- the two entry points of minicnn's own .npz files (mc.save_weights, mc.load_weights) -------

def _other_format(path, reading=False):
    """True for a ``.safetensors``/``.pth``/``.pt``/``.bin`` path: any other name, whatever its
    extension, is written as minicnn's own ``.npz``. When ``reading``, an existing file's
    content decides (a PyTorch file named ``.npz`` is read as what it is)."""
    if reading and os.path.exists(path):
        content = sniff_format(path)
        if content is not None:
            return content != "npz"
    return FORMATS.get(os.path.splitext(os.fspath(path))[1].lower(), "npz") != "npz"


def save_weights(path, model):
    """Write ``model.state_dict()`` atomically as an ``.npz`` file (``np.load(path)`` reads it:
    one array per key, such as ``features.0.weight``). Returns ``path``. A ``.safetensors`` or
    ``.pth`` path is written in that format instead (:func:`save`)."""
    if _other_format(path):
        return save(path, model)
    state = model.state_dict()
    with atomic_write(path) as f:
        write_archive(f, state)
    return path


def load_weights(path, model, strict=True):
    """Load a file written by :func:`save_weights` (or ``np.savez(path, **state_dict)``, or the
    model part of a checkpoint) into ``model``. ``strict``: as in ``load_state_dict``; a key or
    shape mismatch raises :class:`~minicnn.nn.StateDictError` listing them. ``.safetensors``
    and PyTorch ``.pth`` files load too (:func:`load`, which also returns a report of every key
    that did not fit); this returns ``load_state_dict``'s ``(missing_keys, unexpected_keys)``."""
    path = os.fspath(path)
    if _other_format(path, reading=True):
        report = load(model, path, strict=strict)
        return IncompatibleKeys(report.missing, report.unexpected)
    state, _ = _read_npz(path)
    try:
        return model.load_state_dict(state, strict=strict)
    except StateDictError as exc:
        raise StateDictError(f"{path!r} does not fit this model. {exc}", exc.missing_keys,
                             exc.unexpected_keys, exc.mismatched) from None
