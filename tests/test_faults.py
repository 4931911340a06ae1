"""The reproducers of issue 18, each now giving minicnn's own clear error (in-process; the
process-level attacks are in test_cli_process.py, the fuzzers in test_fuzz_readers.py)."""
import io
import json
import os
import zipfile

import numpy as np
import pytest

import minicnn as mc
from minicnn import cli, weights
from minicnn.checkpoint import read_checkpoint
from minicnn.data.cifar import read_cifar_batch
from minicnn.data.errors import DataError
from minicnn.data.idx import read_idx
from minicnn.run_settings import SettingsChanged, UsageError, check_learning_rates
from minicnn.runlock import RunFolderBusy, RunLock, prepare_run_folder
from minicnn.serialization import CheckpointError, atomic_write, sniff_format
from minicnn.training import TrainingInterrupted, fit, train_model


# ---- readers ------------------------------------------------------------------------------------

def test_idx_header_whose_dimensions_overflow_64_bits_is_a_data_error(tmp_path):
    path = tmp_path / "huge-idx3-ubyte"
    # four dimensions of 2**31: their product wraps int64 to 0, which matched an empty file
    path.write_bytes(bytes([0, 0, 0x08, 4]) + (2 ** 31).to_bytes(4, "big") * 4)
    with pytest.raises(DataError, match="truncated IDX file"):
        read_idx(path)


@pytest.mark.parametrize("payload", [
    b"\x80\x05\x96" + b"\xff" * 8 + b".",      # BYTEARRAY8 of 2**64-1 bytes: OverflowError
    b"\x80\x02h\x07.",                         # a memo index never stored: LookupError
    b"\x80\x02" + b"(" * 100000,               # marks without end
    b"\x80\x02cos\nsystem\n.",                 # a global that runs code: refused
])
def test_damaged_cifar_pickle_is_a_data_error(tmp_path, payload):
    path = tmp_path / "data_batch_1"
    path.write_bytes(payload)
    with pytest.raises(DataError, match=str(path)):
        read_cifar_batch(path)


def _checkpoint(tmp_path):
    model = mc.nn.Linear(3, 2)
    return mc.save_checkpoint(tmp_path / "checkpoint.npz", model,
                              mc.optim.SGD(model.parameters(), lr=0.1), epoch=1), model


def _rewrite(path, member, data):
    """A copy of the zip ``path`` with ``member`` replaced by ``data``."""
    with zipfile.ZipFile(path) as source:
        members = {name: source.read(name) for name in source.namelist()}
    members[member] = data
    with zipfile.ZipFile(path, "w") as target:
        for name, value in members.items():
            target.writestr(name, value)


@pytest.mark.parametrize("metadata", [b"[1]", b'"text"', b'{"format": "minicnn-checkpoint", '
                                      b'"version": "two"}', b"[" * 100000 + b"]" * 100000])
def test_checkpoint_with_hostile_metadata_is_a_checkpoint_error(tmp_path, metadata):
    path, model = _checkpoint(tmp_path)
    _rewrite(path, "metadata.json", metadata)
    with pytest.raises(CheckpointError, match="checkpoint.npz"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError):
        mc.load_checkpoint(path, model)


def test_npy_header_claiming_a_huge_shape_is_refused_before_allocating(tmp_path):
    path = tmp_path / "weights.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10 ** 12,)})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("fc.weight.npy", header.getvalue() + b"\0" * 64)
    with pytest.raises(CheckpointError, match=r"claims shape \(1000000000000,\)"):
        mc.load_weights(path, mc.nn.Linear(3, 2))


def test_pytorch_file_renamed_npz_is_recognised_by_its_content(tmp_path):
    torch = pytest.importorskip("torch")
    model = mc.models.lenet5()
    path = tmp_path / "lenet5.npz"
    torch.save({k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()}, path)
    assert sniff_format(path) == "torch"
    report = weights.load(mc.models.lenet5(), path)        # no "missing" for every key
    assert report.ok and any("PyTorch file" in note for note in report.notes)
    fresh = mc.models.lenet5()
    mc.load_weights(path, fresh)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[key], value)
    with pytest.raises(CheckpointError, match="is a PyTorch file"):
        read_checkpoint(path)


