"""Pooling kernels: max and average pooling, forward and backward.

Each kernel comes twice:

* a readable NumPy version (``*_reference``), written with whole-array strided slices the way the
  lecture derives it: for every offset ``(i, j)`` inside the kernel window, the slice
  ``x_padded[:, :, i : i + stride*OH : stride, j : j + stride*OW : stride]`` holds, for every
  output pixel at once, the input element that sits at that offset of its window. A max (or a
  sum) over the ``kH*kW`` slices is the pooling. It works on any array module (NumPy or CuPy) and
  is what the tests compare against;
* a numba twin (``*_numba``) that loops over windows, parallel over images (``prange``: the
  threading policy in ``kernels/__init__.py``; a dilated max pooling has a twin of its own,
  ``max_pool2d_dilated_forward_numba``). It is what the CPU uses;
* a CUDA C twin (``*_cuda``, source in ``kernels/pooling.cu``) for float32/float64 CuPy arrays:
  one thread per output element, the backward kernels as gathers (each thread of ``gx`` sums the
  windows that contain its pixel), so no atomics.

Window rules (PyTorch's, for output pixel ``(oh, ow)``): rows ``oh*sH - pH ... oh*sH - pH + kH - 1``
of the input, where rows outside ``0 .. H-1`` are padding. Max pooling may be dilated: its
``kH x kW`` taps are then ``dH`` rows and ``dW`` columns apart, rows ``oh*sH - pH + i*dH`` for
``i = 0 .. kH-1`` (and likewise for columns); the argmax indices name the winning tap's input
pixel as before. Max pooling never picks padding (it
counts as -inf). NOTE: ties go to the FIRST maximum in scan order (row by row, then column), and a
NaN wins over everything, as in PyTorch. Average pooling divides by the window size clipped to the
padded input (``count_include_pad=True``), by the number of real input elements
(``count_include_pad=False``), or by ``divisor_override``.

Layout of the numba and CUDA twins: they take C-contiguous arrays of shape ``(N, H, W, C)``.
An image in channels-last memory (an NCHW-shaped view of an NHWC array, as the convolution
produces) is passed as it is; a C-contiguous NCHW array is passed as ``(N*C, H, W, 1)`` -- every
channel plane an image with one channel. Either way, no copy. :func:`to_images` /
:func:`from_images` do that, and the public entry points (``max_pool2d_forward`` ...) run the
twin that ``kernels/dispatch.py`` chooses.

Max-pool indices are PyTorch's: ``h * W + w``, the flat position inside the input plane.
"""
import numpy as np
from numba import njit, prange

from minicnn import backend
from minicnn.kernels import cuda_kernels
from minicnn.kernels.dispatch import choose_twin


# ---------------------------------------------------------------------------------------------
# Layout helpers
# ---------------------------------------------------------------------------------------------

def is_channels_last(x):
    """True when the NCHW-shaped ``x`` is an NHWC array in memory (and not also plain NCHW)."""
    return (x.ndim == 4 and not x.flags.c_contiguous
            and x.transpose(0, 2, 3, 1).flags.c_contiguous)


def to_images(x, channels_last):
    """The NCHW-shaped ``x`` as a C-contiguous ``(N', H, W, C')`` array for the numba twins:
    ``(N, H, W, C)`` when ``channels_last``, else ``(N*C, H, W, 1)``. Copies only when ``x`` is in
    neither layout."""
    xp = backend.get_array_module(x)
    n, c, h, w = x.shape
    if channels_last:
        return xp.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return xp.ascontiguousarray(x).reshape(n * c, h, w, 1)


def from_images(y, n, c, channels_last):
    """Undo :func:`to_images` for a kernel's ``(N', OH, OW, C')`` output: an NCHW-shaped view."""
    if channels_last:
        return y.transpose(0, 3, 1, 2)
    return y.reshape(n, c, y.shape[1], y.shape[2])


def _twin_arrays(xp, x, out_hw, channels_last, *dtypes):
    """What the numba and CUDA twins start from: the NCHW-shaped ``x`` as C-contiguous
    ``(N', H, W, C')`` images (:func:`to_images`), and one new ``(N', *out_hw, C')`` array of
    ``xp`` per dtype in ``dtypes`` for the kernel to fill."""
    images = to_images(x, channels_last)
    shape = (images.shape[0], *out_hw, images.shape[3])
    return (images, *(xp.empty(shape, dtype=dtype) for dtype in dtypes))


