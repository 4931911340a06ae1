"""One image without a batch axis: ``(C, H, W)`` into conv2d, conv_transpose2d, max_pool2d (and
its indices), avg_pool2d, adaptive_avg_pool2d and their layers, as PyTorch takes it.

The result has no batch axis either, and the gradient has the input's shape. ``CASES`` run
through the shared helper (tests/optest.py, by tests/test_ops.py): forward against plain NumPy
references, float64 gradcheck, PyTorch, GPU equals CPU. Hypothesis draws unbatched shapes and
window settings against PyTorch, forward and gradient; the layers are compared with PyTorch's.
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minicnn as mc
import minicnn.nn.functional as F
from minicnn.autograd import Tensor
from minicnn.ops.conv import Conv2d, ConvTranspose2d
from minicnn.ops.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from optest import OpCase, distinct, inputs, normal, torch
from torch_compare import close_to_torch as _close
from torch_compare import run_both as _run_both

CASES = []


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# ---- plain NumPy references for ONE image (C, H, W), from the definitions ----------------------

def conv_ref(x, w, b=None, stride=1, padding=0, groups=1):
    (sH, sW), (pH, pW) = _pair(stride), _pair(padding)
    xp = np.pad(x, ((0, 0), (pH, pH), (pW, pW)))
    OC, Cg, KH, KW = w.shape
    OH, OW = (xp.shape[1] - KH) // sH + 1, (xp.shape[2] - KW) // sW + 1
    y = np.zeros((OC, OH, OW))
    for o in range(OC):
        g = o // (OC // groups)
        for i in range(OH):
            for j in range(OW):
                window = xp[g * Cg:(g + 1) * Cg, i * sH:i * sH + KH, j * sW:j * sW + KW]
                y[o, i, j] = (window * w[o]).sum()
    return y if b is None else y + b[:, None, None]


def conv_transpose_ref(x, w, b=None, stride=1, padding=0, output_padding=0):
    (sH, sW), (pH, pW), (oH, oW) = _pair(stride), _pair(padding), _pair(output_padding)
    C, H, W = x.shape
    _, OC, KH, KW = w.shape
    full = np.zeros((OC, (H - 1) * sH + KH + oH, (W - 1) * sW + KW + oW))
    for c in range(C):
        for i in range(H):
            for j in range(W):
                full[:, i * sH:i * sH + KH, j * sW:j * sW + KW] += x[c, i, j] * w[c]
    y = full[:, pH:full.shape[1] - pH, pW:full.shape[2] - pW]
    return y if b is None else y + b[:, None, None]


def pool_ref(x, kernel, stride, padding, reduce, count_include_pad=True):
    """Max (``reduce='max'``) or mean of every window, padding excluded from a max; a mean
    divides by the padded window size (``count_include_pad``) or the real pixels."""
    (kH, kW), (sH, sW), (pH, pW) = _pair(kernel), _pair(stride), _pair(padding)
    C, H, W = x.shape
    OH, OW = (H + 2 * pH - kH) // sH + 1, (W + 2 * pW - kW) // sW + 1
    y = np.empty((C, OH, OW))
    for i in range(OH):
        for j in range(OW):
            r0, c0 = i * sH - pH, j * sW - pW
            window = x[:, max(r0, 0):r0 + kH, max(c0, 0):c0 + kW]
            if reduce == "max":
                y[:, i, j] = window.max(axis=(1, 2))
            else:
                size = kH * kW if count_include_pad else window.shape[1] * window.shape[2]
                y[:, i, j] = window.sum(axis=(1, 2)) / size
    return y


def adaptive_ref(x, out):
    C, H, W = x.shape
    OH, OW = _pair(out)
    y = np.empty((C, OH, OW))
    for i in range(OH):
        for j in range(OW):
            rows = slice(i * H // OH, -(-(i + 1) * H // OH))
            cols = slice(j * W // OW, -(-(j + 1) * W // OW))
            y[:, i, j] = x[:, rows, cols].mean(axis=(1, 2))
    return y


# ---- cases for the shared helper ---------------------------------------------------------------

TF = torch.nn.functional if torch is not None else None

CASES += [
    OpCase("unbatched conv2d 3x3 s2 p1", lambda x, w, b: F.conv2d(x, w, b, 2, 1),
           lambda x, w, b: conv_ref(x, w, b, 2, 1),
           inputs(normal(3, 7, 6), normal(4, 3, 3, 3), normal(4)), (Conv2d,),
           lambda x, w, b: TF.conv2d(x, w, b, 2, 1), fwd_tol=(1e-4, 1e-5)),
    OpCase("unbatched conv2d groups 2, 1x1", lambda x, w: F.conv2d(x, w, groups=2),
           lambda x, w: conv_ref(x, w, groups=2), inputs(normal(4, 3, 5), normal(6, 2, 1, 1)),
           (Conv2d,), lambda x, w: TF.conv2d(x, w, groups=2), fwd_tol=(1e-4, 1e-5)),
    OpCase("unbatched conv2d one channel 5x5 p2", lambda x, w: F.conv2d(x, w, padding=2),
           lambda x, w: conv_ref(x, w, padding=2), inputs(normal(1, 6, 6), normal(3, 1, 5, 5)),
           (Conv2d,), lambda x, w: TF.conv2d(x, w, padding=2), fwd_tol=(1e-4, 1e-5)),
    OpCase("unbatched conv_transpose2d 3x3 s2 p1 op1",
           lambda x, w, b: F.conv_transpose2d(x, w, b, 2, 1, 1),
           lambda x, w, b: conv_transpose_ref(x, w, b, 2, 1, 1),
           inputs(normal(3, 4, 3), normal(3, 2, 3, 3), normal(2)), (ConvTranspose2d,),
           lambda x, w, b: TF.conv_transpose2d(x, w, b, 2, 1, 1), fwd_tol=(1e-4, 1e-5)),
    OpCase("unbatched max_pool2d 3x3 s2 p1", lambda x: F.max_pool2d(x, 3, 2, 1),
           lambda x: pool_ref(x, 3, 2, 1, "max"), inputs(distinct(3, 9, 8)), (MaxPool2d,),
           lambda x: TF.max_pool2d(x, 3, 2, 1)),
    OpCase("unbatched avg_pool2d 3x3 s2 p1", lambda x: F.avg_pool2d(x, 3, 2, 1),
           lambda x: pool_ref(x, 3, 2, 1, "mean"), inputs(normal(2, 7, 8)), (AvgPool2d,),
           lambda x: TF.avg_pool2d(x, 3, 2, 1)),
    OpCase("unbatched avg_pool2d count_include_pad=False",
           lambda x: F.avg_pool2d(x, (2, 3), 1, 1, count_include_pad=False),
           lambda x: pool_ref(x, (2, 3), 1, 1, "mean", False), inputs(normal(2, 5, 6)),
           (AvgPool2d,), lambda x: TF.avg_pool2d(x, (2, 3), 1, 1, count_include_pad=False)),
    OpCase("unbatched adaptive_avg_pool2d (3, 2)", lambda x: F.adaptive_avg_pool2d(x, (3, 2)),
           lambda x: adaptive_ref(x, (3, 2)), inputs(normal(3, 7, 5)), (AdaptiveAvgPool2d,),
           lambda x: TF.adaptive_avg_pool2d(x, (3, 2))),
    OpCase("unbatched global average pool", lambda x: F.adaptive_avg_pool2d(x, 1),
           lambda x: adaptive_ref(x, 1), inputs(normal(4, 3, 5)), (AdaptiveAvgPool2d,),
           lambda x: TF.adaptive_avg_pool2d(x, 1)),
]


# (the four shared checks run over these CASES in tests/test_ops.py)


def test_the_references_agree_with_each_other():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 6, 5)), rng.standard_normal((4, 3, 3, 3))
    y = conv_ref(x, w, None, 2, 1)
    g = rng.standard_normal(y.shape)
    back = conv_transpose_ref(g, w, None, 2, 1, (1, 0))     # 6x5 back from 3x3
    assert back.shape == x.shape and np.isclose(np.vdot(y, g), np.vdot(x, back))


# ---- drawn unbatched configurations against PyTorch --------------------------------------------



@settings(max_examples=40, deadline=None)
@given(c=st.integers(1, 4), cout=st.integers(1, 3), h=st.integers(1, 8), w=st.integers(1, 8),
       k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), groups=st.integers(1, 2),
       transposed=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_unbatched_convolutions_equal_torch(c, cout, h, w, k, s, p, groups, transposed, seed):
    pytest.importorskip("torch", reason="the comparison needs PyTorch")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((c * groups, h, w)).astype(np.float32)
    if transposed:
        assume((min(h, w) - 1) * s - 2 * p + k >= 1)
        wt = rng.standard_normal((c * groups, cout, k, k)).astype(np.float32)
        y = _run_both(lambda *t: F.conv_transpose2d(*t, stride=s, padding=p, groups=groups),
                      lambda *t: TF.conv_transpose2d(*t, stride=s, padding=p, groups=groups),
                      [x, wt], rng)
    else:
        assume(min(h, w) + 2 * p >= k)
        wt = rng.standard_normal((cout * groups, c, k, k)).astype(np.float32)
        y = _run_both(lambda *t: F.conv2d(*t, stride=s, padding=p, groups=groups),
                      lambda *t: TF.conv2d(*t, stride=s, padding=p, groups=groups), [x, wt], rng)
    assert y.ndim == 3 and y.shape[0] == cout * groups


@settings(max_examples=40, deadline=None)
@given(c=st.integers(1, 4), h=st.integers(1, 9), w=st.integers(1, 9), k=st.integers(1, 4),
       s=st.integers(1, 3), ceil_mode=st.booleans(), count_include_pad=st.booleans(),
       out=st.tuples(st.integers(1, 4), st.integers(1, 4)), data=st.data())
def test_unbatched_pooling_equals_torch(c, h, w, k, s, ceil_mode, count_include_pad, out, data):
    pytest.importorskip("torch", reason="the comparison needs PyTorch")
    p = data.draw(st.integers(0, k // 2))
    assume(min(h, w) + 2 * p >= k)
    rng = np.random.default_rng(h * 31 + w)
    x = (rng.permutation(c * h * w).reshape(c, h, w) / 5.0).astype(np.float32)   # no ties
    y, idx = F.max_pool2d(Tensor(x), k, s, p, ceil_mode=ceil_mode, return_indices=True)
    ty, tidx = TF.max_pool2d(torch.from_numpy(x), k, s, p, ceil_mode=ceil_mode,
                             return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    assert idx.shape == y.shape == tuple(ty.shape) and idx.dtype == np.int64
    _run_both(lambda t: F.max_pool2d(t, k, s, p, ceil_mode=ceil_mode),
              lambda t: TF.max_pool2d(t, k, s, p, ceil_mode=ceil_mode), [x], rng)
    _run_both(lambda t: F.avg_pool2d(t, k, s, p, ceil_mode, count_include_pad),
              lambda t: TF.avg_pool2d(t, k, s, p, ceil_mode, count_include_pad), [x], rng)
    _run_both(lambda t: F.adaptive_avg_pool2d(t, out),
              lambda t: TF.adaptive_avg_pool2d(t, out), [x], rng)


# ---- the layers ---------------------------------------------------------------------------------

LAYERS = [
    ("Conv2d", (3, 4, 3), dict(padding=1)),
    ("Conv2d", (4, 6, 3), dict(stride=2, groups=2, padding="valid")),
    ("Conv2d", (3, 2, (2, 3)), dict(padding="same")),
    ("ConvTranspose2d", (3, 2, 3), dict(stride=2, padding=1, output_padding=1)),
    ("MaxPool2d", (3,), dict(stride=2, padding=1)),
    ("AvgPool2d", (2,), dict(ceil_mode=True)),
    ("AdaptiveAvgPool2d", ((2, None),), {}),
]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("name, args, kwargs", LAYERS, ids=str)
def test_layers_take_one_image_as_pytorch_does(name, args, kwargs):
    pytest.importorskip("torch", reason="the comparison needs PyTorch")
    ours, theirs = getattr(mc.nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    channels = args[0] if name.startswith("Conv") else 3
    x = np.random.default_rng(1).permutation(channels * 7 * 6).reshape(channels, 7, 6) / 9.0
    x = x.astype(np.float32)
    t = Tensor(x, requires_grad=True)
    y = ours(t)
    ty = theirs(torch.from_numpy(x))
    assert y.shape == tuple(ty.shape) and y.ndim == 3
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    y.sum().backward()
    assert t.grad.shape == x.shape
    # the same image as a batch of one gives the same numbers
    np.testing.assert_allclose(ours(Tensor(x[None])).numpy()[0], y.numpy(), rtol=1e-6,
                               atol=1e-6)


def test_max_pool_layer_returns_unbatched_indices():
    y, idx = mc.nn.MaxPool2d(2, return_indices=True)(Tensor(np.arange(32.).reshape(2, 4, 4)))
    assert y.shape == idx.shape == (2, 2, 2)
    np.testing.assert_array_equal(idx.numpy()[0], [[5, 7], [13, 15]])


def test_conv_transpose_layer_output_size_for_one_image():
    up = mc.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1)
    x = Tensor(np.ones((3, 4, 5), np.float32))
    assert up(x).shape == (2, 7, 9)
    assert up(x, output_size=(8, 10)).shape == (2, 8, 10)
    assert up(x, output_size=(2, 8, 10)).shape == (2, 8, 10)
    with pytest.raises(ValueError, match=r"valid sizes range .* along axis 1 for an input of "
                                         r"shape \(3, 4, 5\)"):
        up(x, output_size=(10, 10))


def test_layer_column_bytes_for_one_image_equal_a_batch_of_one():
    conv = mc.nn.Conv2d(3, 8, 3, padding=1)
    assert conv.column_bytes((3, 16, 16)) == conv.column_bytes((1, 3, 16, 16)) > 0
    up = mc.nn.ConvTranspose2d(3, 2, 3, stride=2)
    assert up.column_bytes((3, 8, 8)) == up.column_bytes((1, 3, 8, 8)) > 0


@pytest.mark.parametrize("call, message", [
    (lambda: F.conv2d(Tensor(np.zeros((5, 8, 8))), Tensor(np.zeros((4, 3, 3, 3)))),
     r"conv2d: input has 5 channels but the weight expects 3 .* input shape \(1, 5, 8, 8\)"),
    (lambda: F.conv2d(Tensor(np.zeros((8, 8))), Tensor(np.zeros((4, 3, 3, 3)))),
     r"conv2d: expected a 4-D input \(N, C, H, W\) or one 3-D image \(C, H, W\), got a 2-D input"),
    (lambda: F.conv_transpose2d(Tensor(np.zeros((8,))), Tensor(np.zeros((3, 2, 3, 3)))),
     r"conv_transpose2d: expected a 4-D input"),
    (lambda: F.max_pool2d(Tensor(np.zeros((4, 4))), 2), r"max_pool2d: expected a 4-D input"),
    (lambda: F.avg_pool2d(Tensor(np.zeros((2, 1, 1, 4, 4))), 2), r"avg_pool2d: expected a 4-D"),
    (lambda: F.max_pool2d(Tensor(np.zeros((2, 3, 3))), 5), r"leaves no output"),
])
def test_wrong_ranks_and_sizes_give_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
