"""The training loop: exact resume from a checkpoint, a clear stop on NaN/Inf, evaluation mode,
history as plain data, a progress bar only on terminals, and training-curve plots."""
import io
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import minicnn as mc
import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn import random as mc_random
from minicnn import training
from minicnn.checkpoint import load_checkpoint, read_checkpoint
from minicnn.plots import plot_history
from minicnn.training import TrainingDiverged, evaluate, fit, save_history

ROOT = pathlib.Path(__file__).resolve().parents[1]
TESTS = pathlib.Path(__file__).resolve().parent


# ---- a tiny world: data, loaders, a model with dropout-like randomness --------------------------

def blobs(n=70, seed=0):
    """Three Gaussian blobs in 4-D: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = rng.normal(size=(n, 4)) + 2.0 * np.eye(3, 4)[y]
    return x.astype(np.float32), y.astype(np.int64)


class ArrayLoader:
    """Batches of (Tensor, Tensor); shuffles with minicnn's generator, drawn when an epoch starts
    (70 samples in batches of 16: the last batch is smaller)."""

    def __init__(self, x, y, batch_size=16, shuffle=True, as_numpy=False):
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self.as_numpy = as_numpy

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def _order(self):
        return mc_random.get_generator().permutation(len(self.x))

    def __iter__(self):
        order = self._order() if self.shuffle else np.arange(len(self.x))
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size]
            if self.as_numpy:
                yield self.x[index], self.y[index]
            else:
                yield mc.Tensor(self.x[index]), mc.Tensor(self.y[index])


class SeededLoader(ArrayLoader):
    """A loader with a generator of its own: resume restores it through state_dict()."""

    def __init__(self, x, y, seed, **kwargs):
        super().__init__(x, y, **kwargs)
        self.generator = np.random.default_rng(seed)

    def _order(self):
        return self.generator.permutation(len(self.x))

    def state_dict(self):
        return {"generator": self.generator.bit_generator.state}

    def load_state_dict(self, state):
        self.generator.bit_generator.state = state["generator"]


class EpochSeededLoader(ArrayLoader):
    """Like a seeded ``mc.data.DataLoader``: epoch e's order comes from the seed (s, e), and the
    epoch counts passes unless ``set_epoch`` says otherwise."""

    def __init__(self, x, y, seed, **kwargs):
        super().__init__(x, y, **kwargs)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def _order(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.x))
        self.epoch += 1
        return order


class ArrayDataset:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


class NoisyMLP(nn.Module):
    """An MLP whose training forward draws a dropout mask from minicnn's generator, so a resume
    that does not restore the generator takes different steps."""

    def __init__(self, p=0.3):
        super().__init__()
        self.fc1, self.fc2, self.p = nn.Linear(4, 16), nn.Linear(16, 3), p
        self.modes = []  # (training, grad enabled) at every call, for the evaluate tests

    def forward(self, x):
        self.modes.append((self.training, mc.is_grad_enabled()))
        h = F.relu(self.fc1(x))
        if self.training:
            keep = mc_random.get_generator().random(h.shape) >= self.p
            h = h * mc.Tensor((keep / (1 - self.p)).astype(np.float32))
        return self.fc2(h)


def recording_loss(losses):
    """cross_entropy that records every TRAINING loss (evaluation runs under no_grad)."""
    def loss_fn(outputs, targets):
        loss = F.cross_entropy(outputs, targets)
        if mc.is_grad_enabled():
            losses.append(loss.item())
        return loss
    return loss_fn


def make_run(seed, loader="shared"):
    """Everything a training script creates before calling fit."""
    mc.manual_seed(seed)
    model = NoisyMLP()
    optimizer = mc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = mc.optim.StepLR(optimizer, step_size=1, gamma=0.5)
    x, y = blobs()
    # NOTE: a loader's own seed is the same in both runs (it is part of the run's setup); only
    # mc.manual_seed differs, standing for everything a new process does not remember
    if loader == "shared":
        train_loader = ArrayLoader(x, y)
    elif loader == "state_dict":
        train_loader = SeededLoader(x, y, seed=11)
    elif loader == "set_epoch":
        train_loader = EpochSeededLoader(x, y, seed=11)
    else:  # the real one, mc.data.DataLoader, with or without a seed of its own
        from minicnn.data.loader import DataLoader
        train_loader = DataLoader(ArrayDataset(x, y), batch_size=16, shuffle=True,
                                  seed=None if loader == "mc.data" else 11)
    val_loader = ArrayLoader(*blobs(30, seed=1), shuffle=True)  # draws from the generator too
    return model, optimizer, scheduler, train_loader, val_loader


def train(seed, epochs, checkpoint_path=None, resume=False, loader="shared"):
    model, optimizer, scheduler, train_loader, val_loader = make_run(seed, loader)
    losses = []
    history = fit(model, optimizer, train_loader, epochs, loss_fn=recording_loss(losses),
                  val_loader=val_loader, scheduler=scheduler, checkpoint_path=checkpoint_path,
                  resume=resume, log=None, progress=False)
    return losses, history, model


def timeless(history):
    """The history without wall-clock measurements (which differ from run to run)."""
    return {k: v for k, v in history.items() if k not in ("seconds", "images_per_s")}


# ---- exact resume -------------------------------------------------------------------------------

@pytest.mark.parametrize("loader", ["shared", "state_dict", "set_epoch", "mc.data",
                                    "mc.data seeded"])
def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, loader):
    losses, history, model = train(seed=0, epochs=2, loader=loader)

    path = tmp_path / "checkpoint.npz"
    first, _, _ = train(seed=0, epochs=1, checkpoint_path=path, loader=loader)
    # a "new process": every object created afresh, from another seed
    second, resumed_history, resumed_model = train(seed=123, epochs=2, checkpoint_path=path,
                                                   resume=True, loader=loader)

    assert len(first) == len(second) == 5  # 70 images in batches of 16
    assert first + second == losses  # bit-identical, step by step
    assert timeless(resumed_history) == timeless(history)
    assert resumed_history["lr"] == [0.1, 0.05]
    for (name, a), b in zip(model.state_dict().items(), resumed_model.state_dict().values()):
        assert np.array_equal(a, b), name
    assert read_checkpoint(path)["epoch"] == 2


def test_resume_is_only_exact_because_the_generator_is_restored(tmp_path, monkeypatch):
    """The test above can fail: without the generator's state, dropout and order differ."""
    losses, _, _ = train(seed=0, epochs=2)
    path = tmp_path / "checkpoint.npz"
    first, _, _ = train(seed=0, epochs=1, checkpoint_path=path)
    monkeypatch.setattr(training, "load_checkpoint",
                        lambda *args, **kwargs: load_checkpoint(*args, **kwargs,
                                                                restore_rng=False))
    second, _, _ = train(seed=123, epochs=2, checkpoint_path=path, resume=True)
    assert first == losses[:5]
    assert second != losses[5:]