def _padded_extent(size, kernel, stride, pad, out, dilation=1):
    """Rows the padded input must have so that every window of ``out`` outputs fits (ceil_mode's
    last window may reach past the right padding)."""
    return max(size + 2 * pad, (out - 1) * stride + dilation * (kernel - 1) + 1)


def _first_real_tap(xp, starts, dilation):
    """The first tap ``start + k*dilation`` (k >= 0) of each window that is not in the left
    padding (``starts``: the windows' first taps, negative in the padding)."""
    return starts + xp.maximum(dilation - 1 - starts, 0) // dilation * dilation


# ---------------------------------------------------------------------------------------------
# Max pooling
# ---------------------------------------------------------------------------------------------

def max_pool2d_forward_reference(x, kernel_size, stride, padding, output_size,
                                 dilation=(1, 1)):
    """Max pooling of ``x`` (N, C, H, W) -> ``(y, indices)``, both (N, C, OH, OW).

    ``kernel_size``, ``stride``, ``padding``, ``output_size``, ``dilation`` are pairs (rows,
    columns); ``indices`` are int64 flat positions ``h * W + w`` in the input plane (PyTorch's).
    """
    xp = backend.get_array_module(x)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (oh, ow) = kernel_size, stride, padding, output_size
    dh, dw = dilation
    hp, wp = _padded_extent(h, kh, sh, ph, oh, dh), _padded_extent(w, kw, sw, pw, ow, dw)
    padded = xp.full((n, c, hp, wp), -xp.inf, dtype=x.dtype)  # padding never wins a max
    padded[:, :, ph:ph + h, pw:pw + w] = x
    rows0 = xp.arange(oh) * sh - ph  # first tap row of each window (may be padding)
    cols0 = xp.arange(ow) * sw - pw
    y = xp.full((n, c, oh, ow), -xp.inf, dtype=x.dtype)
    # before anything wins, a window points at its first real tap (as PyTorch does)
    indices = xp.broadcast_to(_first_real_tap(xp, rows0, dh)[:, None] * w
                              + _first_real_tap(xp, cols0, dw), y.shape)
    for i in range(kh):
        for j in range(kw):
            top, left = i * dh, j * dw  # tap (i, j) of every window, dilation apart
            window = padded[:, :, top:top + sh * (oh - 1) + 1:sh, left:left + sw * (ow - 1) + 1:sw]
            better = (window > y) | xp.isnan(window)  # strictly greater: the first max stays
            y = xp.where(better, window, y)
            indices = xp.where(better, (rows0 + top)[:, None] * w + (cols0 + left), indices)
    return y, indices.astype(xp.int64)


def max_pool2d_backward_reference(gy, indices, input_shape, kernel_size, stride, padding,
                                  dilation=(1, 1)):
    """Gradient of max pooling: each ``gy`` element goes to the input element that won its window
    (several windows may send to the same element; their gradients add up)."""
    xp = backend.get_array_module(gy)
    n, c, h, w = input_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    oh, ow = gy.shape[2:]
    hp, wp = _padded_extent(h, kh, sh, ph, oh, dh), _padded_extent(w, kw, sw, pw, ow, dw)
    gx = xp.zeros((n, c, hp, wp), dtype=gy.dtype)
    rows0 = xp.arange(oh) * sh - ph
    cols0 = xp.arange(ow) * sw - pw
    won_row, won_col = indices // w, indices % w
    for i in range(kh):
        for j in range(kw):
            # did the element under tap (i, j) of each window win it?
            top, left = i * dh, j * dw
            won = (won_row == (rows0 + top)[:, None]) & (won_col == (cols0 + left))
            gx[:, :, top:top + sh * (oh - 1) + 1:sh, left:left + sw * (ow - 1) + 1:sw] += gy * won
    return gx[:, :, ph:ph + h, pw:pw + w]


