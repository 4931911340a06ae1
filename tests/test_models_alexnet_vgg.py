"""AlexNet and VGG: exact parameter counts, torchvision's state_dict keys and numerics, output
shapes, gradients through the small configurations, and VGG's stage-wise growth (vgg_grow).

The standard nets hold 61-144 million parameters. Drawing that many random numbers takes
seconds per net on this CPU, so the structural tests build them under ``fast_init`` (the random
fills of ``minicnn.nn.init`` skipped: the parameters hold whatever ``np.empty`` gave, and only
their shapes, or values the test writes itself, are read); the initialisation itself is tested
on smaller nets that run the same code.
"""
import numpy as np
import pytest

import minicnn as mc
import minicnn.nn as nn
from minicnn.nn import init
from minicnn.models.alexnet import (PAPER_CFG, AlexNet, _paper_init, alexnet, alexnet_paper,
                                    alexnet_small)
from minicnn.models.vgg import (CFGS, VGG, make_layers, vgg11, vgg13, vgg16, vgg19, vgg_grow,
                                vgg_small)
from torch_twins import torch_alexnet, torch_vgg, VGG_CFG_NAMES  # noqa: E402  (tests/torch_twins.py)

VGG_COUNTS = {
    (vgg11, False): 132_863_336, (vgg13, False): 133_047_848,
    (vgg16, False): 138_357_544, (vgg19, False): 143_667_240,
    (vgg11, True): 132_868_840, (vgg13, True): 133_053_736,
    (vgg16, True): 138_365_992, (vgg19, True): 143_678_248,
}
VGG_FACTORIES = {11: vgg11, 13: vgg13, 16: vgg16, 19: vgg19}


@pytest.fixture
def fast_init(monkeypatch):
    """Random fills do nothing (``constant_`` still works), so a 138M-parameter net builds in a
    fraction of a second: its untouched memory is never even paged in."""
    def no_fill(tensor, *args, **kwargs):
        return tensor
    monkeypatch.setattr(init, "uniform_", no_fill)
    monkeypatch.setattr(init, "normal_", no_fill)


def n_params(model):
    return sum(int(p.data.size) for p in model.parameters())


def shapes(state_dict):
    """``[(key, shape)]`` in order, for minicnn (ndarray) and torch (Tensor) state dicts."""
    return [(key, tuple(value.shape)) for key, value in state_dict.items()]


def randn(*shape, seed=0):
    return mc.Tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


# ---- the PyTorch references, built with torch.nn in torchvision's module structure ----------

def load_from_torch(model, torch_model):
    model.load_state_dict({k: v.detach().numpy() for k, v in torch_model.state_dict().items()})


def check_gradients(model, x, num_classes):
    """Forward + backward in training mode: float32, finite, and a nonzero gradient reaching
    every parameter."""
    model.train()
    out = model(x)
    assert out.shape == (x.shape[0], num_classes)
    labels = mc.Tensor(np.arange(x.shape[0]) % num_classes)
    mc.nn.functional.cross_entropy(out, labels).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient reached {name}"
        assert p.grad.dtype == np.float32, f"{name}: gradient dtype {p.grad.dtype}"
        assert np.all(np.isfinite(p.grad)), f"{name}: non-finite gradient"
        assert np.any(p.grad != 0), f"{name}: gradient is all zero"


# ---- AlexNet ---------------------------------------------------------------------------------

def test_alexnet_parameter_counts(fast_init):
    assert n_params(alexnet()) == 61_100_840
    assert n_params(alexnet_paper()) == 60_965_224
    assert n_params(alexnet(num_classes=10)) == 61_100_840 - 4096 * 990 - 990
    assert n_params(alexnet_small()) == 1_038_474


