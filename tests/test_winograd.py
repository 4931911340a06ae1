"""Winograd convolution (kernels/winograd.py, minicnn/engine/winograd.py).

* the matrices: the 1-D F(m, 3) identity, exactly, and the multiplication counts;
* the NumPy references of all three passes against float64 direct convolution (PyTorch's);
* the numba twins against the references;
* float32 accuracy against float64 direct convolution within the stated bound (:data:`BOUND`),
  through the engine (channels-last) and the public op (NCHW, autograd), hypothesis-drawn
  shapes with batch 1 and odd sizes; a float64 gradient check; PyTorch's float32 conv2d;
* the choice per layer: ``auto``, the forced settings, the reference lane, ineligible layers;
  ``mc.summary``'s column.

The bound. Error = ``max |y32 - y64| / max |y64|`` (y64 the float64 direct convolution of the
same float32 numbers), per pass. Measured (``python benchmarks/bench_winograd.py --accuracy``) on
random normal data, He-scaled weights, 3 to 512 channels: im2col up to about 2e-6, F(2x2, 3x3)
up to about 1.5e-6, F(4x4, 3x3) up to about 1.5e-5 (its larger matrix entries: up to 8 in A^T,
down to 1/24 in G). The stated bounds leave a margin of ten times the worst measured case:
F(2x2): 2e-5, F(4x4): 2e-4. A wrong matrix entry, tile offset or flip gives errors of order 1.
"""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn as mc
from minicnn.autograd import Tensor
from minicnn.engine import conv as engine
from minicnn.engine import parallel
from minicnn.engine import winograd as W
from minicnn.kernels import winograd as K
from minicnn.ops.conv import conv2d

#: the stated float32 bound of max|error| / max|output| per tile size (see the module doc)
BOUND = {2: 2e-5, 4: 2e-4}
SETTING = {2: "winograd2", 4: "winograd4"}


@pytest.fixture
def fast_lane():
    with mc.reference_kernels(False):
        yield


def direct64(x, w, gy, padding):
    """float64 direct convolution (PyTorch's) of NHWC ``x``: ``(y, gx, gw)``, channels last."""
    xt = torch.tensor(np.asarray(x, np.float64).transpose(0, 3, 1, 2), requires_grad=True)
    wt = torch.tensor(np.asarray(w, np.float64), requires_grad=True)
    y = torch.nn.functional.conv2d(xt, wt, padding=padding)
    y.backward(torch.tensor(np.asarray(gy, np.float64).transpose(0, 3, 1, 2)))
    return (y.detach().numpy().transpose(0, 2, 3, 1), xt.grad.numpy().transpose(0, 2, 3, 1),
            wt.grad.numpy())


def relative_error(got, exact):
    return np.abs(got - exact).max() / max(np.abs(exact).max(), 1e-30)


