"""FCN-8s/16s/32s (Long, Shelhamer, Darrell 2015): the paper's parameter count, output shapes at
any input size, outputs equal to a torch.nn twin with the same weights, the fixed bilinear
upsampling, the zero-initialised skips, gradients reaching every parameter, and skips that
change the output."""
import numpy as np
import pytest

import minicnn as mc
import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn.models.fcn import (FCN, bilinear_kernel, bilinear_upsampling_weight, fcn8s,
                                fcn_small)


def count(model):
    return sum(p.data.size for p in model.parameters())


def randomise_scores(model, seed=0):
    """Give the zero-initialised scoring layers random weights (as training would)."""
    rng = np.random.default_rng(seed)
    for name in ("score_fr", "score_pool4", "score_pool3"):
        if hasattr(model, name):
            layer = getattr(model, name)
            layer.weight.data[...] = rng.normal(0, 0.3, layer.weight.shape)
            layer.bias.data[...] = rng.normal(0, 0.3, layer.bias.shape)
    return model


def test_paper_configuration_parameter_count_and_layout():
    model = fcn8s()   # VGG-16 encoder, 21 PASCAL VOC classes
    # VGG-16's convs, fc6 (7x7x512 -> 4096) and fc7 as convs, then the FCN-8s head
    vgg16_convs = 14_714_688
    fc = (7 * 7 * 512 * 4096 + 4096) + (4096 * 4096 + 4096)
    head = (4096 * 21 + 21) + (512 * 21 + 21) + (256 * 21 + 21) + 2 * (21 * 21 * 4 * 4)
    assert count(model) == vgg16_convs + fc + head == 134_376_863     # the paper's "134M"
    assert model.features[28].weight.shape == (512, 512, 3, 3)        # torchvision's conv5_3 key
    assert model.fc6.weight.shape == (4096, 512, 7, 7)
    assert model.upscore2.weight.shape == (21, 21, 4, 4) and model.upscore2.bias is None
    # the final x8 upsampling is fixed: a buffer, not a parameter
    assert "upscore_weight" not in dict(model.named_parameters())
    assert model.upscore_weight.shape == (21, 1, 16, 16)
    assert count(FCN(stride=32)) == count(model) - (512 * 21 + 21) - (256 * 21 + 21) \
        - 2 * (21 * 21 * 16)


@pytest.mark.parametrize("stride", [8, 16, 32])
@pytest.mark.parametrize("size", [(32, 32), (48, 40), (37, 45)])
def test_output_has_the_input_size(stride, size, rng):
    model = fcn_small(num_classes=3, in_channels=2, stride=stride, width=4)
    x = mc.Tensor(rng.random((2, 2) + size, dtype=np.float32))
    with mc.no_grad():
        assert model(x).shape == (2, 3) + size


def test_bilinear_kernel_and_fixed_upsampling_interpolate():
    assert np.allclose(bilinear_kernel(4), np.outer([0.25, 0.75, 0.75, 0.25],
                                                    [0.25, 0.75, 0.75, 0.25]))
    assert np.allclose(bilinear_kernel(3), np.outer([0.5, 1, 0.5], [0.5, 1, 0.5]))
    w = bilinear_upsampling_weight(3, 4)
    assert np.allclose(w[0, 0], bilinear_kernel(4)) and np.all(w[0, 1] == 0)
    # a linear ramp stays a linear ramp (away from the borders): bilinear interpolation
    model = fcn_small(num_classes=2, stride=8, width=4)
    ramp = np.broadcast_to(np.arange(6, dtype=np.float32), (1, 2, 6, 6)).copy()
    up = model.upsample(mc.Tensor(ramp), (48, 48)).numpy()[0, 0]
    interior = up[8:40, 8:40]
    assert np.allclose(np.diff(interior, axis=1), 1 / 8, atol=1e-5)   # one step per 8 pixels
    assert np.allclose(np.diff(interior, axis=0), 0, atol=1e-5)
    assert np.allclose(up[8:40, 20], (20 - 3.5) / 8, atol=1e-5)       # the centres line up