def test_alexnet_keys_are_torchvisions(fast_init):
    torch = pytest.importorskip("torch")
    with torch.device("meta"):
        reference = torch_alexnet(torch)
    sd = alexnet().state_dict()
    assert shapes(sd) == shapes(reference.state_dict())
    assert list(sd) == ["features.0.weight", "features.0.bias", "features.3.weight",
                        "features.3.bias", "features.6.weight", "features.6.bias",
                        "features.8.weight", "features.8.bias", "features.10.weight",
                        "features.10.bias", "classifier.1.weight", "classifier.1.bias",
                        "classifier.4.weight", "classifier.4.bias", "classifier.6.weight",
                        "classifier.6.bias"]


def test_alexnet_paper_layout_keys_and_towers(fast_init):
    torch = pytest.importorskip("torch")
    with torch.device("meta"):
        reference = torch_alexnet(torch, paper=True)
    model = alexnet_paper()
    assert shapes(model.state_dict()) == shapes(reference.state_dict())
    convs = [m for m in model.features.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 256, 384, 384, 256]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]
    lrns = [i for i, m in enumerate(model.features) if isinstance(m, nn.LocalResponseNorm)]
    assert lrns == [2, 6]   # after conv1's and conv2's ReLU, before their pools
    assert len([m for m in model.modules() if isinstance(m, nn.Dropout)]) == 2


def test_alexnet_paper_lrn_is_the_papers_formula():
    """b = a / (k + alpha * sum_{n=5 neighbours} a^2)^beta with the paper's alpha = 1e-4 (NOT
    divided by n)."""
    lrn = alexnet_small(lrn=True).features[2]
    assert isinstance(lrn, nn.LocalResponseNorm)
    a = np.random.default_rng(1).uniform(0, 30, size=(2, 8, 3, 3)).astype(np.float64)
    padded = np.pad(a ** 2, ((0, 0), (2, 2), (0, 0), (0, 0)))
    window = sum(padded[:, i:i + 8] for i in range(5))
    expected = a / (2.0 + 1e-4 * window) ** 0.75
    got = lrn(mc.Tensor(a)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert not np.allclose(got, a / (2.0 + 1e-4 / 5 * window) ** 0.75, rtol=1e-4)


def test_alexnet_paper_initialisation(fast_init):
    """Biases 1 in conv2, conv4, conv5, fc6, fc7 and 0 in conv1, conv3, fc8 (checked on the full
    net, whose random fills are zero here)."""
    model = alexnet_paper()
    biases = {k: float(np.unique(v)[0]) for k, v in model.state_dict().items()
              if k.endswith("bias") and len(np.unique(v)) == 1}
    assert biases == {"features.0.bias": 0.0, "features.4.bias": 1.0, "features.8.bias": 0.0,
                      "features.10.bias": 1.0, "features.12.bias": 1.0,
                      "classifier.0.bias": 1.0, "classifier.3.bias": 1.0,
                      "classifier.6.bias": 0.0}


def test_alexnet_paper_initialisation_draws_n_0_001():
    mc.manual_seed(0)
    model = AlexNet(PAPER_CFG, num_classes=10, hidden=64, pool_size=(1, 1),
                    dropout_first=False)
    _paper_init(model)
    for name, p in model.named_parameters():
        if name.endswith("weight"):
            assert abs(float(p.data.std()) - 0.01) < 0.0005, name
            assert abs(float(p.data.mean())) < 0.001, name


def test_alexnet_matches_pytorch_numerically_at_224(fast_init):
    torch = pytest.importorskip("torch")
    for paper, size in ((False, 224), (True, 227)):
        torch.manual_seed(0)
        reference = torch_alexnet(torch, paper=paper).eval()
        model = (alexnet_paper() if paper else alexnet()).eval()
        load_from_torch(model, reference)
        x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
        with torch.no_grad():
            expected = reference(torch.from_numpy(x)).numpy()
        with mc.no_grad():
            got = model(mc.Tensor(x)).numpy()
        assert got.shape == (1, 1000)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size", [224, 227])
def test_alexnet_paper_feature_maps_are_6x6(fast_init, size):
    model = alexnet_paper(num_classes=7)
    for m in model.features.modules():   # defined values instead of np.empty's (no overflow)
        if isinstance(m, nn.Conv2d):
            m.weight.data[...] = 1e-3
    with mc.no_grad():
        assert model.features(randn(1, 3, size, size)).shape == (1, 256, 6, 6)


@pytest.mark.parametrize("in_channels,size", [(1, 28), (3, 32)])
def test_alexnet_small_shapes_and_gradients(in_channels, size):
    mc.manual_seed(0)
    model = alexnet_small(num_classes=10, in_channels=in_channels)
    with mc.no_grad():
        assert model.features(randn(2, in_channels, size, size)).shape == (2, 64, 4, 4)
    check_gradients(model, randn(4, in_channels, size, size), 10)


def test_alexnet_small_with_lrn_gradients():
    mc.manual_seed(0)
    model = alexnet_small(lrn=True)
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in model.modules()) == 2
    check_gradients(model, randn(2, 1, 28, 28), 10)


