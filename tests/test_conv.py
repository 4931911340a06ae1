"""conv2d and conv_transpose2d (minicnn/ops/conv.py, minicnn/engine/) and their layers.

* ``CASES``: each configuration through the shared helper (tests/optest.py): forward against a
  NumPy reference written from the definition, float64 gradient check, PyTorch comparison,
  GPU equals CPU;
* hypothesis-drawn shapes, strides, paddings, kernels, groups and output paddings against PyTorch
  in float32 (forward and every gradient);
* the numba kernels against the NumPy reference kernels inside the op; layout, dtypes, the clear
  errors, the memory predictor and the batch chunking; the layers.

Everything but the PyTorch comparisons runs without PyTorch.
"""
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minicnn as mc
from minicnn.autograd import Tensor
from minicnn.kernels import im2col as kernels
from minicnn.nn import conv as conv_layers
from minicnn.engine import parallel
from minicnn.engine.memory import conv2d_column_bytes, conv_transpose2d_column_bytes
from minicnn.engine.workspace import release_workspace, workspace
from minicnn.ops.conv import Conv2d, ConvTranspose2d, conv2d, conv_transpose2d
from optest import OpCase, inputs, normal, torch
from torch_compare import close_to_torch as _close_to_torch
from torch_compare import run_both as _run_both

CASES = []


@pytest.fixture
def fast_lane():
    """The engine's machinery (numba twins, chunks, worker threads, workspace) runs on the fast
    lane only; the tests that look at it ask for that lane, also under MINICNN_KERNELS=reference
    (where CI runs this file a second time)."""
    with mc.reference_kernels(False):
        yield


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# ---- NumPy references, from the definitions (independent of minicnn) ---------------------------

def conv2d_ref(x, w, b=None, stride=1, padding=0, groups=1):
    """y[n, o, i, j] = b[o] + sum over c (of o's group), kh, kw of
    w[o, c, kh, kw] * x_padded[n, c, i*sH + kh, j*sW + kw]."""
    OC, Cg, KH, KW = w.shape
    if padding == "same":  # PyTorch: (k - 1) // 2 before, the rest after
        (sH, sW), pads = (1, 1), [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in (KH, KW)]
    else:
        (sH, sW), pads = _pair(stride), [(p, p) for p in _pair(padding)]
    xp = np.pad(x, ((0, 0), (0, 0), pads[0], pads[1]))
    N, C, H, W = xp.shape
    OH, OW = (H - KH) // sH + 1, (W - KW) // sW + 1
    OCg = OC // groups
    y = np.zeros((N, OC, OH, OW))
    for g in range(groups):
        for kh in range(KH):
            for kw in range(KW):
                patch = xp[:, g * Cg:(g + 1) * Cg, kh:kh + sH * OH:sH, kw:kw + sW * OW:sW]
                y[:, g * OCg:(g + 1) * OCg] += np.einsum(
                    "nchw,oc->nohw", patch, w[g * OCg:(g + 1) * OCg, :, kh, kw])
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def conv_transpose2d_ref(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1):
    """Every input pixel (i, j) adds w[c, o] times its value to the output window at
    (i*s - p, j*s - p): out[n, o, i*sH - pH + kh, j*sW - pW + kw] += x[n, c, i, j] * w[c, o, kh,
    kw]."""
    (sH, sW), (pH, pW), (oH, oW) = _pair(stride), _pair(padding), _pair(output_padding)
    N, C, H, W = x.shape
    _, OCg, KH, KW = w.shape
    Cg = C // groups
    full = np.zeros((N, OCg * groups, (H - 1) * sH + KH + oH, (W - 1) * sW + KW + oW))
    for g in range(groups):
        for kh in range(KH):
            for kw in range(KW):
                full[:, g * OCg:(g + 1) * OCg, kh:kh + sH * H:sH, kw:kw + sW * W:sW] += np.einsum(
                    "nchw,co->nohw", x[:, g * Cg:(g + 1) * Cg], w[g * Cg:(g + 1) * Cg, :, kh, kw])
    OH, OW = (H - 1) * sH - 2 * pH + KH + oH, (W - 1) * sW - 2 * pW + KW + oW
    y = full[:, :, pH:pH + OH, pW:pW + OW]
    return y if b is None else y + b.reshape(1, -1, 1, 1)


# ---- cases for the shared helper ---------------------------------------------------------------

