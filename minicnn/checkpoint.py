"""Checkpoints: save a training run to ONE file, and continue it later exactly where it stopped.

    mc.save_checkpoint("run/checkpoint.npz", model, optimizer, scheduler, epoch=3, history=h)
    info = mc.load_checkpoint("run/checkpoint.npz", model, optimizer, scheduler)
    info["epoch"]                                        # 3: the epochs already finished

    mc.save_weights("lenet5.npz", model)                 # only the weights, for inference
    mc.load_weights("lenet5.npz", model)                 # (minicnn.weights; named here too)

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

The file format (:mod:`minicnn.serialization`): a zip archive holding one ``.npy`` file per
array (exactly what ``np.savez`` writes, so ``np.load(path)`` opens it) and a ``metadata.json``
with everything else, readable with ``unzip -p checkpoint.npz metadata.json``. Arrays inside the
JSON appear as ``{"__array__": "optimizer/state/0/momentum_buffer"}``, the name of their ``.npy``
member. No pickle anywhere: loading a checkpoint from someone else cannot run their code.

Writes are ATOMIC (:func:`atomic_write`): a crash, a full disk or Ctrl-C in the middle of a save
leaves the previous checkpoint untouched.

Weights files belong to :mod:`minicnn.weights`; this module imports its public
``save_weights`` and ``load_weights`` (so ``minicnn.checkpoint.save_weights`` keeps working),
never the other way round.
"""
import datetime
import os

import numpy as np

from minicnn import random as mc_random
from minicnn.nn.module import StateDictError
from minicnn.serialization import (CHECKPOINT_FORMAT, CHECKPOINT_VERSION, CheckpointError,
                                   atomic_write, encode, read_archive, unpack_checkpoint,
                                   write_archive)
from minicnn.version import __version__
from minicnn.weights import load_weights, save_weights

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "read_checkpoint",
           "save_weights", "load_weights", "atomic_write"]


# ---- checkpoints --------------------------------------------------------------------------------

def save_checkpoint(path, model=None, optimizer=None, scheduler=None, epoch=None, step=None,
                    history=None, extra=None):
    """Write everything needed to continue training into ONE file, atomically.

    ``epoch``: the number of epochs finished; ``step``: the number of optimiser steps taken;
    ``history``: plain data such as the dict of lists :func:`minicnn.training.fit` returns;
    ``extra``: any other plain data (numbers, strings, lists, dicts, arrays). The random
    generators' states are always saved. Returns ``path``.
    """
    contents = {
        "model": model.state_dict() if model is not None else None,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": {"minicnn": mc_random.get_rng_state(), "numpy": np.random.get_state()},
        "epoch": epoch, "step": step, "history": history, "extra": extra,
    }
    arrays = {}
    metadata = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
        "minicnn_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "optimizer_class": type(optimizer).__name__ if optimizer is not None else None,
        "scheduler_class": type(scheduler).__name__ if scheduler is not None else None,
        "contents": encode(contents, "", arrays),
    }
    # encode everything BEFORE opening the file: a value that cannot be stored raises here
    with atomic_write(path) as f:
        write_archive(f, arrays, metadata)
    return path


def read_checkpoint(path):
    """Read a checkpoint without touching any model or generator: a dict with ``model``,
    ``optimizer`` and ``scheduler`` (their state dicts, or None), ``rng``, ``epoch``, ``step``,
    ``history``, ``extra``, and the file's ``version``, ``minicnn_version``, ``created``."""
    return unpack_checkpoint(path, *read_archive(path, "checkpoint"))


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