# ---- VGG -------------------------------------------------------------------------------------

@pytest.mark.parametrize("factory,batch_norm", list(VGG_COUNTS),
                         ids=[f"{f.__name__}{'_bn' if bn else ''}" for f, bn in VGG_COUNTS])
def test_vgg_parameter_counts_and_torchvision_keys(fast_init, factory, batch_norm):
    model = factory(batch_norm=batch_norm)
    assert n_params(model) == VGG_COUNTS[factory, batch_norm]
    # keys as torchvision's published checkpoints carry them: the last conv (and its BN)
    sd = model.state_dict()
    last_conv = {(vgg11, False): 18, (vgg13, False): 22, (vgg16, False): 28, (vgg19, False): 34,
                 (vgg11, True): 25, (vgg13, True): 31, (vgg16, True): 40, (vgg19, True): 49}
    i = last_conv[factory, batch_norm]
    assert sd[f"features.{i}.weight"].shape == (512, 512, 3, 3)
    if batch_norm:
        assert f"features.{i + 1}.running_var" in sd and "features.1.num_batches_tracked" in sd
    assert f"features.{i + 1}.weight" in sd if batch_norm else f"features.{i + 1}.weight" not in sd
    assert sd["classifier.0.weight"].shape == (4096, 25088)
    assert sd["classifier.6.bias"].shape == (1000,)
    n_convs = int(factory.__name__[3:]) - 3
    assert len(sd) == n_convs * (7 if batch_norm else 2) + 6
    torch = pytest.importorskip("torch")
    depth = int(factory.__name__[3:])
    with torch.device("meta"):
        reference = torch_vgg(torch, depth, batch_norm)
    assert shapes(model.state_dict()) == shapes(reference.state_dict())


def test_vgg_num_classes_in_channels_dropout(fast_init):
    model = vgg11(num_classes=10, in_channels=1, dropout=0.25)
    assert model.features[0].weight.shape == (64, 1, 3, 3)
    assert model.classifier[6].weight.shape == (10, 4096)
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.25, 0.25]