@njit(parallel=True, cache=True)
def max_pool2d_forward_numba(x, kh, kw, sh, sw, ph, pw, y, indices):
    """Numba twin of :func:`max_pool2d_forward_reference` on ``x`` (N, H, W, C), C-contiguous,
    for a dense window (dilation 1; :func:`max_pool2d_dilated_forward_numba` takes the others).

    Fills ``y`` (N, OH, OW, C) and int32 ``indices`` (``h * W + w``). The loop it runs::

        for every image n (in parallel), output pixel (r, q), channel c:
            y = -inf; index = first real element of the window
            for every real input pixel (h, w) of the window, in scan order:
                if x[n, h, w, c] > y or x[n, h, w, c] is NaN: y, index = x[n, h, w, c], h*W + w
    """
    n_img, h_in, w_in, n_ch = x.shape
    oh, ow = y.shape[1:3]
    for n in prange(n_img):
        for r in range(oh):
            h0 = r * sh - ph
            h1 = min(h0 + kh, h_in)
            h0 = max(h0, 0)
            for q in range(ow):
                w0 = q * sw - pw
                w1 = min(w0 + kw, w_in)
                w0 = max(w0, 0)
                if n_ch == 1:  # an NCHW plane: a scalar loop (no per-pixel channel loops)
                    best, arg = -np.inf, h0 * w_in + w0
                    for hh in range(h0, h1):
                        for ww in range(w0, w1):
                            v = x[n, hh, ww, 0]
                            if v > best or v != v:
                                best, arg = v, hh * w_in + ww
                    y[n, r, q, 0], indices[n, r, q, 0] = best, arg
                    continue
                for c in range(n_ch):
                    y[n, r, q, c] = -np.inf
                    indices[n, r, q, c] = h0 * w_in + w0
                for hh in range(h0, h1):
                    for ww in range(w0, w1):
                        flat = hh * w_in + ww
                        for c in range(n_ch):
                            # branch-free selects, so that LLVM vectorises over channels
                            v, best = x[n, hh, ww, c], y[n, r, q, c]
                            better = (v > best) | (v != v)
                            y[n, r, q, c] = v if better else best
                            indices[n, r, q, c] = flat if better else indices[n, r, q, c]


@njit(parallel=True, cache=True)
def max_pool2d_dilated_forward_numba(x, kh, kw, sh, sw, ph, pw, dh, dw, y, indices):
    """:func:`max_pool2d_forward_numba` for a dilated window: the same scan over the window's
    real taps, ``dh`` rows and ``dw`` columns apart; before anything wins, the index is the
    first real tap.

    NOTE: a separate twin, so that the dense one keeps its unit-step loops: with a step known
    only at run time (``range(h0, h1, dh)``) LLVM runs the dense NCHW scan 10-15% slower.
    """
    n_img, h_in, w_in, n_ch = x.shape
    oh, ow = y.shape[1:3]
    for n in prange(n_img):
        for r in range(oh):
            h0 = r * sh - ph
            h1 = min(h0 + (kh - 1) * dh + 1, h_in)
            if h0 < 0:  # the first tap at or after row 0
                h0 += (dh - 1 - h0) // dh * dh
            for q in range(ow):
                w0 = q * sw - pw
                w1 = min(w0 + (kw - 1) * dw + 1, w_in)
                if w0 < 0:
                    w0 += (dw - 1 - w0) // dw * dw
                for c in range(n_ch):
                    y[n, r, q, c] = -np.inf
                    indices[n, r, q, c] = h0 * w_in + w0
                for hh in range(h0, h1, dh):
                    for ww in range(w0, w1, dw):
                        flat = hh * w_in + ww
                        for c in range(n_ch):
                            v, best = x[n, hh, ww, c], y[n, r, q, c]
                            better = (v > best) | (v != v)
                            y[n, r, q, c] = v if better else best
                            indices[n, r, q, c] = flat if better else indices[n, r, q, c]


@njit(parallel=True, cache=True)
def max_pool2d_backward_numba(gy, indices, gx):
    """Numba twin of :func:`max_pool2d_backward_reference`: ``gy`` and ``indices`` (N, OH, OW, C)
    -> ``gx`` viewed as (N, H*W, C). Each image is one parallel task, so the scatter into it is
    race-free::

        gx = 0
        for every image n (in parallel), output pixel (r, q), channel c:
            gx[n, indices[n, r, q, c], c] += gy[n, r, q, c]
    """
    n_img, oh, ow, n_ch = gy.shape
    for n in prange(n_img):
        gx[n] = 0
        for r in range(oh):
            for q in range(ow):
                for c in range(n_ch):
                    gx[n, indices[n, r, q, c], c] += gy[n, r, q, c]


