"""Weights in and out (minicnn/weights.py): torchvision-keyed PyTorch state dicts load into the
model zoo and give torch's outputs; .npz / .safetensors / .pth round trips are exact; keys or
shapes that do not fit are listed in the error.

The torch side is built here, module by module, with torchvision's attribute names (torchvision
itself is not needed): if minicnn's keys, key order, layer semantics or a weight layout differed
from torchvision's, the load or the output comparison would fail.
"""
import os
from collections import OrderedDict

import numpy as np
import pytest

import minicnn as mc
from minicnn import weights
from minicnn.checkpoint import CheckpointError
from minicnn.nn import StateDictError


# ---- torch twins with torchvision's names --------------------------------------------------------

def _torch_resnet18(tnn, num_classes):
    class BasicBlock(tnn.Module):
        def __init__(self, inplanes, planes, stride=1):
            super().__init__()
            self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or inplanes != planes:
                self.downsample = tnn.Sequential(
                    tnn.Conv2d(inplanes, planes, 1, stride, bias=False), tnn.BatchNorm2d(planes))

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            identity = x if self.downsample is None else self.downsample(x)
            return self.relu(out + identity)

    class ResNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = tnn.BatchNorm2d(64)
            self.relu = tnn.ReLU()
            self.maxpool = tnn.MaxPool2d(3, 2, 1)
            widths, inplanes = (64, 128, 256, 512), 64
            for i, planes in enumerate(widths):
                stride = 1 if i == 0 else 2
                setattr(self, f"layer{i + 1}", tnn.Sequential(
                    BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes)))
                inplanes = planes
            self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
            self.fc = tnn.Linear(512, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.avgpool(x).flatten(1))

    return ResNet()


