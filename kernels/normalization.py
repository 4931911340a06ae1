"""Batch-norm kernels: per-channel sums and per-channel affine maps, in one pass each.

Batch norm is memory-bound: the arithmetic per element is a multiply-add, so its speed is the
number of passes over the activations. Training needs, per channel ``c``,

* forward:  the sums ``sum(x)`` and ``sum(x*x)`` (one read pass), then
            ``y = (x - mean) * scale + shift`` (one read, one write pass);
* backward: the sums ``sum(gy)`` and ``sum(gy * (x - mean))`` (one read pass over two arrays), then
            ``gx = a * gy + b * (x - mean) + d`` (one read of two arrays, one write pass),

and nothing else: no temporaries the size of ``x``. Sums are accumulated in float64, so
``var = E[x^2] - mean^2`` stays accurate for float32 activations.

Layout: every kernel takes C-contiguous arrays viewed as ``(A, C, B)`` with the channel axis in the
middle: a channels-last activation (NHWC memory, or a (N, C) batch) as ``(N*H*W, C, 1)`` and an
NCHW one as ``(N, C, H*W)``. :func:`as_acb` makes that view (copying only an array in neither
layout). With ``B == 1`` the kernels run along rows, vectorised over channels and parallel over
chunks of rows; otherwise along each ``(a, c)`` plane, parallel over planes.

Each kernel has a readable array-module version (``*_reference``, NumPy or CuPy) that the tests
compare the numba twin with. There is no CUDA twin: on the GPU, CuPy runs the reference (its
reductions and element-wise expressions are already single GPU kernels). The public entry
points run the twin ``kernels/dispatch.py`` chooses, so the reference lane and CuPy arrays take
the reference.
"""
import numpy as np
from numba import njit, prange

from minicnn import backend
from minicnn.kernels.dispatch import choose_twin

#: let LLVM reorder the additions of a reduction (so it can vectorise them); nothing else
_FAST = {"reassoc", "contract"}


def as_acb(x):
    """``x`` of shape (N, C, ...) as a C-contiguous ``(A, C, B)`` array, and whether that view is
    channels-last (``B == 1``, channels innermost). No copy for C-contiguous NCHW-type arrays,
    channels-last ones (NHWC memory) and (N, C) batches; any other layout is copied to NCHW."""
    xp = backend.get_array_module(x)
    n, c, rest = _sizes(x.shape)
    if x.ndim == 2:
        return xp.ascontiguousarray(x).reshape(n, c, 1), True
    if not x.flags.c_contiguous:
        last = x.transpose(0, *range(2, x.ndim), 1)  # the channel axis moved to the end
        if last.flags.c_contiguous:
            return last.reshape(n * rest, c, 1), True
    return xp.ascontiguousarray(x).reshape(n, c, rest), False


def _sizes(shape):
    """``(N, C, the product of the other axes)`` of an (N, C, ...) shape.

    NOTE: written out, never ``reshape(n, c, -1)``: with an empty batch (N = 0) the -1 could be
    any size, and NumPy refuses it."""
    return shape[0], shape[1], int(np.prod(shape[2:], dtype=np.int64))


def like_acb(a, channels_last):
    """``a`` (shaped like the input) as the ``(A, C, B)`` array of the layout :func:`as_acb`
    chose for the input (copying only when ``a`` is laid out differently)."""
    xp = backend.get_array_module(a)
    n, c, rest = _sizes(a.shape)
    if channels_last:
        return xp.ascontiguousarray(a.transpose(0, *range(2, a.ndim), 1)).reshape(n * rest, c, 1)
    return xp.ascontiguousarray(a).reshape(n, c, rest)


def empty_acb(shape, dtype, channels_last, xp=np):
    """An uninitialised array of ``shape`` (N, C, ...) in the given layout, returned both as
    ``(A, C, B)`` (for the kernels) and as the ``shape``-shaped view of the same memory."""
    (n, c, rest), ndim = _sizes(shape), len(shape)
    if channels_last:
        out = xp.empty((n, *shape[2:], c), dtype=dtype)
        return out.reshape(n * rest, c, 1), out.transpose(0, ndim - 1, *range(1, ndim - 1))
    out = xp.empty(shape, dtype=dtype)
    return out.reshape(n, c, rest), out


#: row chunks of the row-wise kernels: a fixed number (not one per thread), so the partial sums,
#: and with them the results to the last bit, do not depend on the number of threads
ROW_CHUNKS = 16


def _chunks(rows):
    return max(1, min(rows, ROW_CHUNKS))


# ---------------------------------------------------------------------------------------------
# Per-channel sums
# ---------------------------------------------------------------------------------------------