def test_resume_across_processes(tmp_path):
    """Epoch 1 in one Python process, epoch 2 in another: the same losses as one run here."""
    path = tmp_path / "checkpoint.npz"
    script = (f"import json, sys; sys.path.insert(0, {str(TESTS)!r}); "
              "from test_training import train; "
              f"losses, _, _ = train(seed=int(sys.argv[1]), epochs=int(sys.argv[2]), "
              f"checkpoint_path={str(path)!r}, resume=True); print(json.dumps(losses))")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    runs = []
    for seed, epochs in [(0, 1), (99, 2)]:
        result = subprocess.run([sys.executable, "-c", script, str(seed), str(epochs)], env=env,
                                capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    losses, _, _ = train(seed=0, epochs=2)
    assert runs[0] + runs[1] == losses


def test_resume_without_a_checkpoint_yet_starts_from_the_beginning(tmp_path):
    path = tmp_path / "run" / "checkpoint.npz"
    messages = []
    model, optimizer, _, loader, _ = make_run(0)
    history = fit(model, optimizer, loader, 1, checkpoint_path=path, resume=True,
                  log=messages.append, progress=False)
    assert "starting from the beginning" in messages[0]
    assert history["epoch"] == [1] and path.exists()


def test_resume_when_all_epochs_are_done_trains_nothing(tmp_path):
    path = tmp_path / "checkpoint.npz"
    train(seed=0, epochs=2, checkpoint_path=path)
    losses, history, _ = train(seed=5, epochs=2, checkpoint_path=path, resume=True)
    assert losses == [] and history["epoch"] == [1, 2]


def test_resume_needs_a_checkpoint_path():
    model, optimizer, _, loader, _ = make_run(0)
    with pytest.raises(ValueError, match="checkpoint_path"):
        fit(model, optimizer, loader, 1, resume=True)


# ---- divergence ---------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_nan_or_inf_loss_stops_with_epoch_and_step_and_keeps_the_last_checkpoint(tmp_path,
                                                                                    bad):
    model, optimizer, scheduler, loader, _ = make_run(0)
    steps = []

    def loss_fn(outputs, targets):  # goes bad at epoch 2, step 3 (each epoch has 5 steps)
        steps.append(1)
        loss = F.cross_entropy(outputs, targets)
        return loss * bad if len(steps) == 5 + 3 else loss

    path = tmp_path / "checkpoint.npz"
    with pytest.raises(TrainingDiverged, match=r"loss became (nan|inf) at epoch 2, step 3") as info:
        fit(model, optimizer, loader, 3, loss_fn=loss_fn, scheduler=scheduler,
            checkpoint_path=path, log=None, progress=False)
    assert isinstance(info.value, FloatingPointError)
    assert (info.value.epoch, info.value.step) == (2, 3)
    assert np.isnan(info.value.loss) or np.isinf(info.value.loss)
    assert all(np.isfinite(a).all() for a in model.state_dict().values())  # no update with it
    fresh = NoisyMLP()
    assert load_checkpoint(path, fresh)["epoch"] == 1  # the last good checkpoint is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]


