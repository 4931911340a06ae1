"""Convolution, the basic component of every ConvNet from LeNet on: im2col, then ONE matrix product.

Shapes. A batch of images ``x`` (N, C, H, W) and ``OC`` filters ``w`` (OC, C, KH, KW) give
``y`` (N, OC, OH, OW); the filter slides with step ``stride`` over the input, zero-padded by
``padding`` on each side, and fits::

    OH = floor((H + 2*padding - KH) / stride) + 1        (the same for OW)

times along each axis (``kernels/geometry.py``, the one place minicnn computes it). A dilated
filter (``dilation`` d, DeepLab's atrous convolution) has its KH taps d rows apart: it spans
``d*(KH - 1) + 1`` rows with the same KH*KW weights, and that span takes KH's place above.

Forward. Copy the window under the kernel at every output position into one row of a matrix:
im2col (``kernels/im2col.py``). A filter is then a vector of ``KH*KW*C`` weights, and the
whole convolution is one matrix product (GEMM)::

    cols = im2col(x)                    (N*OH*OW, KH*KW*C)
    y    = cols @ W.T + b               (N*OH*OW, OC)   with W = w as (OC, KH*KW*C)

Backward. With ``gy`` the gradient of ``y`` in the same (N*OH*OW, OC) form, two more GEMMs::

    gW    = gy.T @ cols                 (OC, KH*KW*C):   each weight meets every input pixel it
                                                          ever multiplied
    gcols = gy @ W                      (N*OH*OW, KH*KW*C)
    gx    = col2im(gcols)               (N, C, H, W):    each column entry goes back to the pixel
                                                          it was copied from, summed where
                                                          windows overlap
    gb    = sum of gy over N, OH, OW    (OC,)

``conv_transpose2d`` (U-Net's up-convolution) IS the map ``gy -> gx`` above: its forward is
col2im, and its backward uses im2col.

Where the work happens. The two Functions below hold the idea; they hand channels-last arrays to
``minicnn/engine/conv.py``, which runs exactly these products -- on the reference lane
(``MINICNN_KERNELS=reference``, ``mc.reference_kernels()``) as written above, in one piece;
otherwise chunk by chunk on worker threads with reused buffers and a few special cases (its
docstring lists them, with what each one measured). Notebook 01 shows the two agree.

Memory layout. The product's rows ``(n, oh, ow)`` make ``y`` a channels-last (NHWC) image, so
``conv2d`` returns an NCHW-*shaped* view of NHWC memory (``y.transpose(0, 3, 1, 2)``, no copy):
the shapes are PyTorch's, and the next convolution gets its channels-last input for free.
"""
import numpy as np

from minicnn import backend
from minicnn.autograd import Function, as_tensor
from minicnn.engine import conv as engine
from minicnn.kernels.geometry import conv_output_size, conv_transpose_output_size, window_span
from minicnn.ops.checks import add_batch_axis, check_images, remove_batch_axis
from minicnn.ops.shape import as_pair, pad


def to_channels_last(a):
    """The NCHW-shaped ``a`` as a C-contiguous NHWC array: free when ``a`` is channels-last in
    memory (what conv2d returns), one copy otherwise."""
    return backend.get_array_module(a).ascontiguousarray(a.transpose(0, 2, 3, 1))


class Conv2d(Function):
    """2-D convolution (cross-correlation, as in PyTorch): ``y = im2col(x) @ W.T + b``;
    backward ``gW = gy.T @ cols``, ``gx = col2im(gy @ W)``. See :func:`conv2d`."""

    def __init__(self, stride, padding, groups, dilation=(1, 1)):
        self.stride, self.padding, self.groups = stride, padding, groups
        self.dilation = dilation                 # the kernel's taps this far apart (rows, cols)

    def forward(self, x, w, b=None):
        self.x = to_channels_last(x)             # (N, H, W, C), kept for gW = gy.T @ im2col(x)
        self.w, self.has_bias = w, b is not None
        y = engine.forward(self.x, w, b, self.stride, self.padding, self.groups,
                           self.dilation)        # im2col, GEMM
        return y.transpose(0, 3, 1, 2)           # (N, OC, OH, OW): NCHW shape, NHWC memory

    def backward(self, gy):
        gy = to_channels_last(gy)                # (N, OH, OW, OC): rows of gy in GEMM form
        # a frozen weight gets no gW, an input that needs no gradient (the data, or the output
        # of a frozen backbone) no gx: only the products someone uses are computed
        need_x, need_w = self.needs_input_grad[:2]
        gx, gw = engine.backward(self.x, self.w, gy, self.stride, self.padding, self.groups,
                                 need_x, need_w, self.dilation)  # col2im(gy @ W), gy.T @ cols
        if gx is not None:
            gx = gx.transpose(0, 3, 1, 2)
        if not self.has_bias:
            return gx, gw
        gb = engine.bias_grad(gy) if self.needs_input_grad[2] else None
        return gx, gw, gb