def test_safetensors_and_npz_are_recognised_by_content(tmp_path):
    pytest.importorskip("safetensors")
    state = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    weights.save(tmp_path / "a.safetensors", state)
    os.replace(tmp_path / "a.safetensors", tmp_path / "a.npz")
    assert sniff_format(tmp_path / "a.npz") == "safetensors"
    np.testing.assert_array_equal(weights.read(tmp_path / "a.npz")["w"], state["w"])
    weights.save(tmp_path / "b.npz", state)
    os.replace(tmp_path / "b.npz", tmp_path / "b.pth")
    assert sniff_format(tmp_path / "b.pth") == "npz"
    np.testing.assert_array_equal(weights.read(tmp_path / "b.pth")["w"], state["w"])


def test_a_full_disk_names_the_file_being_written(tmp_path, monkeypatch):
    import errno
    target = tmp_path / "checkpoint.npz"
    target.write_bytes(b"the previous checkpoint")
    with pytest.raises(OSError, match="checkpoint.npz") as info:
        with atomic_write(target) as f:
            raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert target.read_bytes() == b"the previous checkpoint"
    assert not list(tmp_path.glob(".*.tmp"))


def test_empty_batch_through_flatten_gives_0_by_k():
    out = mc.nn.Flatten()(mc.Tensor(np.zeros((0, 3, 4, 4), np.float32)))
    assert out.shape == (0, 48)


# ---- the run folder -----------------------------------------------------------------------------

def test_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    with RunLock(tmp_path, command="minicnn train --seed 0"):
        with pytest.raises(RunFolderBusy, match=f"PID {os.getpid()}") as info:
            RunLock(tmp_path, command="minicnn train --seed 1").acquire()
        assert info.value.holder["command"] == "minicnn train --seed 0"
    assert not (tmp_path / "run.lock").exists()
    RunLock(tmp_path).acquire().release()               # free again


def test_stale_lock_and_temporaries_are_taken_over_with_a_message(tmp_path):
    (tmp_path / "run.lock").write_text(json.dumps({"pid": 999999999, "host": "gone",
                                                   "started": "then", "command": "old run"}))
    (tmp_path / ".checkpoint.npz.deadbeef.tmp").write_bytes(b"x")
    (tmp_path / ".keep.me.tmp").write_bytes(b"not atomic_write's")
    said = []
    with prepare_run_folder(tmp_path, log=said.append):
        pass
    assert any("stale lock" in line and "PID 999999999" in line for line in said)
    assert any(".checkpoint.npz.deadbeef.tmp" in line for line in said)
    assert not (tmp_path / ".checkpoint.npz.deadbeef.tmp").exists()
    assert (tmp_path / ".keep.me.tmp").exists()


# ---- resume that checks -------------------------------------------------------------------------

RUN = dict(subset="bundled", batch_size=256, progress=False, log=None)


@pytest.fixture(scope="module")
def three_epoch_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "run"
    train_model(epochs=3, out=out, **RUN)
    return out


def test_resume_refuses_every_changed_setting_by_name(three_epoch_run, tmp_path):
    import shutil
    out = tmp_path / "run"
    shutil.copytree(three_epoch_run, out)
    with pytest.raises(SettingsChanged) as info:
        train_model(epochs=3, out=out, resume=True, lr=0.01, optimizer="sgd", augment=True,
                    seed=1, **RUN)
    names = [name for name, _, _ in info.value.differences]
    assert names == ["optimizer", "optimizer_args", "lr", "augment", "seed"]
    assert "lr: 0.001 -> 0.01" in str(info.value)


def test_resume_refuses_another_subset(three_epoch_run, tmp_path, monkeypatch):
    import shutil

    from minicnn import training
    out = tmp_path / "run"
    shutil.copytree(three_epoch_run, out)
    real = training.load_data

    def full_set(name, subset, *args):       # as if the full set were installed
        train, test, channels, size = real(name, "bundled", *args)
        train.is_subset = False
        return train, test, channels, size
    monkeypatch.setattr(training, "load_data", full_set)
    with pytest.raises(SettingsChanged, match='subset: "bundled" -> "full"|subset: \'bundled\''):
        train_model(epochs=3, out=out, resume=True, **{**RUN, "subset": "full"})


@pytest.mark.parametrize("how, lrs", [("stretch", [0.001 * (1 + np.cos(np.pi * t / 6)) / 2
                                                   for t in (3, 4, 5)]),
                                      ("restart", [0.001 * (1 + np.cos(np.pi * t / 3)) / 2
                                                   for t in (0, 1, 2)])])
