"""Checkpoints: a full round trip, atomic writes that survive a crash mid-save, and clear errors
for missing, truncated, corrupt or mismatching files."""
import json
import os
import pathlib
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import minicnn as mc
import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn import random as mc_random
from minicnn.checkpoint import (CheckpointError, atomic_write, load_checkpoint, read_checkpoint,
                                save_checkpoint, save_weights, load_weights)
from minicnn.nn import StateDictError

ROOT = pathlib.Path(__file__).resolve().parents[1]


def mlp(seed, hidden=8):
    mc.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 3))


def trained(seed=0, optimizer="sgd", steps=3):
    """A model, optimiser and scheduler after a few steps: momentum buffers exist, the lr moved."""
    model = mlp(seed)
    if optimizer == "sgd":
        opt = mc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    else:
        opt = mc.optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.99))
    sched = mc.optim.StepLR(opt, step_size=1, gamma=0.5)
    rng = np.random.default_rng(seed)
    x = mc.Tensor(rng.normal(size=(10, 4)).astype(np.float32))
    y = mc.Tensor(rng.integers(0, 3, size=10))
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model, opt, sched


def arrays_equal(a, b):
    assert list(a) == list(b)
    return all(np.array_equal(a[k], b[k]) for k in a)


def leftovers(directory, keep):
    return sorted(p.name for p in pathlib.Path(directory).iterdir() if p.name not in keep)


# ---- round trip ---------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_round_trip_restores_model_optimizer_scheduler_and_rng(tmp_path, optimizer):
    model, opt, sched = trained(optimizer=optimizer)
    mc.manual_seed(42)
    mc_random.get_generator().random(3)  # move the generator away from a fresh seed
    np.random.rand(5)
    path = tmp_path / "run.npz"
    save_checkpoint(path, model, opt, sched, epoch=3, step=30, history={"train_loss": [1.0, 0.5]},
                    extra={"note": "hello", "best": np.float32(0.25)})
    expected_draws = mc_random.get_generator().random(4), np.random.rand(4)

    # a "new process": fresh objects from another seed, and generators elsewhere
    model2, opt2, sched2 = trained(seed=7, optimizer=optimizer, steps=1)
    info = load_checkpoint(path, model2, opt2, sched2)

    assert info["epoch"] == 3 and info["step"] == 30
    assert info["history"] == {"train_loss": [1.0, 0.5]}
    assert info["extra"]["note"] == "hello" and info["extra"]["best"] == np.float32(0.25)
    assert arrays_equal(model.state_dict(), model2.state_dict())
    saved, loaded = opt.state_dict(), opt2.state_dict()
    assert saved["param_groups"] == loaded["param_groups"]  # lr, initial_lr, betas as a tuple
    for i, state in saved["state"].items():
        for name, value in state.items():
            assert np.array_equal(value, loaded["state"][i][name]), (i, name)
            assert type(value) is type(loaded["state"][i][name])
    assert sched2.last_epoch == sched.last_epoch and sched2.get_last_lr() == sched.get_last_lr()
    draws = mc_random.get_generator().random(4), np.random.rand(4)
    assert np.array_equal(draws[0], expected_draws[0])
    assert np.array_equal(draws[1], expected_draws[1])


def test_restore_rng_false_leaves_the_generators_alone(tmp_path):
    model, opt, sched = trained()
    save_checkpoint(tmp_path / "c.npz", model, opt, sched)
    fresh = mlp(1)
    mc.manual_seed(5)
    expected = mc_random.get_rng_state()
    load_checkpoint(tmp_path / "c.npz", fresh, restore_rng=False)
    assert mc_random.get_rng_state() == expected


def test_the_file_is_an_npz_with_readable_json_and_no_pickle(tmp_path):
    model, opt, sched = trained()
    path = save_checkpoint(tmp_path / "c.npz", model, opt, sched, epoch=2)
    with np.load(path, allow_pickle=False) as npz:  # every array member loads without pickle
        assert np.array_equal(npz["model/0.weight"], model.state_dict()["0.weight"])
        assert any(name.startswith("optimizer/state/") for name in npz.files)
    metadata = json.loads(zipfile.ZipFile(path).read("metadata.json"))
    assert metadata["format"] == "minicnn-checkpoint" and metadata["version"] == 1
    assert metadata["optimizer_class"] == "SGD" and metadata["contents"]["epoch"] == 2


def test_values_that_are_not_plain_data_are_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "c.npz"
    model = mlp(0)
    save_checkpoint(path, model, epoch=1)
    before = path.read_bytes()
    with pytest.raises(TypeError, match=r"extra/callback.*function.*never pickled"):
        save_checkpoint(path, model, epoch=2, extra={"callback": lambda: 0})
    assert path.read_bytes() == before
    assert leftovers(tmp_path, {"c.npz"}) == []


