"""ResNets (ImageNet, torchvision's v1.5) and the CIFAR ResNets, with their plain twins.

Exact parameter counts; state_dict keys and shapes against a torch.nn copy of torchvision's
module structure, with torch's weights loaded by name giving the same outputs; output shapes;
every block of a plain net really has no shortcut; forward and backward of the small
configurations reach every parameter.
"""
import numpy as np
import pytest

import minicnn as mc
import minicnn.nn as nn
from minicnn.models.resnet import (BasicBlock, Bottleneck, resnet18, resnet34, resnet50,
                                   resnet101, resnet152)
from minicnn.models.resnet_cifar import (CifarBasicBlock, ZeroPadShortcut, cifar_resnet,
                                         resnet20, resnet32, resnet44, resnet56, resnet110)
from torch_twins import torch_resnet, torch_cifar_resnet  # noqa: E402  (tests/torch_twins.py)


def count(model):
    return sum(p.data.size for p in model.parameters())


def tensor(rng, *shape):
    return mc.Tensor(rng.standard_normal(shape).astype(np.float32))


# ---- torch references: torchvision's module structure, written out with torch.nn ------------

def load_from_torch(model, tmodel):
    """Copy torch's state_dict into ``model`` by name (strict: every key must match)."""
    model.load_state_dict({k: v.detach().numpy().copy() for k, v in tmodel.state_dict().items()})


def randomise_batch_norm(tmodel, seed=0):
    """Give torch's BN layers non-trivial statistics and affine parameters (eval mode uses them)."""
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in tmodel.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.num_features, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))


# ---- ImageNet ResNets ------------------------------------------------------------------------

RESNETS = [
    (resnet18, "basic", [2, 2, 2, 2], 11_689_512, 11_515_688),
    (resnet34, "basic", [3, 4, 6, 3], 21_797_672, 21_623_848),
    (resnet50, "bottleneck", [3, 4, 6, 3], 25_557_032, 22_780_456),
    (resnet101, "bottleneck", [3, 4, 23, 3], 44_549_160, 41_772_584),
    (resnet152, "bottleneck", [3, 8, 36, 3], 60_192_808, 57_416_232),
]


@pytest.mark.parametrize("factory, block, layers, params, plain_params", RESNETS,
                         ids=[r[0].__name__ for r in RESNETS])
def test_resnet_counts_and_torchvision_keys(factory, block, layers, params, plain_params):
    model = factory()
    assert count(model) == params
    torch_sd = torch_resnet(block, layers).state_dict()
    ours = model.state_dict()
    assert list(ours) == list(torch_sd)  # names AND order (buffers included)
    for key, value in torch_sd.items():
        assert ours[key].shape == tuple(value.shape), key


@pytest.mark.parametrize("factory, block, layers, params, plain_params", RESNETS[:3],
                         ids=[r[0].__name__ for r in RESNETS[:3]])
def test_plain_resnet_drops_every_shortcut_and_projection(factory, block, layers, params,
                                                          plain_params):
    model = factory(plain=True)
    assert count(model) == plain_params
    assert not any("downsample" in key for key in model.state_dict())
    assert all(not b.residual and b.downsample is None for b in model.blocks())
    # everything but the projections carries torchvision's names and loads from a ResNet
    resnet_sd = factory().state_dict()
    result = model.load_state_dict(resnet_sd, strict=False)
    assert result.missing_keys == []
    assert result.unexpected_keys and all("downsample" in k for k in result.unexpected_keys)


def test_resnet_representative_keys():
    keys = set(resnet50().state_dict())
    for key in ["conv1.weight", "bn1.weight", "bn1.running_var", "bn1.num_batches_tracked",
                "layer1.0.conv1.weight", "layer1.0.bn1.bias", "layer1.0.conv3.weight",
                "layer1.0.downsample.0.weight", "layer1.0.downsample.1.running_mean",
                "layer4.2.bn3.weight", "fc.weight", "fc.bias"]:
        assert key in keys
    assert "layer1.1.downsample.0.weight" not in keys


