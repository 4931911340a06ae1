"""im2col and col2im: the two loops that turn a convolution into one matrix product.

Layout. minicnn's convolution works on channels-last images ``x`` of shape ``(N, H, W, C)``
(the public tensors are NCHW-shaped views of that memory, see ``minicnn/ops/conv.py``). For a
``KH x KW`` kernel with stride ``(sH, sW)``, zero padding ``(pH, pW)`` and dilation ``(dH, dW)``
(the kernel's taps ``dH`` rows and ``dW`` columns apart; 1 is the ordinary, dense kernel) the
output has

    OH = (H + 2*pH - dH*(KH - 1) - 1) // sH + 1        (OW likewise)

pixels per column and row (``kernels/geometry.py``), and im2col builds the column matrix (one
row per output pixel, one column per weight of a filter)::

    cols[(n, oh, ow), (kh, kw, c)] = x[n, oh*sH - pH + kh*dH, ow*sW - pW + kw*dW, c]

with 0 where that row or column index falls into the padding. Row ``(n, oh, ow)`` is
``(n*OH + oh)*OW + ow`` and column ``(kh, kw, c)`` is ``(kh*KW + kw)*C + c``: the row holds the
window under the kernel, read row by row, with the C channels of a pixel side by side. Then a
convolution is ``y = cols @ W.T`` with ``W[oc, (kh, kw, c)] = weight[oc, c, kh, kw]``, and the
result, ``(N*OH*OW, OC)``, already is the channels-last output ``(N, OH, OW, OC)``.

col2im is the adjoint (transpose) of im2col: it sends every entry of a column matrix back to the
pixel it was copied from and sums what lands on the same pixel (a pixel sits in up to
``KH * KW`` windows, fewer when the stride skips some). That is how the gradient
``gcols = gy @ W`` of the columns becomes the gradient of the image, and it is the forward pass
of a transposed convolution::

    gx[n, y, x, c] = sum of gcols[(n, oh, ow), (kh, kw, c)]
                     over all (oh, ow, kh, kw) with oh*sH - pH + kh*dH = y,
                                                    ow*sW - pW + kw*dW = x

Each kernel comes twice:

* a readable NumPy version (``*_reference``), the lecture's: for each of the ``KH*KW`` kernel
  offsets ``(kh, kw)`` one strided slice of the padded image,
  ``x_padded[:, kh*dH : kh*dH + sH*OH : sH, kw*dW : kw*dW + sW*OW : sW, :]``, holds the pixel
  under that offset for every output position at once (the textbook im2col; a dilated kernel
  only starts its slices further apart); col2im adds the same slices back. It works on any
  array module (NumPy or CuPy) and is what the tests compare against;
* a numba twin (``*_numba``), what the CPU runs. Its im2col copies contiguous runs: with
  channels last, the ``KW`` pixels of one kernel row are ``KW*C`` consecutive numbers in ``x`` and
  in ``cols`` (for a dense kernel; the row of a dilated kernel has gaps, so it copies ``C``
  numbers per tap). Its col2im is the same walk backwards: each run of ``cols`` is added onto
  the run of ``gx`` it came from (no ``np.add.at``; the adds of one image stay in one thread, so
  there are no write conflicts). It replaced a gather (every pixel of ``gx`` summing the entries
  that came from it), whose short loops over the kernel taps ran 3-5 times slower.

NOTE: the numba twins are serial (no ``parallel=True``) and release the GIL (``nogil=True``): the
convolution engine runs them on chunks of a few images that fit in the CPU cache, several chunks
at once on its own worker threads (the threading policy in ``kernels/__init__.py``).

* a CUDA C twin (``*_cuda``, source in ``kernels/im2col.cu``), what the GPU runs for CuPy
  arrays: one thread per output element, col2im as a gather (each thread sums the column entries
  of its own pixel, so no atomics). :func:`im2col_cuda` hands the kernel's name, the geometry
  and the arrays to ``cuda_kernels.launch``, which runs it.

:func:`im2col` and :func:`col2im` run the twin that ``kernels/dispatch.py`` chooses.
"""
import numpy as np
from numba import njit

from minicnn import backend
from minicnn.kernels import cuda_kernels
from minicnn.kernels.dispatch import choose_twin
from minicnn.kernels.geometry import conv_output_size


def _sizes(shape, kernel_size, stride, padding, dilation=(1, 1)):
    N, H, W, C = shape
    (KH, KW), (sH, sW), (pH, pW), (dH, dW) = kernel_size, stride, padding, dilation
    return (N, H, W, C, conv_output_size(H, KH, sH, pH, dH),
            conv_output_size(W, KW, sW, pW, dW))


