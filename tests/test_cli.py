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