def max_pool2d_forward_cuda(x, kernel_size, stride, padding, output_size, channels_last,
                            dilation=(1, 1)):
    """CUDA twin of :func:`max_pool2d_forward_reference` (kernel ``max_pool2d_forward_nhwc``);
    NCHW-shaped results in ``x``'s layout, int32 indices."""
    xp = backend.get_array_module(x)  # cupy (numpy only when the kernel runs in host_harness)
    n, c = x.shape[:2]
    images, y, indices = _twin_arrays(xp, x, output_size, channels_last, x.dtype, np.int32)
    cuda_kernels.launch("max_pool2d_forward_nhwc", images.shape, output_size, kernel_size,
                        stride, padding, dilation=dilation, x=images, y=y, indices=indices)
    return from_images(y, n, c, channels_last), from_images(indices, n, c, channels_last)


def max_pool2d_backward_cuda(gy, indices, input_shape, kernel_size, stride, padding,
                             channels_last, dilation=(1, 1)):
    """CUDA twin of :func:`max_pool2d_backward_reference` (kernel ``max_pool2d_backward_nhwc``,
    a gather: one thread per element of gx)."""
    xp = backend.get_array_module(gy)
    n, c, h, w = input_shape
    gy, gx = _twin_arrays(xp, gy, (h, w), channels_last, gy.dtype)
    indices = to_images(indices, channels_last).astype(np.int32, copy=False)
    cuda_kernels.launch("max_pool2d_backward_nhwc", gx.shape, gy.shape[1:3], kernel_size,
                        stride, padding, dilation=dilation, gy=gy, indices=indices, gx=gx)
    return from_images(gx, n, c, channels_last)


def max_pool2d_forward(x, kernel_size, stride, padding, output_size, channels_last,
                       dilation=(1, 1)):
    """Max pooling on any device, by the twin :func:`choose_twin` picks (numba and CUDA work in
    ``x``'s layout). Returns ``(y, indices)`` as NCHW-shaped arrays."""
    twin = choose_twin(x)
    if twin == "reference":
        return max_pool2d_forward_reference(x, kernel_size, stride, padding, output_size,
                                            dilation)
    if twin == "cuda":
        return max_pool2d_forward_cuda(x, kernel_size, stride, padding, output_size,
                                       channels_last, dilation)
    n, c = x.shape[:2]
    # outputs allocated by NumPy, not inside numba: NumPy asks for huge pages, which makes the
    # first touch of a fresh multi-megabyte array several times cheaper
    images, y, indices = _twin_arrays(np, x, output_size, channels_last, x.dtype, np.int32)
    if tuple(dilation) == (1, 1):
        max_pool2d_forward_numba(images, *kernel_size, *stride, *padding, y, indices)
    else:
        max_pool2d_dilated_forward_numba(images, *kernel_size, *stride, *padding, *dilation, y,
                                         indices)
    return from_images(y, n, c, channels_last), from_images(indices, n, c, channels_last)


def max_pool2d_backward(gy, indices, input_shape, kernel_size, stride, padding, channels_last,
                        dilation=(1, 1)):
    """Gradient of :func:`max_pool2d_forward` (same dispatch, same layout); the numba twin
    scatters by the indices alone, so it needs no dilation."""
    twin = choose_twin(gy)
    if twin == "reference":
        return max_pool2d_backward_reference(gy, indices, input_shape, kernel_size, stride,
                                             padding, dilation)
    if twin == "cuda":
        return max_pool2d_backward_cuda(gy, indices, input_shape, kernel_size, stride, padding,
                                        channels_last, dilation)
    n, c, h, w = input_shape
    gy, gx = _twin_arrays(np, gy, (h, w), channels_last, gy.dtype)
    max_pool2d_backward_numba(gy, to_images(indices, channels_last),
                              gx.reshape(gy.shape[0], h * w, gy.shape[3]))
    return from_images(gx, n, c, channels_last)


# ---------------------------------------------------------------------------------------------
# Average pooling
# ---------------------------------------------------------------------------------------------