def _check_columns(cols, image_shape, kernel_size, stride, padding, dilation):
    """``_sizes`` of ``image_shape``, after checking that ``cols`` are its column matrix."""
    sizes = _sizes(tuple(image_shape), kernel_size, stride, padding, dilation)
    N, H, W, C, OH, OW = sizes
    expected = (N * OH * OW, kernel_size[0] * kernel_size[1] * C)
    if tuple(cols.shape) != expected:
        raise ValueError(f"col2im: columns of shape {tuple(cols.shape)} do not belong to an "
                         f"image of shape {tuple(image_shape)} (expected {expected})")
    return sizes


def _check_out(out, shape, dtype, what):
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(f"{what}: out must have shape {shape} and dtype {dtype}, got "
                         f"{out.shape} {out.dtype}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{what}: out must be C-contiguous")
    return out


# ---------------------------------------------------------------------------------------------
# NumPy reference (the lecture version; any array module)
# ---------------------------------------------------------------------------------------------

def im2col_reference(x, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                     out=None):
    """Channels-last image ``x`` (N, H, W, C) -> column matrix (N*OH*OW, KH*KW*C).

    ``kernel_size``, ``stride``, ``padding`` and ``dilation`` are pairs (rows, columns).
    """
    xp = backend.get_array_module(x)
    N, H, W, C, OH, OW = _sizes(x.shape, kernel_size, stride, padding, dilation)
    (KH, KW), (sH, sW), (pH, pW), (dH, dW) = kernel_size, stride, padding, dilation
    padded = xp.pad(x, ((0, 0), (pH, pH), (pW, pW), (0, 0)))
    cols = xp.empty((N, OH, OW, KH, KW, C), dtype=x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            # the pixel under kernel tap (kh, kw), for every output position at once; the taps
            # of a dilated kernel are dH rows and dW columns apart
            top, left = kh * dH, kw * dW
            cols[:, :, :, kh, kw, :] = padded[:, top:top + sH * OH:sH, left:left + sW * OW:sW, :]
    cols = cols.reshape(N * OH * OW, KH * KW * C)
    if out is None:
        return cols
    _check_out(out, cols.shape, cols.dtype, "im2col")[...] = cols
    return out


def col2im_reference(cols, image_shape, kernel_size, stride=(1, 1), padding=(0, 0),
                     dilation=(1, 1), out=None):
    """Column matrix (N*OH*OW, KH*KW*C) -> image (N, H, W, C) of ``image_shape``, summing the
    entries that belong to the same pixel (the adjoint of :func:`im2col_reference`)."""
    xp = backend.get_array_module(cols)
    N, H, W, C, OH, OW = _check_columns(cols, image_shape, kernel_size, stride, padding,
                                        dilation)
    (KH, KW), (sH, sW), (pH, pW), (dH, dW) = kernel_size, stride, padding, dilation
    cols = cols.reshape(N, OH, OW, KH, KW, C)
    # room for the padding on both sides; the last windows may stop short of the far edge
    padded = xp.zeros((N, H + 2 * pH, W + 2 * pW, C), dtype=cols.dtype)
    for kh in range(KH):
        for kw in range(KW):
            top, left = kh * dH, kw * dW
            padded[:, top:top + sH * OH:sH, left:left + sW * OW:sW, :] += cols[:, :, :, kh, kw, :]
    image = padded[:, pH:pH + H, pW:pW + W, :]
    if out is None:
        return xp.ascontiguousarray(image)
    _check_out(out, tuple(image_shape), cols.dtype, "col2im")[...] = image
    return out


# ---------------------------------------------------------------------------------------------
# numba twins (NumPy arrays, C-contiguous)
# ---------------------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _im2col_nhwc(x, KH, KW, sH, sW, pH, pW, OH, OW, cols):
    N, H, W, C = x.shape
    image_rows = x.reshape(N, H, W * C)               # one image row: W*C numbers in a run
    col_rows = cols.reshape(N * OH * OW, KH, KW * C)  # one kernel row of a window: KW*C numbers
    run = KW * C
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                row = (n * OH + oh) * OW + ow
                left = ow * sW - pW                   # input column under kernel column 0
                for kh in range(KH):
                    y = oh * sH - pH + kh             # input row under kernel row kh
                    dst = col_rows[row, kh]
                    if y < 0 or y >= H:               # the whole kernel row is in the padding
                        for t in range(run):
                            dst[t] = 0
                    elif left >= 0 and left + KW <= W:  # fully inside: one contiguous copy
                        src = image_rows[n, y, left * C:left * C + run]
                        for t in range(run):
                            dst[t] = src[t]
                    else:                             # partly in the left or right padding
                        for kw in range(KW):
                            xx = left + kw
                            if 0 <= xx < W:
                                for c in range(C):
                                    dst[kw * C + c] = x[n, y, xx, c]
                            else:
                                for c in range(C):
                                    dst[kw * C + c] = 0
    return cols


@njit(cache=True, nogil=True)
def _col2im_nhwc(cols, KH, KW, sH, sW, pH, pW, OH, OW, gx):
    N, H, W, C = gx.shape
    image_rows = gx.reshape(N, H, W * C)
    col_rows = cols.reshape(N * OH * OW, KH, KW * C)
    run = KW * C
    image_rows[:] = 0
    # im2col backwards: every kernel row of a window adds its KW*C numbers back onto the run of
    # the image row it was copied from (one image at a time, so no two threads add to one pixel)
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                row = (n * OH + oh) * OW + ow
                left = ow * sW - pW                   # input column under kernel column 0
                for kh in range(KH):
                    y = oh * sH - pH + kh             # input row under kernel row kh
                    if y < 0 or y >= H:               # the whole kernel row is in the padding
                        continue
                    src = col_rows[row, kh]
                    if left >= 0 and left + KW <= W:  # fully inside: one contiguous run
                        dst = image_rows[n, y, left * C:left * C + run]
                        for t in range(run):
                            dst[t] += src[t]
                    else:                             # partly in the left or right padding
                        for kw in range(KW):
                            xx = left + kw
                            if 0 <= xx < W:
                                for c in range(C):
                                    image_rows[n, y, xx * C + c] += src[kw * C + c]
    return gx


@njit(cache=True, nogil=True)
def _im2col_dilated_nhwc(x, KH, KW, sH, sW, pH, pW, dH, dW, OH, OW, cols):
    """:func:`_im2col_nhwc` for a dilated kernel: its taps are dH rows and dW columns apart,
    so a kernel row is KW runs of C numbers instead of one run of KW*C.

    NOTE: a separate twin, so that the dense one keeps its loops as they were: the tap
    arithmetic of this one, compiled into the dense kernel, made it 20-50% slower."""
    N, H, W, C = x.shape
    image_rows = x.reshape(N, H, W * C)
    col_rows = cols.reshape(N * OH * OW, KH, KW * C)
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                row = (n * OH + oh) * OW + ow
                left = ow * sW - pW                   # input column under kernel column 0
                for kh in range(KH):
                    y = oh * sH - pH + kh * dH        # input row under kernel row kh
                    dst = col_rows[row, kh]
                    for kw in range(KW):
                        xx = left + kw * dW           # input column under kernel column kw
                        if 0 <= y < H and 0 <= xx < W:
                            src = image_rows[n, y, xx * C:(xx + 1) * C]
                            for c in range(C):
                                dst[kw * C + c] = src[c]
                        else:                         # padding
                            for c in range(C):
                                dst[kw * C + c] = 0
    return cols


@njit(cache=True, nogil=True)
def _col2im_dilated_nhwc(cols, KH, KW, sH, sW, pH, pW, dH, dW, OH, OW, gx):
    """:func:`_col2im_nhwc` for a dilated kernel: each tap's C numbers go back onto the pixel
    they were copied from (one image at a time, so no two threads add to one pixel)."""
    N, H, W, C = gx.shape
    image_rows = gx.reshape(N, H, W * C)
    col_rows = cols.reshape(N * OH * OW, KH, KW * C)
    image_rows[:] = 0
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                row = (n * OH + oh) * OW + ow
                left = ow * sW - pW
                for kh in range(KH):
                    y = oh * sH - pH + kh * dH
                    if y < 0 or y >= H:               # the whole kernel row is in the padding
                        continue
                    src = col_rows[row, kh]
                    for kw in range(KW):
                        xx = left + kw * dW
                        if 0 <= xx < W:
                            for c in range(C):
                                image_rows[n, y, xx * C + c] += src[kw * C + c]
    return gx


def _im2col_output(xp, x, kernel_size, stride, padding, dilation, out):
    """``(OH, OW, out)`` for the twins of im2col: the output size, and the column matrix to
    write (``out`` checked, or a new one)."""
    N, H, W, C, OH, OW = _sizes(x.shape, kernel_size, stride, padding, dilation)
    shape = (N * OH * OW, kernel_size[0] * kernel_size[1] * C)
    out = xp.empty(shape, dtype=x.dtype) if out is None else _check_out(out, shape, x.dtype,
                                                                        "im2col")
    return OH, OW, out


def _col2im_output(xp, cols, image_shape, kernel_size, stride, padding, dilation, out):
    """``(OH, OW, out)`` for the twins of col2im, after checking that ``cols`` belongs to an
    image of ``image_shape``."""
    image_shape = tuple(image_shape)
    N, H, W, C, OH, OW = _check_columns(cols, image_shape, kernel_size, stride, padding,
                                        dilation)
    out = xp.empty(image_shape, dtype=cols.dtype) if out is None else \
        _check_out(out, image_shape, cols.dtype, "col2im")
    return OH, OW, out


def im2col_numba(x, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1), out=None):
    """numba twin of :func:`im2col_reference` (NumPy arrays); ``out`` may be a reused buffer."""
    OH, OW, out = _im2col_output(np, x, kernel_size, stride, padding, dilation, out)
    x = np.ascontiguousarray(x)
    if tuple(dilation) == (1, 1):
        _im2col_nhwc(x, *kernel_size, *stride, *padding, OH, OW, out)
    else:
        _im2col_dilated_nhwc(x, *kernel_size, *stride, *padding, *dilation, OH, OW, out)
    return out


