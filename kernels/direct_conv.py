"""Direct convolution for a layer with ONE input channel (a grayscale first layer: LeNet-5's C1).

There im2col is a poor deal: the column matrix of a 1 -> 6 channel 5x5 layer has 25 columns, so
the GEMM ``cols (N*OH*OW, 25) @ W.T (25, 6)`` is long and thin, and building and reading 25
copies of the image costs more than the arithmetic (measured: ~9 GFLOP/s on LeNet-5's C1, 2.6 ms
forward at batch 128). Computed directly, a filter tap is one multiply-add of a *shifted image*:

    y[n, oh, ow, oc] = b[oc] + sum over kh, kw of w[oc, 0, kh, kw] * x_padded[n, oh + kh, ow + kw]

Layout (stride 1 only). ``x`` is a channels-last batch ``(N, H, W, 1)`` -- with one channel that
is the same memory as NCHW -- and ``y`` is ``(N, OH, OW, OC)``, channels last, what the im2col
path returns too. The numba twin copies an image into a zero-padded plane whose rows are ``Wp =
OW + KW - 1`` numbers long, flattened. Output pixel ``(oh, ow)`` then sits at ``p = oh*Wp + ow``
of a plane of the same row length, and the input pixel under tap ``(kh, kw)`` at ``p + kh*Wp +
kw``: one tap, for every output pixel at once, is one long contiguous multiply-add that the
compiler vectorises (the ``KW - 1`` extra numbers at the end of each output row are computed and
thrown away). The weight gradient is the same walk backwards, a dot product per tap:

    gw[oc, 0, kh, kw] = sum over n, oh, ow of gy[n, oh, ow, oc] * x_padded[n, oh + kh, ow + kw]

Each kernel comes twice: a readable NumPy reference (one strided slice per tap, any array module;
what the tests compare against) and its numba twin (serial and ``nogil``: the convolution engine
runs it on chunks of the batch on its worker threads, as it does im2col; see the threading policy
in ``kernels/__init__.py``). There is no CUDA twin and no public entry point that chooses one:
only the engine's fast lane calls the numba twin; the GPU and the reference lane use im2col.
"""
import numpy as np
from numba import njit

from minicnn import backend
from minicnn.kernels.geometry import conv_output_size


def _check(x, w):
    if x.ndim != 4 or x.shape[3] != 1 or w.ndim != 4 or w.shape[1] != 1:
        raise ValueError(f"direct conv: expected x (N, H, W, 1) and w (OC, 1, KH, KW), got "
                         f"{x.shape} and {w.shape}")


# ---------------------------------------------------------------------------------------------
# NumPy references (any array module)
# ---------------------------------------------------------------------------------------------

def _padded(x, padding):
    pH, pW = padding
    return x[:, :, :, 0] if (pH, pW) == (0, 0) else \
        backend.get_array_module(x).pad(x[:, :, :, 0], ((0, 0), (pH, pH), (pW, pW)))


