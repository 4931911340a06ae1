"""Dilation (atrous convolution): ``conv2d``, ``conv_transpose2d``, ``max_pool2d`` and their layers.

A dilated window keeps its ``k`` taps but puts them ``d`` pixels apart, spanning ``d*(k-1) + 1``.

* ``CASES``: each configuration through the shared helper (tests/optest.py, run by
  tests/test_ops.py): forward against the plain NumPy references below (written from the
  definition, one tap at a time), float64 gradient check, PyTorch, GPU equals CPU;
* hypothesis-drawn dilations, strides, paddings, groups and unbatched shapes against PyTorch
  (forward and every gradient; max pooling's indices too);
* the engine's paths (the dense special cases untouched, dilated convolutions through the
  flipped-kernel or col2im input gradient, both equal), the memory predictor, ``mc.summary``;
* the layers (repr, state_dict and outputs as PyTorch's) and the clear errors.

Kernel-level twins (numba, CUDA in the host harness) are in tests/test_kernels_im2col.py,
tests/test_kernels_pooling.py and tests/test_cuda_kernels.py; both lanes in
tests/test_reference_lane.py.
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minicnn as mc
from minicnn.autograd import Tensor
from minicnn.engine import conv as engine
from minicnn.engine import parallel
from minicnn.engine.memory import conv2d_column_bytes, conv_transpose2d_column_bytes
from minicnn.engine.workspace import release_workspace, workspace
from minicnn.ops.conv import Conv2d, ConvTranspose2d, conv2d, conv_transpose2d
from minicnn.ops.pooling import MaxPool2d, max_pool2d
from optest import OpCase, distinct, inputs, normal, torch
from torch_compare import close_to_torch as _close
from torch_compare import run_both as _run_both

CASES = []


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


@pytest.fixture
def fast_lane():
    """The engine's fast paths, also where CI runs the suite with MINICNN_KERNELS=reference."""
    with mc.reference_kernels(False):
        yield


# ---- NumPy references from the definitions (independent of minicnn) ---------------------------

