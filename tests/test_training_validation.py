"""``minicnn train`` / ``minicnn demo`` hold a validation part out of the training images: one
data line before training, "val" every epoch, the test set once at the end, labelled "test"."""
import json

import numpy as np
import pytest

from minicnn import cli
from minicnn.plots import plot_history
from minicnn.run_settings import SettingsChanged
from minicnn.training import train_model

RUN = dict(subset="bundled", batch_size=256, progress=False)


def _lines(text):
    return [line for line in text.splitlines() if line.strip()]


def test_demo_prints_the_data_line_then_validation_then_one_test_accuracy(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--subset", "--epochs", "2", "--out", str(out),
                     "--no-progress"]) == 0
    lines = _lines(capsys.readouterr().out)
    data = [i for i, line in enumerate(lines) if line.startswith("data: ")]
    assert len(data) == 1
    assert lines[data[0]] == "data: 5,400 train / 600 validation / 1,000 test images"
    epochs = [i for i, line in enumerate(lines) if line.startswith("epoch ")]
    assert len(epochs) == 2 and data[0] < epochs[0]
    for i in epochs:
        assert "val loss" in lines[i] and "test" not in lines[i]
    tests = [i for i, line in enumerate(lines) if "test accuracy" in line]
    assert len(tests) == 1 and tests[0] > epochs[-1]
    assert "(1,000 test images" in lines[tests[0]]
    history = json.loads((out / "history.json").read_text())
    assert all(v is not None for v in history["val_acc"])
    # the curves show training and validation, nothing else
    figure = plot_history(history)
    labels = {line.get_label() for ax in figure.axes for line in ax.get_lines()}
    assert labels == {"train", "validation"}


def test_val_fraction_0_trains_on_every_image_and_says_there_is_no_validation(tmp_path,
                                                                               capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--subset", "bundled", "--epochs", "1", "--batch-size", "256",
                     "--val-fraction", "0", "--out", str(out), "--no-progress"]) == 0
    lines = _lines(capsys.readouterr().out)
    assert [line for line in lines if line.startswith("data: ")] == \
        ["data: 6,000 train / 1,000 test images (no validation split)"]
    epoch = next(line for line in lines if line.startswith("epoch "))
    assert "val" not in epoch
    history = json.loads((out / "history.json").read_text())
    assert history["val_loss"] == [None] and history["val_acc"] == [None]
    figure = plot_history(history)
    assert {line.get_label() for ax in figure.axes for line in ax.get_lines()} == {"train"}
    assert sum("test accuracy" in line for line in lines) == 1


@pytest.mark.parametrize("value", ["1", "-0.1", "x", "nan"])
def test_a_bad_val_fraction_exits_2_before_any_data_is_loaded(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--val-fraction", value, "--out", str(tmp_path / "run")])
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert "--val-fraction" in captured.err and "Fashion-MNIST" not in captured.out
    assert not (tmp_path / "run").exists()


def test_train_model_refuses_a_bad_val_fraction_before_loading_data(tmp_path):
    from minicnn.run_settings import UsageError
    with pytest.raises(UsageError, match=r"validation fraction must be a number in \[0, 1\)"):
        train_model(epochs=1, out=tmp_path / "run", val_fraction=1.0, log=None, **RUN)
    assert not (tmp_path / "run").exists()


def test_a_resumed_run_validates_on_the_same_images_and_ends_as_an_unbroken_one(tmp_path):
    """The split's seed is fixed, so the validation part of a resumed run is the same: the
    resumed history equals the uninterrupted one exactly (on the CPU)."""
    train_model(epochs=1, out=tmp_path / "resumed", log=None, schedule="constant", **RUN)
    _, resumed, _ = train_model(epochs=2, out=tmp_path / "resumed", resume=True, log=None,
                                schedule="constant", **RUN)
    _, straight, _ = train_model(epochs=2, out=tmp_path / "straight", log=None,
                                 schedule="constant", **RUN)
    assert len(straight["val_acc"]) == 2
    for key in ("train_loss", "val_loss", "val_acc"):
        np.testing.assert_array_equal(resumed[key], straight[key])


def test_resume_refuses_another_val_fraction(tmp_path):
    out = tmp_path / "run"
    train_model(epochs=1, out=out, log=None, schedule="constant", **RUN)
    with pytest.raises(SettingsChanged) as info:
        train_model(epochs=2, out=out, resume=True, log=None, schedule="constant",
                    val_fraction=0.2, **RUN)
    assert [name for name, _, _ in info.value.differences] == ["validation"]