def col2im_numba(cols, image_shape, kernel_size, stride=(1, 1), padding=(0, 0),
                 dilation=(1, 1), out=None):
    """numba twin of :func:`col2im_reference` (NumPy arrays); ``out`` may be a reused buffer."""
    OH, OW, out = _col2im_output(np, cols, image_shape, kernel_size, stride, padding, dilation,
                                 out)
    cols = np.ascontiguousarray(cols)
    if tuple(dilation) == (1, 1):
        _col2im_nhwc(cols, *kernel_size, *stride, *padding, OH, OW, out)
    else:
        _col2im_dilated_nhwc(cols, *kernel_size, *stride, *padding, *dilation, OH, OW, out)
    return out


# ---------------------------------------------------------------------------------------------
# CUDA twins (CuPy arrays; kernels/im2col.cu)
# ---------------------------------------------------------------------------------------------

def im2col_cuda(x, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1), out=None):
    """CUDA twin of :func:`im2col_reference` (CuPy arrays, float32/float64): kernel
    ``im2col_nhwc``, one thread per element of the column matrix."""
    xp = backend.get_array_module(x)
    OH, OW, out = _im2col_output(xp, x, kernel_size, stride, padding, dilation, out)
    cuda_kernels.launch("im2col_nhwc", x.shape, (OH, OW), kernel_size, stride, padding,
                        dilation=dilation, x=xp.ascontiguousarray(x), cols=out)
    return out