def dilated_conv2d_ref(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """y[n, o, i, j] = b[o] + sum over c (of o's group), kh, kw of
    w[o, c, kh, kw] * x_padded[n, c, i*sH + kh*dH, j*sW + kw*dW]."""
    (sH, sW), (pH, pW), (dH, dW) = _pair(stride), _pair(padding), _pair(dilation)
    OC, Cg, KH, KW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pH, pH), (pW, pW)))
    N, C, H, W = xp.shape
    OH, OW = (H - dH * (KH - 1) - 1) // sH + 1, (W - dW * (KW - 1) - 1) // sW + 1
    OCg = OC // groups
    y = np.zeros((N, OC, OH, OW))
    for g in range(groups):
        for kh in range(KH):
            for kw in range(KW):
                tap = xp[:, g * Cg:(g + 1) * Cg, kh * dH:kh * dH + sH * (OH - 1) + 1:sH,
                         kw * dW:kw * dW + sW * (OW - 1) + 1:sW]
                y[:, g * OCg:(g + 1) * OCg] += np.einsum("nchw,oc->nohw", tap,
                                                         w[g * OCg:(g + 1) * OCg, :, kh, kw])
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def dilated_conv_transpose2d_ref(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1,
                                 dilation=1):
    """Every input pixel (i, j) adds w[c, o, kh, kw] times its value to output pixel
    (i*sH - pH + kh*dH, j*sW - pW + kw*dW)."""
    (sH, sW), (pH, pW) = _pair(stride), _pair(padding)
    (oH, oW), (dH, dW) = _pair(output_padding), _pair(dilation)
    N, C, H, W = x.shape
    _, OCg, KH, KW = w.shape
    Cg = C // groups
    OH = (H - 1) * sH - 2 * pH + dH * (KH - 1) + oH + 1
    OW = (W - 1) * sW - 2 * pW + dW * (KW - 1) + oW + 1
    full = np.zeros((N, OCg * groups, OH + 2 * pH, OW + 2 * pW))
    for g in range(groups):
        for kh in range(KH):
            for kw in range(KW):
                full[:, g * OCg:(g + 1) * OCg, kh * dH:kh * dH + sH * (H - 1) + 1:sH,
                     kw * dW:kw * dW + sW * (W - 1) + 1:sW] += np.einsum(
                    "nchw,co->nohw", x[:, g * Cg:(g + 1) * Cg], w[g * Cg:(g + 1) * Cg, :, kh, kw])
    y = full[:, :, pH:pH + OH, pW:pW + OW]
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def dilated_max_pool2d_ref(x, kernel, stride, padding, dilation, ceil_mode=False):
    """Each output: the max over the window's taps that are real input pixels, one at a time."""
    (kH, kW), (sH, sW), (pH, pW), (dH, dW) = (_pair(kernel), _pair(stride), _pair(padding),
                                              _pair(dilation))
    N, C, H, W = x.shape

    def size(n, k, s, p, d):
        reach = n + 2 * p - d * (k - 1) - 1
        out = (-(-reach // s) if ceil_mode else reach // s) + 1
        return out - 1 if ceil_mode and (out - 1) * s >= n + p else out

    OH, OW = size(H, kH, sH, pH, dH), size(W, kW, sW, pW, dW)
    y = np.empty((N, C, OH, OW))
    for i in range(OH):
        for j in range(OW):
            rows = [r for r in range(i * sH - pH, i * sH - pH + dH * (kH - 1) + 1, dH)
                    if 0 <= r < H]
            cols = [c for c in range(j * sW - pW, j * sW - pW + dW * (kW - 1) + 1, dW)
                    if 0 <= c < W]
            y[:, :, i, j] = x[:, :, rows][:, :, :, cols].max(axis=(2, 3))
    return y


def test_the_references_agree_with_each_other():
    # conv_transpose2d is conv2d's adjoint, dilated too: <conv2d(x, w), g> == <x, conv_t(g, w)>
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 4, 9, 8)), rng.standard_normal((6, 2, 3, 2))
    y = dilated_conv2d_ref(x, w, None, (2, 1), (1, 2), (2, 3), 2)
    g = rng.standard_normal(y.shape)
    back = dilated_conv_transpose2d_ref(g, w, None, (2, 1), (1, 2), 0, 2, (2, 3))
    back = np.pad(back, ((0, 0), (0, 0), (0, 9 - back.shape[2]), (0, 8 - back.shape[3])))
    assert np.isclose(np.vdot(y, g), np.vdot(x, back))


# ---- cases for the shared helper ---------------------------------------------------------------