def data(n, h, w, c, oc, padding, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    wt = (rng.standard_normal((oc, c, 3, 3)) * np.sqrt(2 / (9 * c))).astype(dtype)
    b = rng.standard_normal(oc).astype(dtype)
    gy = rng.standard_normal((n, h + 2 * padding[0] - 2, w + 2 * padding[1] - 2, oc)).astype(dtype)
    return x, wt, b, gy


# (N, H, W, C, OC, padding): odd sizes, batch 1, one channel, paddings 0-2, tiles cut at the edge
CONFIGS = [
    (1, 5, 5, 1, 1, (1, 1)),
    (2, 7, 6, 3, 4, (1, 1)),
    (1, 8, 9, 5, 2, (0, 0)),
    (2, 6, 7, 2, 3, (2, 2)),
    (3, 3, 3, 4, 4, (0, 1)),
    (1, 11, 4, 6, 5, (2, 0)),
    (2, 9, 9, 17, 16, (1, 1)),
]


# ---- the matrices --------------------------------------------------------------------------

@pytest.mark.parametrize("m", [2, 4])
def test_one_dimensional_identity_is_exact_for_integers(m):
    """A^T [(G g) * (B^T d)] is the correlation of d with g: exact in float64 for small
    integers (G's halves, sixths, ... times integers summed back)."""
    BT, G, AT = K.matrices(m)
    assert BT.shape == (m + 2, m + 2) and G.shape == (m + 2, 3) and AT.shape == (m, m + 2)
    rng = np.random.default_rng(m)
    for _ in range(20):
        d = rng.integers(-9, 10, m + 2).astype(np.float64)
        g = rng.integers(-9, 10, 3).astype(np.float64)
        winograd = AT @ ((G @ g) * (BT @ d))
        direct = np.array([d[i:i + 3] @ g for i in range(m)])
        np.testing.assert_allclose(winograd, direct, rtol=0, atol=1e-12)


def test_multiplication_counts():
    """(m + 2)^2 multiplications per m x m tile instead of 9 m^2: 16 vs 36, 36 vs 144."""
    for m, (wino, direct) in {2: (16, 36), 4: (36, 144)}.items():
        assert K.weight_transform(np.zeros((1, 1, 3, 3)), m).shape[0] == wino == (m + 2) ** 2
        assert 9 * m * m == direct
    assert 36 / 16 == 2.25 and 144 / 36 == 4


def test_bad_tile_size():
    with pytest.raises(ValueError, match="m must be 2 or 4"):
        K.matrices(3)


# ---- the references against float64 direct convolution ------------------------------------

@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_references_equal_direct_convolution_in_float64(config, m):
    n, h, w, c, oc, padding = config
    x, wt, b, gy = data(*config, dtype=np.float64)
    y64, gx64, gw64 = direct64(x, wt, gy, padding)
    tol = dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(K.conv2d_winograd_reference(x, wt, b, padding, m), y64 + b, **tol)
    np.testing.assert_allclose(K.conv2d_winograd_input_grad_reference(gy, wt, padding, m), gx64,
                               **tol)
    np.testing.assert_allclose(K.conv2d_winograd_weight_grad_reference(x, gy, padding, m), gw64,
                               **tol)


# ---- the numba twins against the references ------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_numba_twins_equal_the_references(config, m, dtype):
    n, h, w, c, oc, padding = config
    x, wt, b, gy = data(*config, dtype=dtype)
    tol = dict(rtol=1e-5, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-11)
    v = K.input_tiles_numba(x, m, padding)
    assert v.dtype == dtype
    np.testing.assert_allclose(v, K.input_tiles_reference(x, m, padding), **tol)
    gm = K.output_grad_tiles_numba(gy, m)
    np.testing.assert_allclose(gm, K.output_grad_tiles_reference(gy, m), **tol)
    mt = v @ K.weight_transform(wt, m)
    y = K.output_tiles_numba(mt, m, gy.shape, b)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, K.output_tiles_reference(mt, m, gy.shape, b), **tol)


def test_numba_twin_checks_its_out_argument():
    x = np.zeros((1, 4, 4, 2), np.float32)
    with pytest.raises(ValueError, match="out must be a contiguous float32 array of shape"):
        K.input_tiles_numba(x, 2, (1, 1), out=np.zeros((16, 4, 3), np.float32))


# ---- the engine: float32 within the bound, every pass --------------------------------------

def engine_passes(x, wt, b, gy, padding, setting):
    with W.conv_algorithm(setting):
        y = engine.forward(x, wt, b, (1, 1), padding, 1)
        gx, gw = engine.backward(x, wt, gy, (1, 1), padding, 1, True, True)
    return y, gx, gw


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("config", CONFIGS, ids=str)
@pytest.mark.usefixtures("fast_lane")
def test_engine_float32_within_the_bound(config, m, monkeypatch):
    monkeypatch.setattr(parallel, "chunk_bytes", 1)             # one image per chunk ...
    monkeypatch.setattr(parallel, "num_threads", 2)             # ... on the worker threads
    monkeypatch.setattr(parallel, "parallel_min_bytes", 0)
    n, h, w, c, oc, padding = config
    x, wt, b, gy = data(*config)
    y64, gx64, gw64 = direct64(x, wt, gy, padding)
    y, gx, gw = engine_passes(x, wt, b, gy, padding, SETTING[m])
    assert y.dtype == gx.dtype == gw.dtype == np.float32
    assert relative_error(y - b, y64) < BOUND[m]
    assert relative_error(gx, gx64) < BOUND[m]
    assert relative_error(gw, gw64) < BOUND[m]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), h=st.integers(1, 13), w=st.integers(1, 13), c=st.integers(1, 32),
       oc=st.integers(1, 32), ph=st.integers(0, 2), pw=st.integers(0, 2), m=st.sampled_from([2, 4]),
       seed=st.integers(0, 2 ** 16))