class ConvTranspose2d(Function):
    """Transposed convolution: the input gradient of the conv2d that maps its output back to its
    input. Forward ``y = col2im(x @ W) + b``; backward is that conv2d's forward for gx,
    ``gx = im2col(gy) @ W.T``, and its weight gradient for gW, ``gW = x.T @ im2col(gy)``, both
    from the columns of ``gy``. See :func:`conv_transpose2d`."""

    def __init__(self, stride, padding, output_size, groups, dilation=(1, 1)):
        self.stride, self.padding, self.groups = stride, padding, groups
        self.output_size, self.dilation = output_size, dilation

    def forward(self, x, w, b=None):
        self.x = to_channels_last(x)
        self.w, self.has_bias = w, b is not None
        y = engine.transpose_forward(self.x, w, b, self.output_size, self.stride, self.padding,
                                     self.groups, self.dilation)
        return y.transpose(0, 3, 1, 2)

    def backward(self, gy):
        gy = to_channels_last(gy)
        need_x, need_w = self.needs_input_grad[:2]
        gx, gw = engine.transpose_backward(self.x, self.w, gy, self.stride, self.padding,
                                           self.groups, need_x, need_w, self.dilation)
        if gx is not None:
            gx = gx.transpose(0, 3, 1, 2)
        if not self.has_bias:
            return gx, gw
        gb = engine.bias_grad(gy) if self.needs_input_grad[2] else None
        return gx, gw, gb


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (PyTorch's ``F.conv2d``): ``(N, C, H, W) -> (N, OC, OH, OW)``; one image
    ``(C, H, W)`` gives ``(OC, OH, OW)``.

    ``weight`` (OC, C/groups, kH, kW), ``bias`` (OC,) or None. ``stride``, ``padding`` and
    ``dilation`` are ints or (rows, columns) pairs; ``padding`` may also be ``'valid'`` (0) or
    ``'same'`` (output as large as the input; stride 1 only; an odd total padding
    ``dilation*(k - 1)`` gets its extra row/column at the end, as in PyTorch). Zero padding.
    Output size along each axis::

        OH = floor((H + 2*padding - dilation*(kH - 1) - 1) / stride) + 1

    ``groups`` splits the channels into that many independent convolutions (AlexNet's two GPUs:
    ``groups=2``); C and OC must both be divisible by it. ``dilation`` spreads the kernel's taps
    (atrous convolution): a 3x3 kernel with dilation 2 sees a 5x5 window with the same 9 weights.

    Like PyTorch it computes the cross-correlation ``y[n, oc, i, j] = b[oc] + sum over c, kh, kw of
    w[oc, c, kh, kw] * x_padded[n, c, i*sH + kh*dH, j*sW + kw*dW]``. The result's memory is
    channels-last (see the module docstring); its shape is NCHW.
    """
    x, weight = as_tensor(x), as_tensor(weight)
    bias = None if bias is None else as_tensor(bias)
    x, unbatched = add_batch_axis("conv2d", x)
    dilation = check_dilation("conv2d", dilation)
    stride, padding, extra = conv2d_geometry(x, weight, bias, stride, padding, groups, dilation)
    if extra != (0, 0):  # 'same' with an odd total padding: PyTorch pads the extra one last
        x = pad(x, (0, extra[1], 0, extra[0]))
    fn = Conv2d(stride, padding, int(groups), dilation)
    return remove_batch_axis(fn(x, weight) if bias is None else fn(x, weight, bias), unbatched)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed convolution (PyTorch's ``F.conv_transpose2d``): ``(N, C, H, W) ->
    (N, OC, OH, OW)``, the U-Net up-convolution; one image ``(C, H, W)`` gives ``(OC, OH, OW)``.

    ``weight`` (C, OC/groups, kH, kW) -- note the order: input channels first, as in PyTorch --
    and ``bias`` (OC,) or None. Output size along each axis::

        OH = (H - 1)*stride - 2*padding + dilation*(kH - 1) + output_padding + 1

    (``output_padding`` < max(stride, dilation) adds rows/columns at the end to pick among the
    input sizes a strided conv2d maps to the same H.) ``dilation`` spreads the kernel's taps.

    It is the adjoint of ``conv2d``: ``conv_transpose2d(gy, w)`` is the gradient with respect to
    its input of ``conv2d(x, w)`` for the upstream gradient ``gy`` (same stride, padding, groups).
    So its forward is conv2d's input gradient -- ``col2im(x @ W)``, each input pixel spreading a
    weighted copy of the kernel over the output -- and its backward uses im2col: the input
    gradient is ``conv2d(gy, w)`` and the weight gradient is conv2d's weight gradient with the
    roles of input and output swapped.
    """
    x, weight = as_tensor(x), as_tensor(weight)
    bias = None if bias is None else as_tensor(bias)
    x, unbatched = add_batch_axis("conv_transpose2d", x)
    dilation = check_dilation("conv_transpose2d", dilation)
    stride, padding, out = conv_transpose2d_geometry(x, weight, bias, stride, padding,
                                                     output_padding, groups, dilation)
    # NOTE: an output_padding of a stride or more (allowed below the dilation) makes an output
    # whose conv2d would have output_padding // stride more rows than x: x gets that many rows
    # of zeros at the end, so that the conv2d-adjoint below stays exact (they add nothing)
    more = [o // s for o, s in zip(as_pair(output_padding, "output_padding", "conv_transpose2d"),
                                   stride)]
    if max(more) > 0:
        x = pad(x, (0, more[1], 0, more[0]))
    fn = ConvTranspose2d(stride, padding, out, int(groups), dilation)
    return remove_batch_axis(fn(x, weight) if bias is None else fn(x, weight, bias), unbatched)