def conv_case(name, n, c, hw, oc, kernel, stride=1, padding=0, dilation=1, groups=1, bias=True):
    kh, kw = _pair(kernel)
    shape = (n, c, *hw) if n else (c, *hw)            # n = 0: one image, no batch axis
    makers = [normal(*shape), normal(oc, c // groups, kh, kw)] + ([normal(oc)] if bias else [])

    def fn(x, w, b=None):
        return conv2d(x, w, b, stride, padding, dilation, groups)

    def ref(x, w, b=None):
        if padding == "same":
            total = [d * (k - 1) for k, d in zip((kh, kw), _pair(dilation))]
            x = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(t // 2, t - t // 2) for t in total])
            pad_ = 0
        else:
            pad_ = padding
        batch = x if x.ndim == 4 else x[None]
        y = dilated_conv2d_ref(batch, w, b, stride, pad_, dilation, groups)
        return y if x.ndim == 4 else y[0]

    def torch_fn(x, w, b=None):
        return torch.nn.functional.conv2d(x, w, b, stride, padding, dilation, groups)

    CASES.append(OpCase(f"dilated conv2d {name}", fn, ref, inputs(*makers), (Conv2d,), torch_fn,
                        fwd_tol=(1e-4, 1e-5)))


def conv_transpose_case(name, n, c, hw, oc, kernel, stride=1, padding=0, output_padding=0,
                        dilation=1, groups=1, bias=True):
    kh, kw = _pair(kernel)
    shape = (n, c, *hw) if n else (c, *hw)
    makers = [normal(*shape), normal(c, oc // groups, kh, kw)] + ([normal(oc)] if bias else [])

    def fn(x, w, b=None):
        return conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation)

    def ref(x, w, b=None):
        batch = x if x.ndim == 4 else x[None]
        y = dilated_conv_transpose2d_ref(batch, w, b, stride, padding, output_padding, groups,
                                         dilation)
        return y if x.ndim == 4 else y[0]

    def torch_fn(x, w, b=None):
        return torch.nn.functional.conv_transpose2d(x, w, b, stride, padding, output_padding,
                                                    groups, dilation)

    CASES.append(OpCase(f"dilated conv_transpose2d {name}", fn, ref, inputs(*makers),
                        (ConvTranspose2d,), torch_fn, fwd_tol=(1e-4, 1e-5)))


def max_pool_case(name, shape, kernel, stride, padding, dilation, ceil_mode=False):
    def fn(x):
        return max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)

    def ref(x):
        batch = x if x.ndim == 4 else x[None]
        y = dilated_max_pool2d_ref(batch, kernel, stride, padding, dilation, ceil_mode)
        return y if x.ndim == 4 else y[0]

    def torch_fn(x):
        return torch.nn.functional.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)

    CASES.append(OpCase(f"dilated max_pool2d {name}", fn, ref, inputs(distinct(*shape)),
                        (MaxPool2d,), torch_fn))


conv_case("3x3 d2 p2 (flipped-kernel gx)", 2, 3, (7, 6), 4, 3, padding=2, dilation=2)
conv_case("3x3 d(2,3) s2 p1 (col2im gx)", 2, 3, (9, 10), 4, 3, 2, 1, (2, 3))
conv_case("groups 2, d3", 2, 4, (8, 8), 6, 3, padding=3, dilation=3, groups=2)
conv_case("one channel, d2 (not the direct kernels)", 2, 1, (7, 7), 3, 3, padding=1,
          dilation=2)
conv_case("'same' with an odd total padding", 2, 2, (6, 7), 3, (2, 3), padding="same",
          dilation=(3, 2))
conv_case("1x1, d4 (no gaps)", 2, 3, (4, 5), 2, 1, dilation=4, bias=False)
conv_case("padding >= span (col2im at stride 1)", 1, 2, (4, 4), 2, 2, padding=3, dilation=2)
conv_case("dilation along the rows only, unbatched", 0, 3, (8, 6), 4, (3, 2), 1, (2, 0),
          (2, 1))
conv_transpose_case("2x2 s2 d2", 2, 3, (3, 4), 2, 2, stride=2, dilation=2)
conv_transpose_case("3x3 s1 p2 d2 groups 2", 2, 4, (4, 4), 6, 3, 1, 2, 0, 2, 2)
conv_transpose_case("output_padding >= stride (below the dilation)", 1, 2, (3, 3), 3, 3, 1, 1,
                    2, 3, bias=False)
conv_transpose_case("3x3 s2 p1 op1 d(2,3), unbatched", 0, 3, (4, 3), 2, 3, 2, 1, 1, (2, 3))
max_pool_case("3x3 s1 p1 d2", (2, 3, 9, 8), 3, 1, 1, 2)
max_pool_case("(3,2) s(2,3) p1 d(2,3) ceil_mode", (2, 2, 10, 11), (3, 2), (2, 3), 1, (2, 3),
              True)
max_pool_case("2x2 d3, unbatched", (3, 7, 7), 2, 1, 0, 3)


# (the four shared checks run over these CASES in tests/test_ops.py)


# ---- drawn configurations against PyTorch, float32 ---------------------------------------------



@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 2), groups=st.integers(1, 2), cin=st.integers(1, 3),
       cout=st.integers(1, 3), h=st.integers(1, 10), w=st.integers(1, 10), kh=st.integers(1, 4),
       kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 4),
       pw=st.integers(0, 4), dh=st.integers(1, 4), dw=st.integers(1, 4), bias=st.booleans(),
       seed=st.integers(0, 2 ** 16))