def _torch_vgg16(tnn, num_classes):
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
           512, 512, 512, "M"]
    layers, c = [], 3
    for v in cfg:
        if v == "M":
            layers.append(tnn.MaxPool2d(2, 2))
        else:
            layers += [tnn.Conv2d(c, v, 3, padding=1), tnn.ReLU(inplace=True)]
            c = v

    class VGG(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(*layers)
            self.avgpool = tnn.AdaptiveAvgPool2d((7, 7))
            self.classifier = tnn.Sequential(
                tnn.Linear(512 * 7 * 7, 4096), tnn.ReLU(True), tnn.Dropout(),
                tnn.Linear(4096, 4096), tnn.ReLU(True), tnn.Dropout(),
                tnn.Linear(4096, num_classes))

        def forward(self, x):
            return self.classifier(self.avgpool(self.features(x)).flatten(1))

    return VGG()


def _torch_alexnet(tnn, num_classes):
    class AlexNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(
                tnn.Conv2d(3, 64, 11, 4, 2), tnn.ReLU(True), tnn.MaxPool2d(3, 2),
                tnn.Conv2d(64, 192, 5, padding=2), tnn.ReLU(True), tnn.MaxPool2d(3, 2),
                tnn.Conv2d(192, 384, 3, padding=1), tnn.ReLU(True),
                tnn.Conv2d(384, 256, 3, padding=1), tnn.ReLU(True),
                tnn.Conv2d(256, 256, 3, padding=1), tnn.ReLU(True), tnn.MaxPool2d(3, 2))
            self.avgpool = tnn.AdaptiveAvgPool2d((6, 6))
            self.classifier = tnn.Sequential(
                tnn.Dropout(), tnn.Linear(256 * 6 * 6, 4096), tnn.ReLU(True),
                tnn.Dropout(), tnn.Linear(4096, 4096), tnn.ReLU(True),
                tnn.Linear(4096, num_classes))

        def forward(self, x):
            return self.classifier(self.avgpool(self.features(x)).flatten(1))

    return AlexNet()


def _torch_densenet121(tnn, num_classes):
    import torch

    class DenseLayer(tnn.Module):
        def __init__(self, c_in, growth=32, bn_size=4):
            super().__init__()
            self.norm1 = tnn.BatchNorm2d(c_in)
            self.relu1 = tnn.ReLU()
            self.conv1 = tnn.Conv2d(c_in, bn_size * growth, 1, bias=False)
            self.norm2 = tnn.BatchNorm2d(bn_size * growth)
            self.relu2 = tnn.ReLU()
            self.conv2 = tnn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

        def forward(self, features):
            x = torch.cat(features, 1)
            x = self.conv1(self.relu1(self.norm1(x)))
            return self.conv2(self.relu2(self.norm2(x)))

    class DenseBlock(tnn.ModuleDict):
        def __init__(self, n, c_in):
            super().__init__()
            for i in range(n):
                self.add_module(f"denselayer{i + 1}", DenseLayer(c_in + 32 * i))

        def forward(self, x):
            features = [x]
            for layer in self.values():
                features.append(layer(features))
            return torch.cat(features, 1)

    class DenseNet(tnn.Module):
        def __init__(self):
            super().__init__()
            modules = OrderedDict([
                ("conv0", tnn.Conv2d(3, 64, 7, 2, 3, bias=False)),
                ("norm0", tnn.BatchNorm2d(64)), ("relu0", tnn.ReLU()),
                ("pool0", tnn.MaxPool2d(3, 2, 1))])
            c = 64
            for i, n in enumerate((6, 12, 24, 16)):
                modules[f"denseblock{i + 1}"] = DenseBlock(n, c)
                c += 32 * n
                if i != 3:
                    modules[f"transition{i + 1}"] = tnn.Sequential(OrderedDict([
                        ("norm", tnn.BatchNorm2d(c)), ("relu", tnn.ReLU()),
                        ("conv", tnn.Conv2d(c, c // 2, 1, bias=False)),
                        ("pool", tnn.AvgPool2d(2, 2))]))
                    c //= 2
            modules["norm5"] = tnn.BatchNorm2d(c)
            self.features = tnn.Sequential(modules)
            self.classifier = tnn.Linear(c, num_classes)

        def forward(self, x):
            out = torch.relu(self.features(x))
            return self.classifier(torch.flatten(tnn.functional.adaptive_avg_pool2d(out, 1), 1))

    return DenseNet()


def _torch_googlenet(tnn, num_classes):
    import torch

    class BasicConv2d(tnn.Module):
        def __init__(self, c_in, c_out, **kw):
            super().__init__()
            self.conv = tnn.Conv2d(c_in, c_out, bias=False, **kw)
            self.bn = tnn.BatchNorm2d(c_out, eps=0.001)

        def forward(self, x):
            return torch.relu(self.bn(self.conv(x)))

    class Inception(tnn.Module):
        def __init__(self, c_in, ch1, ch3r, ch3, ch5r, ch5, pool_proj):
            super().__init__()
            self.branch1 = BasicConv2d(c_in, ch1, kernel_size=1)
            self.branch2 = tnn.Sequential(BasicConv2d(c_in, ch3r, kernel_size=1),
                                          BasicConv2d(ch3r, ch3, kernel_size=3, padding=1))
            # torchvision's "5x5" branch has a 3x3 kernel
            self.branch3 = tnn.Sequential(BasicConv2d(c_in, ch5r, kernel_size=1),
                                          BasicConv2d(ch5r, ch5, kernel_size=3, padding=1))
            self.branch4 = tnn.Sequential(tnn.MaxPool2d(3, 1, 1, ceil_mode=True),
                                          BasicConv2d(c_in, pool_proj, kernel_size=1))

        def forward(self, x):
            return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x),
                              self.branch4(x)], 1)

    from minicnn.models.googlenet import INCEPTION_V1_CONFIG

    class GoogLeNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
            self.maxpool1 = tnn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2 = BasicConv2d(64, 64, kernel_size=1)
            self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
            self.maxpool2 = tnn.MaxPool2d(3, 2, ceil_mode=True)
            c = 192
            for name, *w in INCEPTION_V1_CONFIG:
                setattr(self, name, Inception(c, *w))
                c = w[0] + w[2] + w[4] + w[5]
                if name == "inception3b":
                    self.maxpool3 = tnn.MaxPool2d(3, 2, ceil_mode=True)
                elif name == "inception4e":
                    self.maxpool4 = tnn.MaxPool2d(2, 2, ceil_mode=True)
            self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
            self.dropout = tnn.Dropout(0.2)
            self.fc = tnn.Linear(1024, num_classes)

        def forward(self, x):
            x = self.maxpool2(self.conv3(self.conv2(self.maxpool1(self.conv1(x)))))
            x = self.maxpool3(self.inception3b(self.inception3a(x)))
            for name in ("inception4a", "inception4b", "inception4c", "inception4d",
                         "inception4e"):
                x = getattr(self, name)(x)
            x = self.inception5b(self.inception5a(self.maxpool4(x)))
            return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))

    return GoogLeNet()


# name -> (torch builder, input size: as small as the architecture allows, to stay fast)
TWINS = {
    "resnet18": (_torch_resnet18, 64),
    "vgg16": (_torch_vgg16, 32),
    "alexnet": (_torch_alexnet, 64),
    "densenet121": (_torch_densenet121, 64),
    "googlenet": (_torch_googlenet, 64),
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
    twin = builder(torch.nn, num_classes)
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
    model.eval()
    with mc.no_grad():
        got = model(mc.Tensor(x)).numpy()
    scale = np.abs(expected).max()
    assert np.std(expected) > 1e-3 * scale    # the outputs are not degenerate
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * scale)


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

    monkeypatch.setattr("minicnn.weights._write_archive", broken)
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
