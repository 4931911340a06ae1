"""interpolate (nearest, nearest-exact, (bi/tri)linear, bicubic, area) and center_crop: the
shared op checks, PyTorch's results over hypothesis-drawn sizes, scale factors, corner modes,
ranks and empty batches, the crop rule and the argument errors."""
import itertools
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

F32 = np.float32
A = -0.75  # Keys' cubic convolution parameter PyTorch uses


def keys_cubic(d):
    """Keys' cubic convolution kernel at distance ``d`` (0 from 2 on)."""
    d = abs(d)
    if d <= 1:
        return (A + 2) * d ** 3 - (A + 3) * d ** 2 + 1
    return A * d ** 3 - 5 * A * d ** 2 + 8 * A * d - 4 * A if d < 2 else 0.0


def _taps(o, in_size, out_size, mode, align_corners, scale_factor):
    """[(input index, weight)] of output index ``o`` along one axis."""
    # the nearest modes compute their index in float32, like PyTorch
    scale32 = F32(1 / scale_factor) if scale_factor else F32(in_size) / F32(out_size)
    if mode == "nearest":
        if out_size == in_size:
            return [(o, 1.0)]
        return [(min(int(math.floor(F32(o) * scale32)), in_size - 1), 1.0)]
    if mode == "nearest-exact":
        return [(min(int(math.floor(F32(F32(o) + F32(0.5)) * scale32)), in_size - 1), 1.0)]
    if mode == "area":  # adaptive average pooling's window
        start, end = (o * in_size) // out_size, math.ceil((o + 1) * in_size / out_size)
        return [(k, 1 / (end - start)) for k in range(start, end)]
    if out_size == in_size:
        return [(o, 1.0)]
    if align_corners:
        src = o * (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    else:
        scale = 1 / scale_factor if scale_factor else in_size / out_size
        src = scale * (o + 0.5) - 0.5
    if mode == "bicubic":
        first = math.floor(src)
        return [(min(max(first + k, 0), in_size - 1), keys_cubic(src - (first + k)))
                for k in (-1, 0, 1, 2)]
    src = max(src, 0.0)
    first = min(int(math.floor(src)), in_size - 1)
    frac = min(max(src - first, 0.0), 1.0)
    return [(first, 1 - frac), (min(first + 1, in_size - 1), frac)]


def interpolate_ref(x, out_size, mode, align_corners=False, scale_factor=None):
    """Every output pixel as the weighted sum of the input pixels its taps name."""
    in_size = x.shape[2:]
    scale_factor = scale_factor or (None,) * len(in_size)
    y = np.zeros(x.shape[:2] + tuple(out_size))
    for o in itertools.product(*map(range, out_size)):
        per_axis = [_taps(i, n, m, mode, align_corners, s)
                    for i, n, m, s in zip(o, in_size, out_size, scale_factor)]
        for taps in itertools.product(*per_axis):
            index = tuple(k for k, _ in taps)
            y[(Ellipsis,) + o] += np.prod([w for _, w in taps]) * x[(Ellipsis,) + index]
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
    ((2, 2, 5, 4), dict(size=(3, 7), mode="nearest-exact"), (3, 7)),
    ((1, 2, 4, 5), dict(scale_factor=1.7, mode="nearest-exact"), (6, 8)),
    ((2, 2, 4, 5), dict(size=(7, 3), mode="bicubic"), (7, 3)),
    ((1, 2, 3, 4), dict(scale_factor=2.5, mode="bicubic", align_corners=False), (7, 10)),
    ((1, 2, 4, 5), dict(size=(6, 9), mode="bicubic", align_corners=True), (6, 9)),
    ((1, 1, 6, 5), dict(size=(4, 2), mode="bicubic", align_corners=True), (4, 2)),
    ((2, 2, 6, 7), dict(size=(4, 3), mode="area"), (4, 3)),
    ((1, 2, 5, 4), dict(size=(7, 6), mode="area"), (7, 6)),
    ((1, 2, 6, 6), dict(scale_factor=0.5, mode="area"), (3, 3)),
    # a 3-D input is a batch of signals (N, C, L), a 5-D one of volumes (N, C, D, H, W)
    ((2, 3, 5), dict(size=8, mode="linear"), (8,)),
    ((2, 3, 5), dict(scale_factor=1.7, mode="linear", align_corners=True), (8,)),
    ((2, 3, 5), dict(size=3, mode="nearest"), (3,)),
    ((2, 3, 7), dict(size=3, mode="area"), (3,)),
    ((1, 2, 3, 4, 2), dict(size=(5, 3, 3), mode="trilinear"), (5, 3, 3)),
    ((1, 2, 3, 4, 2), dict(scale_factor=(2, 0.5, 1.5), mode="trilinear", align_corners=True),
     (6, 2, 3)),
    ((1, 2, 3, 2, 4), dict(size=(2, 5, 3), mode="nearest-exact"), (2, 5, 3)),
    ((1, 2, 4, 3, 5), dict(size=(3, 2, 2), mode="area"), (3, 2, 2)),
]
for in_shape, kwargs, out in CONFIGS:
    sf = kwargs.get("scale_factor")
    sf = None if sf is None else (sf if isinstance(sf, tuple) else (sf,) * len(out))
    CASES.append(OpCase(
        f"interpolate {in_shape} {kwargs}",
        lambda x, kwargs=kwargs: interpolate(x, **kwargs),
        lambda x, kwargs=kwargs, out=out, sf=sf: interpolate_ref(
            x, out, kwargs["mode"], kwargs.get("align_corners"), sf),
        inputs(normal(*in_shape)), (resize.Interpolate,),
        (lambda x, kwargs=kwargs: TF.interpolate(x, **kwargs)) if torch is not None else None))