def test_matches_a_torch_twin_with_its_weights():
    torch = pytest.importorskip("torch")
    tnn, tF = torch.nn, torch.nn.functional
    model = randomise_scores(fcn_small(num_classes=3, in_channels=1, stride=8, width=4))
    sd = {k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()}

    def conv(name, x, padding=0):
        return tF.conv2d(x, sd[name + ".weight"], sd[name + ".bias"], padding=padding)

    def twin(x):
        size, pools = x.shape[-2:], []
        for i, layer in enumerate(model.features):
            if isinstance(layer, nn.Conv2d):
                x = torch.relu(conv(f"features.{i}", x, 1))
            elif isinstance(layer, nn.MaxPool2d):
                x = tF.max_pool2d(x, 2)
                pools.append(x)
        h = torch.relu(conv("fc7", torch.relu(conv("fc6", pools[4], 1))))
        up2 = tnn.ConvTranspose2d(3, 3, 4, 2, 1, bias=False)
        up2.weight.data = sd["upscore2.weight"]
        s = up2(conv("score_fr", h), output_size=pools[3].shape[-2:]) + conv("score_pool4",
                                                                              pools[3])
        up4 = tnn.ConvTranspose2d(3, 3, 4, 2, 1, bias=False)
        up4.weight.data = sd["upscore_pool4.weight"]
        s = up4(s, output_size=pools[2].shape[-2:]) + conv("score_pool3", pools[2])
        up8 = tnn.ConvTranspose2d(3, 3, 16, 8, 4, groups=3, bias=False)
        up8.weight.data = sd["upscore_weight"]
        return up8(s, output_size=size)

    for size in [(32, 32), (45, 37)]:
        x = np.random.default_rng(1).random((2, 1) + size, dtype=np.float32)
        with torch.no_grad():
            expected = twin(torch.from_numpy(x)).numpy()
        with mc.no_grad():
            got = model(mc.Tensor(x)).numpy()
        assert got.shape == expected.shape == (2, 3) + size
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_zero_initialised_scores_start_with_unmodified_predictions(rng):
    """The paper zero-initialises the scoring layers: the first output is all zeros, and the
    skip layers add nothing until they learn."""
    model = fcn_small(stride=8, width=4)
    x = mc.Tensor(rng.random((2, 1, 32, 32), dtype=np.float32))
    assert not model(x).numpy().any()
    for name in ("score_fr", "score_pool4", "score_pool3"):
        assert not getattr(model, name).weight.numpy().any()
    assert np.allclose(model.upscore2.weight.numpy(), bilinear_upsampling_weight(4, 4))


@pytest.mark.parametrize("stride", [8, 16, 32])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_gradient_reaches_every_parameter(stride, batch_norm):
    data = mc.data.SyntheticShapes(4, size=32, seed=0)
    images, masks = data.get_batch(np.arange(4))
    model = randomise_scores(fcn_small(len(data.classes), 1, stride, width=4,
                                       batch_norm=batch_norm))
    loss = F.cross_entropy(model(mc.Tensor(images)), mc.Tensor(masks))
    loss.backward()
    names = [name for name, _ in model.named_parameters()]
    assert any(n.startswith("features.") for n in names) and "fc7.weight" in names
    for name, p in model.named_parameters():
        assert p.grad is not None and np.all(np.isfinite(p.grad)), name
        assert np.abs(p.grad).max() > 0, name


def test_the_skips_change_the_output(rng):
    """FCN-8s's output moves with each skip's scores, and each skip enters as a SUM: with the
    coarse scores and the pool4 skip silenced, the output is exactly the fixed x8 bilinear
    upsampling of score_pool3(pool3)."""
    model = randomise_scores(fcn_small(num_classes=3, stride=8, width=4))
    x = mc.Tensor(rng.random((2, 1, 32, 32), dtype=np.float32))
    with mc.no_grad():
        full = model(x).numpy()
        for name in ("score_pool3", "score_pool4"):
            layer = getattr(model, name)
            saved = layer.weight.data.copy(), layer.bias.data.copy()
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
            assert np.abs(model(x).numpy() - full).max() > 1e-3, name
            layer.weight.data[...], layer.bias.data[...] = saved
        for name in ("score_fr", "score_pool4"):
            nn.init.zeros_(getattr(model, name).weight)
            nn.init.zeros_(getattr(model, name).bias)
        pool3, _, _ = model.encode(x)
        expected = model.upsample(model.score_pool3(pool3), (32, 32)).numpy()
        np.testing.assert_allclose(model(x).numpy(), expected, rtol=1e-5, atol=1e-6)
    # FCN-32s has no skip: on a 32x32 image its scores are one 1x1 map, and the positive
    # bilinear tent that upsamples it keeps their order, so it predicts one class per image
    coarse = randomise_scores(fcn_small(num_classes=3, stride=32, width=4))
    with mc.no_grad():
        labels = coarse(x).numpy().argmax(1)
    assert all(np.all(labels[i] == labels[i, 0, 0]) for i in range(2))


def test_bad_arguments():
    with pytest.raises(ValueError, match="stride"):
        fcn_small(stride=4)
    with pytest.raises(ValueError, match="width"):
        fcn_small(width=0)