def avg_pool2d_divisors(input_hw, kernel_size, stride, padding, output_size, count_include_pad,
                        divisor_override=None):
    """The (OH, OW) array of divisors, PyTorch's rule: the window clipped to the padded input
    (``count_include_pad``) or to the real input (not), or ``divisor_override``. NumPy, int64."""
    if divisor_override:
        return np.full(output_size, divisor_override, dtype=np.int64)
    counts = []
    for size, k, s, p, out in zip(input_hw, kernel_size, stride, padding, output_size):
        start = np.arange(out) * s - p
        stop = np.minimum(start + k, size + p)  # ceil_mode windows end at the padding
        if not count_include_pad:
            start, stop = np.maximum(start, 0), np.minimum(stop, size)
        counts.append(stop - start)
    return counts[0][:, None] * counts[1][None, :]


def avg_pool2d_forward_reference(x, kernel_size, stride, padding, output_size, divisors):
    """Average pooling of ``x`` (N, C, H, W) -> (N, C, OH, OW): window sums over zero-padded
    slices, divided by ``divisors`` (OH, OW) (see :func:`avg_pool2d_divisors`)."""
    xp = backend.get_array_module(x)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (oh, ow) = kernel_size, stride, padding, output_size
    hp, wp = _padded_extent(h, kh, sh, ph, oh), _padded_extent(w, kw, sw, pw, ow)
    padded = xp.zeros((n, c, hp, wp), dtype=x.dtype)
    padded[:, :, ph:ph + h, pw:pw + w] = x
    total = xp.zeros((n, c, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            total += padded[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
    return total / xp.asarray(divisors, dtype=x.dtype)


def avg_pool2d_backward_reference(gy, input_shape, kernel_size, stride, padding, divisors):
    """Gradient of average pooling: each input element receives ``gy / divisor`` of every window
    it belongs to."""
    xp = backend.get_array_module(gy)
    n, c, h, w = input_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    oh, ow = gy.shape[2:]
    hp, wp = _padded_extent(h, kh, sh, ph, oh), _padded_extent(w, kw, sw, pw, ow)
    share = gy / xp.asarray(divisors, dtype=gy.dtype)
    gx = xp.zeros((n, c, hp, wp), dtype=gy.dtype)
    for i in range(kh):
        for j in range(kw):
            gx[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += share
    return gx[:, :, ph:ph + h, pw:pw + w]


@njit(parallel=True, cache=True)
def avg_pool2d_forward_numba(x, kh, kw, sh, sw, ph, pw, divisors, y):
    """Numba twin of :func:`avg_pool2d_forward_reference` on ``x`` (N, H, W, C), C-contiguous,
    with ``divisors`` (OH, OW) in ``x``'s dtype; fills ``y`` (N, OH, OW, C)::

        for every image n (in parallel), output pixel (r, q), channel c:
            y[n, r, q, c] = (sum of x[n, h, w, c] over the window's real pixels) / divisors[r, q]
    """
    n_img, h_in, w_in, n_ch = x.shape
    oh, ow = divisors.shape
    for n in prange(n_img):
        for r in range(oh):
            h0 = r * sh - ph
            for q in range(ow):
                w0 = q * sw - pw
                if n_ch == 1:  # an NCHW plane: a scalar loop
                    total = divisors[r, q] * 0  # a zero of x's dtype (divisors are finite)
                    for hh in range(max(h0, 0), min(h0 + kh, h_in)):
                        for ww in range(max(w0, 0), min(w0 + kw, w_in)):
                            total += x[n, hh, ww, 0]
                    y[n, r, q, 0] = total / divisors[r, q]
                    continue
                for c in range(n_ch):
                    y[n, r, q, c] = 0
                for hh in range(max(h0, 0), min(h0 + kh, h_in)):
                    for ww in range(max(w0, 0), min(w0 + kw, w_in)):
                        for c in range(n_ch):
                            y[n, r, q, c] += x[n, hh, ww, c]
                for c in range(n_ch):
                    y[n, r, q, c] /= divisors[r, q]


@njit(parallel=True, cache=True)
def avg_pool2d_backward_numba(share, kh, kw, sh, sw, ph, pw, gx):
    """Numba twin of :func:`avg_pool2d_backward_reference`: ``share = gy / divisors``
    (N, OH, OW, C) -> ``gx`` (N, H, W, C), one parallel task per image (so the scatter is
    race-free)::

        gx = 0
        for every image n (in parallel), output pixel (r, q), channel c:
            for every real pixel (h, w) of the window: gx[n, h, w, c] += share[n, r, q, c]
    """
    n_img, oh, ow, n_ch = share.shape
    h_in, w_in = gx.shape[1:3]
    for n in prange(n_img):
        gx[n] = 0
        for r in range(oh):
            h0 = r * sh - ph
            for q in range(ow):
                w0 = q * sw - pw
                if n_ch == 1:  # an NCHW plane: a scalar loop
                    g = share[n, r, q, 0]
                    for hh in range(max(h0, 0), min(h0 + kh, h_in)):
                        for ww in range(max(w0, 0), min(w0 + kw, w_in)):
                            gx[n, hh, ww, 0] += g
                    continue
                for hh in range(max(h0, 0), min(h0 + kh, h_in)):
                    for ww in range(max(w0, 0), min(w0 + kw, w_in)):
                        for c in range(n_ch):
                            gx[n, hh, ww, c] += share[n, r, q, c]


def avg_pool2d_forward_cuda(x, kernel_size, stride, padding, divisors, channels_last):
    """CUDA twin of :func:`avg_pool2d_forward_reference` (kernel ``avg_pool2d_forward_nhwc``);
    ``divisors`` (OH, OW) from :func:`avg_pool2d_divisors` (NumPy)."""
    xp = backend.get_array_module(x)  # cupy (numpy only when the kernel runs in host_harness)
    n, c = x.shape[:2]
    images, y = _twin_arrays(xp, x, divisors.shape, channels_last, x.dtype)
    cuda_kernels.launch("avg_pool2d_forward_nhwc", images.shape, divisors.shape, kernel_size,
                        stride, padding, x=images, divisors=xp.asarray(divisors, dtype=x.dtype),
                        y=y)
    return from_images(y, n, c, channels_last)


def avg_pool2d_backward_cuda(gy, input_shape, kernel_size, stride, padding, divisors,
                             channels_last):
    """CUDA twin of :func:`avg_pool2d_backward_reference` (kernel ``avg_pool2d_backward_nhwc``,
    a gather that divides each window's gradient by its divisor)."""
    xp = backend.get_array_module(gy)
    n, c, h, w = input_shape
    gy, gx = _twin_arrays(xp, gy, (h, w), channels_last, gy.dtype)
    cuda_kernels.launch("avg_pool2d_backward_nhwc", gx.shape, divisors.shape, kernel_size,
                        stride, padding, gy=gy, divisors=xp.asarray(divisors, dtype=gy.dtype),
                        gx=gx)
    return from_images(gx, n, c, channels_last)


def avg_pool2d_forward(x, kernel_size, stride, padding, divisors, channels_last):
    """Average pooling on any device, by the twin :func:`choose_twin` picks; ``divisors`` from
    :func:`avg_pool2d_divisors`."""
    output_size = divisors.shape
    twin = choose_twin(x)
    if twin == "reference":
        return avg_pool2d_forward_reference(x, kernel_size, stride, padding, output_size,
                                            divisors)
    if twin == "cuda":
        return avg_pool2d_forward_cuda(x, kernel_size, stride, padding, divisors, channels_last)
    n, c = x.shape[:2]
    images, y = _twin_arrays(np, x, output_size, channels_last, x.dtype)
    avg_pool2d_forward_numba(images, *kernel_size, *stride, *padding, divisors.astype(x.dtype), y)
    return from_images(y, n, c, channels_last)


def avg_pool2d_backward(gy, input_shape, kernel_size, stride, padding, divisors, channels_last):
    """Gradient of :func:`avg_pool2d_forward` (same dispatch, same layout)."""
    twin = choose_twin(gy)
    if twin == "reference":
        return avg_pool2d_backward_reference(gy, input_shape, kernel_size, stride, padding,
                                             divisors)
    if twin == "cuda":
        return avg_pool2d_backward_cuda(gy, input_shape, kernel_size, stride, padding, divisors,
                                        channels_last)
    n, c, h, w = input_shape
    gy, gx = _twin_arrays(np, gy, (h, w), channels_last, gy.dtype)
    share = gy / divisors.astype(gy.dtype)[None, :, :, None]  # PyTorch divides each gy once
    avg_pool2d_backward_numba(share, *kernel_size, *stride, *padding, gx)
    return from_images(gx, n, c, channels_last)
