"""The settings of a training run, recorded in its checkpoint and checked on ``--resume``.

A checkpoint restores the STATE of a run (weights, optimiser memory, schedule position, random
generators), not its RECIPE: resuming with another learning rate, batch size or data set would
silently train a different run than the log claims. So :func:`minicnn.training.train_model`
records the recipe (:func:`run_settings`) in the checkpoint, and a resume with different
settings is refused (:class:`SettingsChanged`), naming each setting ``old -> new``.

The one change a resume may ask for is MORE EPOCHS: with a constant learning rate it simply
goes on; with a schedule only through an explicit ``extend_schedule`` (``--extend-schedule``)
that says how the schedule goes on:

- ``'stretch'``: the cosine is recomputed for the new length, as if the run had been planned
  that long (the lr jumps back up to where the longer cosine is at this epoch);
- ``'restart'``: a new cosine from the starting lr over the added epochs (a warm restart, as in
  SGDR, Loshchilov & Hutter 2017).

NOTE: without this, a 3-epoch cosine run extended to 6 epochs trains epochs 4-6 at lr 0,
0.00025 and 0.00075: the old cosine run past its end (past ``T_max`` it climbs back up from 0).
:func:`check_learning_rates` refuses any plan in which an epoch would train at lr 0.
"""
import json
import math

__all__ = ["UsageError", "SettingsChanged", "EXTEND_SCHEDULE", "run_settings",
           "check_arguments", "compare_settings", "extend_schedule", "check_learning_rates",
           "planned_learning_rates"]

#: the ways ``--extend-schedule`` lets a resumed run continue its schedule
EXTEND_SCHEDULE = ("stretch", "restart")
#: settings compared only once the data is loaded ('auto' resolves to 'full' or 'bundled')
AFTER_LOADING = ("subset",)
#: recorded for the reader, never compared
NOT_COMPARED = ("extensions",)


class UsageError(ValueError):
    """Arguments that cannot work together or a resume that does not fit its checkpoint: the
    command line exits with status 2 (bad usage), printing the message."""


class SettingsChanged(UsageError):
    """``--resume`` with settings that differ from the checkpoint's. ``differences``: a list
    of ``(setting, old, new)``."""

    def __init__(self, message, differences):
        super().__init__(message)
        self.differences = differences


def _plain(value):
    """JSON's view of ``value`` (tuples as lists, anything odd as its repr), so that settings
    read back from a checkpoint compare equal to freshly made ones."""
    return json.loads(json.dumps(value, default=repr))


def run_settings(model, model_kwargs, data, subset, batch_size, optimizer, lr, momentum,
                 weight_decay, schedule, epochs, augment, seed):
    """The recipe of a run as plain data (see the module docstring). ``lr`` is the one in use
    (the optimiser's default resolved); ``subset`` the one resolved ('full' or 'bundled')."""
    optimizer_args = {"weight_decay": weight_decay}
    if optimizer == "sgd":
        optimizer_args["momentum"] = momentum
    return _plain({"model": model, "model_kwargs": model_kwargs or {}, "data": data,
                   "subset": subset, "validation": "the test split", "batch_size": batch_size,
                   "optimizer": optimizer, "optimizer_args": optimizer_args, "lr": lr,
                   "schedule": schedule, "schedule_length": epochs, "epochs": epochs,
                   "augment": augment, "seed": seed, "extensions": []})