# ---- atomic writes ------------------------------------------------------------------------------

def _good_checkpoint(tmp_path):
    model, opt, sched = trained()
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, model, opt, sched, epoch=1)
    return path, model.state_dict()


def _assert_intact(path, weights):
    model = mlp(99)
    assert load_checkpoint(path, model)["epoch"] == 1
    assert arrays_equal(model.state_dict(), weights)


def test_a_failing_rename_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path, weights = _good_checkpoint(tmp_path)

    def broken_replace(src, dst):
        raise OSError("simulated crash just before the rename")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(path, mlp(3), epoch=2)
    monkeypatch.undo()
    _assert_intact(path, weights)
    assert leftovers(tmp_path, {path.name}) == []


@pytest.mark.parametrize("error", [OSError("No space left on device"), KeyboardInterrupt()])
def test_a_crash_halfway_through_the_arrays_keeps_the_previous_checkpoint(tmp_path, monkeypatch,
                                                                           error):
    path, weights = _good_checkpoint(tmp_path)
    real_write_array = np.lib.format.write_array
    calls = []

    def write_then_fail(f, array, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # two arrays written, the third half-written, then the "crash"
            f.write(b"\x93NUMPY half an array")
            raise error
        real_write_array(f, array, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_then_fail)
    with pytest.raises(type(error)):
        save_checkpoint(path, mlp(3), epoch=2)
    monkeypatch.undo()
    assert len(calls) == 3
    _assert_intact(path, weights)
    assert leftovers(tmp_path, {path.name}) == []


def test_a_process_killed_mid_save_leaves_the_previous_checkpoint(tmp_path):
    """The real thing: the process dies (no cleanup, no exception handler) mid-write."""
    path, weights = _good_checkpoint(tmp_path)
    script = f"""
import os, numpy as np, minicnn as mc, minicnn.nn as nn
from minicnn.checkpoint import save_checkpoint
real = np.lib.format.write_array
calls = []
def write_then_die(f, array, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        f.write(b"partial")
        os._exit(3)
    real(f, array, **kwargs)
np.lib.format.write_array = write_then_die
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
save_checkpoint({str(path)!r}, model, epoch=2)
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 3, result.stderr
    _assert_intact(path, weights)
    # a killed process cannot clean up: its temporary file may stay, under a hidden name
    assert all(name.startswith(".checkpoint.npz.") and name.endswith(".tmp")
               for name in leftovers(tmp_path, {path.name}))


def test_atomic_write_replaces_whole_files_only(tmp_path):
    target = tmp_path / "notes.txt"
    with atomic_write(target, mode="w") as f:
        f.write("first")
    with pytest.raises(RuntimeError):
        with atomic_write(target, mode="w") as f:
            f.write("second, half")
            raise RuntimeError("boom")
    assert target.read_text() == "first"
    assert leftovers(tmp_path, {"notes.txt"}) == []


def test_new_files_get_ordinary_permissions(tmp_path):
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    umask = os.umask(0o022)
    try:
        save_weights(tmp_path / "w.npz", mlp(0))
    finally:
        os.umask(umask)
    assert (tmp_path / "w.npz").stat().st_mode & 0o777 == 0o644


# ---- damaged and wrong files --------------------------------------------------------------------

def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint file at .*nope.npz"):
        load_checkpoint(tmp_path / "nope.npz", mlp(0))


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "empty", "not a zip"])
def test_damaged_file_gives_a_clear_error_naming_it(tmp_path, damage):
    path, _ = _good_checkpoint(tmp_path)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif damage == "flipped byte":
        # inside the first array's data: only the zip's CRC-32 can notice
        offset = data.index(b"\x93NUMPY") + 200
        path.write_bytes(data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1:])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.write_text("these are not the weights you are looking for")
    model = mlp(5)
    before = model.state_dict()
    with pytest.raises(CheckpointError, match=r"checkpoint\.npz.*truncated or corrupt"):
        load_checkpoint(path, model)
    assert arrays_equal(model.state_dict(), before)  # nothing was loaded


def test_a_weights_file_is_not_a_checkpoint_and_the_error_says_what_to_do(tmp_path):
    save_weights(tmp_path / "w.npz", mlp(0))
    with pytest.raises(CheckpointError, match="load_weights"):
        load_checkpoint(tmp_path / "w.npz", mlp(0))


def test_a_newer_format_asks_for_an_upgrade(tmp_path):
    path, _ = _good_checkpoint(tmp_path)
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    metadata = json.loads(members["metadata.json"])
    metadata["version"] = 99
    members["metadata.json"] = json.dumps(metadata).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(CheckpointError, match="newer minicnn.*format 99.*Upgrade"):
        load_checkpoint(path, mlp(0))


def test_model_mismatch_lists_the_keys_and_loads_nothing(tmp_path):
    path, _ = _good_checkpoint(tmp_path)
    mc.manual_seed(3)
    other = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 5), nn.Linear(5, 2))
    before = other.state_dict()
    with pytest.raises(StateDictError) as info:
        load_checkpoint(path, other)
    message = str(info.value)
    assert "checkpoint.npz" in message
    assert '"3.weight"' in message and '"3.bias"' in message           # missing keys
    assert "size mismatch for 2.weight" in message                      # (3, 8) vs (5, 8)
    assert info.value.missing_keys == ["3.weight", "3.bias"]
    assert arrays_equal(other.state_dict(), before)


def test_an_optimizer_of_another_kind_is_refused(tmp_path):
    path, _ = _good_checkpoint(tmp_path)  # saved with SGD
    model = mlp(1)
    before = model.state_dict()
    with pytest.raises(CheckpointError, match="state of a SGD optimizer, but a Adam was given"):
        load_checkpoint(path, model, mc.optim.Adam(model.parameters()))
    assert arrays_equal(model.state_dict(), before)


def test_an_optimizer_that_does_not_fit_undoes_the_model_load(tmp_path):
    path, _ = _good_checkpoint(tmp_path)
    model = mlp(1)
    before = model.state_dict()
    # the same kind, but over only half the parameters: the model part loads, the optimiser not
    opt = mc.optim.SGD(list(model.parameters())[:2], lr=0.1, momentum=0.9)
    with pytest.raises(CheckpointError, match="checkpoint.npz.*parameter groups of sizes"):
        load_checkpoint(path, model, opt)
    assert arrays_equal(model.state_dict(), before)


def test_asking_for_a_part_that_was_not_saved_is_an_error(tmp_path):
    save_checkpoint(tmp_path / "c.npz", mlp(0), epoch=1)
    model = mlp(0)
    with pytest.raises(CheckpointError, match="holds no optimizer state"):
        load_checkpoint(tmp_path / "c.npz", model, mc.optim.SGD(model.parameters(), lr=0.1))


def test_read_checkpoint_changes_nothing(tmp_path):
    path, weights = _good_checkpoint(tmp_path)
    state = mc_random.get_rng_state()
    contents = read_checkpoint(path)
    assert mc_random.get_rng_state() == state
    assert arrays_equal(contents["model"], weights)
    assert contents["optimizer_class"] == "SGD" and contents["scheduler_class"] == "StepLR"


# ---- weights only -------------------------------------------------------------------------------

def test_weights_round_trip_and_plain_npz_compatibility(tmp_path):
    model = mlp(0)
    save_weights(tmp_path / "w.npz", model)
    with np.load(tmp_path / "w.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(model.state_dict())
    other = mlp(1)
    load_weights(tmp_path / "w.npz", other)
    assert arrays_equal(model.state_dict(), other.state_dict())

    # a file written by plain np.savez loads too
    np.savez(tmp_path / "plain.npz", **mlp(2).state_dict())
    load_weights(tmp_path / "plain.npz", other)
    assert arrays_equal(mlp(2).state_dict(), other.state_dict())


def test_load_weights_takes_the_model_part_of_a_checkpoint(tmp_path):
    path, weights = _good_checkpoint(tmp_path)
    model = mlp(4)
    load_weights(path, model)
    assert arrays_equal(model.state_dict(), weights)


def test_load_weights_strict_and_not_strict(tmp_path):
    mc.manual_seed(0)
    small = nn.Sequential(nn.Linear(4, 8))
    save_weights(tmp_path / "w.npz", small)
    big = mlp(1)
    with pytest.raises(StateDictError, match=r"(?s)w\.npz.*Missing key\(s\).*2\.weight"):
        load_weights(tmp_path / "w.npz", big)
    result = load_weights(tmp_path / "w.npz", big, strict=False)
    assert result.missing_keys == ["2.weight", "2.bias"]
    assert np.array_equal(big.state_dict()["0.weight"], small.state_dict()["0.weight"])


def test_truncated_weights_file_is_a_clear_error(tmp_path):
    save_weights(tmp_path / "w.npz", mlp(0))
    data = (tmp_path / "w.npz").read_bytes()
    (tmp_path / "w.npz").write_bytes(data[:-40])
    with pytest.raises(CheckpointError, match=r"w\.npz.*not a readable minicnn weights"):
        load_weights(tmp_path / "w.npz", mlp(0))
