"""The training loop: :func:`fit` trains a model for some epochs, :func:`evaluate` measures it.

    history = mc.fit(model, optimizer, train_loader, epochs=5, val_loader=val_loader,
                     checkpoint_path="run/checkpoint.npz")
    test_loss, test_accuracy = mc.evaluate(model, test_loader)     # once, at the very end
    mc.plot_history(history, "run/curves.png")

Every step of every epoch does the five things every training loop does::

    outputs = model(images)              # forward
    loss = loss_fn(outputs, labels)      # how wrong were we?
    optimizer.zero_grad()                # forget the previous step's gradients
    loss.backward()                      # gradients of the loss for every parameter
    optimizer.step()                     # move the parameters against their gradients

Around that: a progress bar (loss, accuracy, images/s), one line per epoch, an evaluation on
``val_loader`` (images held out of the TRAINING set by ``mc.data.random_split``, never the test
set), the learning-rate schedule, the history as plain data, and a checkpoint after each epoch. ``fit(..., resume=True)`` continues from that checkpoint exactly
as if training had never stopped: the model, the optimiser's momentum, the schedule, the random
generator (dropout masks, shuffling) and the history all come back. A loss that becomes NaN or
Inf stops training with :class:`TrainingDiverged` before it can spoil the weights or a checkpoint.

:func:`train_model` is the whole recipe of ``minicnn train`` and ``minicnn demo`` (a data set by
name, a model of the zoo or any factory, the optimiser, the schedule, the files of a run);
:func:`time_training_steps` is what ``minicnn bench`` measures.
"""
import inspect
import json
import math
import os
import pathlib
import sys
import time

import numpy as np
from tqdm import tqdm

from minicnn import backend, interrupts
from minicnn.autograd import Tensor, no_grad
from minicnn.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from minicnn.data.loader import DataLoader
from minicnn.data.presets import DATASETS, load_data
from minicnn.data.split import SPLIT_SEED, check_fraction, describe_splits, hold_out_validation
from minicnn.metrics import EpochAverage
from minicnn.models import factory_of
from minicnn.nn import functional as F
from minicnn.optim import SGD, Adam, CosineAnnealingLR
from minicnn.plots import epoch_line, percent, plot_history
from minicnn.random import manual_seed
from minicnn.run_settings import (UsageError, check_arguments, check_learning_rates,
                                  compare_settings, extend_schedule, run_settings)
from minicnn.runlock import prepare_run_folder
from minicnn.serialization import atomic_write
from minicnn.step_timing import NotAClassifier, time_training_steps
from minicnn.weights import save_weights

__all__ = ["fit", "evaluate", "TrainingDiverged", "TrainingInterrupted", "save_history",
           "new_history", "train_model", "make_optimizer", "build_model", "time_training_steps",
           "NotAClassifier"]

HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds",
                "images_per_s")


class TrainingDiverged(FloatingPointError):
    """The loss (or a parameter) became NaN or Inf. ``epoch`` and ``step`` (counted from 1
    within the epoch) say where; nothing computed from the bad value was saved."""

    def __init__(self, message, epoch, step, loss):
        super().__init__(message)
        self.epoch, self.step, self.loss = epoch, step, loss


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`fit`: still a ``KeyboardInterrupt``, carrying where training
    stopped (``epoch`` and ``step`` of ``epochs``, ``steps`` per epoch when known) and what the
    checkpoint holds (``saved_epoch``: the epochs in ``checkpoint_path``, 0 or None for none)."""

    def __init__(self, epoch, step, steps, epochs, saved_epoch, checkpoint_path):
        where = f"epoch {epoch}/{epochs}, step {step}" + (f"/{steps}" if steps else "")
        if checkpoint_path is None:
            holds = "no checkpoint is written by this run"
        elif saved_epoch:
            holds = f"{checkpoint_path} holds epochs 1-{saved_epoch}"
        else:
            holds = f"no epoch had finished: {checkpoint_path} was not written"
        super().__init__(f"interrupted at {where}; {holds}")
        self.epoch, self.step, self.steps, self.epochs = epoch, step, steps, epochs
        self.saved_epoch, self.checkpoint_path = saved_epoch, checkpoint_path


def new_history():
    """An empty history: a dict of lists, one entry per epoch (None where nothing was measured,
    such as the validation loss without a ``val_loader``). Plain data, so ``json.dump`` saves it."""
    return {key: [] for key in HISTORY_KEYS}


def save_history(history, path):
    """Write ``history`` as JSON, atomically (see :func:`minicnn.serialization.atomic_write`)."""
    with atomic_write(path, mode="w") as f:
        json.dump(history, f, indent=1)
    return path


# ---- small helpers ------------------------------------------------------------------------------

def _model_device(model):
    """The device of the model's first parameter (None for a model without parameters)."""
    for p in model.parameters():
        return p.device
    return None