# ---------------------------------------------------------------------------------------------
# Argument checks (everything here runs before any array work)
# ---------------------------------------------------------------------------------------------

def check_dilation(op, dilation):
    """``dilation`` as a pair of ints, each at least 1 (PyTorch's rule and wording)."""
    dilation = as_pair(dilation, "dilation", op)
    if min(dilation) < 1:
        raise ValueError(f"{op}: dilation should be greater than zero, but got {dilation} (1 is "
                         "the ordinary kernel, d > 1 puts its taps d pixels apart)")
    return dilation


def _check_tensors(op, x, w, b, weight_layout):
    """Ranks, float dtypes that agree, one device, bias shape."""
    check_images(op, x)
    if w.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D weight {weight_layout}, got a {w.ndim}-D weight "
                         f"of shape {tuple(w.shape)}")
    devices = {t.device for t in (x, w, b) if t is not None}
    if len(devices) > 1:
        where = ", ".join(f"{name} on {t.device}" for name, t in
                          (("input", x), ("weight", w), ("bias", b)) if t is not None)
        raise RuntimeError(f"{op}: the tensors are on different devices ({where}); move them to "
                           "one device with .to(device) first")
    if x.dtype.kind != "f" or x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: the input must be float32 or float64, got {x.dtype}; convert it "
                        "with x.float()")
    for name, t in (("weight", w), ("bias", b)):
        if t is not None and t.dtype != x.dtype:
            raise TypeError(
                f"{op}: the input is {x.dtype} but the {name} is {t.dtype}; they must match. "
                f"Convert the input (x.float() for float32, x.double() for float64) or the "
                f"layer (layer.to(dtype=np.{x.dtype}))")


def _check_groups(op, groups, channels):
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    if channels % groups:
        raise ValueError(f"{op}: the input's {channels} channels are not divisible by "
                         f"groups={groups}")


def _check_window(op, kernel, stride, padding):
    if min(stride) <= 0:
        raise ValueError(f"{op}: stride must be positive, got {stride} (a stride of 0 would never "
                         "move the kernel)")
    if min(padding) < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {padding}")
    if min(kernel) <= 0:
        raise ValueError(f"{op}: the kernel must be at least 1x1, got {kernel[0]}x{kernel[1]}")


