"""Memory prediction: the bytes of column buffers a convolution layer will use.

``minicnn.summary`` and the layers' ``column_bytes`` ask here, before any array exists. The
prediction walks the same decisions as ``minicnn/engine/conv.py`` (1x1 layers need no columns,
one-channel layers use the direct kernels, the input gradient as a convolution or by col2im) and
the same chunking (``minicnn/engine/parallel.py``), so with one worker thread it is exact
(``tests/test_conv.py`` checks it against the workspace after a real pass).
"""
import numpy as np

from minicnn.engine import conv
from minicnn.engine.parallel import chunking
from minicnn.kernels.geometry import conv_output_size, conv_transpose_output_size


def _pair(value):
    """An int or a pair as a pair (the op has checked the values already)."""
    return (int(value), int(value)) if isinstance(value, (int, np.integer)) else tuple(value)


def _buffer_bytes(n, per_image, chunked):
    """Bytes of all the column buffers a pass with ``per_image`` bytes of columns per image
    uses: one chunk's worth per worker thread that gets a chunk."""
    if per_image <= 0 or n == 0:
        return 0
    if not chunked:
        return n * per_image
    step, _, workers = chunking(np, n, per_image)
    return workers * step * per_image


def _forward_bytes(n, out_hw, kernel, stride, padding, cin_g, itemsize, chunked):
    """Buffers of conv2d_nhwc: the columns of its input."""
    if conv.is_pointwise(kernel, stride, padding):
        return 0
    per_image = out_hw[0] * out_hw[1] * kernel[0] * kernel[1] * cin_g * itemsize
    return _buffer_bytes(n, per_image, chunked)


def _input_grad_bytes(n, in_hw, out_hw, kernel, stride, padding, cin_g, cout_g, itemsize,
                      chunked, with_weight_grad, dilation=(1, 1)):
    """Buffers of conv2d_input_grad_nhwc for the conv ``in_hw, cin -> out_hw, cout``."""
    KH, KW = kernel
    if conv.is_pointwise(kernel, stride, padding):
        return 0
    if conv.input_grad_as_convolution(kernel, stride, padding, in_hw, out_hw, cin_g, cout_g,
                                      with_weight_grad, dilation):
        return _buffer_bytes(n, in_hw[0] * in_hw[1] * KH * KW * cout_g * itemsize, chunked)
    return _buffer_bytes(n, out_hw[0] * out_hw[1] * KH * KW * cin_g * itemsize, chunked)


def conv2d_column_bytes(input_shape, weight_shape, stride=1, padding=0, groups=1,
                        dtype=np.float32, chunked=True, backward=True, dilation=1):
    """Bytes of the column buffers ``conv2d`` builds for this layer (the largest pass).

    ``input_shape`` (N, C, H, W), ``weight_shape`` (C_out, C_in/groups, kH, kW). With
    ``chunked=True`` (what conv2d does) the batch is cut into chunks, one buffer per worker
    thread (see ``chunk_bytes``, ``max_column_bytes`` and ``num_threads`` in
    ``minicnn/engine/parallel.py``); ``chunked=False`` gives the size for the whole batch at
    once -- for the forward pass the textbook column matrix, ``N*OH*OW x kH*kW*C_in/groups``
    numbers. ``backward=True`` includes the buffers of the backward pass (the columns of ``gy``
    at stride 1, else ``gy @ W``). 1x1 convolutions with stride 1 and no padding need none (0).
    ``dilation`` (int or pair) spreads the kernel's taps: the output, and so the columns, shrink
    by ``dilation*(k-1) + 1 - k`` rows and columns.
    The buffers are kept for reuse between calls and shared by all layers, so the largest
    layer's count is what stays held.

    Example: VGG-16's conv1_2 at 224x224, batch 32: ``chunked=False`` gives 3.7 GB; chunked,
    one image per chunk and thread, 116 MB per thread (231 MB with two worker threads).
    """
    N, C, H, W = input_shape
    OC, Cg, KH, KW = weight_shape
    stride, padding, kernel = _pair(stride), _pair(padding), (KH, KW)
    dilation = _pair(dilation)
    out_hw = tuple(conv_output_size(n, k, s, p, d) for n, k, s, p, d in
                   zip((H, W), kernel, stride, padding, dilation))
    itemsize = np.dtype(dtype).itemsize
    if conv.use_direct(np, (N, H, W, C), weight_shape, stride, groups, dilation):
        # no columns forward or for gW (point 8); the input gradient, if needed, has its own
        return _input_grad_bytes(N, (H, W), out_hw, kernel, stride, padding, Cg, OC, itemsize,
                                 chunked, False) if backward else 0
    sizes = [_forward_bytes(N, out_hw, kernel, stride, padding, Cg, itemsize, chunked)]
    if backward:
        sizes.append(_input_grad_bytes(N, (H, W), out_hw, kernel, stride, padding, Cg,
                                       OC // groups, itemsize, chunked, True, dilation))
    return max(sizes)


def conv_transpose2d_column_bytes(input_shape, weight_shape, stride=1, padding=0,
                                  output_padding=0, groups=1, dtype=np.float32, chunked=True,
                                  backward=True, dilation=1):
    """Bytes of the column buffers ``conv_transpose2d`` builds for this layer (see
    :func:`conv2d_column_bytes`); ``weight_shape`` is (C_in, C_out/groups, kH, kW)."""
    N, C, H, W = input_shape
    Cin, OCg, KH, KW = weight_shape
    stride, padding, output_padding = _pair(stride), _pair(padding), _pair(output_padding)
    kernel, dilation = (KH, KW), _pair(dilation)
    out_hw = tuple(conv_transpose_output_size(n, k, s, p, o, d) for n, k, s, p, o, d in
                   zip((H, W), kernel, stride, padding, output_padding, dilation))
    itemsize = np.dtype(dtype).itemsize
    # it runs the conv2d that maps its output (out_hw, OCg per group) back to its input (H, W,
    # Cin/groups per group): forward = that conv's input gradient, backward = its forward
    sizes = [_input_grad_bytes(N, out_hw, (H, W), kernel, stride, padding, OCg, Cin // groups,
                               itemsize, chunked, False, dilation)]
    if backward:
        sizes.append(_forward_bytes(N, (H, W), kernel, stride, padding, OCg, itemsize, chunked))
    return max(sizes)