def _as_tensor(value, device):
    """A batch part as a Tensor on ``device``: loaders may yield Tensors or NumPy arrays."""
    tensor = value if isinstance(value, Tensor) else Tensor(np.asarray(value))
    if device is not None and tensor.device != device:
        tensor = tensor.to(device)
    return tensor


def _show_progress(progress):
    """``progress=None`` means: show the bar when it would land on a terminal."""
    if progress is None:
        isatty = getattr(sys.stderr, "isatty", None)
        return bool(isatty and isatty())
    return bool(progress)


def _progress_bar(loader, description, enabled):
    """A tqdm bar counting the batches of ``loader``; the loop calls ``bar.update()``."""
    try:
        total = len(loader)
    except TypeError:  # a generator has no length; the bar then counts without a total
        total = None
    # the bar goes to stderr (tqdm's habit), the epoch summaries to `log` (stdout by default)
    return tqdm(total=total, desc=description, unit="batch", leave=False, disable=not enabled,
                file=sys.stderr, dynamic_ncols=True)


def _say(log, message):
    if log is not None:
        log(message)


# ---- evaluation ---------------------------------------------------------------------------------

def evaluate(model, loader, loss_fn=F.cross_entropy, progress=False):
    """The mean loss and accuracy of ``model`` on ``loader``: ``(loss, accuracy)``.

    Runs in evaluation mode (dropout off, batch norm with its running statistics) and without
    recording a graph (``no_grad``); the model's previous mode is restored afterwards, even on
    an error. ``accuracy`` is None when the outputs are not class scores.
    """
    was_training = model.training
    device = _model_device(model)
    average = EpochAverage()
    model.eval()
    try:
        with no_grad(), _progress_bar(loader, "evaluate", _show_progress(progress)) as bar:
            for images, targets in loader:
                interrupts.check()
                images, targets = _as_tensor(images, device), _as_tensor(targets, device)
                outputs = model(images)
                average.update(loss_fn(outputs, targets).item(), outputs, targets)
                bar.update()
    finally:
        model.train(was_training)
    return average.loss, average.accuracy


# ---- training -----------------------------------------------------------------------------------

def _train_one_epoch(model, optimizer, loader, loss_fn, epoch, epochs, progress, position):
    """One pass over ``loader``; returns its :class:`~minicnn.metrics.EpochAverage` and the seconds it took.
    ``position["step"]`` follows the step being trained (for the message of a Ctrl-C)."""
    model.train()
    device = _model_device(model)
    average = EpochAverage()
    started = time.perf_counter()
    with _progress_bar(loader, f"epoch {epoch}/{epochs}", progress) as bar:
        for step, (images, targets) in enumerate(loader, start=1):
            position["step"] = step
            interrupts.check()
            images, targets = _as_tensor(images, device), _as_tensor(targets, device)
            outputs = model(images)
            loss = loss_fn(outputs, targets)
            value = loss.item()
            # check BEFORE the update: a NaN gradient step would ruin every weight
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"training diverged: the loss became {value} at epoch {epoch}, step {step} "
                    "(nothing was updated with it, and no checkpoint of this epoch was "
                    "written). Usual causes: a learning rate that is too large, NaN/Inf in the "
                    "input data, or a log/division of 0 in a custom loss. Run a step inside "
                    "`with minicnn.autograd.detect_anomaly():` to find the op that produced it.",
                    epoch, step, value)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            average.update(value, outputs, targets)
            if progress:
                seconds = time.perf_counter() - started
                bar.set_postfix_str(f"loss {average.loss:.4f}  acc {percent(average.accuracy)}"
                                    f"  {average.images / seconds:,.0f} img/s", refresh=False)
            bar.update()
        bar.refresh()  # draw the final numbers even when the epoch was quicker than a redraw
    return average, time.perf_counter() - started


