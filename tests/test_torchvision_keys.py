"""torchvision's published checkpoints have no ``*.num_batches_tracked`` (they predate batch
norm's counter). PyTorch's ``load_state_dict(strict=True)`` accepts that; so must minicnn's.

Each torch twin (tests/torch_twins.py, torchvision's module structure and names) gets random
weights and batch-norm statistics, its state dict loses every ``num_batches_tracked`` (as the
published files are), and the result loads with ``strict=True`` into minicnn's model and into a
fresh torch twin: both give the twin's outputs.
"""
from collections import OrderedDict

import numpy as np
import pytest

import minicnn as mc
from minicnn.nn import StateDictError
from torch_twins import torch_densenet, torch_googlenet, torch_resnet, torch_vgg
from torch_compare import assert_eval_output_matches

torch = pytest.importorskip("torch", reason="the twins are built with torch.nn")

# name -> (minicnn factory, torch twin builder, input size: as small as the net allows)
NETS = {
    "resnet18": (lambda: mc.models.resnet18(num_classes=10),
                 lambda: torch_resnet("basic", [2, 2, 2, 2], num_classes=10), 64),
    "vgg16_bn": (lambda: mc.models.vgg16(batch_norm=True, num_classes=10),
                 lambda: torch_vgg(torch, 16, batch_norm=True, num_classes=10), 32),
    "densenet121": (lambda: mc.models.densenet121(num_classes=10),
                    lambda: torch_densenet(torch, num_classes=10), 64),
    "googlenet": (lambda: mc.models.googlenet(num_classes=10, aux_logits=False),
                  lambda: torch_googlenet(torch, num_classes=10, aux_logits=False), 64),
}


def _randomise(model):
    """Random weights and batch-norm statistics, He-scaled so that the signal survives depth
    (the default mean 0 / var 1 would hide a running statistic that failed to load)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                t.fill_(3)   # a counter the published files do not have
            elif name.endswith("running_var") or (t.ndim == 1 and name.endswith("weight")):
                t.uniform_(0.5, 1.5, generator=g)
            elif name.endswith("running_mean") or name.endswith("bias"):
                t.normal_(0.0, 0.1, generator=g)
            else:
                t.normal_(0.0, (2.0 / int(np.prod(t.shape[1:]))) ** 0.5, generator=g)


def _published(twin):
    """The twin's state dict as torchvision publishes it: NumPy arrays, no counters."""
    return OrderedDict((k, v.numpy().copy()) for k, v in twin.state_dict().items()
                       if not k.endswith("num_batches_tracked"))


@pytest.mark.parametrize("name", [
    "resnet18", "densenet121", "googlenet",
    pytest.param("vgg16_bn", marks=pytest.mark.slow)])   # 138 million parameters: ~10 s
def test_checkpoint_without_num_batches_tracked_loads_strictly(name):
    factory, builder, size = NETS[name]
    torch.manual_seed(0)
    twin = builder()
    _randomise(twin)
    twin.eval()
    state = _published(twin)
    x = np.random.default_rng(1).standard_normal((2, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    del twin

    # PyTorch itself accepts the file with strict=True and reports nothing missing
    fresh = builder()
    result = fresh.load_state_dict(OrderedDict((k, torch.from_numpy(v)) for k, v in
                                               state.items()), strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    del fresh

    model = factory()
    counters = [k for k in model.state_dict() if k.endswith("num_batches_tracked")]
    assert counters and not any(k in state for k in counters)
    result = model.load_state_dict(state, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert result.kept_keys == counters            # ... and minicnn says which it kept
    assert "num_batches_tracked" in repr(result)
    assert all(int(v) == 0 for k, v in model.state_dict().items() if k in counters)
    assert_eval_output_matches(model, x, expected)


def test_a_missing_counter_keeps_its_value_as_in_pytorch():
    bn = mc.nn.BatchNorm2d(3)
    bn.num_batches_tracked.data[...] = 5
    state = {k: v for k, v in bn.state_dict().items() if k != "num_batches_tracked"}
    result = bn.load_state_dict(state, strict=True)
    assert int(bn.num_batches_tracked.data) == 5 and result.kept_keys == ["num_batches_tracked"]
    tbn = torch.nn.BatchNorm2d(3)
    tbn.num_batches_tracked.fill_(5)
    tbn.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    assert int(tbn.num_batches_tracked) == 5


def test_other_missing_buffers_are_still_errors():
    bn = mc.nn.BatchNorm2d(3)
    state = {k: v for k, v in bn.state_dict().items() if k != "running_var"}
    with pytest.raises(StateDictError, match="running_var") as info:
        bn.load_state_dict(state)
    assert info.value.missing_keys == ["running_var"]
    # strict=False: the missing counter is not reported as missing either (as in PyTorch)
    state = {k: v for k, v in bn.state_dict().items() if k != "num_batches_tracked"}
    assert bn.load_state_dict(state, strict=False).missing_keys == []


@pytest.mark.parametrize("ext", [".npz", ".safetensors", ".pth"])
def test_weights_load_accepts_files_without_num_batches_tracked(ext, tmp_path):
    pytest.importorskip("safetensors")
    model = mc.models.resnet18(num_classes=10)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("tracked")}
    path = mc.weights.save(tmp_path / f"r18{ext}", state)
    report = mc.weights.load(mc.models.resnet18(num_classes=10), path, strict=True)
    assert report.missing == []
    assert report.kept and all(key.endswith("num_batches_tracked") for key in report.kept)
