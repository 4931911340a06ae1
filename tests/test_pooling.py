"""Max, average and adaptive average pooling: the shared op checks (tests/optest.py), PyTorch's
results over many hypothesis-drawn configurations, ties, layouts, and the argument errors.

The references here are plain loops over output pixels, written from the definitions (PyTorch's
window and divisor rules), independent of minicnn's kernels.
"""
import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minicnn as mc
from minicnn.kernels.geometry import conv_output_size
from minicnn.ops import pooling
from minicnn.ops.pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from optest import OpCase, distinct, inputs, normal, torch


@pytest.fixture
def fast_lane():
    """The channels-last layout is the fast lane's (the reference kernels work on NCHW)."""
    with mc.reference_kernels(False):
        yield


if torch is not None:
    import torch.nn.functional as TF


# ---- loop references ---------------------------------------------------------------------------

def _windows(shape, kernel, stride, padding, ceil_mode):
    """Yield (oh, ow, rows, cols, padded_rows, padded_cols): the real input rows/cols of each
    window and the window clipped to the padded input (for the divisor)."""
    h, w = shape[2:]
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh = conv_output_size(h, kh, sh, ph, ceil_mode=ceil_mode)
    ow = conv_output_size(w, kw, sw, pw, ceil_mode=ceil_mode)
    for i, j in itertools.product(range(oh), range(ow)):
        r0, c0 = i * sh - ph, j * sw - pw
        r1, c1 = min(r0 + kh, h + ph), min(c0 + kw, w + pw)
        yield i, j, range(max(r0, 0), min(r1, h)), range(max(c0, 0), min(c1, w)), r1 - r0, c1 - c0


def _pairs(kernel, stride, padding):
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    return pair(kernel), pair(kernel if stride is None else stride), pair(padding)


def max_pool_ref(x, kernel, stride=None, padding=0, ceil_mode=False):
    kernel, stride, padding = _pairs(kernel, stride, padding)
    windows = list(_windows(x.shape, kernel, stride, padding, ceil_mode))
    oh, ow = windows[-1][0] + 1, windows[-1][1] + 1
    y = np.empty(x.shape[:2] + (oh, ow))
    for i, j, rows, cols, _, _ in windows:
        y[:, :, i, j] = x[:, :, rows.start:rows.stop, cols.start:cols.stop].max(axis=(2, 3))
    return y