def _check_parameters_finite(model, epoch):
    """A finite loss can still come with Inf gradients: stop before such weights are saved."""
    for name, p in model.named_parameters():
        xp = backend.get_array_module(p.data)
        if not bool(xp.isfinite(p.data).all()):
            raise TrainingDiverged(
                f"training diverged: parameter {name!r} holds NaN or Inf at the end of epoch "
                f"{epoch} (the loss was still finite); no checkpoint of this epoch was written. "
                "Lower the learning rate.", epoch, None, None)


def fit(model, optimizer, train_loader, epochs, *, loss_fn=F.cross_entropy, val_loader=None,
        scheduler=None, checkpoint_path=None, resume=False, progress=None, log=print,
        extra=None, after_resume=None):
    """Train ``model`` until ``epochs`` epochs are done; return the history (dict of lists).

    - ``train_loader``, ``val_loader``: iterables of ``(images, labels)`` batches (Tensors or
      arrays), such as ``mc.data.DataLoader``; the batches are moved to the model's device.
    - ``loss_fn(outputs, labels)``: a scalar Tensor, ``F.cross_entropy`` by default.
    - ``scheduler``: its ``step()`` runs once after every epoch.
    - ``checkpoint_path``: written (atomically) after every epoch; with ``resume=True`` training
      continues from it when it exists (``epochs`` counts ALL epochs, so ``fit(...,
      epochs=10, resume=True)`` after 4 saved epochs trains epochs 5 to 10).
    - ``progress``: the tqdm bar; None shows it only when stderr is a terminal.
    - ``log``: called with one summary line per epoch (``print``; None for silence).
    - ``extra``: plain data saved in every checkpoint (``train_model`` records the run's
      settings there); ``after_resume(saved)``: called after a resume restored the state (the
      dict :func:`~minicnn.checkpoint.load_checkpoint` returns), before the first epoch.

    Ctrl-C raises :class:`TrainingInterrupted` (a ``KeyboardInterrupt``) saying where training
    stopped and which epochs the checkpoint holds; the checkpoint itself is never half-written.

    Create the model, optimiser, scheduler and loaders exactly as for the first run before
    resuming: the checkpoint restores their state, not their construction. The data order
    resumes too: a loader that shuffles with ``minicnn.random``'s generator (``mc.data.DataLoader``
    with ``seed=None``) finds the generator restored; one with ``set_epoch(e)`` (a seeded
    ``mc.data.DataLoader``) is told the epoch (counted from 0) before every epoch; one with
    ``state_dict()``/``load_state_dict()`` has that state saved in the checkpoint and restored.
    """
    if resume and checkpoint_path is None:
        raise ValueError("fit(resume=True) needs checkpoint_path: the file to resume from")
    progress = _show_progress(progress)
    history, done_epochs, step = new_history(), 0, 0
    saved_epoch, position = 0, {"step": 0}
    try:
        with interrupts.at_step_boundaries():  # a Ctrl-C lands between two steps
            if resume:
                history, done_epochs, step = _resume(model, optimizer, scheduler, train_loader,
                                                     checkpoint_path, epochs, log, after_resume,
                                                     history)
                saved_epoch = done_epochs
            for epoch in range(done_epochs + 1, epochs + 1):
                position.update(epoch=epoch, step=0)
                step = _fit_epoch(model, optimizer, train_loader, val_loader, loss_fn, scheduler,
                                  checkpoint_path, progress, log, epoch, epochs, step, history,
                                  position, extra)
                if checkpoint_path is not None:
                    saved_epoch = epoch
            interrupts.check()  # a Ctrl-C after the last step still stops the program
    except KeyboardInterrupt:
        try:
            steps = len(train_loader)
        except TypeError:
            steps = None
        raise TrainingInterrupted(position.get("epoch", done_epochs + 1), position["step"],
                                  steps, epochs, saved_epoch, checkpoint_path) from None
    return history