@pytest.mark.parametrize("factory, block, layers",
                         [(resnet18, "basic", [2, 2, 2, 2]),
                          (resnet50, "bottleneck", [3, 4, 6, 3])], ids=["resnet18", "resnet50"])
def test_resnet_matches_torch_with_its_weights(factory, block, layers):
    """Same weights by name, same outputs: the stride sits where torchvision puts it (v1.5).
    Checked in evaluation mode (running statistics) and in training mode (batch statistics,
    where the outputs vary more across the batch, so a wrong layer cannot hide in tolerance)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tmodel = torch_resnet(block, layers, num_classes=7, in_channels=2)
    randomise_batch_norm(tmodel)
    model = factory(num_classes=7, in_channels=2)
    load_from_torch(model, tmodel)
    x = np.random.default_rng(0).standard_normal((4, 2, 64, 48)).astype(np.float32)
    for training in (False, True):
        tmodel.train(training)
        model.train(training)
        with torch.no_grad():
            expected = tmodel(torch.from_numpy(x)).numpy()
        with mc.no_grad():
            got = model(mc.Tensor(x)).numpy()
        spread = expected.std(axis=0).mean()
        assert spread > (0.1 if training else 1e-3)   # the outputs do depend on the input
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3 * spread)


def test_resnet_output_shapes(rng):
    model = resnet18().eval()
    with mc.no_grad():
        assert model(tensor(rng, 1, 3, 224, 224)).shape == (1, 1000)
    small = resnet18(num_classes=10, in_channels=1)
    assert small(tensor(rng, 2, 1, 28, 28)).shape == (2, 10)


def test_resnet_initialisation_is_torchvisions():
    mc.manual_seed(0)
    model = resnet50(zero_init_residual=True)
    w = model.layer3[0].conv2.weight.data
    fan_out = w.shape[0] * 9
    assert abs(w.std() / np.sqrt(2.0 / fan_out) - 1) < 0.02   # kaiming_normal_, fan_out
    assert np.all(model.bn1.weight.data == 1) and np.all(model.bn1.bias.data == 0)
    assert all(np.all(b.bn3.weight.data == 0) for b in model.blocks())
    assert np.all(model.layer1[0].bn2.weight.data == 1)
    fc = model.fc.weight.data   # Linear's default: U(-1/sqrt(in), 1/sqrt(in))
    assert np.abs(fc).max() <= 1 / np.sqrt(2048) and fc.std() > 0.5 / np.sqrt(3 * 2048)
    basic = resnet18(zero_init_residual=True)
    assert all(np.all(b.bn2.weight.data == 0) for b in basic.blocks())
    with pytest.raises(ValueError, match="plain"):
        resnet18(plain=True, zero_init_residual=True)


def zero_last_bn(block):
    last = block.bn3 if isinstance(block, Bottleneck) else block.bn2
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)


@pytest.mark.parametrize("factory", [resnet18, resnet50])
def test_every_block_of_a_plain_resnet_has_no_shortcut(factory, rng):
    """Zero a block's last BN: its residual branch F(x) is then 0, so a plain block outputs
    relu(0) = 0 whatever x is, while a residual block still passes relu(shortcut(x)). Checked
    block by block, so a single shortcut left in anywhere fails."""
    for plain in (True, False):
        model = factory(num_classes=10, plain=plain).eval()
        assert len(model.blocks()) == sum(len(layer) for layer in
                                          (model.layer1, model.layer2, model.layer3,
                                           model.layer4))
        x = tensor(rng, 2, 3, 32, 32)
        with mc.no_grad():
            x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
            for block in model.blocks():
                zero_last_bn(block)
                out = block(x).numpy()
                if plain:
                    assert np.all(out == 0), "a plain block passed its input on"
                else:
                    assert np.abs(out).max() > 0
                x = mc.Tensor(rng.standard_normal(out.shape).astype(np.float32))


def test_resnet_small_configuration_forward_backward(rng):
    for factory in (resnet18, resnet50):
        for plain in (False, True):
            model = factory(num_classes=10, in_channels=1, plain=plain)
            out = model(tensor(rng, 2, 1, 28, 28))
            assert out.shape == (2, 10)
            mc.nn.functional.cross_entropy(out, mc.Tensor(np.array([3, 7]))).backward()
            for name, p in model.named_parameters():
                assert p.grad is not None and p.grad.dtype == np.float32, name
                assert np.all(np.isfinite(p.grad)), name
                assert np.abs(p.grad).max() > 0, name


# ---- CIFAR ResNets ---------------------------------------------------------------------------

CIFAR = [(resnet20, 20, 269_722), (resnet32, 32, 464_154), (resnet44, 44, 658_586),
         (resnet56, 56, 853_018), (resnet110, 110, 1_727_962)]


@pytest.mark.parametrize("factory, depth, params", CIFAR, ids=[c[0].__name__ for c in CIFAR])
def test_cifar_resnet_counts_plain_twin_same(factory, depth, params):
    model, plain = factory(), factory(plain=True)
    assert count(model) == params == count(plain)
    assert len(model.blocks()) == 3 * (depth - 2) // 6
    sd, plain_sd = model.state_dict(), plain.state_dict()
    assert list(sd) == list(plain_sd)
    plain.load_state_dict(sd)   # the twins swap weights unchanged
    assert count(cifar_resnet(depth)) == params


def test_cifar_resnet_keys():
    keys = list(resnet20().state_dict())
    assert keys[:2] == ["conv1.weight", "bn1.weight"]
    assert keys[-2:] == ["fc.weight", "fc.bias"]
    for key in ["layer1.0.conv1.weight", "layer1.2.bn2.running_var", "layer2.0.conv1.weight",
                "layer3.2.conv2.weight", "layer3.2.bn2.num_batches_tracked"]:
        assert key in keys
    assert not any("downsample" in k or "layer4" in k for k in keys)  # option A: no parameters
    assert resnet20().layer2[0].conv1.weight.shape == (32, 16, 3, 3)


@pytest.mark.parametrize("plain", [False, True])
def test_cifar_resnet_matches_torch_option_a(plain):
    """Training mode (batch statistics): in eval mode with random running statistics a plain
    net's output hardly depends on its input, and a stray shortcut could hide below the
    tolerance; in training mode the outputs vary across the batch and any difference shows."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tmodel = torch_cifar_resnet(20, num_classes=10, in_channels=1, plain=plain).train()
    randomise_batch_norm(tmodel)
    model = resnet20(in_channels=1, plain=plain).train()
    load_from_torch(model, tmodel)
    x = np.random.default_rng(1).standard_normal((4, 1, 28, 28)).astype(np.float32)
    expected = tmodel(torch.from_numpy(x)).detach().numpy()
    got = model(mc.Tensor(x)).numpy()
    spread = expected.std(axis=0).mean()
    assert spread > 1e-2   # the outputs do depend on the input
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3 * spread)
    np.testing.assert_allclose(model.layer3[2].bn2.running_mean.data,
                               tmodel.layer3[2].bn2.running_mean.numpy(), rtol=1e-3, atol=1e-5)