def test_engine_on_drawn_shapes_within_the_bound(n, h, w, c, oc, ph, pw, m, seed):
    if h + 2 * ph < 3 or w + 2 * pw < 3:
        return                                                  # no output: conv2d rejects it
    x, wt, b, gy = data(n, h, w, c, oc, (ph, pw), seed=seed)
    y64, gx64, gw64 = direct64(x, wt, gy, (ph, pw))
    with mc.reference_kernels(False):
        y, gx, gw = engine_passes(x, wt, b, gy, (ph, pw), SETTING[m])
    assert relative_error(y - b, y64) < BOUND[m]
    assert relative_error(gx, gx64) < BOUND[m]
    assert relative_error(gw, gw64) < BOUND[m]


@pytest.mark.usefixtures("fast_lane")
def test_empty_batch():
    x, wt, b, gy = data(0, 5, 5, 3, 4, (1, 1))
    for m in (2, 4):
        y, gx, gw = engine_passes(x, wt, b, gy, (1, 1), SETTING[m])
        assert y.shape == (0, 5, 5, 4) and gx.shape == x.shape
        np.testing.assert_array_equal(gw, np.zeros_like(wt))


# ---- the public op: NCHW tensors, autograd, PyTorch ----------------------------------------

@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 2), h=st.integers(3, 12), w=st.integers(3, 12), c=st.integers(1, 32),
       oc=st.integers(1, 32), p=st.integers(0, 2), m=st.sampled_from([2, 4]),
       seed=st.integers(0, 2 ** 16))