def conv2d_direct_reference(x, w, b, padding):
    """``y (N, OH, OW, OC)`` of the one-channel ``x (N, H, W, 1)``, ``w (OC, 1, KH, KW)``, bias
    ``b (OC,)`` or None, stride 1: one shifted slice of the padded image per tap."""
    _check(x, w)
    OC, _, KH, KW = w.shape
    xp = backend.get_array_module(x)
    xpad = _padded(x, padding)                                     # (N, Hp, Wp)
    OH, OW = xpad.shape[1] - KH + 1, xpad.shape[2] - KW + 1
    y = xp.zeros((x.shape[0], OH, OW, OC), dtype=x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            y += xpad[:, kh:kh + OH, kw:kw + OW, None] * w[:, 0, kh, kw]
    if b is not None:
        y += b
    return y


def conv2d_direct_weight_grad_reference(x, gy, kernel_size, padding):
    """``gw (OC, 1, KH, KW)`` for the one-channel ``x (N, H, W, 1)`` and ``gy (N, OH, OW, OC)``:
    per tap, the sum of ``gy`` times the image slice under it."""
    KH, KW = kernel_size
    OH, OW, OC = gy.shape[1:]
    xp = backend.get_array_module(x)
    xpad = _padded(x, padding)
    gw = xp.empty((OC, 1, KH, KW), dtype=gy.dtype)
    for kh in range(KH):
        for kw in range(KW):
            gw[:, 0, kh, kw] = (xpad[:, kh:kh + OH, kw:kw + OW, None] * gy).sum(axis=(0, 1, 2))
    return gw


# ---------------------------------------------------------------------------------------------
# numba twins (NumPy arrays, C-contiguous; serial, nogil)
# ---------------------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _pad_image(x, n, pH, pW, Wp, plane):
    """Image ``n`` of ``x (N, H, W, 1)`` into the flat zero-padded ``plane`` (rows of ``Wp``)."""
    H, W = x.shape[1], x.shape[2]
    plane[:] = 0
    for h in range(H):
        row = (h + pH) * Wp + pW
        for col in range(W):
            plane[row + col] = x[n, h, col, 0]


@njit(cache=True, nogil=True, fastmath={"contract"})
def _conv2d_direct(x, w, b, pH, pW, y):
    N = x.shape[0]
    OH, OW, OC = y.shape[1], y.shape[2], y.shape[3]
    KH, KW = w.shape[2], w.shape[3]
    Wp = OW + KW - 1
    P = OH * Wp                                     # output positions, with KW-1 spare per row
    plane = np.empty((OH + KH - 1) * Wp + KW - 1, dtype=x.dtype)   # + KW-1: the last tap's reach
    acc = np.empty((OC, P), dtype=x.dtype)
    for n in range(N):
        _pad_image(x, n, pH, pW, Wp, plane)
        for oc in range(OC):
            out = acc[oc]
            out[:] = b[oc]
            for kh in range(KH):
                for kw in range(KW):
                    tap = w[oc, 0, kh, kw]
                    shifted = plane[kh * Wp + kw:kh * Wp + kw + P]
                    for p in range(P):
                        out[p] += tap * shifted[p]
        for oh in range(OH):                        # back to channels last, spare columns dropped
            for ow in range(OW):
                for oc in range(OC):
                    y[n, oh, ow, oc] = acc[oc, oh * Wp + ow]
    return y


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _conv2d_direct_weight_grad(x, gy, KH, KW, pH, pW, gw):
    """Adds this chunk's ``gw (OC, KH, KW)``; reassociation lets the dot products vectorise."""
    N, OH, OW, OC = gy.shape
    Wp = OW + KW - 1
    P = OH * Wp
    plane = np.empty((OH + KH - 1) * Wp + KW - 1, dtype=x.dtype)
    g = np.zeros((OC, P), dtype=gy.dtype)           # gy per channel, 0 in the spare columns
    for n in range(N):
        _pad_image(x, n, pH, pW, Wp, plane)
        for oh in range(OH):
            for ow in range(OW):
                for oc in range(OC):
                    g[oc, oh * Wp + ow] = gy[n, oh, ow, oc]
        for oc in range(OC):
            go = g[oc]
            for kh in range(KH):
                for kw in range(KW):
                    shifted = plane[kh * Wp + kw:kh * Wp + kw + P]
                    s = gw.dtype.type(0)
                    for p in range(P):
                        s += go[p] * shifted[p]
                    gw[oc, kh, kw] += s
    return gw


def conv2d_direct_numba(x, w, b, padding, out=None):
    """numba twin of :func:`conv2d_direct_reference`; ``out`` (N, OH, OW, OC) may be a view."""
    _check(x, w)
    N, H, W, _ = x.shape
    OC, _, KH, KW = w.shape
    OH, OW = conv_output_size(H, KH, 1, padding[0]), conv_output_size(W, KW, 1, padding[1])
    y = np.empty((N, OH, OW, OC), dtype=x.dtype) if out is None else out
    bias = np.zeros(OC, dtype=x.dtype) if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    return _conv2d_direct(np.ascontiguousarray(x), np.ascontiguousarray(w), bias, padding[0],
                          padding[1], y)


def conv2d_direct_weight_grad_numba(x, gy, kernel_size, padding):
    """numba twin of :func:`conv2d_direct_weight_grad_reference`."""
    KH, KW = kernel_size
    gw = np.zeros((gy.shape[3], KH, KW), dtype=gy.dtype)
    _conv2d_direct_weight_grad(np.ascontiguousarray(x), np.ascontiguousarray(gy), KH, KW,
                               padding[0], padding[1], gw)
    return gw.reshape(gy.shape[3], 1, KH, KW)
