"""``minicnn train`` as a real process, attacked from outside: Ctrl-C (SIGINT), SIGKILL then
``--resume``, a second run into a folder in use, a resume with changed settings, a read-only
output folder. Tiny runs on the bundled Fashion-MNIST subset (about 1 s per epoch), so the
whole file takes some 30 seconds."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

pytestmark = pytest.mark.slow

#: a tiny run: LeNet-5 on the bundled subset, large batches (24 steps per epoch)
TINY = ["train", "--subset", "bundled", "--batch-size", "256", "--no-progress"]


def _env():
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("MINICNN_DEBUG", None)
    return env


def _run(args, timeout=180, **kwargs):
    return subprocess.run([sys.executable, "-m", "minicnn", *args], capture_output=True,
                          text=True, timeout=timeout, env=kwargs.pop("env", _env()), **kwargs)


def _start(args):
    return subprocess.Popen([sys.executable, "-m", "minicnn", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())


def _wait_for_line(process, text, timeout=120):
    """Read the process's stdout until a line containing ``text`` (runs of spaces count as
    one: ``epoch  1/30`` is padded); return what was read."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if text in " ".join(line.split()):
            return "".join(seen)
    process.kill()
    raise AssertionError(f"never printed {text!r}; stdout so far:\n{''.join(seen)}\n"
                         f"stderr:\n{process.stderr.read()}")


def _weights(folder):
    with np.load(os.path.join(folder, "weights.npz")) as f:
        return {key: f[key] for key in f.files}


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory):
    """A folder holding a finished 1-epoch cosine run (copied by each test that changes it)."""
    out = tmp_path_factory.mktemp("one_epoch") / "run"
    result = _run(TINY + ["--epochs", "1", "--out", str(out)])
    assert result.returncode == 0, result.stderr
    return out


def test_sigint_exits_130_with_one_line_saying_how_to_resume(tmp_path):
    out = tmp_path / "run"
    process = _start(TINY + ["--epochs", "30", "--schedule", "constant", "--out", str(out)])
    _wait_for_line(process, "epoch 1/30")        # the checkpoint of epoch 1 is written
    time.sleep(0.3)                              # somewhere inside epoch 2
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "interrupted at epoch" in lines[0] and "holds epochs 1-" in lines[0]
    assert "resume with: minicnn train" in lines[0] and lines[0].endswith("--resume")
    assert not (out / "run.lock").exists()       # the lock went with the run
    # the command it prints does resume (and is not refused as a change of settings)
    command = lines[0].split("resume with: minicnn ", 1)[1].split()
    command[command.index("--epochs") + 1] = "30"
    done = int(lines[0].split("holds epochs 1-")[1].split(";")[0])
    process = _start(command)
    _wait_for_line(process, f"resumed from {out / 'checkpoint.npz'}: {done} of 30 epochs done")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    args = TINY + ["--epochs", "3"]
    result = _run(args + ["--out", str(reference)])
    assert result.returncode == 0, result.stderr

    process = _start(args + ["--out", str(killed)])
    _wait_for_line(process, "epoch 1/3")
    time.sleep(0.4)
    process.kill()                               # SIGKILL: no handler runs, the lock stays
    process.communicate(timeout=60)
    assert (killed / "run.lock").exists()
    (killed / ".checkpoint.npz.0123abcd.tmp").write_bytes(b"half a file")  # as a kill leaves

    result = _run(args + ["--out", str(killed), "--resume"])
    assert result.returncode == 0, result.stderr
    assert "stale lock" in result.stdout and f"PID {process.pid}" in result.stdout
    assert "removed 1 stale temporary file" in result.stdout
    assert not list(killed.glob(".*.tmp"))
    expected, got = _weights(reference), _weights(killed)
    assert expected.keys() == got.keys()
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


def test_second_run_into_a_folder_in_use_exits_2_naming_the_other(tmp_path):
    out = tmp_path / "run"
    first = _start(TINY + ["--epochs", "30", "--out", str(out), "--seed", "0"])
    try:
        _wait_for_line(first, "writing to")
        second = _run(TINY + ["--epochs", "1", "--out", str(out), "--seed", "1"])
        assert second.returncode == 2, second.stderr
        assert "Traceback" not in second.stderr
        assert "in use by another run" in second.stderr
        assert f"PID {first.pid}" in second.stderr and "--seed 0" in second.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 130


def test_resume_with_a_changed_lr_exits_2_naming_each_setting(one_epoch_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(one_epoch_run, out)
    before = (out / "checkpoint.npz").read_bytes()
    result = _run(TINY + ["--epochs", "1", "--lr", "0.01", "--batch-size", "128",
                          "--out", str(out), "--resume"])
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "lr: 0.001 -> 0.01" in result.stderr
    assert "batch_size: 256 -> 128" in result.stderr
    assert "Fashion-MNIST" not in result.stdout          # refused before any data was loaded
    assert (out / "checkpoint.npz").read_bytes() == before


def test_resume_with_more_epochs_needs_extend_schedule(one_epoch_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(one_epoch_run, out)
    result = _run(TINY + ["--epochs", "2", "--out", str(out), "--resume"])
    assert result.returncode == 2 and "--extend-schedule" in result.stderr, result.stderr
    assert "epochs: 1 -> 2" in result.stderr
    result = _run(TINY + ["--epochs", "2", "--out", str(out), "--resume",
                          "--extend-schedule", "restart"])
    assert result.returncode == 0, result.stderr
    assert "lr 0.001 next" in result.stdout              # the lr in use, not 0
    assert "epoch 2/2" in result.stdout and "lr 0.001 " in result.stdout


def _make_read_only(folder):
    """A folder nobody can write into, this process's user included: ``chmod 0o555``, and for
    root (whom permissions do not stop) the immutable attribute (``chattr +i``). Returns the
    command that undoes it, or None when this machine cannot make such a folder."""
    os.chmod(folder, 0o555)
    if os.geteuid() != 0:
        return None if os.access(folder, os.W_OK) else ["chmod", "0755", folder]
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", folder],
                                        capture_output=True).returncode != 0:
        return None
    return [chattr, "-i", folder]


def test_read_only_output_folder_fails_before_any_data_is_loaded():
    folder = tempfile.mkdtemp(prefix="minicnn-readonly-")
    undo = _make_read_only(folder)
    try:
        if undo is None:
            pytest.skip("cannot make a folder read-only for this user here (root without "
                        "chattr +i, e.g. on tmpfs)")
        result = _run(TINY + ["--epochs", "1", "--out", folder])
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert f"cannot write into the output folder {folder}" in result.stderr
        assert "Fashion-MNIST" not in result.stdout      # found before the data was loaded
        assert len(result.stderr.strip().splitlines()) <= 2
    finally:
        if undo is not None:
            subprocess.run(undo, check=False)
        os.chmod(folder, 0o755)
        shutil.rmtree(folder, ignore_errors=True)