def test_zero_pad_shortcut(rng):
    x = tensor(rng, 2, 16, 7, 8)
    x.requires_grad = True
    y = ZeroPadShortcut(16, 32, 2)(x)
    assert y.shape == (2, 32, 4, 4)
    np.testing.assert_array_equal(y.numpy()[:, :16], x.numpy()[:, :, ::2, ::2])
    assert np.all(y.numpy()[:, 16:] == 0)
    y.sum().backward()
    expected = np.zeros(x.shape, np.float32)
    expected[:, :, ::2, ::2] = 1
    np.testing.assert_array_equal(x.grad, expected)
    with pytest.raises(ValueError):
        ZeroPadShortcut(32, 16, 2)


def test_every_block_of_a_plain_cifar_resnet_has_no_shortcut(rng):
    """As for the ImageNet nets; the residual block must then give exactly relu(shortcut(x))."""
    for plain in (True, False):
        model = resnet20(plain=plain).eval()
        x = tensor(rng, 2, 16, 32, 32)
        with mc.no_grad():
            for block in model.blocks():
                zero_last_bn(block)
                out = block(x).numpy()
                if plain:
                    assert block.downsample is None and np.all(out == 0)
                else:
                    identity = x if block.downsample is None else block.downsample(x)
                    np.testing.assert_array_equal(out, np.maximum(identity.numpy(), 0))
                x = mc.Tensor(rng.standard_normal(out.shape).astype(np.float32))