def test_weights_that_blow_up_with_a_finite_loss_are_never_checkpointed(tmp_path):
    model, _, _, loader, _ = make_run(0)

    class Exploding(mc.optim.SGD):
        steps = 0

        def step(self, closure=None):
            super().step(closure)
            Exploding.steps += 1
            if Exploding.steps == 10:  # the last step of epoch 2: the loss was still finite
                self.param_groups[0]["params"][0].data[0, 0] = np.inf

    optimizer = Exploding(model.parameters(), lr=0.1)
    path = tmp_path / "checkpoint.npz"
    with pytest.raises(TrainingDiverged, match="'fc1.weight' holds NaN or Inf at the end of "
                                               "epoch 2"):
        fit(model, optimizer, loader, 3, checkpoint_path=path, log=None, progress=False)
    assert read_checkpoint(path)["epoch"] == 1


# ---- evaluation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("was_training", [True, False])
def test_evaluate_runs_in_eval_mode_without_grad_and_restores_the_mode(was_training):
    model, _, _, _, _ = make_run(0)
    model.train(was_training)
    x, y = blobs(70)
    loss, accuracy = evaluate(model, ArrayLoader(x, y, shuffle=False))
    assert model.training is was_training
    assert set(model.modes) == {(False, False)}  # eval mode, no graph recorded
    assert len(model.modes) == 5

    # the same numbers computed by hand, on all 70 images at once
    with mc.no_grad():
        model.eval()
        logits = model(mc.Tensor(x))
    assert np.isclose(loss, F.cross_entropy(logits, mc.Tensor(y)).item(), rtol=1e-5)
    assert accuracy == np.mean(logits.numpy().argmax(axis=1) == y)


def test_evaluate_restores_train_mode_after_an_error():
    model, _, _, _, _ = make_run(0)

    def broken_loader():
        yield mc.Tensor(np.zeros((2, 4), np.float32)), mc.Tensor(np.zeros(2, np.int64))
        raise RuntimeError("disk read failed")

    with pytest.raises(RuntimeError, match="disk read failed"):
        evaluate(model, broken_loader())
    assert model.training


def test_fit_trains_in_train_mode_and_evaluates_in_eval_mode():
    model, optimizer, _, loader, val_loader = make_run(0)
    model.eval()  # fit must switch to training mode itself
    fit(model, optimizer, loader, 1, val_loader=val_loader, log=None, progress=False)
    assert model.modes[:5] == [(True, True)] * 5
    assert model.modes[5:] == [(False, False)] * 2  # 30 validation images in batches of 16
    assert model.training


# ---- history, logging, progress -----------------------------------------------------------------

def test_history_is_plain_json_data(tmp_path):
    losses, history, _ = train(seed=0, epochs=3)
    assert json.loads(json.dumps(history)) == history
    assert history["epoch"] == [1, 2, 3]
    assert all(len(v) == 3 for v in history.values())
    assert history["train_loss"][-1] < history["train_loss"][0]  # it learned something
    assert history["val_acc"][-1] > 0.6
    assert history["train_loss"][0] == pytest.approx(
        np.average(losses[:5], weights=[16, 16, 16, 16, 6]))
    save_history(history, tmp_path / "history.json")
    assert json.loads((tmp_path / "history.json").read_text()) == history