def test_vgg_matches_pytorch_numerically(fast_init):
    """vgg11_bn with PyTorch's weights gives PyTorch's output (small input: adaptive pooling
    spreads the 1x1 map to 7x7)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    reference = torch_vgg(torch, 11, batch_norm=True).eval()
    with torch.no_grad():   # nontrivial running statistics
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    model = vgg11(batch_norm=True).eval()
    load_from_torch(model, reference)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    with mc.no_grad():
        got = model(mc.Tensor(x)).numpy()
    assert got.shape == (2, 1000)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("linear_init", ["normal", "kaiming"])
def test_vgg_torchvision_initialisation(linear_init):
    """kaiming_normal_(fan_out, relu) convs with zero bias, BN 1/0, linear N(0, 0.01^2) with
    zero bias -- on a narrow VGG-16 that runs the same reset_parameters as the standard nets;
    ``linear_init='kaiming'`` (vgg_small's) gives the linear layers std sqrt(2 / fan_in)."""
    mc.manual_seed(0)
    features = make_layers(CFGS["D"], batch_norm=True, in_channels=1, width=32)
    model = VGG(features, 10, pool_size=(1, 1), hidden=512, linear_init=linear_init)
    if linear_init == "kaiming":
        assert vgg_small(11).linear_init == "kaiming"
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.out_channels * 9
            if m.weight.data.size > 10_000:
                assert abs(float(m.weight.data.std()) / np.sqrt(2 / fan_out) - 1) < 0.03
            assert np.all(m.bias.data == 0)
        elif isinstance(m, nn.BatchNorm2d):
            assert np.all(m.weight.data == 1) and np.all(m.bias.data == 0)
        elif isinstance(m, nn.Linear):
            std = 0.01 if linear_init == "normal" else np.sqrt(2 / m.in_features)
            assert abs(float(m.weight.data.std()) / std - 1) < 0.06
            assert np.all(m.bias.data == 0)


def test_vgg_standard_nets_use_torchvisions_linear_init(fast_init):
    assert vgg11().linear_init == "normal" and vgg19(batch_norm=True).linear_init == "normal"
    with pytest.raises(ValueError, match="linear_init"):
        VGG(make_layers([8, "M"]), linear_init="xavier")


@pytest.mark.parametrize("depth", [11, 13, 16, 19])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_vgg_small_shapes_and_gradients(depth, batch_norm):
    mc.manual_seed(depth)
    model = vgg_small(depth, batch_norm=batch_norm)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) + 3 == depth
    assert [c.out_channels for c in convs] == [v // 4 for v in CFGS[VGG_CFG_NAMES[depth]]
                                               if v != "M"]
    with mc.no_grad():
        model.eval()
        assert model.features(randn(2, 1, 28, 28)).shape == (2, 128, 1, 1)
    check_gradients(model, randn(4, 1, 28, 28), 10)


def test_vgg_small_32x32_rgb():
    model = vgg_small(11, num_classes=10, in_channels=3, width=8).eval()
    with mc.no_grad():
        assert model.features(randn(2, 3, 32, 32)).shape == (2, 64, 1, 1)
        assert model(randn(2, 3, 32, 32)).shape == (2, 10)


def test_vgg_small_parameter_counts():
    counts = [n_params(vgg_small(d)) for d in (11, 13, 16, 19)]
    assert counts == [678_218, 689_786, 1_021_882, 1_353_978]


def test_vgg_small_rejects_bad_depth():
    with pytest.raises(ValueError, match="depth must be one of"):
        vgg_small(12)


# ---- stage-wise training: vgg_grow -----------------------------------------------------------

def _snapshot(model):
    return {k: np.array(v, copy=True) for k, v in model.state_dict().items()}


def _check_grow(shallow, deeper, report):
    """Copied tensors equal the source; everything else in the deeper net is untouched."""
    rng = np.random.default_rng(5)
    for p in shallow.parameters():   # "trained" weights, unlike any fresh initialisation
        p.data[...] = rng.standard_normal(p.data.shape)
    before = _snapshot(deeper)
    report = report(shallow, deeper)
    src, after = shallow.state_dict(), deeper.state_dict()
    copied = {dst: s for _, s, dst in report.copied}
    for key, value in after.items():
        if key in copied:
            np.testing.assert_array_equal(value, src[copied[key]])
            assert not np.array_equal(value, before[key]), key
        else:
            np.testing.assert_array_equal(value, before[key])
    params = {name for name, _ in deeper.named_parameters()}
    assert set(report.random) == params - set(copied)
    return report