def test_dilated_conv2d_equals_torch_on_drawn_configurations(n, groups, cin, cout, h, w, kh, kw,
                                                             sh, sw, ph, pw, dh, dw, bias, seed):
    pytest.importorskip("torch", reason="the comparison needs PyTorch")
    assume(h + 2 * ph >= dh * (kh - 1) + 1 and w + 2 * pw >= dw * (kw - 1) + 1)
    rng = np.random.default_rng(seed)
    shape = (n, cin * groups, h, w) if n else (cin * groups, h, w)     # n = 0: unbatched
    arrays = [rng.standard_normal(shape).astype(np.float32),
              rng.standard_normal((cout * groups, cin, kh, kw)).astype(np.float32)]
    if bias:
        arrays.append(rng.standard_normal(cout * groups).astype(np.float32))
    args = dict(stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=groups)
    _run_both(lambda *t: conv2d(*t, **args),
              lambda *t: torch.nn.functional.conv2d(*t, **args), arrays, rng)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 2), groups=st.integers(1, 2), cin=st.integers(1, 3),
       cout=st.integers(1, 3), h=st.integers(1, 6), w=st.integers(1, 6), kh=st.integers(1, 4),
       kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 3),
       pw=st.integers(0, 3), oh=st.integers(0, 3), ow=st.integers(0, 3), dh=st.integers(1, 4),
       dw=st.integers(1, 4), bias=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_dilated_conv_transpose2d_equals_torch_on_drawn_configurations(
        n, groups, cin, cout, h, w, kh, kw, sh, sw, ph, pw, oh, ow, dh, dw, bias, seed):
    pytest.importorskip("torch", reason="the comparison needs PyTorch")
    assume(oh < max(sh, dh) and ow < max(sw, dw))
    assume((h - 1) * sh - 2 * ph + dh * (kh - 1) + oh + 1 >= 1)
    assume((w - 1) * sw - 2 * pw + dw * (kw - 1) + ow + 1 >= 1)
    rng = np.random.default_rng(seed)
    shape = (n, cin * groups, h, w) if n else (cin * groups, h, w)
    arrays = [rng.standard_normal(shape).astype(np.float32),
              rng.standard_normal((cin * groups, cout, kh, kw)).astype(np.float32)]
    if bias:
        arrays.append(rng.standard_normal(cout * groups).astype(np.float32))
    args = dict(stride=(sh, sw), padding=(ph, pw), output_padding=(oh, ow), groups=groups,
                dilation=(dh, dw))
    _run_both(lambda *t: conv_transpose2d(*t, **args),
              lambda *t: torch.nn.functional.conv_transpose2d(*t, **args), arrays, rng)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 2), c=st.integers(1, 3), h=st.integers(1, 12), w=st.integers(1, 12),
       kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
       dh=st.integers(1, 4), dw=st.integers(1, 4), ceil_mode=st.booleans(),
       channels_last=st.booleans(), data=st.data())
