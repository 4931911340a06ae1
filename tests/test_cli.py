"""The command line: ``minicnn info`` reports the environment honestly."""
import subprocess
import sys

import pytest

from minicnn import cli


def test_info_prints_every_fact(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for label in ("minicnn", "numpy", "BLAS", "numba", "CUDA GPU", "device", "default dtype"):
        assert any(line.startswith(label) for line in out.splitlines()), label
    assert "float32" in out


def test_info_reports_cuda_request_without_gpu_instead_of_crashing(monkeypatch, capsys):
    from minicnn import cuda
    if cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.setenv("MINICNN_DEVICE", "cuda")
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    device_line = next(line for line in out.splitlines() if line.startswith("device "))
    assert "error" in device_line and "GPU" in device_line


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    assert "info" in capsys.readouterr().out


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "minicnn", "info"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "numpy" in result.stdout


def test_train_writes_checkpoint_weights_history_and_curves(tmp_path, capsys):
    """One epoch of LeNet-5 on the bundled subset through the real command line."""
    import json

    out = tmp_path / "run"
    assert cli.main(["train", "--model", "lenet5", "--data", "fashion-mnist", "--subset",
                     "bundled", "--epochs", "1", "--batch-size", "64", "--lr", "0.003",
                     "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "subset bundled with minicnn" in printed and "as asked" in printed
    assert "61,706 parameters" in printed
    for name in ("checkpoint.npz", "weights.npz", "history.json", "curves.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == [1]
    assert history["val_acc"][0] > 0.6  # chance is 0.1; one epoch on 6,000 images gets ~0.7


def test_train_resume_continues_from_the_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--subset", "bundled", "--batch-size", "128", "--out", str(out),
            "--no-progress", "--schedule", "constant"]
    assert cli.main(args + ["--epochs", "1"]) == 0
    assert cli.main(args + ["--epochs", "2", "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "epoch 2/2" in printed and printed.count("epoch 1/") == 1


def test_cuda_without_gpu_is_a_clear_error(tmp_path, capsys):
    """Bad usage, found while parsing (before any data is loaded): exit status 2."""
    from minicnn import cuda
    if cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--subset", "bundled", "--epochs", "1", "--device", "cuda",
                  "--out", str(tmp_path)])
    assert info.value.code == 2
    assert "no usable GPU" in capsys.readouterr().err


def test_summary_command_prints_the_table(capsys):
    assert cli.main(["summary", "resnet20", "--batch-size", "128"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 269,722" in out
    assert "layer1.0.conv1 (Conv2d)" in out
    assert "Peak im2col buffers" in out


def test_gradcheck_command_checks_every_parameter(capsys):
    assert cli.main(["gradcheck", "lenet5", "--directions", "1"]) == 0
    out = capsys.readouterr().out
    assert "11 of 11 checks passed" in out  # the input and 10 parameter tensors
    assert "conv1.weight" in out or "features.0.weight" in out


def test_gradcheck_command_fails_on_a_wrong_backward(monkeypatch, capsys):
    from minicnn.ops import activation
    original = activation.ReLU.backward
    monkeypatch.setattr(activation.ReLU, "backward", lambda self, gy: 2 * original(self, gy))
    assert cli.main(["gradcheck", "vgg_small", "--directions", "1"]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_bench_command_prints_throughput_and_op_table(capsys):
    assert cli.main(["bench", "lenet5", "--batch-size", "8", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "images/s" in out and "Conv2d" in out and "backward" in out


def test_bench_command_refuses_a_segmentation_net(capsys):
    assert cli.main(["bench", "unet", "--input", "1", "188", "188", "--batch-size", "1",
                     "--steps", "1"]) == 2
    assert "only classifiers" in capsys.readouterr().err


def test_gradflow_command_is_wired_and_writes_data_and_pictures(tmp_path, capsys):
    out = tmp_path / "gf"
    assert cli.main(["gradflow", "--depths", "8", "--no-jacobian", "--batch-size", "4",
                     "--out", str(out)]) == 0
    assert "plain-8" in capsys.readouterr().out
    assert (out / "sweep.json").exists() and (out / "sweep_summary.csv").exists()
    assert list(out.glob("*.png"))