@pytest.mark.parametrize("depth", [13, 16, 19])
def test_vgg_grow_small_copies_first_four_convs_and_three_fcs(depth):
    mc.manual_seed(1)
    shallow, deeper = vgg_small(11), vgg_small(depth)
    report = _check_grow(shallow, deeper, vgg_grow)
    labels = sorted({label for label, _, _ in report.copied})
    assert labels == ["conv1_1", "conv2_1", "conv3_1", "conv3_2", "fc1", "fc2", "fc3"]
    assert len(report.copied) == 14   # weight and bias of 7 layers
    # the source's conv2_1 (features.3) lands on the deeper net's conv2_1, wherever that is
    conv2_1 = {11: "features.3", 13: "features.5", 16: "features.5", 19: "features.5"}
    assert ("conv2_1", "features.3.weight", conv2_1[depth] + ".weight") in report.copied
    n_convs = depth - 3
    assert len(report.random) == 2 * (n_convs - 4)


def test_vgg_grow_batch_norm_and_all_layers():
    mc.manual_seed(2)
    shallow, deeper = vgg_small(11, batch_norm=True), vgg_small(19, batch_norm=True)
    for m in shallow.modules():   # trained-looking statistics, so a copy is visible
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.data[...] = np.random.default_rng(0).uniform(-1, 1, m.num_features)
            m.running_var.data[...] = 2.0
            m.weight.data[...] = 0.5
            m.num_batches_tracked.data[...] = 7
    report = _check_grow(shallow, deeper, lambda s, d: vgg_grow(s, d, conv_layers=None))
    assert {label for label, _, _ in report.copied} >= {"conv5_2", "conv4_1"}
    assert ("conv5_2", "features.26.running_var", "features.44.running_var") in report.copied
    assert len(report.copied) == 8 * 7 + 3 * 2   # conv w, b + bn w, b, mean, var, count


def test_vgg_grow_standard_nets(fast_init):
    """vgg11 -> vgg16 at full size: each parameter of the shallow net gets its own constant, the
    deeper net -1, so what moved where is visible without comparing random tensors."""
    shallow, deeper = vgg11(num_classes=10), vgg16(num_classes=10)
    for i, p in enumerate(shallow.parameters()):
        p.data[...] = i + 1
    for p in deeper.parameters():
        p.data[...] = -1
    report = vgg_grow(shallow, deeper)
    moved = {dst: src for _, src, dst in report.copied}
    assert moved == {
        "features.0.weight": "features.0.weight", "features.0.bias": "features.0.bias",
        "features.5.weight": "features.3.weight", "features.5.bias": "features.3.bias",
        "features.10.weight": "features.6.weight", "features.10.bias": "features.6.bias",
        "features.12.weight": "features.8.weight", "features.12.bias": "features.8.bias",
        **{f"classifier.{i}.{s}": f"classifier.{i}.{s}" for i in (0, 3, 6)
           for s in ("weight", "bias")}}
    src = shallow.state_dict()
    for key, value in deeper.state_dict().items():
        expected = src[moved[key]].flat[0] if key in moved else -1
        assert np.all(value == expected), key


def test_vgg_grow_errors_leave_the_target_unchanged():
    mc.manual_seed(3)
    deeper = vgg_small(16)
    before = _snapshot(deeper)
    with pytest.raises(ValueError, match="conv1_1: features.0.weight has shape"):
        vgg_grow(vgg_small(11, width=8), deeper)      # other widths
    with pytest.raises(ValueError, match="conv_layers must be between 0 and 8"):
        vgg_grow(vgg_small(11), deeper, conv_layers=9)
    with pytest.raises(TypeError, match="must be a VGG model"):
        vgg_grow(alexnet_small(), deeper)
    after = deeper.state_dict()
    assert all(np.array_equal(after[k], before[k]) for k in before)


def test_vgg_grow_report_lists_layers():
    report = vgg_grow(vgg_small(11), vgg_small(13))
    text = repr(report)
    assert "conv3_2   features.8.weight -> features.12.weight" in text
    assert "left as initialised (12 parameters)" in text
    assert isinstance(report.random, list) and "features.2.weight" in report.random


def test_vgg_class_is_exported_shape():
    assert isinstance(vgg_small(11), VGG) and isinstance(alexnet_small(), AlexNet)