def test_without_a_val_loader_the_validation_entries_are_none_and_numpy_batches_work():
    model, optimizer, _, _, _ = make_run(0)
    loader = ArrayLoader(*blobs(), as_numpy=True)
    history = fit(model, optimizer, loader, 2, log=None, progress=False)
    assert history["val_loss"] == [None, None] and history["val_acc"] == [None, None]
    assert json.dumps(history)


def test_regression_has_no_accuracy():
    mc.manual_seed(0)
    model = nn.Linear(4, 1)
    optimizer = mc.optim.SGD(model.parameters(), lr=0.01)
    x = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    loader = [(mc.Tensor(x), mc.Tensor(x[:, :1] * 2))]
    history = fit(model, optimizer, loader, 1, loss_fn=F.mse_loss, val_loader=loader, log=None,
                  progress=False)
    assert history["train_acc"] == [None] and history["val_acc"] == [None]


def test_one_summary_line_per_epoch(capsys):
    model, optimizer, _, loader, val_loader = make_run(0)
    fit(model, optimizer, loader, 2, val_loader=val_loader)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("epoch 1/2  train loss ")
    for part in ("acc", "val loss", "lr 0.1", " s ", "img/s"):
        assert part in lines[0]
    model, optimizer, _, loader, _ = make_run(0)
    fit(model, optimizer, loader, 1, log=None)
    assert capsys.readouterr().out == ""


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("stderr, progress, shown", [
    ("pipe", None, False),      # auto: not a terminal -> quiet
    ("tty", None, True),        # auto: a terminal -> the bar
    ("tty", False, False),      # asked to be quiet
    ("pipe", True, True),       # asked for it
])
def test_the_progress_bar_shows_only_on_a_terminal_or_when_asked(monkeypatch, stderr, progress,
                                                                 shown):
    stream = FakeTerminal() if stderr == "tty" else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    model, optimizer, _, loader, _ = make_run(0)
    fit(model, optimizer, loader, 1, progress=progress, log=None)
    output = stream.getvalue()
    if shown:
        assert "epoch 1/1" in output and "img/s" in output and "loss" in output
    else:
        assert output == ""


# ---- plots --------------------------------------------------------------------------------------

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plot_history_writes_a_png(tmp_path):
    _, history, _ = train(seed=0, epochs=2)
    figure = plot_history(history, tmp_path / "curves.png", title="blobs")
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG_MAGIC
    loss_axis, accuracy_axis = figure.axes
    styles = {line.get_label(): line.get_linestyle() for line in loss_axis.get_lines()}
    assert styles == {"train": "--", "validation": "-"}  # as in He et al.'s figures
    assert list(accuracy_axis.get_lines()[0].get_ydata()) == [100 * a for a in
                                                               history["train_acc"]]


def test_plot_history_compares_runs_and_skips_missing_validation(tmp_path):
    _, with_val, _ = train(seed=0, epochs=2)
    model, optimizer, _, loader, _ = make_run(1)
    without_val = fit(model, optimizer, loader, 2, log=None, progress=False)
    figure = plot_history({"plain": with_val, "resnet": without_val}, tmp_path / "cmp.png")
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert labels == ["plain train", "plain validation", "resnet train"]
    assert (tmp_path / "cmp.png").read_bytes()[:8] == PNG_MAGIC


def test_plot_history_rejects_what_is_not_a_history():
    with pytest.raises(ValueError, match="train_loss"):
        plot_history({"loss": [1, 2]})


def test_a_crash_while_plotting_leaves_no_partial_png(tmp_path, monkeypatch):
    from matplotlib.figure import Figure
    _, history, _ = train(seed=0, epochs=1)
    plot_history(history, tmp_path / "curves.png")
    before = (tmp_path / "curves.png").read_bytes()

    def half_a_png(self, f, **kwargs):
        f.write(PNG_MAGIC + b"half")
        raise OSError("No space left on device")

    monkeypatch.setattr(Figure, "savefig", half_a_png)
    with pytest.raises(OSError):
        plot_history(history, tmp_path / "curves.png")
    with pytest.raises(OSError):
        plot_history(history, tmp_path / "new.png")
    assert (tmp_path / "curves.png").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]