def _resume(model, optimizer, scheduler, train_loader, checkpoint_path, epochs, log,
            after_resume, history):
    """Restore the state saved in ``checkpoint_path`` (when it exists) for :func:`fit`;
    returns ``(history, epochs done, steps done)``."""
    if not os.path.exists(checkpoint_path):
        _say(log, f"no checkpoint at {checkpoint_path} yet: starting from the beginning")
        return history, 0, 0
    saved = load_checkpoint(checkpoint_path, model, optimizer, scheduler)
    done_epochs = saved["epoch"] or 0
    loader_state = (saved["extra"] or {}).get("train_loader")
    if loader_state is not None and hasattr(train_loader, "load_state_dict"):
        train_loader.load_state_dict(loader_state)
    if after_resume is not None:
        after_resume(saved)
    _say(log, f"resumed from {checkpoint_path}: {done_epochs} of {epochs} epochs done; "
              f"lr {optimizer.param_groups[0]['lr']:.4g} next")
    return saved["history"] or history, done_epochs, saved["step"] or 0


def _fit_epoch(model, optimizer, train_loader, val_loader, loss_fn, scheduler, checkpoint_path,
               progress, log, epoch, epochs, step, history, position, extra):
    """One epoch of :func:`fit`: train, evaluate, schedule, log, check, save. Returns the
    number of optimiser steps taken so far."""
    started = time.perf_counter()
    for loader in (train_loader, val_loader):
        if hasattr(loader, "set_epoch"):  # a loader that shuffles with seed + epoch number
            loader.set_epoch(epoch - 1)
    lr = optimizer.param_groups[0]["lr"]  # the lr this epoch trains with
    train, train_seconds = _train_one_epoch(model, optimizer, train_loader, loss_fn, epoch,
                                            epochs, progress, position)
    step += train.steps
    val_loss, val_acc = (evaluate(model, val_loader, loss_fn) if val_loader is not None
                         else (None, None))
    if scheduler is not None:
        scheduler.step()

    seconds = time.perf_counter() - started
    record = {"epoch": epoch, "train_loss": train.loss, "train_acc": train.accuracy,
              "val_loss": val_loss, "val_acc": val_acc, "lr": float(lr), "seconds": seconds,
              "images_per_s": train.images / train_seconds if train_seconds else None}
    for key in HISTORY_KEYS:
        history.setdefault(key, []).append(record[key])
    _say(log, epoch_line(record, epochs))

    _check_parameters_finite(model, epoch)
    if checkpoint_path is not None:
        loader_state = (train_loader.state_dict() if hasattr(train_loader, "state_dict")
                        else None)
        save_checkpoint(checkpoint_path, model, optimizer, scheduler, epoch=epoch,
                        step=step, history=history,
                        extra={**(extra or {}), "train_loader": loader_state})
    return step


# ---- the recipe of `minicnn train` --------------------------------------------------------------

