"""interpolate (nearest, bilinear) and center_crop: the shared op checks, PyTorch's results over
hypothesis-drawn sizes, scale factors and corner modes, the crop rule and the argument errors."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn as mc
from minicnn.nn.pooling import Upsample
from minicnn.ops import resize, shape
from minicnn.ops.resize import center_crop, interpolate
from optest import OpCase, inputs, normal, torch

if torch is not None:
    import torch.nn.functional as TF


# ---- a per-pixel reference, from PyTorch's formulas ------------------------------------------

def _source(o, in_size, out_size, mode, align_corners, scale_factor):
    """Input position that output index ``o`` reads (float for bilinear, int for nearest)."""
    if mode == "nearest":
        scale = np.float32(1 / scale_factor) if scale_factor else \
            np.float32(in_size) / np.float32(out_size)
        return min(int(math.floor(np.float32(o) * scale)), in_size - 1)
    if out_size == in_size:
        return float(o)
    if align_corners:
        return o * (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    scale = 1 / scale_factor if scale_factor else in_size / out_size
    return max(scale * (o + 0.5) - 0.5, 0.0)


def _taps(o, in_size, out_size, mode, align_corners, scale_factor):
    """[(input index, weight)] of output index ``o`` along one axis."""
    src = _source(o, in_size, out_size, mode, align_corners, scale_factor)
    if mode == "nearest":
        return [(src, 1.0)]
    first = min(int(math.floor(src)), in_size - 1)
    frac = min(max(src - first, 0.0), 1.0)
    return [(first, 1 - frac), (min(first + 1, in_size - 1), frac)]


def interpolate_ref(x, out_size, mode, align_corners=False, scale_factor=(None, None)):
    h, w = x.shape[2:]
    y = np.zeros(x.shape[:2] + tuple(out_size))
    for i in range(out_size[0]):
        for j in range(out_size[1]):
            for r, wr in _taps(i, h, out_size[0], mode, align_corners, scale_factor[0]):
                for c, wc in _taps(j, w, out_size[1], mode, align_corners, scale_factor[1]):
                    y[:, :, i, j] += wr * wc * x[:, :, r, c]
    return y


# ---- the shared checks -------------------------------------------------------------------------

CASES = []
CONFIGS = [  # input shape, keyword arguments, output size
    ((2, 3, 4, 5), dict(size=(7, 3), mode="nearest"), (7, 3)),
    ((1, 2, 3, 3), dict(scale_factor=2, mode="nearest"), (6, 6)),
    ((1, 2, 5, 4), dict(scale_factor=1.5, mode="nearest"), (7, 6)),
    ((2, 2, 4, 5), dict(size=(7, 9), mode="bilinear", align_corners=False), (7, 9)),
    ((1, 2, 4, 4), dict(scale_factor=2, mode="bilinear", align_corners=False), (8, 8)),
    ((1, 2, 6, 5), dict(size=(3, 2), mode="bilinear", align_corners=False), (3, 2)),
    ((1, 3, 4, 5), dict(size=(7, 9), mode="bilinear", align_corners=True), (7, 9)),
    ((1, 1, 5, 6), dict(size=(1, 4), mode="bilinear", align_corners=True), (1, 4)),
]
for in_shape, kwargs, out in CONFIGS:
    sf = kwargs.get("scale_factor")
    CASES.append(OpCase(
        f"interpolate {in_shape} {kwargs}",
        lambda x, kwargs=kwargs: interpolate(x, **kwargs),
        lambda x, kwargs=kwargs, out=out, sf=sf: interpolate_ref(
            x, out, kwargs["mode"], kwargs.get("align_corners"), (sf, sf)),
        inputs(normal(*in_shape)), (resize.Interpolate2d,),
        (lambda x, kwargs=kwargs: TF.interpolate(x, **kwargs)) if torch is not None else None))
CASES.append(OpCase(
    "center_crop (2, 3, 7, 6) -> (4, 3)", lambda x: center_crop(x, (4, 3)),
    lambda x: x[:, :, 2:6, 2:5], inputs(normal(2, 3, 7, 6)), (shape.GetItem,),
    (lambda x: x[:, :, 2:6, 2:5]) if torch is not None else None))


# (the four shared checks run over these CASES in tests/test_ops.py)


# ---- many configurations against PyTorch -------------------------------------------------------

@st.composite
def resize_configs(draw):
    mode = draw(st.sampled_from(["nearest", "bilinear"]))
    align = draw(st.booleans()) if mode == "bilinear" else None
    in_size = (draw(st.integers(1, 8)), draw(st.integers(1, 8)))
    if draw(st.booleans()):
        return in_size, dict(size=(draw(st.integers(1, 12)), draw(st.integers(1, 12))),
                             mode=mode, align_corners=align)
    scales = st.sampled_from([0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 1 / 3])
    factor = (draw(scales), draw(scales))
    if any(math.floor(n * f) < 1 for n, f in zip(in_size, factor)):
        factor = (2.0, 2.0)
    return in_size, dict(scale_factor=factor, mode=mode, align_corners=align,
                         recompute_scale_factor=draw(st.sampled_from([None, True])))


@settings(max_examples=60, deadline=None)
@given(resize_configs(), st.sampled_from([np.float32, np.float64]))
def test_interpolate_equals_torch(config, dtype):
    pytest.importorskip("torch", reason="PyTorch is not installed: no comparison with it")
    in_size, kwargs = config
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3) + in_size).astype(dtype)
    t = mc.Tensor(x, requires_grad=True)
    y = interpolate(t, **kwargs)
    gy = rng.standard_normal(y.shape).astype(dtype)
    y.backward(gy)
    tx = torch.tensor(x, requires_grad=True)
    ty = TF.interpolate(tx, **kwargs)
    ty.backward(torch.tensor(gy))
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    assert y.shape == tuple(ty.shape) and y.dtype == dtype and t.grad.dtype == dtype
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **tol)
    np.testing.assert_allclose(t.grad, tx.grad.numpy(), **tol)


def test_channels_last_input_gives_the_same_results():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    last = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    for mode in ("nearest", "bilinear"):
        outs = [interpolate(mc.Tensor(a), scale_factor=2, mode=mode).numpy() for a in (x, last)]
        np.testing.assert_allclose(outs[0], outs[1], rtol=1e-6)


def test_nearest_copies_infinities_exactly():
    x = np.array([[[[1.0, np.inf], [-np.inf, 2.0]]]], np.float32)
    y = interpolate(mc.Tensor(x), scale_factor=2).numpy()
    assert np.isposinf(y[0, 0, 0, 2:]).all() and not np.isnan(y).any()


def test_interpolation_matrices():
    # bilinear, align_corners=False, 2 -> 4: PyTorch's weights 1, (.75,.25), (.25,.75), 1
    a = resize.interpolation_matrix(2, 4, "bilinear", False, dtype=np.float64)
    np.testing.assert_allclose(a, [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    a = resize.interpolation_matrix(3, 5, "bilinear", True, dtype=np.float64)
    np.testing.assert_allclose(a, [[1, 0, 0], [.5, .5, 0], [0, 1, 0], [0, .5, .5], [0, 0, 1]])
    np.testing.assert_allclose(a.sum(axis=1), 1)
    np.testing.assert_array_equal(resize.nearest_indices(3, 7), [0, 0, 0, 1, 1, 2, 2])


# ---- center_crop ---------------------------------------------------------------------------------

@pytest.mark.parametrize("big, small, top", [
    (7, 4, 2),   # (7-4)/2 = 1.5 rounds to 2 (half to even): the extra row goes to the top
    (5, 4, 0),   # 0.5 rounds to 0: the extra row stays at the bottom
    (9, 4, 2),   # 2.5 rounds to 2
    (6, 4, 1),
    (64, 56, 4),  # U-Net's first crop
    (4, 4, 0),
])
def test_center_crop_follows_torchvisions_rounding(big, small, top):
    x = np.arange(big * big, dtype=np.float32).reshape(1, 1, big, big)
    y = center_crop(mc.Tensor(x), small).numpy()
    np.testing.assert_array_equal(y, x[:, :, top:top + small, top:top + small])


def test_center_crop_sends_gradients_into_the_window():
    t = mc.Tensor(np.ones((1, 2, 6, 6), np.float32), requires_grad=True)
    center_crop(t, (2, 4)).sum().backward()
    expected = np.zeros((6, 6), np.float32)
    expected[2:4, 1:5] = 1
    assert (t.grad == expected).all() and t.grad.dtype == np.float32


# ---- layer and errors ----------------------------------------------------------------------------

def test_upsample_layer():
    layer = Upsample(scale_factor=2, mode="bilinear", align_corners=False)
    assert repr(layer) == "Upsample(scale_factor=2.0, mode='bilinear')"
    y = layer(mc.Tensor(np.ones((1, 1, 3, 3), np.float32)))
    assert y.shape == (1, 1, 6, 6) and np.allclose(y.numpy(), 1)


X = mc.Tensor(np.zeros((1, 2, 4, 4), np.float32))


@pytest.mark.parametrize("call, message", [
    (lambda: interpolate(X, size=4, scale_factor=2), "exactly one of size and scale_factor .*both"),
    (lambda: interpolate(X), "exactly one of size and scale_factor .*neither"),
    (lambda: interpolate(X, size=4, mode="bicubic"), "unknown mode 'bicubic'"),
    (lambda: interpolate(X, size=4, align_corners=True), "align_corners can only be set"),
    (lambda: interpolate(X.reshape(2, 4, 4), size=4), "4-D input .* got a 3-D"),
    (lambda: interpolate(X, scale_factor=0.1), "must both be positive"),
    (lambda: interpolate(X, scale_factor=-2), "scale_factor must be positive"),
    (lambda: center_crop(X, 5), "cannot crop 5x5 out of a 4x4 input"),
    (lambda: center_crop(X, (0, 2)), "must be positive"),
])
def test_bad_arguments_give_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