@njit(parallel=True, cache=True, fastmath=_FAST)
def _sum_and_sumsq(x, n_chunks):
    """Partial per-channel ``sum(x)`` and ``sum(x*x)`` of ``x`` (A, C, B), float64, as two
    (P, C) arrays whose rows the caller adds up::

        for every a, c, b:  s[c] += x[a, c, b];  ss[c] += x[a, c, b]**2
    """
    n_a, n_ch, n_b = x.shape
    if n_b == 1:  # rows: channels innermost, vectorised
        s = np.zeros((n_chunks, n_ch))
        ss = np.zeros((n_chunks, n_ch))
        x2 = x.reshape(n_a, n_ch)
        for t in prange(n_chunks):
            for a in range(t * n_a // n_chunks, (t + 1) * n_a // n_chunks):
                for c in range(n_ch):
                    v = np.float64(x2[a, c])
                    s[t, c] += v
                    ss[t, c] += v * v
        return s, ss
    s = np.empty((n_a, n_ch))
    ss = np.empty((n_a, n_ch))
    for p in prange(n_a * n_ch):  # planes
        a, c = p // n_ch, p % n_ch
        plane = x[a, c]
        acc, acc2 = 0.0, 0.0
        for b in range(n_b):
            v = np.float64(plane[b])
            acc += v
            acc2 += v * v
        s[a, c], ss[a, c] = acc, acc2
    return s, ss


@njit(parallel=True, cache=True, fastmath=_FAST)
def _sum_and_dot(gy, x, mean, n_chunks):
    """Partial per-channel ``sum(gy)`` and ``sum(gy * (x - mean))``, float64, (P, C) each::

        for every a, c, b:  s[c] += gy[a, c, b];  sd[c] += gy[a, c, b] * (x[a, c, b] - mean[c])
    """
    n_a, n_ch, n_b = x.shape
    if n_b == 1:
        s = np.zeros((n_chunks, n_ch))
        sd = np.zeros((n_chunks, n_ch))
        g2, x2 = gy.reshape(n_a, n_ch), x.reshape(n_a, n_ch)
        for t in prange(n_chunks):
            for a in range(t * n_a // n_chunks, (t + 1) * n_a // n_chunks):
                for c in range(n_ch):
                    g = np.float64(g2[a, c])
                    s[t, c] += g
                    sd[t, c] += g * np.float64(x2[a, c] - mean[c])
        return s, sd
    s = np.empty((n_a, n_ch))
    sd = np.empty((n_a, n_ch))
    for p in prange(n_a * n_ch):
        a, c = p // n_ch, p % n_ch
        g_plane, x_plane, m = gy[a, c], x[a, c], mean[c]
        acc, acc_d = 0.0, 0.0
        for b in range(n_b):
            g = np.float64(g_plane[b])
            acc += g
            acc_d += g * np.float64(x_plane[b] - m)
        s[a, c], sd[a, c] = acc, acc_d
    return s, sd


def channel_sums(x):
    """Per-channel ``(sum(x), sum(x*x))`` of ``x`` (A, C, B), float64 (C,) arrays."""
    if choose_twin(x) != "numba":  # the reference lane, or CuPy (no CUDA twin)
        return channel_sums_reference(x)
    s, ss = _sum_and_sumsq(x, _chunks(x.shape[0]))
    return s.sum(axis=0), ss.sum(axis=0)


def channel_sums_reference(x):
    """Readable version of :func:`channel_sums` (NumPy or CuPy)."""
    x = x.astype(np.float64)
    return x.sum(axis=(0, 2)), (x * x).sum(axis=(0, 2))


def grad_sums(gy, x, mean):
    """Per-channel ``(sum(gy), sum(gy * (x - mean)))`` of (A, C, B) arrays, float64."""
    if choose_twin(x) != "numba":
        return grad_sums_reference(gy, x, mean)
    s, sd = _sum_and_dot(gy, x, mean, _chunks(x.shape[0]))
    return s.sum(axis=0), sd.sum(axis=0)


def grad_sums_reference(gy, x, mean):
    """Readable version of :func:`grad_sums` (NumPy or CuPy)."""
    gy = gy.astype(np.float64)
    centred = (x - mean[None, :, None]).astype(np.float64)
    return gy.sum(axis=(0, 2)), (gy * centred).sum(axis=(0, 2))


# ---------------------------------------------------------------------------------------------
# Per-channel affine maps
# ---------------------------------------------------------------------------------------------

@njit(parallel=True, cache=True)
def _normalize(x, mean, scale, shift, out, n_chunks):
    """``out[a, c, b] = (x[a, c, b] - mean[c]) * scale[c] + shift[c]`` (the forward pass)."""
    n_a, n_ch, n_b = x.shape
    if n_b == 1:
        x2, o2 = x.reshape(n_a, n_ch), out.reshape(n_a, n_ch)
        for t in prange(n_chunks):
            for a in range(t * n_a // n_chunks, (t + 1) * n_a // n_chunks):
                for c in range(n_ch):
                    o2[a, c] = (x2[a, c] - mean[c]) * scale[c] + shift[c]
        return
    for p in prange(n_a * n_ch):
        a, c = p // n_ch, p % n_ch
        x_plane, o_plane = x[a, c], out[a, c]
        m, k, d = mean[c], scale[c], shift[c]
        for b in range(n_b):
            o_plane[b] = (x_plane[b] - m) * k + d


@njit(parallel=True, cache=True)
def _combine(gy, x, mean, a_coef, b_coef, d_coef, out, n_chunks):
    """``out = a[c] * gy + b[c] * (x - mean[c]) + d[c]`` (the input gradient)."""
    n_a, n_ch, n_b = x.shape
    if n_b == 1:
        g2, x2, o2 = gy.reshape(n_a, n_ch), x.reshape(n_a, n_ch), out.reshape(n_a, n_ch)
        for t in prange(n_chunks):
            for a in range(t * n_a // n_chunks, (t + 1) * n_a // n_chunks):
                for c in range(n_ch):
                    o2[a, c] = a_coef[c] * g2[a, c] + b_coef[c] * (x2[a, c] - mean[c]) + d_coef[c]
        return
    for p in prange(n_a * n_ch):
        a, c = p // n_ch, p % n_ch
        g_plane, x_plane, o_plane = gy[a, c], x[a, c], out[a, c]
        m, ka, kb, kd = mean[c], a_coef[c], b_coef[c], d_coef[c]
        for b in range(n_b):
            o_plane[b] = ka * g_plane[b] + kb * (x_plane[b] - m) + kd


def normalize(x, mean, scale, shift, out):
    """``out = (x - mean) * scale + shift`` per channel, all (A, C, B) / (C,) in x's dtype."""
    if choose_twin(x) != "numba":
        out[...] = normalize_reference(x, mean, scale, shift)
        return out
    _normalize(x, mean, scale, shift, out, _chunks(x.shape[0]))
    return out


def normalize_reference(x, mean, scale, shift):
    """Readable version of :func:`normalize` (NumPy or CuPy)."""
    return (x - mean[None, :, None]) * scale[None, :, None] + shift[None, :, None]


def combine(gy, x, mean, a, b, d, out):
    """``out = a * gy + b * (x - mean) + d`` per channel (the batch-norm input gradient)."""
    if choose_twin(x) != "numba":
        out[...] = combine_reference(gy, x, mean, a, b, d)
        return out
    _combine(gy, x, mean, a, b, d, out, _chunks(x.shape[0]))
    return out


def combine_reference(gy, x, mean, a, b, d):
    """Readable version of :func:`combine` (NumPy or CuPy)."""
    per_channel = [v[None, :, None] for v in (mean, a, b, d)]
    mean, a, b, d = per_channel
    return a * gy + b * (x - mean) + d


# ---------------------------------------------------------------------------------------------
# Batch norm followed by ReLU, fused: relu(batch_norm(x)) in the passes of batch norm alone
# ---------------------------------------------------------------------------------------------
#
# Unfused, ``relu(bn(x))`` costs 5 passes over memory forward (sums; normalise: read + write;
# ReLU: read + write) and 8 backward (ReLU: read gy and y, write; sums: read 2; combine: read 2,
# write). Fused, the ReLU is applied as the normalised value is written (3 passes forward), and
# backward recomputes the mask ``(x - mean) * scale + shift > 0`` from ``x``, which batch norm
# reads anyway (5 passes): the ReLU's own passes, and its output gradient, are gone.
#
# The mask must be bit for bit the forward's decision, so these kernels are compiled WITHOUT
# fastmath (which could contract the multiply-add into an FMA and round differently): the
# forward and backward compute ``(x - mean) * scale + shift`` with the same float32 operations.
# Along rows (channels-last), the channel loop still vectorises: each channel has its own
# accumulator.

@njit(parallel=True, cache=True)
def _normalize_relu(x, mean, scale, shift, out, n_chunks):
    """``out = max((x - mean[c]) * scale[c] + shift[c], 0)`` (NaN stays NaN, as in ReLU)."""
    n_a, n_ch, n_b = x.shape
    if n_b == 1:
        x2, o2 = x.reshape(n_a, n_ch), out.reshape(n_a, n_ch)
        for t in prange(n_chunks):
            for a in range(t * n_a // n_chunks, (t + 1) * n_a // n_chunks):
                for c in range(n_ch):
                    v = (x2[a, c] - mean[c]) * scale[c] + shift[c]
                    o2[a, c] = v if not v <= 0 else 0
        return
    for p in prange(n_a * n_ch):
        a, c = p // n_ch, p % n_ch
        x_plane, o_plane = x[a, c], out[a, c]
        m, k, d = mean[c], scale[c], shift[c]
        for b in range(n_b):
            v = (x_plane[b] - m) * k + d
            o_plane[b] = v if not v <= 0 else 0


@njit(parallel=True, cache=True)
def _masked_sum_and_dot(gy, x, mean, scale, shift, n_chunks):
    """:func:`_sum_and_dot` of ``gy`` masked by the fused ReLU: only where
    ``(x - mean[c]) * scale[c] + shift[c] > 0`` does ``gy`` count."""
    n_a, n_ch, n_b = x.shape
    if n_b == 1:
        s = np.zeros((n_chunks, n_ch))
        sd = np.zeros((n_chunks, n_ch))
        g2, x2 = gy.reshape(n_a, n_ch), x.reshape(n_a, n_ch)
        for t in prange(n_chunks):
            for a in range(t * n_a // n_chunks, (t + 1) * n_a // n_chunks):
                for c in range(n_ch):
                    centred = x2[a, c] - mean[c]
                    g = np.float64(g2[a, c]) if centred * scale[c] + shift[c] > 0 else 0.0
                    s[t, c] += g
                    sd[t, c] += g * np.float64(centred)
        return s, sd
    s = np.empty((n_a, n_ch))
    sd = np.empty((n_a, n_ch))
    for p in prange(n_a * n_ch):
        a, c = p // n_ch, p % n_ch
        g_plane, x_plane, m, k, d = gy[a, c], x[a, c], mean[c], scale[c], shift[c]
        acc, acc_d = 0.0, 0.0
        for b in range(n_b):
            centred = x_plane[b] - m
            if centred * k + d > 0:
                g = np.float64(g_plane[b])
                acc += g
                acc_d += g * np.float64(centred)
        s[a, c], sd[a, c] = acc, acc_d
    return s, sd


@njit(parallel=True, cache=True)
def _masked_combine(gy, x, mean, scale, shift, a_coef, b_coef, d_coef, out, n_chunks):
    """:func:`_combine` with ``gy`` masked by the fused ReLU (as in :func:`_masked_sum_and_dot`)."""
    n_a, n_ch, n_b = x.shape
    if n_b == 1:
        g2, x2, o2 = gy.reshape(n_a, n_ch), x.reshape(n_a, n_ch), out.reshape(n_a, n_ch)
        for t in prange(n_chunks):
            for a in range(t * n_a // n_chunks, (t + 1) * n_a // n_chunks):
                for c in range(n_ch):
                    centred = x2[a, c] - mean[c]
                    g = g2[a, c] if centred * scale[c] + shift[c] > 0 else 0
                    o2[a, c] = a_coef[c] * g + b_coef[c] * centred + d_coef[c]
        return
    for p in prange(n_a * n_ch):
        a, c = p // n_ch, p % n_ch
        g_plane, x_plane, o_plane = gy[a, c], x[a, c], out[a, c]
        m, k, d = mean[c], scale[c], shift[c]
        ka, kb, kd = a_coef[c], b_coef[c], d_coef[c]
        for b in range(n_b):
            centred = x_plane[b] - m
            g = g_plane[b] if centred * k + d > 0 else 0
            o_plane[b] = ka * g + kb * centred + kd


def relu_mask_reference(x, mean, scale, shift):
    """Where the fused ReLU passes its input: ``(x - mean) * scale + shift > 0`` (NumPy or
    CuPy), the same float operations as the forward's."""
    return normalize_reference(x, mean, scale, shift) > 0


def normalize_relu(x, mean, scale, shift, out):
    """``out = max((x - mean) * scale + shift, 0)`` per channel: :func:`normalize` and ReLU in
    one pass."""
    if choose_twin(x) != "numba":
        y = normalize_reference(x, mean, scale, shift)
        out[...] = y * (y > 0)                     # (as relu_forward_reference: NaN stays NaN)
        return out
    _normalize_relu(x, mean, scale, shift, out, _chunks(x.shape[0]))
    return out


def masked_grad_sums(gy, x, mean, scale, shift):
    """:func:`grad_sums` of ``gy`` where the fused ReLU passed its input (elsewhere 0)."""
    if choose_twin(x) != "numba":
        return grad_sums_reference(gy * relu_mask_reference(x, mean, scale, shift), x, mean)
    s, sd = _masked_sum_and_dot(gy, x, mean, scale, shift, _chunks(x.shape[0]))
    return s.sum(axis=0), sd.sum(axis=0)


def masked_combine(gy, x, mean, scale, shift, a, b, d, out):
    """:func:`combine` of ``gy`` where the fused ReLU passed its input (elsewhere 0)."""
    if choose_twin(x) != "numba":
        out[...] = combine_reference(gy * relu_mask_reference(x, mean, scale, shift), x, mean,
                                     a, b, d)
        return out
    _masked_combine(gy, x, mean, scale, shift, a, b, d, out, _chunks(x.shape[0]))
    return out
