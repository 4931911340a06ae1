"""Pooling: max, average and adaptive average pooling over the two spatial axes of (N, C, H, W).

A pooling window slides over each channel plane like a convolution kernel, but instead of a
weighted sum it takes the maximum (max pooling) or the mean (average pooling) of what it covers.
Every op takes a batch ``(N, C, H, W)`` or one image ``(C, H, W)`` (the result then has no batch
axis either, as in PyTorch). The output size along one axis, as in PyTorch
(``kernels/geometry.py``; ``span = dilation*(kernel - 1) + 1``, the kernel itself without
dilation, which only max pooling takes)::

    out = floor((size + 2*padding - span) / stride) + 1          (ceil_mode=False)
    out = ceil((size + 2*padding - span) / stride) + 1           (ceil_mode=True),
          minus 1 if that last window would start in the right padding

NOTE: ``ceil_mode`` keeps a last, partial window that the floor would drop, but never one that
starts beyond the input and its left padding (it would see padding only). ``padding`` may be at
most half the kernel, so every window holds at least one real input element.

The loops live in ``minicnn.kernels.pooling`` (a readable NumPy reference and a numba twin); the
classes here check the arguments, keep what backward needs and pick the memory layout: an input
whose memory is channels-last (NHWC, as the convolution produces it) stays channels-last. On the
reference lane (``MINICNN_KERNELS=reference``, ``mc.reference_kernels()``) the kernels run their
NumPy reference, the version notebook 01 builds.
"""
import numpy as np

from minicnn import backend
from minicnn.autograd import Function, Tensor
from minicnn.kernels import pooling as kernels
from minicnn.kernels.geometry import conv_output_size
from minicnn.ops.checks import add_batch_axis, check_images, remove_batch_axis
from minicnn.ops.shape import as_pair as _pair


# ---------------------------------------------------------------------------------------------
# Argument checks (all of them run before any array work)
# ---------------------------------------------------------------------------------------------

def pool_output_size(size, kernel, stride, padding, ceil_mode):
    """PyTorch's pooling output size along one axis: ``kernels.geometry.conv_output_size``
    (kept under this name for the kernel tests, which pass ``ceil_mode`` positionally)."""
    return conv_output_size(size, kernel, stride, padding, ceil_mode=ceil_mode)


def pool_geometry(op, shape, kernel_size, stride, padding, ceil_mode, dilation=(1, 1)):
    """Check pooling arguments against an input ``shape`` (N, C, H, W) and return
    ``(kernel, stride, padding, output_size)`` as pairs. ``stride=None`` means the kernel size;
    ``dilation`` is a checked pair (max pooling's)."""
    kernel = _pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None or stride == () else _pair(stride, "stride", op)
    padding = _pair(padding, "padding", op)
    if min(kernel) <= 0:
        raise ValueError(f"{op}: kernel_size must be positive, got {kernel}")
    if min(stride) <= 0:
        raise ValueError(f"{op}: stride must be positive, got {stride} (a stride of 0 would never "
                         "move the window)")
    if min(padding) < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {padding}")
    for p, k in zip(padding, kernel):
        if p > k // 2:
            raise ValueError(f"{op}: padding should be at most half of the kernel size, but got "
                             f"padding={padding} for kernel_size={kernel} (a window could then "
                             "see padding only)")
    size = tuple(shape[2:])
    out = tuple(conv_output_size(n, k, s, p, d, ceil_mode)
                for n, k, s, p, d in zip(size, kernel, stride, padding, dilation))
    dilated = "" if dilation == (1, 1) else f" and dilation {dilation}"
    if min(out) < 1:
        raise ValueError(
            f"{op}: a {kernel[0]}x{kernel[1]} kernel with padding {padding}{dilated} does not fit "
            f"the {size[0]}x{size[1]} input (padded: {size[0] + 2 * padding[0]}x"
            f"{size[1] + 2 * padding[1]}): it leaves no output (computed output size "
            f"{out[0]}x{out[1]}). Use a smaller kernel, more padding or a larger input.")
    for axis, (n, k, s, p, d, o) in enumerate(zip(size, kernel, stride, padding, dilation, out)):
        # NOTE: a dilated window can straddle a small input with every tap in the padding
        # (PyTorch then returns -inf and an index outside the plane, which corrupts memory in
        # its backward): refuse it
        taps = np.arange(o)[:, None] * s - p + np.arange(k) * d
        if not ((taps >= 0) & (taps < n)).any(axis=1).all():
            raise ValueError(f"{op}: with kernel {kernel}, stride {stride}, padding {padding}"
                             f"{dilated}, a window along axis {axis + 2} of the {size[0]}x"
                             f"{size[1]} input has every tap in the padding. Use less padding "
                             "or a smaller dilation.")
    return kernel, stride, padding, out