def conv_case(name, n, c, hw, oc, kernel, stride=1, padding=0, groups=1, bias=True):
    kh, kw = _pair(kernel)
    makers = [normal(n, c, *hw), normal(oc, c // groups, kh, kw)] + ([normal(oc)] if bias else [])

    def fn(x, w, b=None):
        return conv2d(x, w, b, stride, padding, groups=groups)

    def ref(x, w, b=None):
        return conv2d_ref(x, w, b, stride, padding, groups)

    def torch_fn(x, w, b=None):
        return torch.nn.functional.conv2d(x, w, b, stride, padding, groups=groups)

    CASES.append(OpCase(f"conv2d {name}", fn, ref, inputs(*makers), (Conv2d,), torch_fn,
                        fwd_tol=(1e-4, 1e-5)))


def conv_transpose_case(name, n, c, hw, oc, kernel, stride=1, padding=0, output_padding=0,
                        groups=1, bias=True):
    kh, kw = _pair(kernel)
    makers = [normal(n, c, *hw), normal(c, oc // groups, kh, kw)] + ([normal(oc)] if bias else [])

    def fn(x, w, b=None):
        return conv_transpose2d(x, w, b, stride, padding, output_padding, groups)

    def ref(x, w, b=None):
        return conv_transpose2d_ref(x, w, b, stride, padding, output_padding, groups)

    def torch_fn(x, w, b=None):
        return torch.nn.functional.conv_transpose2d(x, w, b, stride, padding, output_padding,
                                                    groups)

    CASES.append(OpCase(f"conv_transpose2d {name}", fn, ref, inputs(*makers),
                        (ConvTranspose2d,), torch_fn, fwd_tol=(1e-4, 1e-5)))


conv_case("3x3 pad 1", 2, 3, (6, 6), 4, 3, padding=1)
conv_case("3x3 no bias", 2, 3, (5, 5), 4, 3, bias=False)
conv_case("3x3 stride 2 pad 1", 2, 3, (7, 6), 4, 3, stride=2, padding=1)
conv_case("non-square 3x2 stride (1,2) pad (1,0)", 2, 2, (6, 7), 3, (3, 2), (1, 2), (1, 0))
conv_case("5x5 pad 2 (LeNet)", 2, 1, (8, 8), 3, 5, padding=2)
# one input channel at stride 1 takes the direct kernels (kernels/direct_conv.py)
conv_case("one channel, non-square kernel, no bias", 3, 1, (5, 7), 2, (2, 3), padding=(0, 1),
          bias=False)
conv_case("one channel, padding wider than the kernel's reach", 1, 1, (3, 4), 2, 3, padding=3)
conv_case("one channel, 1x1", 2, 1, (3, 3), 4, 1)
conv_case("1x1", 2, 4, (3, 4), 3, 1)
conv_case("1x1 stride 2 (ResNet shortcut)", 2, 4, (5, 5), 3, 1, stride=2, bias=False)
conv_case("groups 2 (AlexNet)", 2, 4, (6, 6), 6, 3, padding=1, groups=2)
conv_case("groups 3 stride 2", 1, 6, (7, 7), 3, (2, 3), stride=2, padding=(0, 1), groups=3)
conv_case("padding wider than the kernel's reach", 1, 2, (4, 4), 2, 3, padding=3)
conv_case("kernel as large as the padded input", 2, 2, (3, 3), 2, 5, padding=1)
conv_case("padding 'same', even kernel", 2, 2, (5, 6), 3, (4, 2), padding="same")
conv_transpose_case("2x2 stride 2 (U-Net up-conv)", 2, 4, (3, 3), 3, 2, stride=2)
conv_transpose_case("3x3 stride 2 pad 1 output_padding 1", 2, 3, (4, 3), 2, 3, 2, 1, 1)
conv_transpose_case("3x3 stride 1 pad 1", 2, 3, (4, 5), 2, 3, 1, 1, bias=False)
conv_transpose_case("non-square stride (2,1)", 1, 2, (3, 4), 3, (3, 2), (2, 1), (0, 1), (1, 0))
conv_transpose_case("groups 2", 2, 4, (3, 3), 6, 3, stride=2, padding=1, groups=2)
conv_transpose_case("1x1", 2, 3, (3, 3), 2, 1)


# (the four shared checks run over these CASES in tests/test_ops.py)


def test_the_references_agree_with_each_other():
    # conv_transpose2d is the adjoint of conv2d: <conv2d(x, w), g> == <x, conv_transpose2d(g, w)>
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 4, 7, 6)), rng.standard_normal((6, 2, 3, 2))
    y = conv2d_ref(x, w, None, (2, 1), (1, 1), 2)
    g = rng.standard_normal(y.shape)
    back = conv_transpose2d_ref(g, w, None, (2, 1), (1, 1), (0, 0), 2)[:, :, :7, :6]
    assert np.isclose(np.vdot(y, g), np.vdot(x, back))


# ---- many configurations against PyTorch, float32 ----------------------------------------------



@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), groups=st.integers(1, 3), cin=st.integers(1, 3),
       cout=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), kh=st.integers(1, 5),
       kw=st.integers(1, 5), sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 3),
       pw=st.integers(0, 3), bias=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_conv2d_equals_torch_on_drawn_configurations(n, groups, cin, cout, h, w, kh, kw, sh, sw,
                                                     ph, pw, bias, seed):
    pytest.importorskip("torch", reason="the comparison needs PyTorch")
    assume(h + 2 * ph >= kh and w + 2 * pw >= kw)
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((n, cin * groups, h, w)).astype(np.float32),
              rng.standard_normal((cout * groups, cin, kh, kw)).astype(np.float32)]
    if bias:
        arrays.append(rng.standard_normal(cout * groups).astype(np.float32))
    _run_both(lambda *t: conv2d(*t, stride=(sh, sw), padding=(ph, pw), groups=groups),
              lambda *t: torch.nn.functional.conv2d(*t, stride=(sh, sw), padding=(ph, pw),
                                                    groups=groups), arrays, rng)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), groups=st.integers(1, 3), cin=st.integers(1, 3),
       cout=st.integers(1, 3), h=st.integers(1, 6), w=st.integers(1, 6), kh=st.integers(1, 4),
       kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 2),
       pw=st.integers(0, 2), oh=st.integers(0, 2), ow=st.integers(0, 2), bias=st.booleans(),
       seed=st.integers(0, 2 ** 16))