def check_arguments(epochs, batch_size, lr, momentum, weight_decay, schedule, optimizer, data,
                    subset, datasets, extend):
    """Refuse impossible arguments before any data is loaded (:class:`UsageError`)."""
    def whole(name, value):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"{name} must be a whole number >= 1, got {value!r}")

    whole("epochs", epochs)
    whole("batch_size", batch_size)
    if lr is not None and not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise UsageError(f"lr must be a number > 0, got {lr!r} (an lr of 0 trains nothing)")
    for name, value in (("momentum", momentum), ("weight_decay", weight_decay)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise UsageError(f"{name} must be a number >= 0, got {value!r}")
    choices = {"schedule": (schedule, ("cosine", "constant")),
               "optimizer": (optimizer, ("adam", "sgd")), "data": (data, tuple(datasets)),
               "subset": (subset, ("auto", "full", "bundled"))}
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            raise UsageError(f"unknown {name} {value!r}; choose from {', '.join(allowed)}")
    if subset == "bundled" and data != "fashion-mnist":
        raise UsageError(f"only Fashion-MNIST ships a bundled subset, not {data}")
    if extend is not None and extend not in EXTEND_SCHEDULE:
        raise UsageError(f"unknown extend_schedule {extend!r}; choose from "
                         f"{', '.join(EXTEND_SCHEDULE)}")


def _show(value):
    return json.dumps(value) if isinstance(value, (dict, list)) else repr(value)


def compare_settings(path, saved, new, done_epochs, extend, keys=None):
    """Raise :class:`SettingsChanged` when ``new`` differs from the ``saved`` settings of the
    checkpoint ``path`` (only ``keys`` when given). A longer ``epochs`` passes when ``extend``
    says how the schedule continues; ``schedule_length`` then follows ``epochs``."""
    keys = [k for k in (keys or new) if k not in NOT_COMPARED]
    differences = [(k, saved.get(k), new[k]) for k in keys
                   if k not in ("epochs", "schedule_length") and _plain(saved.get(k)) != new[k]]
    lines = [f"  {k}: {_show(old)} -> {_show(value)}" for k, old, value in differences]
    if "epochs" in keys and saved.get("epochs") != new["epochs"]:
        old, value = saved.get("epochs"), new["epochs"]
        if value <= done_epochs:
            differences.append(("epochs", old, value))
            lines.append(f"  epochs: {old} -> {value}, but {done_epochs} epochs are already "
                         "done: nothing is left to train")
        elif extend is None and new["schedule"] != "constant":   # a constant lr just goes on
            differences.append(("epochs", old, value))
            lines.append(f"  epochs: {old} -> {value}: to extend the run, say how the schedule "
                         "continues with --extend-schedule stretch (the cosine recomputed over "
                         f"{value} epochs) or restart (a new cosine over the {value - done_epochs}"
                         " epochs left)")
    if differences:
        raise SettingsChanged(
            f"{path}: --resume with settings that differ from the checkpoint's:\n"
            + "\n".join(lines) + "\nRun with the checkpoint's settings, or train into another "
            "--out to start a new run.", differences)


def extend_schedule(scheduler, optimizer, how, done_epochs, epochs):
    """Continue a restored cosine ``scheduler`` (None for a constant lr) over ``epochs`` epochs
    in all, ``done_epochs`` of them done: ``how`` is 'stretch' or 'restart' (module docstring).
    Writes the lr of the next epoch into the optimiser's groups."""
    if scheduler is None:
        return
    if how == "stretch":
        scheduler.T_max = epochs
    else:   # restart: epoch `done_epochs` is epoch 0 of a new cosine over the epochs left
        scheduler.T_max = epochs - done_epochs
        scheduler.last_epoch = 0
    for group, lr in zip(optimizer.param_groups, scheduler.get_lr()):
        group["lr"] = lr
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


def planned_learning_rates(scheduler, optimizer, epochs_left):
    """The lr of the first parameter group for each of the next ``epochs_left`` epochs."""
    if scheduler is None:
        return [optimizer.param_groups[0]["lr"]] * epochs_left
    start, rates = scheduler.last_epoch, []
    try:
        for offset in range(epochs_left):
            scheduler.last_epoch = start + offset
            rates.append(scheduler.get_lr()[0])
    finally:
        scheduler.last_epoch = start
    return rates


def check_learning_rates(scheduler, optimizer, first_epoch, epochs):
    """Refuse (:class:`UsageError`) a plan in which an epoch from ``first_epoch`` to ``epochs``
    would train at lr 0: a schedule run past its end, say."""
    rates = planned_learning_rates(scheduler, optimizer, epochs - first_epoch + 1)
    zero = [first_epoch + i for i, lr in enumerate(rates) if not lr > 0]
    if zero:
        raise UsageError(f"epoch(s) {', '.join(map(str, zero))} would train at a learning rate "
                         "of 0 (the schedule has run past its end); use --extend-schedule "
                         "stretch or restart")
