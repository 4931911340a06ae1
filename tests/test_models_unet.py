"""U-Net: the paper's parameter count and 572 -> 388 arithmetic, the padded and sum-skip
variants, outputs equal to a torch.nn U-Net with the same weights, and forward/backward of the
small configuration on synthetic shapes."""
import math

import numpy as np
import pytest

import minicnn as mc
import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn.models.unet import UNet, unet, unet_output_size


def count(model):
    return sum(p.data.size for p in model.parameters())


def torch_unet(in_channels, num_classes, base, depth, padding, skip):
    """The same U-Net written with torch.nn (cropping as torchvision's center_crop rounds)."""
    torch = pytest.importorskip("torch")
    tnn = torch.nn

    class TDouble(tnn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, cout, 3, padding=int(padding))
            self.conv2 = tnn.Conv2d(cout, cout, 3, padding=int(padding))

        def forward(self, x):
            return torch.relu(self.conv2(torch.relu(self.conv1(x))))

    def crop(x, h, w):
        top, left = int(round((x.shape[-2] - h) / 2.0)), int(round((x.shape[-1] - w) / 2.0))
        return x[..., top:top + h, left:left + w]

    class TUNet(tnn.Module):
        def __init__(self):
            super().__init__()
            widths = [base * 2 ** i for i in range(depth + 1)]
            self.encoder = tnn.ModuleList(
                [TDouble(in_channels if i == 0 else widths[i - 1], widths[i])
                 for i in range(depth + 1)])
            levels = list(reversed(range(depth)))
            self.upconvs = tnn.ModuleList(
                [tnn.ConvTranspose2d(widths[i + 1], widths[i], 2, 2) for i in levels])
            join = 2 if skip == "concat" else 1
            self.decoder = tnn.ModuleList([TDouble(join * widths[i], widths[i]) for i in levels])
            self.head = tnn.Conv2d(widths[0], num_classes, 1)

        def forward(self, x):
            skips = []
            for i, block in enumerate(self.encoder):
                x = block(x if i == 0 else torch.max_pool2d(x, 2))
                skips.append(x)
            skips.pop()
            for up, block in zip(self.upconvs, self.decoder):
                s = skips.pop()
                x = up(x, output_size=s.shape[-2:]) if padding else up(x)
                s = crop(s, *x.shape[-2:])
                x = block(torch.cat([s, x], 1) if skip == "concat" else s + x)
            return self.head(x)

    return TUNet()


def test_original_unet_parameter_count_and_keys():
    model = unet()
    assert count(model) == 31_030_658
    keys = list(model.state_dict())
    assert keys[:2] == ["encoder.0.conv1.weight", "encoder.0.conv1.bias"]
    assert keys[-2:] == ["head.weight", "head.bias"]
    for key in ["encoder.4.conv2.weight", "upconvs.0.weight", "decoder.3.conv1.bias"]:
        assert key in keys
    assert model.encoder[4].conv2.weight.shape == (1024, 1024, 3, 3)   # the bottom
    assert model.upconvs[0].weight.shape == (1024, 512, 2, 2)          # 2x2 up-conv
    assert model.decoder[0].conv1.weight.shape == (512, 1024, 3, 3)    # after the concat
    assert model.head.weight.shape == (2, 64, 1, 1)
    assert len(model.state_dict()) == 46


def test_sum_skip_variant_halves_the_first_decoder_convs():
    model = unet(skip="sum")
    assert count(model) == 27_897_218
    assert 31_030_658 - 27_897_218 == sum(9 * c * c for c in (512, 256, 128, 64))
    assert model.decoder[0].conv1.weight.shape == (512, 512, 3, 3)
    assert list(model.state_dict()) == list(unet().state_dict())
    assert count(unet(1, 4, base_channels=16, depth=3, padding=True)) == 481_796
    assert count(unet(1, 4, base_channels=16, depth=3, padding=True, skip="sum")) == 433_412


def test_output_size_arithmetic():
    assert unet_output_size(572) == 388
    assert unet_output_size(572, padding=True) == 572
    assert unet_output_size(44, depth=2) == 4
    assert unet().output_size(572) == 388
    for bad in (570, 100, 60):   # an odd map at a pool, or nothing left
        with pytest.raises(ValueError, match="input size such as"):
            unet_output_size(bad)
    with pytest.raises(ValueError, match="556 or 572"):
        unet_output_size(570)


def test_original_layout_572_to_388_forward(rng):
    """The paper's tile through the paper's layout, thinned to 1 base channel to run in a
    blink: the widths do not change the spatial arithmetic."""
    model = unet(base_channels=1)
    with mc.no_grad():
        out = model(mc.Tensor(rng.random((1, 1, 572, 572), dtype=np.float32)))
    assert out.shape == (1, 2, 388, 388)
    with pytest.raises(ValueError, match="odd size"):
        model(mc.Tensor(np.zeros((1, 1, 570, 572), np.float32)))


@pytest.mark.parametrize("padding, size", [(False, 60), (True, 29)])
@pytest.mark.parametrize("skip", ["concat", "sum"])
def test_unet_matches_torch_with_its_weights(padding, size, skip):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tmodel = torch_unet(2, 3, 4, 2, padding, skip)
    model = unet(2, 3, base_channels=4, depth=2, padding=padding, skip=skip)
    sd = tmodel.state_dict()
    assert list(model.state_dict()) == list(sd)
    model.load_state_dict({k: v.numpy().copy() for k, v in sd.items()})
    x = np.random.default_rng(0).standard_normal((2, 2, size, size + 4)).astype(np.float32)
    with torch.no_grad():
        expected = tmodel(torch.from_numpy(x)).numpy()
    got = model(mc.Tensor(x)).numpy()
    assert got.shape == expected.shape
    if not padding:
        assert got.shape[-2:] == (unet_output_size(size, 2), unet_output_size(size + 4, 2))
    else:
        assert got.shape[-2:] == (size, size + 4)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_initialisation_is_the_papers():
    mc.manual_seed(0)
    model = unet(base_channels=16, depth=2)
    w = model.encoder[2].conv1.weight.data        # (64, 32, 3, 3)
    assert abs(w.std() / math.sqrt(2 / (32 * 9)) - 1) < 0.05
    up = model.upconvs[0].weight.data             # (64, 32, 2, 2): fan_in is C_in = 64
    assert abs(up.std() / math.sqrt(2 / 64) - 1) < 0.05
    assert all(np.all(m.bias.data == 0) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="skip"):
        unet(skip="add")
    with pytest.raises(ValueError, match="depth"):
        unet(depth=0)
    with pytest.raises(ValueError, match="too small"):
        unet_output_size(4, depth=3, padding=True)


@pytest.mark.parametrize("skip", ["concat", "sum"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_small_configuration_forward_backward_on_shapes(skip, batch_norm):
    data = mc.data.SyntheticShapes(4, size=32, seed=0)
    images, masks = data.get_batch(np.arange(4))
    model = unet(1, len(data.classes), base_channels=8, depth=3, padding=True, skip=skip,
                 batch_norm=batch_norm)
    assert isinstance(model, UNet)
    out = model(mc.Tensor(images))
    assert out.shape == (4, len(data.classes), 32, 32)
    loss = F.cross_entropy(out, mc.Tensor(masks))
    assert np.isfinite(loss.item())
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.dtype == np.float32, name
        assert np.all(np.isfinite(p.grad)), name
        assert np.abs(p.grad).max() > 0, name