def col2im_cuda(cols, image_shape, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                out=None):
    """CUDA twin of :func:`col2im_reference` (CuPy arrays, float32/float64): kernel
    ``col2im_nhwc``, one thread per image element gathering its column entries."""
    xp = backend.get_array_module(cols)
    OH, OW, out = _col2im_output(xp, cols, image_shape, kernel_size, stride, padding, dilation,
                                 out)
    cuda_kernels.launch("col2im_nhwc", out.shape, (OH, OW), kernel_size, stride, padding,
                        dilation=dilation, cols=xp.ascontiguousarray(cols), image=out)
    return out


# ---------------------------------------------------------------------------------------------
# Public entry points: the twin chosen by kernels/dispatch.py
# ---------------------------------------------------------------------------------------------

def im2col(x, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1), out=None):
    """Column matrix of the channels-last image ``x``: the twin :func:`choose_twin` picks (numba
    for NumPy arrays, CUDA for float32/float64 CuPy arrays, the reference in the reference
    lane)."""
    twin = choose_twin(x)
    if twin == "reference":
        return im2col_reference(x, kernel_size, stride, padding, dilation, out)
    if twin == "cuda":
        return im2col_cuda(x, kernel_size, stride, padding, dilation, out)
    return im2col_numba(x, kernel_size, stride, padding, dilation, out)


def col2im(cols, image_shape, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
           out=None):
    """Image of shape ``image_shape`` (N, H, W, C) summed from the column matrix ``cols`` (the
    twin :func:`choose_twin` picks)."""
    twin = choose_twin(cols)
    if twin == "reference":
        return col2im_reference(cols, image_shape, kernel_size, stride, padding, dilation, out)
    if twin == "cuda":
        return col2im_cuda(cols, image_shape, kernel_size, stride, padding, dilation, out)
    return col2im_numba(cols, image_shape, kernel_size, stride, padding, dilation, out)