def make_optimizer(parameters, optimizer="adam", lr=None, momentum=0.9, weight_decay=0.0):
    """``'adam'`` (lr 1e-3 unless given) or ``'sgd'`` with momentum (lr 0.05 unless given)."""
    if lr is None:
        lr = 1e-3 if optimizer == "adam" else 0.05
    if optimizer == "adam":
        return Adam(parameters, lr=lr, weight_decay=weight_decay)
    if optimizer == "sgd":
        return SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {optimizer!r}: use 'sgd' or 'adam'")


def build_model(model, num_classes, channels, size, model_kwargs):
    """``(model, its name)`` from a zoo name or a factory; see :func:`train_model`."""
    factory = factory_of(model) if isinstance(model, str) else model
    name = model if isinstance(model, str) else getattr(factory, "__name__", repr(factory))
    arguments = {"num_classes": num_classes, "in_channels": channels}
    if "input_size" in inspect.signature(factory).parameters:   # LeNet-5's dense layers
        arguments["input_size"] = size
    arguments.update(model_kwargs or {})
    return factory(**arguments), name


def train_model(model="lenet5", data="fashion-mnist", epochs=5, batch_size=128, lr=None,
                optimizer="adam", momentum=0.9, weight_decay=0.0, schedule="cosine",
                augment=False, device="auto", out="runs/train", seed=0, subset="auto",
                resume=False, progress=None, root=None, model_kwargs=None, log=print,
                extend_schedule=None, command=None, val_fraction=0.1):
    """Train a model on a data set of :func:`minicnn.data.load_data`; write ``checkpoint.npz``
    (every epoch), ``weights.npz``, ``history.json`` and ``curves.png`` into ``out``. Returns
    ``(model, history, test_accuracy)``. The engine of ``minicnn train`` and ``minicnn demo``.

    ``val_fraction`` of the training images (the same ones in every run) are held out for the
    epoch lines' validation (0: none); the test set is evaluated once, after the last epoch.

    ``model``: a name of ``mc.models.MODELS`` or a FACTORY, any callable that builds the
    network. It is called with ``num_classes`` and ``in_channels`` of the data, ``input_size``
    (the image side) when its signature has that parameter (as ``lenet5``'s does), and then
    ``model_kwargs``. The generators are seeded with ``seed`` before the data is loaded, so the
    same call trains the same weights (on the CPU, bit for bit).

    Before any data is loaded: the arguments are checked (:class:`~minicnn.run_settings.
    UsageError`), ``out`` is locked for this run, checked writable and cleared of stale
    temporary files (:mod:`minicnn.runlock`), and with ``resume`` the checkpoint's recorded
    settings are compared with these (:class:`~minicnn.run_settings.SettingsChanged` names each
    difference). More ``epochs`` than the checkpoint's need ``extend_schedule`` ('stretch' or
    'restart', see :mod:`minicnn.run_settings`). ``command`` (the command line) is written
    into the lock, so that a second run can name this one.
    """
    check_arguments(epochs, batch_size, lr, momentum, weight_decay, schedule, optimizer, data,
                    subset, DATASETS, extend_schedule)
    check_fraction(val_fraction, UsageError)
    device = backend.normalize_device(device)
    name = model if isinstance(model, str) else getattr(model, "__name__", repr(model))
    lr_in_use = lr if lr is not None else (1e-3 if optimizer == "adam" else 0.05)
    settings = run_settings(name, model_kwargs, data, subset, batch_size, optimizer, lr_in_use,
                            momentum, weight_decay, schedule, epochs, augment, seed)
    settings["validation"] = {"fraction": val_fraction, "split_seed": SPLIT_SEED}
    with prepare_run_folder(out, log, command) as folder:
        checkpoint_path = pathlib.Path(folder) / "checkpoint.npz"
        saved = (read_checkpoint(checkpoint_path)
                 if resume and checkpoint_path.exists() else None)
        saved_settings = ((saved["extra"] or {}).get("settings") if saved is not None
                          and isinstance(saved["extra"], dict) else None)
        done = (saved["epoch"] or 0) if saved is not None else 0
        if saved_settings is not None:
            compare_settings(checkpoint_path, saved_settings, settings, done, extend_schedule,
                             keys=[k for k in settings if k != "subset"])
        elif saved is not None:
            _say(log, f"{checkpoint_path} records no settings (an older minicnn wrote it): "
                      "they cannot be checked against this command's")

        manual_seed(seed)
        train, test, channels, size = load_data(data, subset, augment, root, log)
        settings["subset"] = "bundled" if getattr(train, "is_subset", False) else "full"
        train, val = hold_out_validation(train, val_fraction, test.transform, SPLIT_SEED)
        _say(log, describe_splits(train, val, test))
        if saved_settings is not None:
            compare_settings(checkpoint_path, saved_settings, settings, done, extend_schedule,
                             keys=["subset"])
            extensions = list(saved_settings.get("extensions") or [])
            if saved_settings.get("epochs") != epochs:
                extensions.append({"at_epoch": done, "epochs": epochs, "how": extend_schedule})
            settings["extensions"] = extensions
            settings["schedule_length"] = saved_settings.get("schedule_length", epochs)
        return _train_in_folder(model, name, data, settings, device, (train, val, test),
                                channels, size, model_kwargs, pathlib.Path(folder), resume,
                                progress, log, saved_settings, extend_schedule)


