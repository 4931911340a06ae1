"""Direct one-channel convolution (kernels/direct_conv.py): the NumPy reference against
im2col + GEMM, the numba twins against the reference, and the layer on the direct path against
the im2col path."""
import numpy as np
import pytest

from minicnn import backend
from minicnn.engine import conv as engine
from minicnn.engine import parallel
from minicnn.kernels import direct_conv as D
from minicnn.kernels import im2col as K
from minicnn.kernels.geometry import conv_output_size

# (N, H, W, OC, kernel, padding)
CONFIGS = [
    (2, 5, 5, 3, (3, 3), (0, 0)),
    (3, 6, 7, 2, (2, 3), (1, 0)),
    (1, 4, 4, 1, (4, 4), (0, 0)),
    (2, 3, 5, 4, (1, 1), (0, 0)),
    (2, 2, 2, 3, (5, 5), (2, 2)),
    (2, 8, 8, 6, (5, 5), (2, 2)),          # LeNet-5's C1
    (1, 4, 3, 2, (3, 3), (3, 2)),          # padding wider than the kernel's reach
    (0, 5, 5, 2, (3, 3), (1, 1)),          # empty batch
]


def _data(n, h, w, oc, kernel, padding, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, 1)).astype(dtype)
    wt = rng.standard_normal((oc, 1) + kernel).astype(dtype)
    b = rng.standard_normal(oc).astype(dtype)
    oh = conv_output_size(h, kernel[0], 1, padding[0])
    ow = conv_output_size(w, kernel[1], 1, padding[1])
    gy = rng.standard_normal((n, oh, ow, oc)).astype(dtype)
    return x, wt, b, gy


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_reference_equals_im2col_gemm(config):
    n, h, w, oc, kernel, padding = config
    x, wt, b, gy = _data(*config, dtype=np.float64)
    cols = K.im2col_reference(x, kernel, (1, 1), padding)
    w_mat = wt.transpose(0, 2, 3, 1).reshape(oc, -1)
    expected = (cols @ w_mat.T + b).reshape(gy.shape)
    np.testing.assert_allclose(D.conv2d_direct_reference(x, wt, b, padding), expected,
                               rtol=1e-12, atol=1e-12)
    gw = (cols.T @ gy.reshape(-1, oc)).T.reshape(oc, *kernel, 1).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(D.conv2d_direct_weight_grad_reference(x, gy, kernel, padding), gw,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_numba_equals_reference(config, dtype):
    n, h, w, oc, kernel, padding = config
    x, wt, b, gy = _data(*config, dtype=dtype)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    y = D.conv2d_direct_numba(x, wt, b, padding)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, D.conv2d_direct_reference(x, wt, b, padding), **tol)
    np.testing.assert_allclose(D.conv2d_direct_numba(x, wt, None, padding),
                               D.conv2d_direct_reference(x, wt, None, padding), **tol)
    gw = D.conv2d_direct_weight_grad_numba(x, gy, kernel, padding)
    assert gw.dtype == dtype
    np.testing.assert_allclose(gw, D.conv2d_direct_weight_grad_reference(x, gy, kernel, padding),
                               **tol)


def test_rejects_more_than_one_channel():
    x = np.zeros((1, 4, 4, 2), np.float32)
    with pytest.raises(ValueError, match="direct conv"):
        D.conv2d_direct_numba(x, np.zeros((2, 2, 3, 3), np.float32), None, (0, 0))


@pytest.mark.parametrize("threads", [1, 2])
def test_layer_direct_path_equals_im2col_path(monkeypatch, threads):
    """conv2d on a one-channel input takes the direct kernels; the im2col engine (the path every
    other layer takes) gives the same output and weight gradient, on one or two threads."""
    monkeypatch.setattr(parallel, "num_threads", threads)
    monkeypatch.setattr(parallel, "parallel_min_bytes", 0)
    x, wt, b, gy = _data(5, 9, 8, 6, (5, 5), (2, 2))
    assert engine.use_direct(np, x.shape, wt.shape, (1, 1), 1)
    with backend.reference_kernels(False):   # the engine's fast paths, whichever lane CI runs
        y = engine.conv2d_direct_nhwc(x, wt, b, (2, 2))
        y_ref, gw_ref = engine.conv2d_nhwc(x, wt, b, (1, 1), (2, 2), gy=gy)
        gw = engine.conv2d_direct_weight_grad_nhwc(x, gy, (5, 5), (2, 2))
        gb = engine.bias_grad(gy)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gw, gw_ref, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(gb, gy.reshape(-1, 6).sum(axis=0), rtol=1e-5, atol=1e-4)