def test_conv_transpose2d_equals_torch_on_drawn_configurations(n, groups, cin, cout, h, w, kh, kw,
                                                               sh, sw, ph, pw, oh, ow, bias, seed):
    pytest.importorskip("torch", reason="the comparison needs PyTorch")
    assume(oh < sh and ow < sw)
    assume((h - 1) * sh - 2 * ph + kh + oh >= 1 and (w - 1) * sw - 2 * pw + kw + ow >= 1)
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((n, cin * groups, h, w)).astype(np.float32),
              rng.standard_normal((cin * groups, cout, kh, kw)).astype(np.float32)]
    if bias:
        arrays.append(rng.standard_normal(cout * groups).astype(np.float32))
    args = dict(stride=(sh, sw), padding=(ph, pw), output_padding=(oh, ow), groups=groups)
    _run_both(lambda *t: conv_transpose2d(*t, **args),
              lambda *t: torch.nn.functional.conv_transpose2d(*t, **args), arrays, rng)


def test_positional_arguments_follow_pytorch():
    pytest.importorskip("torch", reason="the comparison needs PyTorch")
    rng = np.random.default_rng(10)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((2, 4, 7, 7), (6, 2, 3, 3),
                                                                   (6,)))
    # F.conv2d(input, weight, bias, stride, padding, dilation, groups)
    ours = conv2d(Tensor(x), Tensor(w), Tensor(b), 2, 1, 1, 2).numpy()
    theirs = torch.nn.functional.conv2d(*map(torch.from_numpy, (x, w, b)), 2, 1, 1, 2)
    _close_to_torch(ours, theirs, "conv2d")
    # F.conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation)
    wt = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    ours = conv_transpose2d(Tensor(x), Tensor(wt), Tensor(b), 2, 1, 1, 2, 1).numpy()
    theirs = torch.nn.functional.conv_transpose2d(*map(torch.from_numpy, (x, wt, b)), 2, 1, 1, 2, 1)
    _close_to_torch(ours, theirs, "conv_transpose2d")


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("kernel", [(3, 3), (4, 4), (2, 5), (1, 1)])
def test_padding_same_and_valid_equal_torch(kernel):
    pytest.importorskip("torch", reason="the comparison needs PyTorch")
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((2, 3, 7, 6)).astype(np.float32),
              rng.standard_normal((4, 3) + kernel).astype(np.float32)]
    for padding in ("same", "valid"):
        _run_both(lambda *t: conv2d(*t, padding=padding),
                  lambda *t: torch.nn.functional.conv2d(*t, padding=padding), arrays, rng)
    assert conv2d(Tensor(arrays[0]), Tensor(arrays[1]), padding="same").shape == (2, 4, 7, 6)


# ---- the numba kernels inside the op equal the NumPy reference kernels -------------------------

CONFIGS = [  # (input shape, weight shape, stride, padding, groups)
    ((2, 3, 7, 6), (4, 3, 3, 3), 1, 1, 1),       # stride 1: columns of gy in backward
    ((2, 3, 7, 6), (4, 3, 3, 2), (2, 1), 1, 1),  # strided: col2im in backward
    ((2, 4, 6, 6), (6, 2, 3, 3), 2, 0, 2),       # groups
    ((2, 2, 5, 5), (3, 2, 3, 3), 1, 3, 1),       # padding >= kernel: col2im at stride 1
]


def _conv_and_grads(x, w, b, stride, padding, groups, transposed=False):
    ts = [Tensor(a, requires_grad=True) for a in (x, w, b)]
    y = conv_transpose2d(*ts, stride, padding, 0, groups) if transposed else \
        conv2d(*ts, stride, padding, groups=groups)
    y.backward(np.cos(np.arange(y.size)).reshape(y.shape).astype(x.dtype))
    return [y.numpy()] + [t.grad for t in ts]


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("config", CONFIGS, ids=str)
@pytest.mark.usefixtures("fast_lane")
def test_numba_path_equals_the_reference_kernels(monkeypatch, config, transposed):
    in_shape, w_shape, stride, padding, groups = config
    if transposed:
        in_shape = (in_shape[0], w_shape[0]) + in_shape[2:]
        w_shape = (w_shape[0], w_shape[1] * 1) + w_shape[2:]
        if padding == 3:
            padding = 1
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal(in_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[1] * groups if transposed else w_shape[0])
    fast = _conv_and_grads(x, w, b, stride, padding, groups, transposed)
    calls = []

    def spy(reference):
        def run(*args, **kwargs):
            calls.append(reference.__name__)
            return reference(*args, **kwargs)
        return run

    monkeypatch.setattr(kernels, "im2col", spy(kernels.im2col_reference))
    monkeypatch.setattr(kernels, "col2im", spy(kernels.col2im_reference))
    slow = _conv_and_grads(x, w, b, stride, padding, groups, transposed)
    assert calls, "the op did not go through minicnn.kernels.im2col"
    for f, s in zip(fast, slow):
        np.testing.assert_allclose(f, s, rtol=1e-12, atol=1e-12)


# ---- layout and dtypes -------------------------------------------------------------------------