def avg_pool_ref(x, kernel, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
    kernel, stride, padding = _pairs(kernel, stride, padding)
    windows = list(_windows(x.shape, kernel, stride, padding, ceil_mode))
    oh, ow = windows[-1][0] + 1, windows[-1][1] + 1
    y = np.empty(x.shape[:2] + (oh, ow))
    for i, j, rows, cols, ph, pw in windows:
        total = x[:, :, rows.start:rows.stop, cols.start:cols.stop].sum(axis=(2, 3))
        divisor = divisor_override or (ph * pw if count_include_pad else len(rows) * len(cols))
        y[:, :, i, j] = total / divisor
    return y


def adaptive_ref(x, output_size):
    oh, ow = output_size
    h, w = x.shape[2:]
    y = np.empty(x.shape[:2] + (oh, ow))
    for i, j in itertools.product(range(oh), range(ow)):
        r0, r1 = (i * h) // oh, -(-((i + 1) * h) // oh)
        c0, c1 = (j * w) // ow, -(-((j + 1) * w) // ow)
        y[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
    return y


# ---- the shared checks -------------------------------------------------------------------------

CASES = []

MAX_CONFIGS = [  # shape, kernel, stride, padding, ceil_mode
    ((2, 3, 6, 6), 2, None, 0, False),
    ((1, 2, 7, 5), 3, 2, 1, False),
    ((1, 2, 7, 5), 3, 2, 1, True),
    ((2, 1, 5, 8), (2, 3), (1, 2), (1, 1), True),
    ((1, 3, 4, 4), 3, 1, 1, False),
]
for shape, k, s, p, cm in MAX_CONFIGS:
    CASES.append(OpCase(
        f"max_pool2d {shape} k={k} s={s} p={p} ceil={cm}",
        lambda x, k=k, s=s, p=p, cm=cm: max_pool2d(x, k, s, p, ceil_mode=cm),
        lambda x, k=k, s=s, p=p, cm=cm: max_pool_ref(x, k, s, p, cm),
        inputs(distinct(*shape)), (pooling.MaxPool2d,),
        (lambda x, k=k, s=s, p=p, cm=cm: TF.max_pool2d(x, k, s, p, ceil_mode=cm))
        if torch is not None else None))

AVG_CONFIGS = [  # shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override
    ((2, 3, 6, 6), 2, None, 0, False, True, None),
    ((1, 2, 7, 5), 3, 2, 1, True, True, None),
    ((1, 2, 7, 5), 3, 2, 1, True, False, None),
    ((2, 1, 5, 8), (2, 3), (1, 2), (1, 1), False, False, None),
    ((1, 2, 5, 5), 3, 2, 1, False, True, 4),
]
for shape, k, s, p, cm, cip, div in AVG_CONFIGS:
    CASES.append(OpCase(
        f"avg_pool2d {shape} k={k} s={s} p={p} ceil={cm} include_pad={cip} divisor={div}",
        lambda x, k=k, s=s, p=p, cm=cm, cip=cip, div=div: avg_pool2d(x, k, s, p, cm, cip, div),
        lambda x, k=k, s=s, p=p, cm=cm, cip=cip, div=div: avg_pool_ref(x, k, s, p, cm, cip, div),
        inputs(normal(*shape)), (pooling.AvgPool2d,),
        (lambda x, k=k, s=s, p=p, cm=cm, cip=cip, div=div: TF.avg_pool2d(x, k, s, p, cm, cip, div))
        if torch is not None else None))

ADAPTIVE_CONFIGS = [((2, 3, 5, 7), 1), ((1, 2, 5, 7), (2, 3)), ((1, 2, 6, 6), (4, None)),
                    ((1, 1, 4, 4), (6, 5))]
for shape, size in ADAPTIVE_CONFIGS:
    full = tuple(n if o is None else o for n, o in
                 zip(shape[2:], size if isinstance(size, tuple) else (size, size)))
    CASES.append(OpCase(
        f"adaptive_avg_pool2d {shape} -> {size}",
        lambda x, size=size: adaptive_avg_pool2d(x, size),
        lambda x, full=full: adaptive_ref(x, full),
        inputs(normal(*shape)), (pooling.AdaptiveAvgPool2d,),
        (lambda x, size=size: TF.adaptive_avg_pool2d(x, size)) if torch is not None else None))


# (the four shared checks run over these CASES in tests/test_ops.py)


# ---- many configurations against PyTorch (hypothesis) -----------------------------------------

@st.composite
def pool_configs(draw):
    """A pooling configuration PyTorch accepts: padding <= kernel/2, output >= 1."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    size = tuple(draw(st.integers(max(1, k - 2 * p), 9)) for k, p in zip(kernel, padding))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4))) + size
    return shape, kernel, stride, padding, draw(st.booleans())


def _torch_pool(kind, x, gy, kernel, stride, padding, ceil_mode, **kw):
    tx = torch.tensor(x, requires_grad=True)
    op = TF.max_pool2d if kind == "max" else TF.avg_pool2d
    y = op(tx, kernel, stride, padding, ceil_mode=ceil_mode, **kw)
    y.backward(torch.tensor(gy))
    return y.detach().numpy(), tx.grad.numpy()


def _ours(fn, x, rng):
    """Output, input gradient and the random upstream gradient of ``fn`` at ``x``."""
    t = mc.Tensor(x, requires_grad=True)
    y = fn(t)
    gy = rng.standard_normal(y.shape)
    y.backward(gy)
    return y.numpy(), t.grad, gy


SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(pool_configs(), st.booleans())
def test_max_pool_equals_torch(config, channels_last):
    pytest.importorskip("torch", reason="PyTorch is not installed: no comparison with it")
    shape, kernel, stride, padding, ceil_mode = config
    rng = np.random.default_rng(0)
    x = rng.permutation(np.prod(shape)).reshape(shape).astype(np.float64)  # no ties
    if channels_last:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    y, gx, gy = _ours(lambda t: max_pool2d(t, kernel, stride, padding, ceil_mode=ceil_mode), x,
                      rng)
    ty, tgx = _torch_pool("max", np.ascontiguousarray(x), gy, kernel, stride, padding, ceil_mode)
    np.testing.assert_array_equal(y, ty)
    np.testing.assert_allclose(gx, tgx, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(pool_configs(), st.booleans(), st.booleans(), st.sampled_from([None, 1, 5]))
def test_avg_pool_equals_torch(config, count_include_pad, channels_last, divisor_override):
    pytest.importorskip("torch", reason="PyTorch is not installed: no comparison with it")
    shape, kernel, stride, padding, ceil_mode = config
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    if channels_last:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    y, gx, gy = _ours(lambda t: avg_pool2d(t, kernel, stride, padding, ceil_mode,
                                           count_include_pad, divisor_override), x, rng)
    ty, tgx = _torch_pool("avg", np.ascontiguousarray(x), gy, kernel, stride, padding, ceil_mode,
                          count_include_pad=count_include_pad, divisor_override=divisor_override)
    np.testing.assert_allclose(y, ty, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx, tgx, rtol=1e-12, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 6), st.integers(1, 6))
def test_adaptive_avg_pool_equals_torch(h, w, oh, ow):
    pytest.importorskip("torch", reason="PyTorch is not installed: no comparison with it")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, h, w))
    y, gx, gy = _ours(lambda t: adaptive_avg_pool2d(t, (oh, ow)), x, rng)
    tx = torch.tensor(x, requires_grad=True)
    ty = TF.adaptive_avg_pool2d(tx, (oh, ow))
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-12, atol=1e-12)


# ---- ties, indices, dtypes, layouts ------------------------------------------------------------

@pytest.mark.parametrize("channels_last", [False, True])
def test_ties_go_to_the_first_maximum_like_torch(channels_last):
    x = np.full((2, 3, 5, 5), 0.5, dtype=np.float32)
    if channels_last:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    t = mc.Tensor(x, requires_grad=True)
    y, indices = max_pool2d(t, 3, 2, 1, return_indices=True)
    y.backward(np.ones(y.shape, dtype=np.float32))
    # the first real element of each window (row by row) wins: (0,0), (0,1), (0,3), (1,0)...
    first = np.array([[0, 1, 3], [5, 6, 8], [15, 16, 18]])
    assert (indices.numpy() == first).all()
    assert indices.dtype == np.int64
    expected_grad = np.zeros((5, 5), np.float32)
    np.add.at(expected_grad.reshape(-1), first.reshape(-1), 1.0)
    assert (t.grad == expected_grad).all()
    if torch is not None:
        ty, ti = TF.max_pool2d(torch.from_numpy(np.ascontiguousarray(x)), 3, 2, 1,
                               return_indices=True)
        np.testing.assert_array_equal(indices.numpy(), ti.numpy())


def test_nan_wins_the_window_like_torch():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    y = max_pool2d(mc.Tensor(x), 2).numpy()
    assert np.isnan(y[0, 0, 0, 0]) and y[0, 0, 1, 1] == 15


@pytest.mark.parametrize("fn", [
    lambda x: max_pool2d(x, 3, 2, 1, ceil_mode=True),
    lambda x: avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
    lambda x: adaptive_avg_pool2d(x, (3, 2)),
    lambda x: adaptive_avg_pool2d(x, 1),
], ids=["max", "avg", "adaptive", "global"])
def test_channels_last_input_gives_the_same_results_and_keeps_its_layout(fn):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 7, 6)).astype(np.float32)
    last = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    gy = rng.standard_normal(fn(mc.Tensor(x)).shape).astype(np.float32)
    results = []
    for data in (x, last):
        t = mc.Tensor(data, requires_grad=True)
        y = fn(t)
        y.backward(gy)
        assert y.dtype == np.float32 and t.grad.dtype == np.float32
        results.append((y.numpy(), t.grad))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("op", [max_pool2d, avg_pool2d])
@pytest.mark.usefixtures("fast_lane")
def test_pooling_keeps_a_channels_last_layout(op):
    x = np.zeros((2, 8, 6, 6), np.float32).transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2)
    t = mc.Tensor(x, requires_grad=True)
    y = op(t, 2)
    assert y.data.transpose(0, 2, 3, 1).flags.c_contiguous
    y.backward(np.ones(y.shape, np.float32))
    assert t.grad.transpose(0, 2, 3, 1).flags.c_contiguous or t.grad.flags.c_contiguous


def test_float32_in_float32_out():
    x = mc.Tensor(np.random.default_rng(0).standard_normal((1, 2, 4, 4)).astype(np.float32))
    for y in (max_pool2d(x, 2), avg_pool2d(x, 2), adaptive_avg_pool2d(x, (3, 3)),
              adaptive_avg_pool2d(x, 1)):
        assert y.dtype == np.float32


def test_stride_defaults_to_the_kernel_size():
    x = mc.Tensor(np.arange(36, dtype=np.float32).reshape(1, 1, 6, 6))
    assert max_pool2d(x, 3).shape == (1, 1, 2, 2)
    assert avg_pool2d(x, (2, 3)).shape == (1, 1, 3, 2)


# ---- output sizes and errors ---------------------------------------------------------------------

@pytest.mark.parametrize("size, kernel, stride, padding, ceil_mode, expected", [
    (32, 2, 2, 0, False, 16),
    (7, 2, 2, 0, False, 3),
    (7, 2, 2, 0, True, 4),        # the partial last window is kept
    (5, 2, 2, 1, True, 3),        # ceil gives 4, but that window would start in the padding
    (112, 3, 2, 1, False, 56),    # ResNet's stem pooling
    (55, 3, 2, 0, False, 27),     # AlexNet's overlapping pooling
])
def test_output_size(size, kernel, stride, padding, ceil_mode, expected):
    assert conv_output_size(size, kernel, stride, padding, ceil_mode=ceil_mode) == expected


@pytest.mark.parametrize("call, message", [
    (lambda x: max_pool2d(x.reshape(8, 4), 2), "4-D input .* got a 2-D"),   # 3-D: one image
    (lambda x: avg_pool2d(x.reshape(32), 2), "4-D input .* got a 1-D"),
    (lambda x: adaptive_avg_pool2d(x.reshape(1, 1, 2, 4, 4), 1), "4-D input"),
    (lambda x: max_pool2d(x, 5), "leaves no output"),
    (lambda x: avg_pool2d(x, (1, 6), padding=(0, 0)), "leaves no output"),
    (lambda x: max_pool2d(x, 2, stride=0), "stride must be positive"),
    (lambda x: max_pool2d(x, 3, padding=2), "at most half of the kernel"),
    (lambda x: avg_pool2d(x, 0), "kernel_size must be positive"),
    (lambda x: max_pool2d(x, 2, padding=-1), "non-negative"),
    (lambda x: max_pool2d(x, 2.5), "int or a pair"),
    (lambda x: avg_pool2d(x, 2, divisor_override=0), "divisor_override"),
    (lambda x: adaptive_avg_pool2d(x, 0), "positive"),
    (lambda x: max_pool2d(x, 2, dilation=0), r"dilation should be greater than zero, but got "
                                             r"\(0, 0\)"),
    (lambda x: max_pool2d(x, 2, dilation=(1, 2.0)), "dilation must be an int or a pair"),
    (lambda x: max_pool2d(x, 3, dilation=2), r"3x3 kernel with padding \(0, 0\) and dilation "
                                             r"\(2, 2\) .* leaves no output"),
    (lambda x: max_pool2d(x[:, :, :2], 2, 1, 1, dilation=3), "every tap in the padding"),
])
def test_bad_arguments_give_clear_errors(call, message):
    x = mc.Tensor(np.zeros((1, 2, 4, 4), np.float32))
    with pytest.raises((ValueError, TypeError, NotImplementedError), match=message):
        call(x)


def test_errors_come_before_any_array_work(monkeypatch):
    from minicnn.kernels import pooling as kernels

    def fail(*args, **kwargs):
        raise AssertionError("a kernel ran before the arguments were checked")
    monkeypatch.setattr(kernels, "max_pool2d_forward", fail)
    with pytest.raises(ValueError, match="leaves no output"):
        max_pool2d(mc.Tensor(np.zeros((1, 1, 2, 2), np.float32)), 3)