def test_dilated_max_pool2d_equals_torch_on_drawn_configurations(n, c, h, w, kh, kw, sh, sw, dh,
                                                                 dw, ceil_mode, channels_last,
                                                                 data):
    pytest.importorskip("torch", reason="the comparison needs PyTorch")
    ph, pw = data.draw(st.integers(0, kh // 2)), data.draw(st.integers(0, kw // 2))
    shape = (max(n, 1), c, h, w)
    x = (np.random.default_rng(h * w).permutation(int(np.prod(shape))).reshape(shape)
         / 7.0).astype(np.float32)                                          # no ties
    if channels_last:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    if not n:
        x = x[0]                                                            # unbatched
    args = ((kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil_mode, True)
    t = Tensor(x, requires_grad=True)
    try:
        y, idx = max_pool2d(t, *args)
    except ValueError as error:     # no output, or a window with every tap in the padding
        assume("leaves no output" not in str(error))
        assert "every tap in the padding" in str(error)
        return                      # (PyTorch returns -inf there and corrupts memory)
    tt = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
    ty, tidx = torch.nn.functional.max_pool2d(tt, *args)
    gy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    y.backward(gy)
    ty.backward(torch.from_numpy(gy))
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    assert idx.dtype == np.int64 and idx.shape == y.shape
    np.testing.assert_allclose(t.grad, tt.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_dilated_max_pool_indices_of_all_minus_infinity_windows_equal_torch():
    pytest.importorskip("torch", reason="the comparison needs PyTorch")
    x = np.full((1, 1, 5, 5), -np.inf, np.float32)
    y, idx = max_pool2d(Tensor(x), 2, 1, 1, 3, False, True)
    ty, tidx = torch.nn.functional.max_pool2d(torch.from_numpy(x), 2, 1, 1, 3, False, True)
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    assert np.isneginf(y.numpy()).all()


# ---- the engine: dense paths untouched, dilated ones correct ---------------------------------

def _spy(monkeypatch, module, name, calls):
    real = getattr(module, name)

    def spy(*args, **kwargs):
        calls.append(name)
        return real(*args, **kwargs)
    monkeypatch.setattr(module, name, spy)


def _conv_grads(x, w, stride, padding, dilation):
    ts = [Tensor(a, requires_grad=True) for a in (x, w)]
    y = conv2d(*ts, None, stride, padding, dilation)
    y.backward(np.cos(np.arange(y.size)).reshape(y.shape))
    return [y.numpy()] + [t.grad for t in ts]


@pytest.mark.usefixtures("fast_lane")
def test_a_stride_1_dilated_conv_takes_the_flipped_kernel_gradient_equal_to_col2im(monkeypatch):
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 8, 9, 9)), rng.standard_normal((8, 8, 3, 3))
    calls = []
    _spy(monkeypatch, engine, "_input_grad_flipped", calls)
    flipped = _conv_grads(x, w, 1, 2, 2)
    assert calls == ["_input_grad_flipped"]
    monkeypatch.setattr(engine, "input_grad_as_convolution", lambda *a: False)   # col2im
    with_col2im = _conv_grads(x, w, 1, 2, 2)
    with mc.reference_kernels():
        reference = _conv_grads(x, w, 1, 2, 2)
    for f, c, r in zip(flipped, with_col2im, reference):
        np.testing.assert_allclose(f, r, rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(c, r, rtol=1e-11, atol=1e-11)


@pytest.mark.usefixtures("fast_lane")
def test_dilated_one_channel_convs_skip_the_direct_kernels_dense_ones_keep_them(monkeypatch):
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((2, 1, 8, 8)), rng.standard_normal((3, 1, 3, 3))
    calls = []
    _spy(monkeypatch, engine, "conv2d_direct_nhwc", calls)
    _spy(monkeypatch, engine, "conv2d_direct_weight_grad_nhwc", calls)
    dilated = _conv_grads(x, w, 1, 1, 2)
    assert calls == []
    _conv_grads(x, w, 1, 1, 1)
    assert calls == ["conv2d_direct_nhwc", "conv2d_direct_weight_grad_nhwc"]
    np.testing.assert_allclose(dilated[0], dilated_conv2d_ref(x, w, None, 1, 1, 2),
                               rtol=1e-12, atol=1e-12)


MEMORY_CONFIGS = [  # (transposed, input shape, weight shape, stride, padding, groups, dilation)
    (False, (6, 4, 10, 10), (6, 4, 3, 3), 1, 2, 1, 2),     # flipped-kernel gx
    (False, (5, 3, 12, 11), (4, 3, 3, 3), 2, 1, 1, (2, 3)),  # col2im gx
    (False, (4, 4, 9, 9), (6, 2, 3, 3), 1, 3, 2, 3),
    (False, (4, 1, 9, 9), (6, 1, 3, 3), 1, 2, 1, 2),       # one channel: no direct kernels
    (True, (5, 4, 5, 5), (4, 3, 3, 3), 2, 1, 1, 2),
    (True, (5, 4, 5, 4), (4, 2, 3, 3), 1, 2, 2, (2, 1)),
]


@pytest.mark.parametrize("chunk", [1 << 30, 3000])
@pytest.mark.parametrize("config", MEMORY_CONFIGS, ids=str)
@pytest.mark.usefixtures("fast_lane")
def test_predicted_column_bytes_equal_the_buffer_used(monkeypatch, config, chunk):
    transposed, in_shape, w_shape, stride, padding, groups, dilation = config
    monkeypatch.setattr(parallel, "chunk_bytes", chunk)
    monkeypatch.setattr(parallel, "num_threads", 1)   # one buffer: the prediction is exact
    rng = np.random.default_rng(6)
    x = Tensor(rng.standard_normal(in_shape), requires_grad=True)
    w = Tensor(rng.standard_normal(w_shape), requires_grad=True)
    release_workspace()
    if transposed:
        y = conv_transpose2d(x, w, None, stride, padding, 0, groups, dilation)
        predicted = conv_transpose2d_column_bytes(in_shape, w_shape, stride, padding, 0, groups,
                                                  np.float64, dilation=dilation)
    else:
        y = conv2d(x, w, None, stride, padding, dilation, groups)
        predicted = conv2d_column_bytes(in_shape, w_shape, stride, padding, groups, np.float64,
                                        dilation=dilation)
    y.backward(np.ones(y.shape))
    assert workspace.total_bytes() == workspace.largest_bytes == predicted
    release_workspace()


def test_summary_counts_a_dilated_layer_by_its_output():
    model = mc.nn.Sequential(mc.nn.Conv2d(3, 8, 3, padding=1),
                             mc.nn.Conv2d(8, 8, 3, padding=4, dilation=4),
                             mc.nn.Conv2d(8, 8, 3, dilation=(2, 3)),
                             mc.nn.ConvTranspose2d(8, 2, 3, stride=2, dilation=2))
    s = mc.summary(model, (2, 3, 16, 16))
    rows = {r.name: r for r in s.rows}
    assert tuple(rows["1"].output_shape[1:]) == (8, 16, 16)
    assert rows["1"].macs == 2 * 16 * 16 * 8 * 8 * 9          # same weights, same positions
    assert tuple(rows["2"].output_shape[1:]) == (8, 12, 10)    # 16 - 4, 16 - 6
    assert rows["2"].macs == 2 * 12 * 10 * 8 * 8 * 9
    assert tuple(rows["3"].output_shape[1:]) == (2, 27, 23)    # (12-1)*2 + 5, (10-1)*2 + 5
    assert rows["3"].macs == 2 * 12 * 10 * 8 * 2 * 9
    assert rows["1"].column_bytes == conv2d_column_bytes((2, 8, 16, 16), (8, 8, 3, 3), 1, 4,
                                                         dilation=4)
    assert rows["2"].unchunked_column_bytes == conv2d_column_bytes(
        (2, 8, 16, 16), (8, 8, 3, 3), 1, 0, dilation=(2, 3), chunked=False)
    y = model(Tensor(np.zeros((2, 3, 16, 16), np.float32)))
    assert tuple(y.shape) == (2,) + tuple(rows["3"].output_shape[1:])


def test_dilation_shrinks_the_predicted_columns_with_the_output():
    dense = conv2d_column_bytes((4, 16, 20, 20), (16, 16, 3, 3), 1, 0, chunked=False,
                                backward=False)
    dilated = conv2d_column_bytes((4, 16, 20, 20), (16, 16, 3, 3), 1, 0, chunked=False,
                                  backward=False, dilation=3)
    assert dense == 4 * 18 * 18 * 9 * 16 * 4 and dilated == 4 * 14 * 14 * 9 * 16 * 4


# ---- the layers ---------------------------------------------------------------------------------

LAYERS = [  # (minicnn/torch layer name, args, kwargs)
    ("Conv2d", (4, 6, 3), dict(padding=2, dilation=2)),
    ("Conv2d", (4, 6, (3, 2)), dict(stride=2, dilation=(2, 3), groups=2, bias=False)),
    ("Conv2d", (4, 6, 3), dict(padding="same", dilation=3)),
    ("ConvTranspose2d", (4, 3, 3), dict(stride=2, padding=1, output_padding=1, dilation=2)),
    ("ConvTranspose2d", (4, 6, 2), dict(dilation=(3, 1), groups=2)),
    ("MaxPool2d", (3,), dict(stride=1, padding=1, dilation=2)),
    ("MaxPool2d", ((3, 2),), dict(stride=2, dilation=(2, 3), ceil_mode=True)),
]


@pytest.mark.parametrize("name, args, kwargs", LAYERS, ids=str)
@pytest.mark.parametrize("unbatched", [False, True])
def test_layers_match_torch_in_repr_state_dict_and_output(name, args, kwargs, unbatched):
    pytest.importorskip("torch", reason="the comparison needs PyTorch")
    ours, theirs = getattr(mc.nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    assert repr(ours) == repr(theirs)
    sd = ours.state_dict()
    assert {k: v.shape for k, v in sd.items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    x = np.random.default_rng(9).permutation(2 * 4 * 11 * 10).reshape(2, 4, 11, 10) / 50
    x = x.astype(np.float32)[0 if unbatched else slice(None)]
    np.testing.assert_allclose(ours(Tensor(x)).numpy(), theirs(torch.from_numpy(x)).detach(),
                               rtol=1e-5, atol=1e-5)


def test_conv_transpose_layer_output_size_with_dilation():
    pytest.importorskip("torch", reason="the comparison needs PyTorch")
    up = mc.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, dilation=2)
    tup = torch.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, dilation=2)
    x = np.ones((1, 3, 4, 5), np.float32)
    for size in [(9, 11), (10, 12), (1, 2, 10, 11)]:
        assert up(Tensor(x), output_size=size).shape == \
            tuple(tup(torch.from_numpy(x), output_size=size).shape)
    with pytest.raises(ValueError, match="valid sizes range"):
        up(Tensor(x), output_size=(11, 11))


@pytest.mark.parametrize("call, error, message", [
    (lambda: mc.nn.Conv2d(2, 4, 3, dilation=0), ValueError,
     r"Conv2d: dilation should be greater than zero, but got \(0, 0\)"),
    (lambda: mc.nn.ConvTranspose2d(2, 4, 3, dilation=(2, -1)), ValueError,
     r"ConvTranspose2d: dilation should be greater than zero, but got \(2, -1\)"),
    (lambda: mc.nn.Conv2d(2, 4, 3, dilation=(1, 2, 3)), TypeError,
     r"Conv2d: dilation must be an int or a pair of ints"),
    (lambda: mc.nn.MaxPool2d(2, dilation=0)(Tensor(np.zeros((1, 1, 4, 4)))), ValueError,
     r"max_pool2d: dilation should be greater than zero"),
    (lambda: conv2d(Tensor(np.zeros((3, 4, 4))), Tensor(np.zeros((2, 3, 3, 3))), dilation=2),
     ValueError, r"kernel with dilation \(2, 2\) \(spanning 5x5\) is larger than the padded "
                 r"input 4x4"),
    (lambda: conv2d(Tensor(np.zeros((1, 3, 8, 8))), Tensor(np.zeros((2, 3, 3, 3))), stride=2,
                    padding="same", dilation=2), ValueError, r"padding='same' is not supported"),
    (lambda: max_pool2d(Tensor(np.zeros((1, 1, 2, 9))), 2, 1, 1, 3), ValueError,
     r"a window along axis 2 of the 2x9 input has every tap in the padding"),
])
def test_bad_dilations_give_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()