def test_output_is_nchw_shaped_with_channels_last_memory_and_the_next_conv_copies_nothing():
    rng = np.random.default_rng(3)
    x = Tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32), requires_grad=True)
    w1 = Tensor(rng.standard_normal((5, 3, 3, 3)).astype(np.float32), requires_grad=True)
    w2 = Tensor(rng.standard_normal((4, 5, 3, 3)).astype(np.float32), requires_grad=True)
    y1 = conv2d(x, w1, padding=1)
    assert y1.shape == (2, 5, 8, 8)
    assert y1.data.transpose(0, 2, 3, 1).flags.c_contiguous      # NHWC memory
    y2 = conv2d(mc.nn.functional.relu(y1), w2, padding=1)       # ReLU keeps the layout
    assert np.shares_memory(y2.creator.x, y2.creator.inputs[0].data), \
        "the second conv copied its channels-last input"
    y2.sum().backward()
    for t in (x, w1, w2):
        assert t.grad.dtype == np.float32 and t.grad.shape == t.shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_end_to_end(dtype):
    rng = np.random.default_rng(4)
    ts = [Tensor(rng.standard_normal(s).astype(dtype), requires_grad=True)
          for s in ((2, 4, 6, 6), (4, 2, 3, 3), (4,))]
    for y in (conv2d(*ts, stride=2, padding=1, groups=2),
              conv_transpose2d(*ts, stride=2, padding=1, groups=2)):
        assert y.dtype == dtype
        y.backward(np.ones(y.shape, dtype))
        assert all(t.grad.dtype == dtype for t in ts)
        for t in ts:
            t.grad = None


def test_frozen_input_or_weight_get_no_gradient_and_cost_nothing(monkeypatch):
    rng = np.random.default_rng(5)
    x = Tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32))   # input images: no grad
    w = Tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    y = conv2d(x, w, padding=1)
    grads = y.creator.backward(np.ones(y.shape, np.float32))
    assert grads[0] is None and grads[1].shape == w.shape
    w_frozen = Tensor(w.data)
    x.requires_grad_()
    y = conv2d(x, w_frozen, padding=1)
    grads = y.creator.backward(np.ones(y.shape, np.float32))
    assert grads[0].shape == x.shape and grads[1] is None


def test_no_grad_records_nothing():
    x = Tensor(np.ones((1, 2, 4, 4), np.float32), requires_grad=True)
    w = Tensor(np.ones((3, 2, 3, 3), np.float32), requires_grad=True)
    with mc.no_grad():
        y = conv2d(x, w)
    assert y.creator is None and not y.requires_grad


@pytest.mark.parametrize("stride", [1, 2])
def test_an_empty_batch_gives_an_empty_output_and_zero_weight_gradients(stride):
    x = Tensor(np.zeros((0, 3, 5, 5), np.float32), requires_grad=True)
    w = Tensor(np.ones((4, 3, 3, 3), np.float32), requires_grad=True)
    y = conv2d(x, w, stride=stride)
    assert y.shape == (0, 4, 3 if stride == 1 else 2, 3 if stride == 1 else 2)
    y.backward(np.zeros(y.shape, np.float32))
    assert x.grad.shape == x.shape and (w.grad == 0).all()
    t = conv_transpose2d(Tensor(np.zeros((0, 4, 3, 3), np.float32), requires_grad=True), w,
                         stride=stride)
    t.backward(np.zeros(t.shape, np.float32))


# ---- clear errors, before any array work -------------------------------------------------------

@pytest.fixture
def no_array_work(monkeypatch):
    """Fail loudly if an op gets as far as its forward pass."""
    def forward(self, *arrays):
        raise AssertionError("the error came after the array work started")
    monkeypatch.setattr(Conv2d, "forward", forward)
    monkeypatch.setattr(ConvTranspose2d, "forward", forward)


def _t(*shape, dtype=np.float32):
    return Tensor(np.zeros(shape, dtype))