def test_public_op_on_nchw_tensors_equals_torch_within_the_bound(n, h, w, c, oc, p, m, seed):
    """``conv2d`` on NCHW tensors (the public layout; the op hands channels-last arrays to the
    engine) and the autograd gradients, against float64 direct convolution and PyTorch's
    float32 conv2d, both within the bound."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = (rng.standard_normal((oc, c, 3, 3)) * np.sqrt(2 / (9 * c))).astype(np.float32)
    b = rng.standard_normal(oc).astype(np.float32)
    gy = rng.standard_normal((n, oc, h + 2 * p - 2, w + 2 * p - 2)).astype(np.float32)
    with mc.reference_kernels(False), W.conv_algorithm(SETTING[m]):
        ts = [Tensor(a, requires_grad=True) for a in (x, wt, b)]
        y = conv2d(*ts, padding=p)
        y.backward(gy)
    y64, gx64, gw64 = direct64(x.transpose(0, 2, 3, 1), wt, gy.transpose(0, 2, 3, 1), p)
    assert y.dtype == np.float32 and ts[0].grad.dtype == np.float32
    assert relative_error(y.numpy().transpose(0, 2, 3, 1) - b, y64) < BOUND[m]
    assert relative_error(ts[0].grad.transpose(0, 2, 3, 1), gx64) < BOUND[m]
    assert relative_error(ts[1].grad, gw64) < BOUND[m]
    xt, wtt = torch.tensor(x, requires_grad=True), torch.tensor(wt, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wtt, torch.tensor(b), padding=p)
    yt.backward(torch.tensor(gy))
    scale = np.abs(yt.detach().numpy()).max()
    assert np.abs(y.numpy() - yt.detach().numpy()).max() <= 2 * BOUND[m] * scale
    assert relative_error(ts[0].grad, xt.grad.numpy()) < 2 * BOUND[m]
    assert relative_error(ts[1].grad, wtt.grad.numpy()) < 2 * BOUND[m]


@pytest.mark.parametrize("m", [2, 4])
def test_gradcheck_in_float64(m):
    rng = np.random.default_rng(m)
    x = Tensor(rng.standard_normal((2, 3, 7, 6)), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    b = Tensor(rng.standard_normal(4), requires_grad=True)
    with mc.reference_kernels(False), W.conv_algorithm(SETTING[m]):
        assert W.tile_size(np.zeros((2, 7, 6, 3)), w.shape, (1, 1), (1, 1), 1) == m
        assert mc.gradcheck(lambda *a: conv2d(*a, padding=1), [x, w, b])


# ---- the choice per layer ------------------------------------------------------------------

@pytest.mark.usefixtures("fast_lane")
def test_auto_takes_f2_for_3x3_stride_1_with_enough_channels():
    assert (W.MIN_CHANNELS, W.F4_MIN_CHANNELS) == (32, 64)
    x16 = np.zeros((1, 8, 8, 32), np.float32)
    w16 = (32, 32, 3, 3)
    with W.conv_algorithm("auto"):
        assert W.tile_size(x16, w16, (1, 1), (1, 1), 1) == 2
        assert W.tile_size(x16, (16, 32, 3, 3), (1, 1), (1, 1), 1) == 0    # few channels out
        assert W.tile_size(x16, (32, 16, 3, 3), (1, 1), (1, 1), 1) == 0    # few channels in
        assert W.tile_size(x16, w16, (2, 2), (1, 1), 1) == 0               # strided
        assert W.tile_size(x16, (32, 16, 3, 3), (1, 1), (1, 1), 2) == 0    # grouped
        assert W.tile_size(x16, w16, (1, 1), (1, 1), 1, (2, 2)) == 0       # dilated
        assert W.tile_size(x16, w16, (1, 1), (3, 3), 1) == 0               # padding 3
        assert W.tile_size(x16, (32, 32, 5, 5), (1, 1), (1, 1), 1) == 0    # 5x5
        x64 = np.zeros((1, 8, 8, 64), np.float32)
        assert W.tile_size(x64, (64, 64, 3, 3), (1, 1), (1, 1), 1) == 4    # wide: F(4x4)
        assert W.tile_size(x64, (32, 64, 3, 3), (1, 1), (1, 1), 1) == 2    # 32 out: F(2x2)
    with W.conv_algorithm("im2col"):
        assert W.tile_size(x16, w16, (1, 1), (1, 1), 1) == 0
    with W.conv_algorithm("winograd4"):
        assert W.tile_size(np.zeros((1, 8, 8, 1), np.float32), (1, 1, 3, 3), (1, 1), (1, 1),
                           1) == 4
        with mc.reference_kernels():                   # the lecture's im2col, always
            assert W.tile_size(x16, w16, (1, 1), (1, 1), 1) == 0
    assert W.algorithm_setting() == "auto"


def test_bad_setting_is_a_clear_error():
    with pytest.raises(ValueError, match="'fastest' is not one of auto, im2col, winograd2"):
        with W.conv_algorithm("fastest"):
            pass


def test_the_setting_comes_from_the_environment():
    import subprocess
    import sys
    code = "from minicnn.engine import winograd; print(winograd.algorithm_setting())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"MINICNN_CONV_ALGORITHM": "winograd4", "PATH": ""})
    assert out.stdout.strip() == "winograd4", out.stderr


@pytest.mark.usefixtures("fast_lane")
def test_the_op_runs_the_chosen_algorithm(monkeypatch):
    """Spy on the engine: the forced setting reaches the Winograd passes, 'im2col' never."""
    calls = []
    for name in ("forward", "backward"):
        real = getattr(W, name)
        monkeypatch.setattr(W, name, lambda *a, _real=real, _name=name, **k:
                            calls.append((_name, a[-1])) or _real(*a, **k))
    x = Tensor(np.ones((1, 32, 6, 6), np.float32), requires_grad=True)
    w = Tensor(np.ones((32, 32, 3, 3), np.float32), requires_grad=True)
    for setting, m in (("im2col", 0), ("winograd2", 2), ("winograd4", 4), ("auto", 2)):
        # backward's input gradient is the forward with the flipped kernel: a second forward
        expected = [("forward", m), ("backward", m), ("forward", m)] if m else []
        calls.clear()
        with W.conv_algorithm(setting):
            conv2d(x, w, padding=1).sum().backward()
        assert calls == expected, setting


def test_summary_names_the_algorithm_of_each_conv_layer():
    import minicnn.nn as nn
    model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.Conv2d(32, 32, 3, padding=1),
                          nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.Conv2d(32, 8, 1),
                          nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
    with mc.reference_kernels(False):
        result = mc.summary(model, (4, 1, 16, 16), print_table=False)
        rows = {row.name: row.algorithm for row in result.rows}
        assert rows == {"": "", "0": "direct", "1": "winograd F(2x2,3x3)", "2": "im2col",
                        "3": "1x1 GEMM", "4": "im2col", "5": ""}
        assert "winograd F(2x2,3x3)" in str(result)
        with W.conv_algorithm("winograd4"):
            rows = {r.name: r.algorithm for r in mc.summary(model, (4, 1, 16, 16),
                                                              print_table=False).rows}
        assert rows["0"] == rows["1"] == rows["4"] == "winograd F(4x4,3x3)"
    with mc.reference_kernels():
        rows = {r.name: r.algorithm for r in mc.summary(model, (4, 1, 16, 16),
                                                          print_table=False).rows}
        assert rows["1"] == "im2col (reference)"