# ---------------------------------------------------------------------------------------------
# Max pooling
# ---------------------------------------------------------------------------------------------

class MaxPool2d(Function):
    """Max pooling. Forward remembers, for every output element, which input element won its
    window (``indices``, PyTorch's ``h * W + w``); backward sends each gradient there.

    NOTE: ties go to the FIRST maximum in scan order (row by row), as in PyTorch; at a tie the
    function has a kink, so gradient checks use inputs without ties.
    """

    def __init__(self, kernel_size, stride, padding, output_size, dilation=(1, 1)):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.output_size, self.dilation = output_size, dilation

    def forward(self, x):
        self.input_shape = x.shape
        self.channels_last = kernels.is_channels_last(x)
        y, self.indices = kernels.max_pool2d_forward(x, self.kernel_size, self.stride,
                                                     self.padding, self.output_size,
                                                     self.channels_last, self.dilation)
        return y

    def backward(self, gy):
        return kernels.max_pool2d_backward(gy, self.indices, self.input_shape, self.kernel_size,
                                           self.stride, self.padding, self.channels_last,
                                           self.dilation)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max pooling: (N, C, H, W) -> (N, C, OH, OW) (or (C, H, W) -> (C, OH, OW)), each output
    the maximum of its window.

    ``kernel_size``, ``stride`` (default: the kernel size), ``padding`` and ``dilation`` are ints
    or pairs; padding counts as -inf. ``OH = floor((H + 2*padding - dilation*(kernel - 1) - 1)
    / stride) + 1`` (``ceil`` with ``ceil_mode``, see the module docstring). A dilated window
    looks at ``kernel`` taps ``dilation`` apart. With ``return_indices`` also returns the int64
    positions ``h * W + w`` of the maxima (a tensor without gradient).
    """
    x, unbatched = add_batch_axis("max_pool2d", x)
    check_images("max_pool2d", x)
    dilation = _pair(dilation, "dilation", "max_pool2d")
    if min(dilation) < 1:
        raise ValueError(f"max_pool2d: dilation should be greater than zero, but got "
                         f"{dilation}")
    geometry = pool_geometry("max_pool2d", x.shape, kernel_size, stride, padding, ceil_mode,
                             dilation)
    fn = MaxPool2d(*geometry, dilation)
    y = remove_batch_axis(fn(x), unbatched)
    if return_indices:
        indices = fn.indices.astype(np.int64)
        return y, Tensor._wrap(indices[0] if unbatched else indices, False)
    return y


# ---------------------------------------------------------------------------------------------
# Average pooling
# ---------------------------------------------------------------------------------------------

class AvgPool2d(Function):
    """Average pooling: window sums divided by PyTorch's divisor (see ``avg_pool2d``). Backward
    spreads each ``gy / divisor`` evenly back over the window's real input elements."""

    def __init__(self, kernel_size, stride, padding, output_size, count_include_pad,
                 divisor_override):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.output_size = output_size
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x):
        self.input_shape = x.shape
        self.channels_last = kernels.is_channels_last(x)
        self.divisors = kernels.avg_pool2d_divisors(
            x.shape[2:], self.kernel_size, self.stride, self.padding, self.output_size,
            self.count_include_pad, self.divisor_override)
        return kernels.avg_pool2d_forward(x, self.kernel_size, self.stride, self.padding,
                                          self.divisors, self.channels_last)

    def backward(self, gy):
        return kernels.avg_pool2d_backward(gy, self.input_shape, self.kernel_size, self.stride,
                                           self.padding, self.divisors, self.channels_last)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Average pooling: (N, C, H, W) -> (N, C, OH, OW), each output the mean of its window.

    Output size as for :func:`max_pool2d`; padding counts as zeros. The divisor of a window
    (PyTorch's rule): ``divisor_override`` if given; else, with ``count_include_pad`` (the
    default), the window's size clipped to the padded input (only a ``ceil_mode`` window reaching
    past the right padding is smaller than ``kH*kW``); else the number of real input elements in
    the window. One image ``(C, H, W)`` gives ``(C, OH, OW)``.
    """
    x, unbatched = add_batch_axis("avg_pool2d", x)
    check_images("avg_pool2d", x)
    if divisor_override is not None and (not isinstance(divisor_override, (int, np.integer))
                                         or divisor_override <= 0):
        raise ValueError(f"avg_pool2d: divisor_override must be a positive int, got "
                         f"{divisor_override!r}")
    geometry = pool_geometry("avg_pool2d", x.shape, kernel_size, stride, padding, ceil_mode)
    y = AvgPool2d(*geometry, bool(count_include_pad), divisor_override)(x)
    return remove_batch_axis(y, unbatched)


# ---------------------------------------------------------------------------------------------
# Adaptive average pooling
# ---------------------------------------------------------------------------------------------

def adaptive_bins(size, out):
    """PyTorch's adaptive-pooling bins along one axis: bin ``i`` covers
    ``floor(i*size/out) <= h < ceil((i+1)*size/out)`` (bins may overlap by one when ``out`` does
    not divide ``size``). Returns the (start, stop) arrays."""
    i = np.arange(out)
    return (i * size) // out, -((-(i + 1) * size) // out)


def adaptive_pool_matrix(size, out, dtype):
    """The (out, size) matrix that averages each bin: row ``i`` holds ``1/len(bin i)`` on the bin.
    Adaptive average pooling is separable: ``y = A_h @ x @ A_w.T`` for every channel plane."""
    start, stop = adaptive_bins(size, out)
    h = np.arange(size)
    inside = (h >= start[:, None]) & (h < stop[:, None])
    return (inside / (stop - start)[:, None]).astype(dtype)


class AdaptiveAvgPool2d(Function):
    """Adaptive average pooling as two small matrix products, ``y = A_h x A_w^T`` per plane, so
    its backward is the transposed products ``gx = A_h^T gy A_w``. The common global pooling
    (output 1x1) takes the plain mean instead."""

    def __init__(self, output_size):
        self.output_size = output_size

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.input_shape, self.input_dtype = x.shape, x.dtype
        self.like = x if kernels.is_channels_last(x) else None  # gx keeps x's layout
        (h, w), (oh, ow) = x.shape[2:], self.output_size
        if (oh, ow) == (1, 1):
            return x.mean(axis=(2, 3), keepdims=True, dtype=x.dtype)
        self.a_h = xp.asarray(adaptive_pool_matrix(h, oh, x.dtype))
        self.a_w = xp.asarray(adaptive_pool_matrix(w, ow, x.dtype))
        return self.a_h @ (x @ self.a_w.T)

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        h, w = self.input_shape[2:]
        if self.output_size == (1, 1):
            gx = xp.empty_like(self.like) if self.like is not None else \
                xp.empty(self.input_shape, dtype=gy.dtype)
            gx[...] = gy / gy.dtype.type(h * w)
            return gx
        return self.a_h.T @ (gy @ self.a_w)


def adaptive_avg_pool2d(x, output_size):
    """Average pooling to a fixed output size: (N, C, H, W) -> (N, C, OH, OW) for any H, W.

    ``output_size`` is an int or a pair; a ``None`` entry keeps that input size. Output ``(i, j)``
    is the mean over rows ``floor(i*H/OH) <= h < ceil((i+1)*H/OH)`` and the columns likewise
    (PyTorch's bins). ``adaptive_avg_pool2d(x, 1)`` is global average pooling. One image
    ``(C, H, W)`` gives ``(C, OH, OW)``.
    """
    x, unbatched = add_batch_axis("adaptive_avg_pool2d", x)
    check_images("adaptive_avg_pool2d", x)
    if isinstance(output_size, (int, np.integer)) or output_size is None:
        output_size = (output_size, output_size)
    if not isinstance(output_size, (tuple, list)) or len(output_size) != 2:
        raise TypeError(f"adaptive_avg_pool2d: output_size must be an int, None or a pair, got "
                        f"{output_size!r}")
    size = tuple(int(n if o is None else o) for n, o in zip(x.shape[2:], output_size))
    if min(size) <= 0:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be positive, got {output_size}")
    if min(x.shape[2:]) <= 0:
        raise ValueError(f"adaptive_avg_pool2d: the input {tuple(x.shape)} has an empty spatial "
                         "axis: it leaves no output")
    return remove_batch_axis(AdaptiveAvgPool2d(size)(x), unbatched)