def _train_in_folder(model, name, data, settings, device, splits, channels, size,
                     model_kwargs, out, resume, progress, log, saved_settings, extend):
    """The rest of :func:`train_model`, once the folder is held and the settings checked."""
    epochs, (train, val, test) = settings["epochs"], splits
    num_classes = len(getattr(train, "classes", range(10)))
    net, _ = build_model(model, num_classes, channels, size, model_kwargs)
    net = net.to(device)
    opt = make_optimizer(net.parameters(), settings["optimizer"], settings["lr"],
                         settings["optimizer_args"].get("momentum", 0.9),
                         settings["optimizer_args"]["weight_decay"])
    scheduler = (CosineAnnealingLR(opt, settings["schedule_length"])
                 if settings["schedule"] == "cosine" else None)
    train_loader = DataLoader(train, batch_size=settings["batch_size"], shuffle=True,
                              device=device)
    val_loader = DataLoader(val, batch_size=1000, device=device) if val is not None else None

    def after_resume(saved):
        """Continue the schedule as asked, and never train an epoch at lr 0 by accident."""
        done = saved["epoch"] or 0
        if saved_settings is not None and saved_settings.get("epochs") != epochs and extend:
            extend_schedule(scheduler, opt, extend, done, epochs)
            settings["schedule_length"] = scheduler.T_max if scheduler is not None else epochs
            how = (f"the cosine stretched over all {epochs} epochs" if extend == "stretch"
                   else f"a new cosine over the {epochs - done} epochs left")
            _say(log, f"extending the run from {saved_settings.get('epochs')} to {epochs} "
                      f"epochs: {how}")
        check_learning_rates(scheduler, opt, done + 1, epochs)

    n_params = sum(p.size for p in net.parameters())
    _say(log, f"{name}: {n_params:,} parameters on {device}; {settings['optimizer']} lr "
              f"{opt.param_groups[0]['lr']:g} ({settings['schedule']}), batch "
              f"{settings['batch_size']}, {epochs} epochs; writing to {out}/")
    history = fit(net, opt, train_loader, epochs, val_loader=val_loader, scheduler=scheduler,
                  checkpoint_path=out / "checkpoint.npz", resume=resume, progress=progress,
                  log=log, extra={"settings": settings}, after_resume=after_resume)
    save_weights(out / "weights.npz", net)
    save_history(history, out / "history.json")
    plot_history(history, out / "curves.png", title=f"{name} on {data}")
    _, test_accuracy = evaluate(net, DataLoader(test, batch_size=1000, device=device))
    _say(log, f"test accuracy {100 * test_accuracy:.2f}%  ({len(test):,} test images, "
              "evaluated once, after the last epoch)")
    return net, history, test_accuracy
