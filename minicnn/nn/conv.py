"""Convolution layers: ``Conv2d`` and ``ConvTranspose2d`` (PyTorch's names, arguments, parameter
names and shapes, and default initialisation). The work happens in ``minicnn.ops.conv``; the
memory a layer's column buffers take is predicted by ``minicnn.engine.memory``."""
import math

import numpy as np

from minicnn.kernels.geometry import conv_transpose_output_size
from minicnn.engine.memory import conv2d_column_bytes, conv_transpose2d_column_bytes
from minicnn.nn import init
from minicnn.nn.module import Module
from minicnn.nn.parameter import Parameter
from minicnn.ops.conv import check_dilation, conv2d, conv_transpose2d
from minicnn.ops.shape import as_pair as _pair


class _ConvNd(Module):
    """What both layers share: argument checks, parameters, PyTorch's initialisation, repr."""

    _name = "Conv"

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation,
                 transposed, output_padding, groups, bias, padding_mode, device, dtype):
        super().__init__()
        name = type(self).__name__
        for arg, value in (("in_channels", in_channels), ("out_channels", out_channels),
                           ("groups", groups)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: {arg} must be a positive int, got {value!r}")
        if in_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) must be divisible by "
                             f"groups ({groups})")
        if out_channels % groups:
            raise ValueError(f"{name}: out_channels ({out_channels}) must be divisible by "
                             f"groups ({groups})")
        self.dilation = check_dilation(name, dilation)
        if padding_mode != "zeros":
            raise NotImplementedError(f"{name}: padding_mode={padding_mode!r} is not supported; "
                                      "only 'zeros'")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size", name)
        if min(self.kernel_size) < 1:
            raise ValueError(f"{name}: kernel_size must be positive, got {kernel_size!r}")
        self.stride = _pair(stride, "stride", name)
        if min(self.stride) < 1:
            raise ValueError(f"{name}: stride must be positive, got {stride!r}")
        if isinstance(padding, str):
            if transposed or padding not in ("same", "valid"):
                raise ValueError(f"{name}: padding {padding!r} is not supported; use an int or "
                                 "a pair" + ("" if transposed else ", 'same' or 'valid'"))
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"{name}: padding='same' is not supported for strided "
                                 "convolutions")
            self.padding = padding
        else:
            self.padding = _pair(padding, "padding", name)
            if min(self.padding) < 0:
                raise ValueError(f"{name}: padding must be non-negative, got {padding!r}")
        self.transposed = transposed
        self.output_padding = _pair(output_padding, "output_padding", name)
        self.groups = int(groups)
        self.padding_mode = padding_mode
        dtype = np.float32 if dtype is None else dtype
        if transposed:   # (C_in, C_out/groups, kH, kW)
            shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        else:            # (C_out, C_in/groups, kH, kW)
            shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty(self.out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()
        if device is not None:
            self.to(device=device)

    def reset_parameters(self):
        """PyTorch's default: weight ``kaiming_uniform_(a=sqrt(5))``, i.e. U(±1/sqrt(fan_in)),
        and bias U(±1/sqrt(fan_in)), with fan_in = weight.shape[1] * kH * kW.

        NOTE: for ConvTranspose2d that is C_out/groups * kH * kW (the weight's second axis), as
        in PyTorch, even though each output sums C_in/groups * kH * kW / stride**2 terms.
        """
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv2d(_ConvNd):
    """2-D convolution layer: ``(N, C_in, H, W) -> (N, C_out, OH, OW)`` (or one image
    ``(C_in, H, W) -> (C_out, OH, OW)``) with
    ``OH = floor((H + 2*padding - dilation*(kH - 1) - 1) / stride) + 1``.

    ``Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
    bias=True, padding_mode='zeros', device=None, dtype=None)``, as in PyTorch (``padding_mode``
    'zeros'). ``padding`` may be an int, a pair, ``'same'`` or ``'valid'``; ``dilation`` spreads
    the kernel's taps (atrous convolution; the parameters are the same). Parameters: ``weight``
    (C_out, C_in/groups, kH, kW) and ``bias`` (C_out,), float32 unless ``dtype`` says otherwise.
    See :func:`minicnn.ops.conv.conv2d`.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         False, 0, groups, bias, padding_mode, device, dtype)

    def forward(self, input):
        return conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                      self.groups)

    def column_bytes(self, input_shape, chunked=True):
        """Bytes of the largest im2col buffer this layer builds for an input of ``input_shape``
        (see :func:`minicnn.engine.memory.conv2d_column_bytes`)."""
        padding = self.padding
        if len(input_shape) == 3:   # one image
            input_shape = (1,) + tuple(input_shape)
        if padding == "valid":
            padding = 0
        elif padding == "same":     # the total d*(k - 1), its odd one at the end
            total = [d * (k - 1) for k, d in zip(self.kernel_size, self.dilation)]
            padding = (total[0] // 2, total[1] // 2)
            input_shape = tuple(input_shape[:2]) + (input_shape[2] + total[0] % 2,
                                                    input_shape[3] + total[1] % 2)
        return conv2d_column_bytes(input_shape, self.weight.shape, self.stride, padding,
                                   self.groups, self.weight.dtype, chunked,
                                   dilation=self.dilation)


class ConvTranspose2d(_ConvNd):
    """2-D transposed convolution layer (U-Net's up-convolution): ``(N, C_in, H, W) ->
    (N, C_out, OH, OW)`` (or one image ``(C_in, H, W)``) with
    ``OH = (H - 1)*stride - 2*padding + dilation*(kH - 1) + output_padding + 1``.

    ``ConvTranspose2d(in_channels, out_channels, kernel_size, stride=1, padding=0,
    output_padding=0, groups=1, bias=True, dilation=1, padding_mode='zeros', device=None,
    dtype=None)``, as in PyTorch. Parameters: ``weight`` (C_in, C_out/groups, kH, kW) -- input
    channels first -- and ``bias`` (C_out,). ``forward(input, output_size=None)``: an explicit
    ``output_size`` (H, W) (or (N, C, H, W)) chooses the output_padding that gives it. See
    :func:`minicnn.ops.conv.conv_transpose2d`.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         True, output_padding, groups, bias, padding_mode, device, dtype)

    def _output_padding(self, input_shape, output_size):
        if output_size is None:
            return self.output_padding
        size = tuple(int(s) for s in output_size)[-2:]
        spatial = tuple(input_shape)[-2:]
        if len(size) != 2:
            raise ValueError(f"ConvTranspose2d: output_size must be (H, W) or (N, C, H, W), got "
                             f"{tuple(output_size)}")
        padding = []
        for axis, wanted in enumerate(size):
            smallest = conv_transpose_output_size(spatial[axis], self.kernel_size[axis],
                                                  self.stride[axis], self.padding[axis], 0,
                                                  self.dilation[axis])
            if not smallest <= wanted < smallest + self.stride[axis]:
                raise ValueError(
                    f"ConvTranspose2d: requested an output size of {size}, but valid sizes "
                    f"range from ({smallest} ...) to ({smallest + self.stride[axis] - 1} ...) "
                    f"along axis {len(input_shape) - 2 + axis} for an input of shape "
                    f"{tuple(input_shape)}")
            padding.append(wanted - smallest)
        return tuple(padding)

    def forward(self, input, output_size=None):
        output_padding = self._output_padding(input.shape, output_size)
        return conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                output_padding, self.groups, self.dilation)

    def column_bytes(self, input_shape, chunked=True):
        """Bytes of the largest column buffer this layer builds for an input of ``input_shape``
        (see :func:`minicnn.engine.memory.conv_transpose2d_column_bytes`)."""
        if len(input_shape) == 3:   # one image
            input_shape = (1,) + tuple(input_shape)
        return conv_transpose2d_column_bytes(input_shape, self.weight.shape, self.stride,
                                             self.padding, self.output_padding, self.groups,
                                             self.weight.dtype, chunked,
                                             dilation=self.dilation)
