"""Weights in and out (minicnn/weights.py): torchvision-keyed PyTorch state dicts load into the
model zoo and give torch's outputs; .npz / .safetensors / .pth round trips are exact; keys or
shapes that do not fit are listed in the error.

The torch side is built here, module by module, with torchvision's attribute names (torchvision
itself is not needed): if minicnn's keys, key order, layer semantics or a weight layout differed
from torchvision's, the load or the output comparison would fail.
"""
import os

import numpy as np
import pytest

import minicnn as mc
from minicnn import weights
from minicnn.checkpoint import CheckpointError
from minicnn.nn import StateDictError
from torch_twins import (torch_alexnet, torch_densenet, torch_googlenet,  # noqa: E402
                         torch_resnet, torch_vgg)
from torch_compare import assert_eval_output_matches


# ---- torch twins with torchvision's names (tests/torch_twins.py) ----------------------------

# name -> (torch builder (torch, num_classes), input size: as small as the architecture allows)
TWINS = {
    "resnet18": (lambda torch, k: torch_resnet("basic", [2, 2, 2, 2], num_classes=k), 64),
    "vgg16": (lambda torch, k: torch_vgg(torch, 16, batch_norm=False, num_classes=k), 32),
    "alexnet": (lambda torch, k: torch_alexnet(torch, num_classes=k), 64),
    "densenet121": (lambda torch, k: torch_densenet(torch, num_classes=k), 64),
    "googlenet": (lambda torch, k: torch_googlenet(torch, num_classes=k, aux_logits=False), 64),
}