def test_plain_cifar_net_output_ignores_input_behind_any_zeroed_block(rng):
    """Whole-net check, block by block: zero the residual branch of block k only. Nothing then
    reaches the output from the input in a plain net (a constant output), while a residual net
    still passes x through block k's shortcut. A shortcut left in ANY block of the plain twin
    makes its output depend on the input for that k."""
    x1, x2 = tensor(rng, 2, 3, 16, 16), tensor(rng, 2, 3, 16, 16)
    for plain in (True, False):
        model = resnet20(plain=plain).eval()
        saved = {k: v.copy() for k, v in model.state_dict().items()}
        for k in range(len(model.blocks())):
            model.load_state_dict(saved)
            zero_last_bn(model.blocks()[k])
            with mc.no_grad():
                change = np.abs(model(x1).numpy() - model(x2).numpy()).max()
            if plain:
                assert change == 0, f"plain net: the input reaches the output through block {k}"
            else:
                assert change > 1e-4, k


def test_cifar_resnet_options():
    no_bn = resnet20(norm=False)
    assert count(no_bn) == 269_034
    assert not any(isinstance(m, nn.BatchNorm2d) for m in no_bn.modules())
    assert all(m.bias is not None for m in no_bn.modules() if isinstance(m, nn.Conv2d))
    assert np.all(no_bn.conv1.bias.data == 0)
    tanh = resnet20(activation="tanh", init="xavier")
    assert isinstance(tanh.layer1[0].act, nn.Tanh)
    w = tanh.layer3[1].conv1.weight.data   # Glorot normal with tanh's gain 5/3
    assert abs(w.std() / (5 / 3 * np.sqrt(2.0 / (2 * 64 * 9))) - 1) < 0.05
    fan_in = resnet20(init="kaiming_fan_in").layer2[0].conv1.weight.data  # (32, 16, 3, 3)
    assert abs(fan_in.std() / np.sqrt(2.0 / (16 * 9)) - 1) < 0.05
    fan_out = resnet20().layer2[0].conv1.weight.data
    assert abs(fan_out.std() / np.sqrt(2.0 / (32 * 9)) - 1) < 0.05
    for bad in (dict(depth=21), dict(depth=2), dict(activation="gelu"), dict(init="orthogonal")):
        with pytest.raises(ValueError):
            cifar_resnet(**bad)
    assert isinstance(resnet20().blocks()[0], CifarBasicBlock)
    assert isinstance(resnet18().blocks()[0], BasicBlock)


@pytest.mark.parametrize("plain", [False, True])
@pytest.mark.parametrize("norm", [True, False])
def test_cifar_resnet20_forward_backward_28x28(plain, norm, rng):
    model = resnet20(in_channels=1, plain=plain, norm=norm)
    out = model(tensor(rng, 4, 1, 28, 28))
    assert out.shape == (4, 10)
    mc.nn.functional.cross_entropy(out, mc.Tensor(np.array([0, 1, 2, 9]))).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.dtype == np.float32, name
        assert np.all(np.isfinite(p.grad)), name
        assert np.abs(p.grad).max() > 0, name
    assert model(tensor(rng, 2, 1, 32, 32)).shape == (2, 10)
    assert resnet110(num_classes=100)(tensor(rng, 1, 3, 32, 32)).shape == (1, 100)