CASES.append(OpCase(
    "center_crop (2, 3, 7, 6) -> (4, 3)", lambda x: center_crop(x, (4, 3)),
    lambda x: x[:, :, 2:6, 2:5], inputs(normal(2, 3, 7, 6)), (shape.GetItem,),
    (lambda x: x[:, :, 2:6, 2:5]) if torch is not None else None))


# (the four shared checks run over these CASES in tests/test_ops.py)


# ---- many configurations against PyTorch -------------------------------------------------------

RANKS = {"nearest": (1, 2, 3), "nearest-exact": (1, 2, 3), "area": (1, 2, 3), "linear": (1,),
         "bilinear": (2,), "bicubic": (2,), "trilinear": (3,)}


@st.composite
def resize_configs(draw):
    mode = draw(st.sampled_from(sorted(RANKS)))
    rank = draw(st.sampled_from(RANKS[mode]))
    align = draw(st.sampled_from([None, False, True])) if mode in resize.SPATIAL_AXES else None
    in_size = tuple(draw(st.integers(1, 8)) for _ in range(rank))
    if draw(st.booleans()):
        return in_size, dict(size=tuple(draw(st.integers(1, 12)) for _ in range(rank)),
                             mode=mode, align_corners=align)
    scales = st.sampled_from([0.5, 0.6, 0.75, 1.0, 1.25, 1.5, 1.7, 2.0, 2.5, 3.0, 1 / 3])
    factor = tuple(draw(scales) for _ in range(rank))
    if any(math.floor(n * f) < 1 for n, f in zip(in_size, factor)):
        factor = (2.0,) * rank
    if mode == "nearest" and rank != 2 and \
            any(math.floor(n * f) == n != n * f for n, f in zip(in_size, factor)):
        factor = (2.0,) * rank  # PyTorch's 1-D/3-D forward disagrees with its backward there
    if mode == "bicubic" and any(math.floor(n * f) == n != n * f for n, f in zip(in_size, factor)):
        # an axis whose size the scale keeps (2 * 1.25 -> 2): PyTorch's bicubic forward
        # interpolates with the scale there, but its backward copies the gradient as if the
        # forward had copied; minicnn copies in both (an adjoint pair), so it matches PyTorch's
        # backward and not its forward (found by hypothesis in CI, Python 3.10)
        factor = (2.0,) * rank
    return in_size, dict(scale_factor=factor, mode=mode, align_corners=align,
                         recompute_scale_factor=draw(st.sampled_from([None, False, True])))


@settings(max_examples=150, deadline=None)
@given(resize_configs(), st.sampled_from([np.float32, np.float64]), st.sampled_from([2, 1, 0]))
def test_interpolate_equals_torch(config, dtype, batch):
    pytest.importorskip("torch", reason="PyTorch is not installed: no comparison with it")
    in_size, kwargs = config
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3) + in_size).astype(dtype)
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
    for mode in ("nearest", "nearest-exact", "bilinear", "bicubic", "area"):
        outs = [interpolate(mc.Tensor(a), scale_factor=2, mode=mode).numpy() for a in (x, last)]
        # NOTE: the two layouts add the same float32 products in different orders (BLAS blocks
        # them by the strides): values near 0 then differ by a few float32 ulps of the terms
        # (eps 1.2e-7 times |x| ~ 1), which no relative tolerance covers: 1e-6 absolute does
        np.testing.assert_allclose(outs[0], outs[1], rtol=1e-6, atol=1e-6)


def test_nearest_copies_infinities_exactly():
    x = np.array([[[[1.0, np.inf], [-np.inf, 2.0]]]], np.float32)
    for mode in ("nearest", "nearest-exact"):
        y = interpolate(mc.Tensor(x), scale_factor=2, mode=mode).numpy()
        assert np.isposinf(y[0, 0, 0, 2:]).all() and not np.isnan(y).any()