@pytest.mark.parametrize("call, error, message", [
    (lambda: conv2d(_t(1, 1, 3, 8, 8), _t(4, 3, 3, 3)), ValueError,
     r"conv2d: expected a 4-D input \(N, C, H, W\) or one 3-D image \(C, H, W\), got a 5-D input of shape \(1, 1, 3, 8, 8\)"),
    (lambda: conv2d(_t(5, 8, 8), _t(4, 3, 3, 3)), ValueError,   # one image, wrong channels
     r"conv2d: input has 5 channels but the weight expects 3"),
    (lambda: conv2d(_t(1, 3, 8, 8), _t(4, 3, 3)), ValueError,
     r"conv2d: expected a 4-D weight \(C_out, C_in/groups, kH, kW\)"),
    (lambda: conv2d(_t(2, 5, 8, 8), _t(4, 3, 3, 3)), ValueError,
     r"conv2d: input has 5 channels but the weight expects 3 \(weight shape \(4, 3, 3, 3\)"),
    (lambda: conv2d(_t(2, 6, 8, 8), _t(4, 2, 3, 3), groups=2), ValueError,
     r"input has 6 channels but the weight expects 2 \* groups=2 = 4"),
    (lambda: conv2d(_t(2, 5, 8, 8), _t(4, 1, 3, 3), groups=2), ValueError,
     r"the input's 5 channels are not divisible by groups=2"),
    (lambda: conv2d(_t(2, 4, 8, 8), _t(5, 2, 3, 3), groups=2), ValueError,
     r"the weight's 5 output channels .* not divisible by groups=2"),
    (lambda: conv2d(_t(2, 4, 8, 8), _t(4, 4, 3, 3), groups=0), ValueError,
     r"groups must be a positive int"),
    (lambda: conv2d(_t(1, 3, 4, 4), _t(2, 3, 7, 7), padding=1), ValueError,
     r"the 7x7 kernel is larger than the padded input 6x6 .* leaves no output"),
    (lambda: conv2d(_t(1, 3, 8, 8), _t(2, 3, 3, 3), stride=0), ValueError,
     r"stride must be positive, got \(0, 0\)"),
    (lambda: conv2d(_t(1, 3, 8, 8), _t(2, 3, 3, 3), stride=(1, -2)), ValueError,
     r"stride must be positive"),
    (lambda: conv2d(_t(1, 3, 8, 8), _t(2, 3, 3, 3), padding=-1), ValueError,
     r"padding must be non-negative, got \(-1, -1\)"),
    (lambda: conv2d(_t(1, 3, 8, 8), _t(2, 3, 3, 3), padding="full"), ValueError,
     r"padding must be an int, a pair, 'same' or 'valid'"),
    (lambda: conv2d(_t(1, 3, 8, 8), _t(2, 3, 3, 3), stride=2, padding="same"), ValueError,
     r"padding='same' is not supported for strided"),
    (lambda: conv2d(_t(1, 3, 8, 8), _t(2, 3, 3, 3), stride=1.5), TypeError,
     r"stride must be an int or a pair of ints, got 1.5"),
    (lambda: conv2d(_t(1, 3, 8, 8, dtype=np.float64), _t(2, 3, 3, 3)), TypeError,
     r"conv2d: the input is float64 but the weight is float32; they must match\. Convert the "
     r"input \(x\.float\(\) for float32"),
    (lambda: conv2d(_t(1, 3, 8, 8), _t(2, 3, 3, 3), _t(2, dtype=np.float64)), TypeError,
     r"the input is float32 but the bias is float64"),
    (lambda: conv2d(_t(1, 3, 8, 8, dtype=np.int64), _t(2, 3, 3, 3, dtype=np.int64)), TypeError,
     r"the input must be float32 or float64, got int64"),
    (lambda: conv2d(_t(1, 3, 8, 8), _t(2, 3, 3, 3), _t(3)), ValueError,
     r"bias must have shape \(2,\)"),
    (lambda: conv_transpose2d(_t(2, 5, 4, 4), _t(3, 2, 2, 2)), ValueError,
     r"conv_transpose2d: input has 5 channels but the weight expects 3 \(weight shape "
     r"\(3, 2, 2, 2\) is \(C_in, C_out/groups, kH, kW\)"),
    (lambda: conv_transpose2d(_t(2, 3, 4, 4), _t(3, 2, 3, 3), stride=2, output_padding=2),
     ValueError, r"output_padding must be non-negative and smaller than the stride"),
    (lambda: conv_transpose2d(_t(1, 3, 1, 1), _t(3, 2, 2, 2), padding=1), ValueError,
     r"leaves no output"),
    (lambda: conv_transpose2d(_t(1, 3, 4, 4), _t(3, 2, 2, 2), stride=0), ValueError,
     r"stride must be positive"),
    (lambda: conv_transpose2d(_t(4, 4), _t(3, 2, 2, 2)), ValueError,
     r"conv_transpose2d: expected a 4-D input"),
    (lambda: conv2d(_t(1, 3, 8, 8), _t(2, 3, 3, 3), dilation=0), ValueError,
     r"conv2d: dilation should be greater than zero, but got \(0, 0\)"),
    (lambda: conv2d(_t(1, 3, 8, 8), _t(2, 3, 3, 3), dilation=(1, -2)), ValueError,
     r"conv2d: dilation should be greater than zero, but got \(1, -2\)"),
    (lambda: conv2d(_t(1, 3, 8, 8), _t(2, 3, 3, 3), dilation=1.5), TypeError,
     r"conv2d: dilation must be an int or a pair of ints, got 1.5"),
    (lambda: conv2d(_t(1, 3, 4, 4), _t(2, 3, 3, 3), dilation=3), ValueError,
     r"the 3x3 kernel with dilation \(3, 3\) \(spanning 7x7\) is larger than the padded input "
     r"4x4"),
    (lambda: conv_transpose2d(_t(1, 3, 8, 8), _t(3, 2, 3, 3), dilation=(2, 0)), ValueError,
     r"conv_transpose2d: dilation should be greater than zero, but got \(2, 0\)"),
    (lambda: conv_transpose2d(_t(1, 3, 4, 4), _t(3, 2, 3, 3), stride=2, dilation=3,
                              output_padding=3), ValueError,
     r"output_padding must be non-negative and smaller than the stride or the dilation"),
])
def test_bad_arguments_give_clear_errors_before_any_array_work(no_array_work, call, error,
                                                               message):
    with pytest.raises(error, match=message):
        call()


class _FakeGpuArray(np.ndarray):
    """Looks like a CuPy array to minicnn.backend (its type lives in a 'cupy...' module)."""


_FakeGpuArray.__module__ = "cupy._fake"