def test_extending_a_cosine_run_never_trains_at_lr_0(three_epoch_run, tmp_path, how, lrs):
    import shutil
    out = tmp_path / "run"
    shutil.copytree(three_epoch_run, out)
    with pytest.raises(SettingsChanged, match="--extend-schedule"):
        train_model(epochs=6, out=out, resume=True, **RUN)
    _, history, _ = train_model(epochs=6, out=out, resume=True, extend_schedule=how, **RUN)
    np.testing.assert_allclose(history["lr"][3:], lrs, rtol=1e-12)
    assert min(history["lr"]) > 0
    settings = read_checkpoint(out / "checkpoint.npz")["extra"]["settings"]
    assert settings["epochs"] == 6 and settings["extensions"][-1]["how"] == how
    # resuming the extended run again with the same command is no change
    _, history, _ = train_model(epochs=6, out=out, resume=True, **RUN)
    assert history["epoch"] == [1, 2, 3, 4, 5, 6]


def test_a_schedule_run_past_its_end_is_refused():
    model = mc.nn.Linear(2, 2)
    opt = mc.optim.SGD(model.parameters(), lr=0.1)
    scheduler = mc.optim.CosineAnnealingLR(opt, 3)
    for _ in range(3):
        scheduler.step()
    with pytest.raises(UsageError, match="epoch.s. 4 would train at a learning rate of 0"):
        check_learning_rates(scheduler, opt, 4, 6)


@pytest.mark.parametrize("argv", [["--epochs", "0"], ["--batch-size", "-1"], ["--lr", "0"],
                                  ["--lr", "nan"], ["--epochs", "x"]])
def test_bad_arguments_exit_2_before_any_data_is_loaded(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--out", str(tmp_path / "run"), *argv])
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert "Fashion-MNIST" not in captured.out and "Traceback" not in captured.err
    assert not (tmp_path / "run").exists()


def test_train_model_checks_its_arguments_before_loading_data(tmp_path):
    with pytest.raises(UsageError, match="epochs must be a whole number"):
        train_model(epochs=0, out=tmp_path / "run", **RUN)
    with pytest.raises(UsageError, match="only Fashion-MNIST ships a bundled subset"):
        train_model(data="cifar10", out=tmp_path / "run", **RUN)
    assert not (tmp_path / "run").exists()


# ---- clean exits --------------------------------------------------------------------------------

def test_missing_data_is_one_clean_error_with_exit_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    status = cli.main(["train", "--data", "cifar10", "--root", str(tmp_path / "nothing"),
                       "--epochs", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err
    assert "data error: CIFAR-10" in err and "not found" in err and "--debug" in err


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    from minicnn.data.errors import DatasetNotFoundError
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(DatasetNotFoundError):
        cli.main(["--debug", "train", "--data", "cifar10", "--root", str(tmp_path / "x"),
                  "--epochs", "1", "--out", str(tmp_path / "run")])


def test_bad_checkpoint_is_exit_1_naming_the_file(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.npz").write_bytes(b"PK\x03\x04 not really a zip")
    status = cli.main(["train", "--subset", "bundled", "--epochs", "1", "--out", str(out),
                       "--resume", "--no-progress"])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err
    assert "checkpoint error" in err and "checkpoint.npz" in err


def test_divergence_is_exit_1_without_a_traceback(tmp_path, capsys, monkeypatch):
    from minicnn import training

    def diverging(*args, **kwargs):
        raise training.TrainingDiverged("training diverged: the loss became nan at epoch 1, "
                                        "step 3 (...)", 1, 3, float("nan"))
    monkeypatch.setattr(training, "_train_one_epoch", diverging)
    status = cli.main(["train", "--subset", "bundled", "--epochs", "1",
                       "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err
    assert "training diverged" in err


def test_ctrl_c_inside_fit_says_where_it_stopped(tmp_path):
    model = mc.nn.Linear(2, 2)
    opt = mc.optim.SGD(model.parameters(), lr=0.1)
    batches = [(np.ones((1, 2), np.float32), np.zeros(1, np.int64))]

    class Interrupting:
        def __init__(self):
            self.epochs = 0

        def __len__(self):
            return 1

        def __iter__(self):
            self.epochs += 1
            if self.epochs == 2:
                raise KeyboardInterrupt
            return iter(batches)

    with pytest.raises(TrainingInterrupted) as info:
        fit(model, opt, Interrupting(), 5, checkpoint_path=tmp_path / "c.npz", log=None)
    assert isinstance(info.value, KeyboardInterrupt)
    assert (info.value.epoch, info.value.saved_epoch) == (2, 1)
    assert "interrupted at epoch 2/5" in str(info.value) and "holds epochs 1-1" in str(info.value)
