"""GoogLeNet / Inception v1 and DenseNet: exact parameter counts, torchvision's state_dict keys
(checked against PyTorch replicas of torchvision's modules, built here with torch.nn since
torchvision is not installed), the same outputs as those replicas with the same weights, output
shapes, and forward + backward of the small configurations."""
from collections import OrderedDict

import numpy as np
import pytest

import minicnn as mc
import minicnn.nn as nn
from minicnn.models.densenet import (densenet121, densenet161, densenet169, densenet201,
                                     densenet_bc_cifar, densenet_small)
from minicnn.models.googlenet import (GoogLeNetOutputs, googlenet, googlenet_loss,
                                      googlenet_paper, googlenet_small)
from torch_twins import torch_googlenet, torch_densenet  # noqa: E402  (tests/torch_twins.py)


def count(model):
    return sum(p.data.size for p in model.parameters())


def random_input(*shape, seed=0):
    return mc.Tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


# ---- PyTorch replicas of torchvision's modules (same names, same structure) -------------------

def torch_state_to_numpy(torch, model, seed=0):
    """The replica's state_dict as arrays, with random batch-norm statistics and affine values
    (so that loading them into the wrong place would change the output)."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.from_numpy(rng.normal(0, 0.1, n).astype(np.float32)))
                m.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, n).astype(np.float32)))
                m.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, n).astype(np.float32)))
                m.bias.copy_(torch.from_numpy(rng.normal(0, 0.1, n).astype(np.float32)))
    return OrderedDict((k, v.detach().numpy().copy()) for k, v in model.state_dict().items())


def assert_same_keys_and_shapes(ours, theirs):
    ours = OrderedDict((k, np.shape(v)) for k, v in ours.state_dict().items())
    theirs = OrderedDict((k, tuple(v.shape)) for k, v in theirs.state_dict().items())
    assert list(ours) == list(theirs)  # the same names in the same order
    assert ours == theirs


def assert_matches_torch(torch, ours, theirs, shape):
    state = torch_state_to_numpy(torch, theirs)
    ours.load_state_dict(state)
    ours.eval()
    theirs.eval()
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    with mc.no_grad():
        got = ours(mc.Tensor(x)).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())


def assert_trains(model, x, num_classes):
    """A forward + backward in training mode: finite float32 gradients on every parameter."""
    model.train()
    out = model(x)
    assert out.shape == (x.shape[0], num_classes)
    labels = mc.Tensor(np.arange(x.shape[0]) % num_classes)
    loss = nn.functional.cross_entropy(out, labels)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert p.grad.dtype == np.float32, name
        assert np.all(np.isfinite(p.grad)), name
        assert np.any(p.grad != 0), f"{name} got an all-zero gradient"


# ---- GoogLeNet ---------------------------------------------------------------------------------

def test_googlenet_parameter_counts():
    assert count(googlenet()) == 6_624_904
    assert count(googlenet(aux_logits=True)) == 13_004_888
    assert count(googlenet_paper()) == 6_998_552


def test_googlenet_keys_equal_torchvision():
    torch = pytest.importorskip("torch")
    assert_same_keys_and_shapes(googlenet(aux_logits=True), torch_googlenet(torch))
    keys = googlenet(aux_logits=True).state_dict()
    for key in ("conv1.conv.weight", "conv1.bn.running_var", "conv1.bn.num_batches_tracked",
                "conv3.bn.bias", "inception3a.branch1.conv.weight",
                "inception3a.branch2.0.conv.weight", "inception3a.branch3.1.bn.weight",
                "inception3a.branch4.1.conv.weight", "inception5b.branch2.1.bn.running_mean",
                "aux1.conv.conv.weight", "aux1.conv.bn.weight", "aux1.fc1.weight",
                "aux2.fc2.bias", "fc.weight", "fc.bias"):
        assert key in keys, key
    assert keys["inception3a.branch3.1.conv.weight"].shape == (32, 16, 3, 3)  # torchvision's 3x3
    assert not any(k.startswith("aux") for k in googlenet().state_dict())
    bns = [m for m in googlenet(aux_logits=True).modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 59 and all(m.eps == 0.001 for m in bns)


def test_googlenet_computes_what_torchvision_computes():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    assert_matches_torch(torch, googlenet(num_classes=10, aux_logits=True),
                         torch_googlenet(torch, num_classes=10), (2, 3, 64, 64))


def test_googlenet_outputs_standard_size_and_aux_heads():
    model = googlenet(num_classes=7, aux_logits=True)
    model.eval()
    with mc.no_grad():
        assert model(random_input(1, 3, 224, 224)).shape == (1, 7)  # logits only in eval
    model.train()
    with mc.no_grad():
        out = model(random_input(2, 3, 64, 64))
    assert isinstance(out, GoogLeNetOutputs)
    assert [o.shape for o in out] == [(2, 7)] * 3
    plain = googlenet(num_classes=7)  # no aux heads: a plain tensor even in training
    with mc.no_grad():
        assert plain(random_input(2, 3, 64, 64)).shape == (2, 7)


def test_googlenet_loss_weights_aux_heads_by_0_3():
    rng = np.random.default_rng(0)
    logits, aux2, aux1 = (mc.Tensor(rng.standard_normal((4, 5)).astype(np.float32))
                          for _ in range(3))
    target = mc.Tensor(np.array([0, 1, 2, 3]))
    ce = lambda x: nn.functional.cross_entropy(x, target).item()  # noqa: E731
    got = googlenet_loss(GoogLeNetOutputs(logits, aux2, aux1), target).item()
    assert got == pytest.approx(ce(logits) + 0.3 * (ce(aux1) + ce(aux2)), rel=1e-6)
    assert googlenet_loss(logits, target).item() == pytest.approx(ce(logits), rel=1e-6)


def test_googlenet_aux_heads_get_gradients_through_googlenet_loss():
    mc.manual_seed(0)
    model = googlenet(num_classes=10, aux_logits=True)
    model.train()
    loss = googlenet_loss(model(random_input(2, 3, 64, 64)), mc.Tensor(np.array([3, 7])))
    loss.backward()
    for name in ("aux1.fc2.weight", "aux2.conv.conv.weight", "inception4a.branch1.conv.weight",
                 "conv1.conv.weight", "fc.weight"):
        grad = model.get_submodule(name.rsplit(".", 1)[0]).weight.grad
        assert grad is not None and np.all(np.isfinite(grad)) and np.any(grad != 0), name


def test_googlenet_default_init_is_torchvision_trunc_normal():
    model = googlenet()
    w = model.inception4e.branch2[1].conv.weight.data
    assert abs(w.std() - 0.01) < 0.001
    assert np.all(model.conv1.bn.weight.data == 1) and np.all(model.conv1.bn.bias.data == 0)


def test_googlenet_paper_layout():
    model = googlenet_paper(num_classes=10, aux_logits=True)
    state = model.state_dict()
    assert not any(".bn." in k for k in state)             # no batch norm
    assert "inception4a.branch1.conv.bias" in state         # biased convs instead
    assert state["inception3a.branch3.1.conv.weight"].shape == (32, 16, 5, 5)  # a true 5x5
    assert isinstance(model.lrn1, nn.LocalResponseNorm)
    assert isinstance(model.lrn2, nn.LocalResponseNorm)
    assert model.dropout.p == 0.4
    model.train()
    with mc.no_grad():
        out = model(random_input(1, 3, 224, 224))
    assert [o.shape for o in out] == [(1, 10)] * 3


@pytest.mark.parametrize("in_channels, size", [(1, 28), (3, 32)])
def test_googlenet_small_trains(in_channels, size):
    mc.manual_seed(0)
    model = googlenet_small(num_classes=10, in_channels=in_channels)
    assert_trains(model, random_input(4, in_channels, size, size), 10)


# ---- DenseNet ----------------------------------------------------------------------------------

def test_densenet_parameter_counts():
    assert count(densenet121()) == 7_978_856
    assert count(densenet169()) == 14_149_480
    assert count(densenet201()) == 20_013_928
    assert count(densenet_bc_cifar(depth=100, growth_rate=12, num_classes=10)) == 769_162


def test_densenet161_parameter_count():
    assert count(densenet161()) == 28_681_000  # torchvision's, k=48, 96 initial features


@pytest.mark.parametrize("factory, blocks", [(densenet121, (6, 12, 24, 16)),
                                             (densenet169, (6, 12, 32, 32)),
                                             (densenet201, (6, 12, 48, 32))])
def test_densenet_keys_equal_torchvision(factory, blocks):
    torch = pytest.importorskip("torch")
    assert_same_keys_and_shapes(factory(), torch_densenet(torch, block_config=blocks))


def test_densenet_representative_keys():
    state = densenet121().state_dict()
    for key in ("features.conv0.weight", "features.norm0.running_mean",
                "features.denseblock1.denselayer1.norm1.weight",
                "features.denseblock1.denselayer1.conv1.weight",
                "features.denseblock1.denselayer6.norm2.num_batches_tracked",
                "features.denseblock4.denselayer16.conv2.weight",
                "features.transition1.norm.bias", "features.transition3.conv.weight",
                "features.norm5.running_var", "classifier.weight", "classifier.bias"):
        assert key in state, key
    # the concat skip: layer l of block 1 sees 64 + (l - 1) * 32 channels
    assert state["features.denseblock1.denselayer6.conv1.weight"].shape == (128, 64 + 5 * 32, 1, 1)
    assert state["features.transition1.conv.weight"].shape == (128, 256, 1, 1)  # compression 0.5


def test_densenet121_computes_what_torchvision_computes():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    assert_matches_torch(torch, densenet121(num_classes=10),
                         torch_densenet(torch, num_classes=10), (2, 3, 64, 64))


def test_densenet_bc_cifar_computes_what_the_replica_computes():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch_densenet(torch, growth_rate=12, block_config=(16, 16, 16),
                            num_init_features=24, num_classes=10, cifar_stem=True)
    ours = densenet_bc_cifar()
    assert_same_keys_and_shapes(ours, theirs)
    assert_matches_torch(torch, ours, theirs, (1, 3, 32, 32))


def test_densenet_standard_output_shape_and_init():
    model = densenet121(num_classes=5)
    model.eval()
    with mc.no_grad():
        assert model(random_input(1, 3, 224, 224)).shape == (1, 5)
    w = model.features.denseblock2.denselayer3.conv1.weight.data  # kaiming_normal_, fan_in
    assert abs(w.std() / np.sqrt(2.0 / w[0].size) - 1) < 0.05
    assert np.all(model.classifier.bias.data == 0)


def test_densenet_bc_cifar_depth_must_be_6n_plus_4():
    with pytest.raises(ValueError, match="6n"):
        densenet_bc_cifar(depth=50)


@pytest.mark.parametrize("in_channels, size", [(1, 28), (3, 32)])
def test_densenet_small_trains(in_channels, size):
    mc.manual_seed(0)
    model = densenet_small(num_classes=10, in_channels=in_channels)
    assert_trains(model, random_input(4, in_channels, size, size), 10)


def test_densenet_bc_cifar_small_input_shape():
    model = densenet_bc_cifar(depth=40, growth_rate=12, num_classes=10, in_channels=1)
    model.eval()
    with mc.no_grad():
        assert model(random_input(2, 1, 28, 28)).shape == (2, 10)