def _same_padding(op, stride, kernel, dilation):
    """``(padding, extra)`` of ``padding='same'``: PyTorch puts half of the total
    ``d*(k - 1)`` before and the rest after, so an odd total gets ``extra`` at the end."""
    if stride != (1, 1):
        raise ValueError(f"{op}: padding='same' is not supported for strided convolutions "
                         f"(stride {stride}), as in PyTorch")
    total = [d * (k - 1) for k, d in zip(kernel, dilation)]
    return tuple(t // 2 for t in total), tuple(t % 2 for t in total)


def conv2d_geometry(x, w, b, stride, padding, groups, dilation=(1, 1)):
    """Check conv2d's arguments; return (stride, padding, extra_pad) with pairs of ints.

    ``extra_pad`` is ``(bottom, right)`` padding beyond the symmetric one, only needed for
    ``padding='same'`` with an even kernel (PyTorch pads the extra row/column at the end).
    """
    op = "conv2d"
    _check_tensors(op, x, w, b, "(C_out, C_in/groups, kH, kW)")
    N, C, H, W = x.shape
    OC, Cg, KH, KW = w.shape
    _check_groups(op, groups, C)
    if OC % groups:
        raise ValueError(f"{op}: the weight's {OC} output channels (weight shape "
                         f"{tuple(w.shape)}) are not divisible by groups={groups}")
    if C != Cg * groups:
        expects = f"{Cg}" if groups == 1 else f"{Cg} * groups={groups} = {Cg * groups}"
        raise ValueError(f"{op}: input has {C} channels but the weight expects {expects} "
                         f"(weight shape {tuple(w.shape)} is (C_out, C_in/groups, kH, kW); "
                         f"input shape {tuple(x.shape)})")
    stride, extra = as_pair(stride, "stride", op), (0, 0)
    if isinstance(padding, str) and padding in ("valid", "same"):
        padding, extra = ((0, 0), extra) if padding == "valid" else \
            _same_padding(op, stride, (KH, KW), dilation)
    elif isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int, a pair, 'same' or 'valid', got "
                         f"{padding!r}")
    padding = as_pair(padding, "padding", op)
    _check_window(op, (KH, KW), stride, padding)
    out = [conv_output_size(n + e, k, s, p, d)
           for n, e, k, s, p, d in zip((H, W), extra, (KH, KW), stride, padding, dilation)]
    if min(out) < 1:
        padded = (H + 2 * padding[0] + extra[0], W + 2 * padding[1] + extra[1])
        kernel = f"{KH}x{KW} kernel" if dilation == (1, 1) else \
            f"{KH}x{KW} kernel with dilation {dilation} (spanning " \
            f"{window_span(KH, dilation[0])}x{window_span(KW, dilation[1])})"
        raise ValueError(
            f"{op}: the {kernel} is larger than the padded input {padded[0]}x{padded[1]} "
            f"(input {H}x{W}, padding {padding}): the convolution leaves no output. Use a "
            "smaller kernel, more padding or a larger input.")
    if b is not None and tuple(b.shape) != (OC,):
        raise ValueError(f"{op}: bias must have shape ({OC},) (one per output channel), got "
                         f"{tuple(b.shape)}")
    return stride, padding, extra


def conv_transpose2d_geometry(x, w, b, stride, padding, output_padding, groups,
                              dilation=(1, 1)):
    """Check conv_transpose2d's arguments; return (stride, padding, output size) as pairs."""
    op = "conv_transpose2d"
    _check_tensors(op, x, w, b, "(C_in, C_out/groups, kH, kW)")
    N, C, H, W = x.shape
    Cin, OCg, KH, KW = w.shape
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    if C != Cin:
        raise ValueError(f"{op}: input has {C} channels but the weight expects {Cin} (weight "
                         f"shape {tuple(w.shape)} is (C_in, C_out/groups, kH, kW); input shape "
                         f"{tuple(x.shape)})")
    _check_groups(op, groups, C)
    stride = as_pair(stride, "stride", op)
    padding = as_pair(padding, "padding", op)
    output_padding = as_pair(output_padding, "output_padding", op)
    _check_window(op, (KH, KW), stride, padding)
    for extra, s, d in zip(output_padding, stride, dilation):
        if extra < 0 or extra >= max(s, d):
            raise ValueError(f"{op}: output_padding must be non-negative and smaller than the "
                             f"stride or the dilation, got output_padding={output_padding} for "
                             f"stride={stride}, dilation={dilation}")
    out = tuple(conv_transpose_output_size(n, k, s, p, o, d) for n, k, s, p, o, d in
                zip((H, W), (KH, KW), stride, padding, output_padding, dilation))
    if min(out) < 1:
        raise ValueError(f"{op}: padding {padding} removes more than the {H}x{W} input grows to "
                         f"(computed output size {out[0]}x{out[1]}): it leaves no output")
    if b is not None and tuple(b.shape) != (OCg * groups,):
        raise ValueError(f"{op}: bias must have shape ({OCg * groups},) (one per output "
                         f"channel), got {tuple(b.shape)}")
    return stride, padding, out