def test_interpolation_matrices():
    # bilinear, align_corners=False, 2 -> 4: PyTorch's weights 1, (.75,.25), (.25,.75), 1
    a = resize.interpolation_matrix(2, 4, "bilinear", False, dtype=np.float64)
    np.testing.assert_allclose(a, [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    a = resize.interpolation_matrix(3, 5, "bilinear", True, dtype=np.float64)
    np.testing.assert_allclose(a, [[1, 0, 0], [.5, .5, 0], [0, 1, 0], [0, .5, .5], [0, 0, 1]])
    np.testing.assert_allclose(a.sum(axis=1), 1)
    np.testing.assert_array_equal(resize.nearest_indices(3, 7), [0, 0, 0, 1, 1, 2, 2])
    # nearest-exact picks the input pixel whose centre is nearest: 3 -> 2 reads 0 and 2
    np.testing.assert_array_equal(resize.nearest_indices(3, 2, exact=True), [0, 2])
    np.testing.assert_array_equal(resize.nearest_indices(3, 2), [0, 1])
    # area, 5 -> 3: windows [0, 2), [1, 4), [3, 5) (they overlap where 5/3 is not whole)
    a = resize.interpolation_matrix(5, 3, "area", dtype=np.float64)
    np.testing.assert_allclose(a, [[.5, .5, 0, 0, 0], [0, 1 / 3, 1 / 3, 1 / 3, 0],
                                   [0, 0, 0, .5, .5]])
    # bicubic weights sum to 1 on every row, and reach past the border onto the edge pixel
    a = resize.interpolation_matrix(4, 7, "bicubic", dtype=np.float64)
    np.testing.assert_allclose(a.sum(axis=1), 1)
    assert (a < 0).any()  # the negative lobes of the cubic kernel


def test_bicubic_passes_through_the_input_pixels():
    """Keys' cubic is an interpolating kernel (1 at distance 0, 0 at distances 1 and 2): with
    aligned corners and 2 * H - 1 outputs every other output lands on an input pixel and equals
    it exactly, and halfway between two pixels the four weights are symmetric."""
    x = np.random.default_rng(3).standard_normal((1, 2, 4, 5))
    y = interpolate(mc.Tensor(x), size=(7, 9), mode="bicubic", align_corners=True).numpy()
    np.testing.assert_allclose(y[:, :, ::2, ::2], x, atol=1e-12)
    row = resize.interpolation_matrix(4, 7, "bicubic", True, dtype=np.float64)[3]
    np.testing.assert_allclose(row, row[::-1], atol=1e-15)


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


@pytest.mark.parametrize("mode", ["nearest-exact", "bicubic", "area"])
def test_upsample_layer_takes_the_new_modes_like_torch(mode):
    pytest.importorskip("torch", reason="PyTorch is not installed: no comparison with it")
    x = np.random.default_rng(2).standard_normal((2, 3, 5, 4)).astype(np.float32)
    kwargs = dict(size=(7, 3), mode=mode)
    y = Upsample(**kwargs)(mc.Tensor(x))
    ty = torch.nn.Upsample(**kwargs)(torch.from_numpy(x))
    np.testing.assert_allclose(y.numpy(), ty.numpy(), rtol=1e-5, atol=1e-6)


X = mc.Tensor(np.zeros((1, 2, 4, 4), np.float32))


@pytest.mark.parametrize("call, message", [
    (lambda: interpolate(X, size=4, scale_factor=2), "exactly one of size and scale_factor .*both"),
    (lambda: interpolate(X), "exactly one of size and scale_factor .*neither"),
    (lambda: interpolate(X, size=4, mode="lanczos"), "unknown mode 'lanczos'"),
    (lambda: interpolate(X, size=4, align_corners=True), "align_corners can only be set"),
    (lambda: interpolate(X, size=4, mode="area", align_corners=False),
     "align_corners can only be set"),
    (lambda: interpolate(X, size=4, mode="nearest-exact", align_corners=True),
     "align_corners can only be set"),
    (lambda: interpolate(X.reshape(2, 4, 4), size=4, mode="bilinear"),
     "needs a 4-D .* got a 3-D .* batch of signals \\(N, C, L\\)"),
    (lambda: interpolate(X, size=4, mode="linear"), "needs a 3-D .* got a 4-D"),
    (lambda: interpolate(X, size=4, mode="trilinear"), "needs a 5-D .* got a 4-D"),
    (lambda: interpolate(X.reshape(8, 4), size=4), "expected a 3-D .* got a 2-D"),
    (lambda: interpolate(X, scale_factor=0.1), "must both be positive"),
    (lambda: interpolate(X, scale_factor=-2), "scale_factor must be positive"),
    (lambda: interpolate(X, scale_factor=math.inf), "scale_factor must be positive and finite"),
    (lambda: interpolate(X, size=(2, 3, 4)), "one int per spatial axis"),
    (lambda: interpolate(X, scale_factor=(2, 2, 2)), "one number per spatial axis"),
    (lambda: interpolate(X, size=3, recompute_scale_factor=True), "not meaningful"),
    (lambda: interpolate(X, size=3, mode="bilinear", antialias=True), "antialias"),
    (lambda: center_crop(X, 5), "cannot crop 5x5 out of a 4x4 input"),
    (lambda: center_crop(X, (0, 2)), "must be positive"),
])
def test_bad_arguments_give_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_size_of_floats_is_a_type_error():
    with pytest.raises(TypeError, match="size must be an int or a tuple of ints"):
        interpolate(X, size=(2.0, 3))