def _randomise(torch, model):
    """Random weights AND random batch-norm statistics (the default mean 0 / var 1 would let a
    wrongly loaded running_mean / running_var go unnoticed); He-scaled so that the signal
    survives 13 or more layers and the outputs are far from all-equal."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():   # in place: VGG-16's 100-million-number fc6 is not copied again
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var") or (t.ndim == 1 and name.endswith("weight")):
                t.uniform_(0.5, 1.5, generator=g)                      # var, batch-norm weight
            elif name.endswith("running_mean") or name.endswith("bias"):
                t.normal_(0.0, 0.1, generator=g)
            else:                                                      # conv / linear weight
                fan_in = int(np.prod(t.shape[1:]))
                t.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=g)


@pytest.mark.parametrize("name", [
    "resnet18", "densenet121", "googlenet",
    # 61 and 138 million parameters (fc6 alone is 4096 x 9216 / 25088): 5-10 s each
    pytest.param("alexnet", marks=pytest.mark.slow), pytest.param("vgg16", marks=pytest.mark.slow)])
def test_torchvision_keyed_state_dict_gives_torchs_outputs(name, tmp_path):
    torch = pytest.importorskip("torch", reason="torch is needed to write .pth files")
    builder, size = TWINS[name]
    num_classes = 10
    torch.manual_seed(0)
    twin = builder(torch, num_classes)
    _randomise(torch, twin)
    twin.eval()
    path = tmp_path / f"{name}.pth"
    torch.save(twin.state_dict(), path)

    x = np.random.default_rng(1).standard_normal((2, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    del twin

    model = mc.models.get_model(name, num_classes=num_classes)
    report = weights.load(model, path)
    assert report.ok, str(report)
    assert report.missing == report.unexpected == report.mismatched == []
    assert len(report.loaded) == len(model.state_dict())
    assert_eval_output_matches(model, x, expected)


# ---- round trips --------------------------------------------------------------------------------

def _trained_lenet():
    mc.manual_seed(3)
    model = mc.models.lenet5()
    # weights that are not the initialisation of a fresh model with the same seed
    for p in model.parameters():
        p.data[...] = np.random.default_rng(p.size).standard_normal(p.shape)
    return model


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].shape == sb[key].shape and sa[key].dtype == sb[key].dtype, key
        assert np.array_equal(sa[key], sb[key]), key


@pytest.mark.parametrize("ext", [".npz", ".safetensors", ".pth"])
def test_round_trip_is_exact(ext, tmp_path):
    if ext == ".safetensors":
        pytest.importorskip("safetensors", reason="the safetensors package is not installed")
    if ext == ".pth":
        pytest.importorskip("torch", reason="torch is needed for .pth files")
    model = _trained_lenet()
    # batch norm buffers too: the 0-d int64 counter must stay 0-d
    bn_model = mc.models.resnet20(in_channels=1)
    for path_model in (model, bn_model):
        path = tmp_path / f"w{id(path_model)}{ext}"
        weights.save(path, path_model)
        fresh = (mc.models.lenet5() if path_model is model
                 else mc.models.resnet20(in_channels=1))
        report = weights.load(fresh, path)
        assert report.ok
        _same_state(path_model, fresh)
        # and read() gives the arrays themselves
        assert set(weights.read(path)) == set(path_model.state_dict())


def test_npz_from_save_weights_loads_and_formats_agree(tmp_path):
    pytest.importorskip("safetensors", reason="the safetensors package is not installed")
    model = _trained_lenet()
    mc.save_weights(tmp_path / "a.npz", model)
    weights.save(tmp_path / "b.safetensors", weights.read(tmp_path / "a.npz"))
    fresh = mc.models.lenet5()
    weights.load(fresh, tmp_path / "b.safetensors")
    _same_state(model, fresh)


def test_safetensors_file_is_readable_by_the_safetensors_package(tmp_path):
    st = pytest.importorskip("safetensors.numpy", reason="safetensors is not installed")
    model = _trained_lenet()
    weights.save(tmp_path / "m.safetensors", model)
    raw = st.load_file(str(tmp_path / "m.safetensors"))
    for key, value in model.state_dict().items():
        assert np.array_equal(raw[key], value)


def test_torch_checkpoint_wrappers_and_module_prefix_are_unwrapped(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is needed for .pth files")
    model = _trained_lenet()
    state = {f"module.{k}": torch.from_numpy(v) for k, v in model.state_dict().items()}
    torch.save({"epoch": 3, "state_dict": state}, tmp_path / "ckpt.pth")
    fresh = mc.models.lenet5()
    report = weights.load(fresh, tmp_path / "ckpt.pth")
    _same_state(model, fresh)
    assert any("state_dict" in n for n in report.notes)
    assert any("module." in n for n in report.notes)


def test_half_precision_torch_file_is_converted(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is needed for .pth files")
    model = _trained_lenet()
    torch.save({k: torch.from_numpy(v).to(torch.bfloat16) if v.dtype == np.float32
                else torch.from_numpy(v) for k, v in model.state_dict().items()},
               tmp_path / "bf16.pth")
    fresh = mc.models.lenet5()
    report = weights.load(fresh, tmp_path / "bf16.pth")
    assert any("bfloat16" in n for n in report.notes)
    for key, value in model.state_dict().items():   # bfloat16 keeps ~3 significant digits
        np.testing.assert_allclose(fresh.state_dict()[key], value, rtol=1e-2, atol=1e-2)
        assert fresh.state_dict()[key].dtype == np.float32


# ---- what does not fit is listed ----------------------------------------------------------------

def test_mismatched_keys_and_shapes_are_all_listed_and_nothing_is_loaded(tmp_path):
    model = _trained_lenet()
    state = model.state_dict()
    state["extra.weight"] = np.zeros(3, np.float32)        # unexpected
    del state["features.3.bias"]                           # missing
    state["classifier.4.weight"] = np.zeros((5, 84), np.float32)   # wrong shape
    weights.save(tmp_path / "bad.npz", state)
    fresh = mc.models.lenet5()
    before = fresh.state_dict()
    with pytest.raises(StateDictError) as info:
        weights.load(fresh, tmp_path / "bad.npz")
    message = str(info.value)
    assert "extra.weight" in message and "features.3.bias" in message
    assert "classifier.4.weight" in message and "(5, 84)" in message and "(10, 84)" in message
    assert info.value.missing_keys == ["features.3.bias"]
    assert info.value.unexpected_keys == ["extra.weight"]
    assert info.value.mismatched == [("classifier.4.weight", (5, 84), (10, 84))]
    _same_state_dicts(before, fresh.state_dict())          # nothing changed

    report = weights.load(fresh, tmp_path / "bad.npz", strict=False)   # what fits is loaded
    assert not report.ok and len(report.problems()) == 3
    assert np.array_equal(fresh.state_dict()["features.0.weight"], state["features.0.weight"])
    assert np.array_equal(fresh.state_dict()["classifier.4.weight"],
                          before["classifier.4.weight"])            # the misfit is not


def _same_state_dicts(a, b):
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_exclude_keeps_a_new_head(tmp_path):
    source = mc.models.resnet20(in_channels=1)
    weights.save(tmp_path / "r.npz", source)
    target = mc.models.resnet20(in_channels=1, num_classes=5)
    head = target.fc.weight.data.copy()
    report = weights.load(target, tmp_path / "r.npz", exclude=("fc.",))
    assert report.ok and sorted(report.excluded) == ["fc.bias", "fc.weight"]
    assert np.array_equal(target.fc.weight.data, head)
    assert np.array_equal(target.conv1.weight.data, source.conv1.weight.data)


def test_compare_reports_without_loading(tmp_path):
    source = mc.models.resnet20(in_channels=1)
    target = mc.models.resnet20(in_channels=3)
    before = target.conv1.weight.data.copy()
    report = weights.compare(target, source.state_dict())
    assert report.mismatched == [("conv1.weight", (16, 1, 3, 3), (16, 3, 3, 3))]
    assert "conv1.weight" in str(report)
    assert np.array_equal(target.conv1.weight.data, before)


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="extension"):
        weights.save(tmp_path / "w.h5", mc.models.lenet5())
    with pytest.raises(FileNotFoundError, match="no file"):
        weights.read(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(CheckpointError, match="junk.npz"):
        weights.read(tmp_path / "junk.npz")
    if _has("safetensors"):
        (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
        with pytest.raises(CheckpointError, match="junk.safetensors"):
            weights.read(tmp_path / "junk.safetensors")
    if _has("torch"):
        (tmp_path / "junk.pth").write_bytes(b"garbage")
        with pytest.raises(CheckpointError, match="junk.pth"):
            weights.read(tmp_path / "junk.pth")


def test_save_is_atomic_a_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    model = _trained_lenet()
    path = tmp_path / "w.npz"
    weights.save(path, model)
    old = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("minicnn.weights.write_archive", broken)
    with pytest.raises(OSError, match="disk full"):
        weights.save(path, mc.models.lenet5())
    assert path.read_bytes() == old
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []


def _has(package):
    try:
        __import__(package)
        return True
    except ImportError:
        return False


def test_save_weights_and_load_weights_follow_the_extension(tmp_path):
    pytest.importorskip("safetensors", reason="the safetensors package is not installed")
    model = _trained_lenet()
    mc.save_weights(tmp_path / "m.safetensors", model)
    assert (tmp_path / "m.safetensors").read_bytes()[8:9] == b"{"   # a safetensors header
    fresh = mc.models.lenet5()
    result = mc.load_weights(tmp_path / "m.safetensors", fresh)
    assert result.missing_keys == [] and result.unexpected_keys == []
    _same_state(model, fresh)