def test_tensors_on_different_devices_give_a_clear_error(no_array_work):
    x = Tensor._wrap(np.zeros((1, 3, 8, 8), np.float32).view(_FakeGpuArray), False)
    assert x.device == "cuda"
    with pytest.raises(RuntimeError, match=r"conv2d: the tensors are on different devices "
                                           r"\(input on cuda, weight on cpu\); move them"):
        conv2d(x, _t(2, 3, 3, 3))
    with pytest.raises(RuntimeError, match="conv_transpose2d: the tensors are on different"):
        conv_transpose2d(x, _t(3, 2, 3, 3))


# ---- memory: the predictor, the chunks, the limit ----------------------------------------------

MEMORY_CONFIGS = [  # (transposed, input shape, weight shape, stride, padding, groups)
    (False, (6, 3, 10, 10), (8, 3, 3, 3), 1, 1, 1),
    (False, (6, 4, 9, 8), (6, 4, 3, 2), 2, 1, 1),
    (False, (5, 4, 8, 8), (6, 2, 3, 3), 1, 0, 2),
    (False, (4, 4, 6, 6), (5, 4, 1, 1), 1, 0, 1),          # 1x1: no buffer at all
    (False, (4, 3, 5, 5), (2, 3, 3, 3), 1, 3, 1),          # padding >= kernel: col2im
    (True, (6, 4, 5, 5), (4, 3, 2, 2), 2, 0, 1),
    (True, (6, 4, 5, 5), (4, 3, 3, 3), 1, 1, 1),
    (True, (5, 4, 5, 4), (4, 2, 3, 3), 2, 1, 2),
]


def _forward_backward(transposed, in_shape, w_shape, stride, padding, groups, dtype=np.float64):
    rng = np.random.default_rng(6)
    x = Tensor(rng.standard_normal(in_shape).astype(dtype), requires_grad=True)
    w = Tensor(rng.standard_normal(w_shape).astype(dtype), requires_grad=True)
    b = Tensor(rng.standard_normal(w_shape[1] * groups if transposed else w_shape[0])
               .astype(dtype), requires_grad=True)
    y = conv_transpose2d(x, w, b, stride, padding, 0, groups) if transposed else \
        conv2d(x, w, b, stride, padding, groups=groups)
    y.backward(rng.standard_normal(y.shape).astype(dtype))
    return [y.numpy(), x.grad, w.grad, b.grad]


def _predict(transposed, in_shape, w_shape, stride, padding, groups, dtype=np.float64):
    if transposed:
        return conv_transpose2d_column_bytes(in_shape, w_shape, stride, padding, 0, groups,
                                             dtype)
    return conv2d_column_bytes(in_shape, w_shape, stride, padding, groups, dtype)


@pytest.mark.parametrize("chunk", [1 << 30, 3000, 1])
@pytest.mark.parametrize("config", MEMORY_CONFIGS, ids=str)
@pytest.mark.usefixtures("fast_lane")
def test_predicted_column_bytes_equal_the_buffer_used(monkeypatch, config, chunk):
    monkeypatch.setattr(parallel, "chunk_bytes", chunk)
    monkeypatch.setattr(parallel, "num_threads", 1)   # one buffer: the prediction is exact
    release_workspace()
    _forward_backward(*config)
    assert workspace.total_bytes() == workspace.largest_bytes == \
        _predict(*config)
    release_workspace()


@pytest.mark.parametrize("config", MEMORY_CONFIGS, ids=str)
@pytest.mark.usefixtures("fast_lane")
def test_with_worker_threads_the_prediction_bounds_all_buffers(monkeypatch, config):
    monkeypatch.setattr(parallel, "num_threads", 2)
    monkeypatch.setattr(parallel, "parallel_min_bytes", 0)
    monkeypatch.setattr(parallel, "chunk_bytes", 3000)
    release_workspace()
    _forward_backward(*config)
    # a worker that got no chunk holds no buffer: the prediction is the upper bound
    assert 0 < workspace.total_bytes() <= _predict(*config) or _predict(*config) == 0
    release_workspace()


@pytest.mark.parametrize("config", MEMORY_CONFIGS, ids=str)
@pytest.mark.usefixtures("fast_lane")
def test_chunked_and_unchunked_results_are_the_same(monkeypatch, config):
    monkeypatch.setattr(parallel, "chunk_bytes", 1 << 40)
    monkeypatch.setattr(parallel, "num_threads", 1)
    whole = _forward_backward(*config)
    monkeypatch.setattr(parallel, "chunk_bytes", 1)   # one image per chunk ...
    monkeypatch.setattr(parallel, "num_threads", 2)   # ... on two worker threads
    monkeypatch.setattr(parallel, "parallel_min_bytes", 0)
    chunked = _forward_backward(*config)
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.usefixtures("fast_lane")
def test_results_do_not_depend_on_which_thread_ran_which_chunk(monkeypatch):
    monkeypatch.setattr(parallel, "chunk_bytes", 1)
    monkeypatch.setattr(parallel, "num_threads", 2)
    monkeypatch.setattr(parallel, "parallel_min_bytes", 0)
    config = (False, (9, 4, 7, 7), (5, 4, 3, 3), 1, 1, 1)
    release_workspace()
    first = _forward_backward(*config, dtype=np.float32)
    for _ in range(50):     # the caller takes chunks too: it may finish before the helper starts
        if any(key[0] != threading.get_ident() for key in workspace.buffers):
            break
        _forward_backward(*config, dtype=np.float32)
    assert any(key[0] != threading.get_ident() for key in workspace.buffers), \
        "no chunk ran on a worker thread"
    for _ in range(3):
        for a, b in zip(first, _forward_backward(*config, dtype=np.float32)):
            np.testing.assert_array_equal(a, b)   # bitwise: partial sums are added in order


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.usefixtures("fast_lane")
def test_the_memory_limit_bounds_all_buffers_together(monkeypatch, threads):
    monkeypatch.setattr(parallel, "chunk_bytes", 1 << 40)           # only the limit cuts
    monkeypatch.setattr(parallel, "max_column_bytes", 100_000)
    monkeypatch.setattr(parallel, "num_threads", threads)
    monkeypatch.setattr(parallel, "parallel_min_bytes", 0)
    release_workspace()
    config = (False, (16, 8, 12, 12), (8, 8, 3, 3), 1, 1, 1)
    one_image = 12 * 12 * 72 * 4
    unbounded = conv2d_column_bytes(*config[1:], dtype=np.float32, chunked=False)
    assert unbounded > 5 * 100_000
    _forward_backward(*config, dtype=np.float32)
    assert workspace.total_bytes() <= 100_000
    assert workspace.largest_bytes == (100_000 // threads // one_image) * one_image
    release_workspace()


def test_vgg16_conv1_2_needs_3_7_gb_unchunked_and_one_image_chunked():
    shape, weight = (32, 64, 224, 224), (64, 64, 3, 3)
    whole = conv2d_column_bytes(shape, weight, 1, 1, chunked=False, backward=False)
    assert whole == 32 * 224 * 224 * 64 * 9 * 4 > 3.6e9
    chunked = conv2d_column_bytes(shape, weight, 1, 1)
    assert chunked == parallel.parallel.workers(np) * whole // 32 <= parallel.max_column_bytes
    assert conv2d_column_bytes((8, 64, 56, 56), (64, 64, 1, 1)) == 0


def test_the_limit_can_be_set_from_the_environment():
    code = "import minicnn.engine.parallel as c; print(c.max_column_bytes)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"MINICNN_CONV_MAX_COLUMN_MB": "64", "PATH": ""})
    assert int(out.stdout) == 64 * 2 ** 20


@pytest.mark.usefixtures("fast_lane")
def test_workspace_is_reused_and_never_aliased_by_results(monkeypatch):
    monkeypatch.setattr(parallel, "num_threads", 1)
    rng = np.random.default_rng(7)
    x = Tensor(rng.standard_normal((4, 3, 8, 8)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    y1 = conv2d(x, w, padding=1)
    first = y1.numpy().copy()
    buffers = {k: id(v) for k, v in workspace.buffers.items()}
    y2 = conv2d(x * 2.0, w, padding=1)                             # reuses the buffer ...
    assert {k: id(v) for k, v in workspace.buffers.items()} == buffers
    np.testing.assert_array_equal(y1.numpy(), first)              # ... without touching y1
    for array in (y1.data, y2.data):
        for buffer in workspace.buffers.values():
            assert not np.shares_memory(array, buffer)


@pytest.mark.usefixtures("fast_lane")
def test_a_resnet20_sized_stack_runs_within_the_memory_it_predicts():
    """19 conv layers (ResNet-20's, batch 128) with batch norm and ReLU, forward + backward:
    the only column buffer is the shared workspace, as large as the largest prediction."""
    from minicnn.ops.normalization import batch_norm
    layers = [(3, 16, 1)] + [(16, 16, 1)] * 6 + [(16, 32, 2)] + [(32, 32, 1)] * 5 + \
        [(32, 64, 2)] + [(64, 64, 1)] * 5
    rng = np.random.default_rng(8)
    release_workspace()
    x = Tensor(rng.standard_normal((128, 3, 32, 32)).astype(np.float32))
    weights, predicted, h = [], [], x
    for cin, cout, stride in layers:
        w = Tensor((rng.standard_normal((cout, cin, 3, 3)) * 0.2).astype(np.float32),
                   requires_grad=True)
        predicted.append(conv2d_column_bytes(h.shape, w.shape, stride, 1))
        h = conv2d(h, w, stride=stride, padding=1)
        h = mc.nn.functional.relu(batch_norm(h, None, None, training=True))
        weights.append(w)
    h.mean().backward()
    assert workspace.largest_bytes <= parallel.chunk_bytes
    assert workspace.total_bytes() <= max(predicted)
    assert all(w.grad.dtype == np.float32 and np.isfinite(w.grad).all() for w in weights)
    release_workspace()


# ---- the layers --------------------------------------------------------------------------------

LAYERS = [  # (class name, args, kwargs)
    ("Conv2d", (3, 16, 3), dict(padding=1, bias=False)),
    ("Conv2d", (4, 8, (3, 5)), dict(stride=(2, 1), padding=(1, 2), groups=2)),
    ("Conv2d", (3, 6, 4), dict(padding="same")),
    ("Conv2d", (3, 6, 3), dict(padding="valid")),
    ("Conv2d", (1, 6, 5), dict(padding=2)),
    ("ConvTranspose2d", (4, 8, 2), dict(stride=2)),
    ("ConvTranspose2d", (4, 8, 3), dict(stride=2, padding=1, output_padding=1, groups=2,
                                        bias=False)),
]


@pytest.mark.parametrize("name, args, kwargs", LAYERS, ids=str)
def test_layers_match_torch_in_parameters_repr_and_output(name, args, kwargs):
    pytest.importorskip("torch", reason="the comparison needs PyTorch")
    ours, theirs = getattr(mc.nn.conv, name)(*args, **kwargs), \
        getattr(torch.nn, name)(*args, **kwargs)
    assert repr(ours) == repr(theirs)
    assert [(k, tuple(v.shape)) for k, v in ours.named_parameters()] == \
        [(k, tuple(v.shape)) for k, v in theirs.named_parameters()]
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(9).standard_normal((2, args[0], 7, 6)).astype(np.float32)
    np.testing.assert_allclose(ours(Tensor(x)).numpy(), theirs(torch.from_numpy(x)).detach(),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name, args, kwargs", LAYERS, ids=str)
def test_layers_are_initialised_like_pytorch(name, args, kwargs):
    mc.manual_seed(0)
    layer = getattr(mc.nn.conv, name)(*args, **kwargs)
    fan_in = layer.weight.shape[1] * layer.weight.shape[2] * layer.weight.shape[3]
    bound = 1 / np.sqrt(fan_in)
    w = layer.weight.numpy()
    assert w.dtype == np.float32 and np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.8 * bound and w.std() > 0.4 * bound      # uniform, not tiny
    if layer.bias is not None:
        assert np.abs(layer.bias.numpy()).max() <= bound


def test_layer_options():
    layer = conv_layers.Conv2d(2, 4, 3, dtype=np.float64)
    assert layer.weight.dtype == np.float64 and layer.bias.dtype == np.float64
    with pytest.raises(ValueError, match="Conv2d: dilation should be greater than zero"):
        conv_layers.Conv2d(2, 4, 3, dilation=0)
    with pytest.raises(ValueError, match="ConvTranspose2d: dilation should be greater than zero"):
        conv_layers.ConvTranspose2d(2, 4, 3, dilation=(1, 0))
    with pytest.raises(NotImplementedError, match="padding_mode"):
        conv_layers.Conv2d(2, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="divisible by groups"):
        conv_layers.Conv2d(3, 4, 3, groups=2)
    up = conv_layers.ConvTranspose2d(4, 2, 3, stride=2, padding=1)
    x = Tensor(np.ones((1, 4, 5, 5), np.float32))
    assert up(x).shape == (1, 2, 9, 9)
    assert up(x, output_size=(10, 10)).shape == (1, 2, 10, 10)
    with pytest.raises(ValueError, match="valid sizes range"):
        up(x, output_size=(12, 12))
    assert conv_layers.Conv2d(64, 64, 3, padding=1).column_bytes((8, 64, 56, 56)) == \
        conv2d_column_bytes((8, 64, 56, 56), (64, 64, 3, 3), 1, 1)
    assert up.column_bytes((1, 4, 5, 5)) == \
        conv_transpose2d_column_bytes((1, 4, 5, 5), (4, 2, 3, 3), 2, 1)


def test_gpu_arrays_get_one_large_chunk_cpu_arrays_cache_sized_ones():
    """On the CPU the columns are cut into cache-sized chunks; on a GPU (any array module other
    than NumPy) the whole batch is one launch unless it exceeds ``max_column_bytes``."""
    import types

    per_image = 1 << 20  # 1 MiB of columns per image
    step, chunks, _ = parallel.chunking(np, 128, per_image)
    assert step * per_image <= parallel.chunk_bytes and chunks == -(-128 // step)
    fake_gpu = types.SimpleNamespace(__name__="cupy")
    assert parallel.chunking(fake_gpu, 128, per_image) == (128, 1, 1)
    huge = parallel.max_column_bytes // 2 + 1  # two images no longer fit
    assert parallel.chunking(fake_gpu, 5, huge) == (1, 5, 1)


def test_parallel_run_returns_results_in_task_order_from_both_threads(monkeypatch):
    monkeypatch.setattr(parallel, "num_threads", 2)
    ran_on = {}

    def task(i):
        ran_on[i] = threading.get_ident()
        time.sleep(0.002)         # long enough that the helper thread takes some tasks
        return i * i

    assert parallel.parallel.run(task, 20, 2) == [i * i for i in range(20)]
    assert sorted(ran_on) == list(range(20))                      # every task ran exactly once
    assert len(set(ran_on.values())) == 2                         # the caller and one helper


def test_parallel_run_raises_a_tasks_error_after_every_thread_stopped(monkeypatch):
    monkeypatch.setattr(parallel, "num_threads", 2)
    started, running = [], []

    def task(i):
        started.append(i)
        running.append(i)
        time.sleep(0.002)
        running.remove(i)
        if i == 3:
            raise ValueError("task 3 failed")
        return i

    with pytest.raises(ValueError, match="task 3 failed"):
        parallel.parallel.run(task, 200, 2)
    assert running == []                 # nothing still running when the error reached us
    assert len(started) < 200            # the others stopped taking tasks after the failure
    assert parallel.parallel.run(lambda i: i, 5, 2) == list(range(5))   # still usable
