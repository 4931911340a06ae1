"""Pooling layers ``MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d`` and the resampling layer
``Upsample``: thin modules around the functions in ``minicnn.ops.pooling`` and
``minicnn.ops.resize``, with PyTorch's arguments and reprs. They have no parameters.
"""
from minicnn.nn.module import Module
from minicnn.ops import pooling, resize


class MaxPool2d(Module):
    """Max pooling over (N, C, H, W) or one image (C, H, W): see
    :func:`minicnn.ops.pooling.max_pool2d`.

    ``stride`` defaults to ``kernel_size``; ``dilation`` spreads the window's taps. With
    ``return_indices`` the layer returns ``(output, indices)``.
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input):
        return pooling.max_pool2d(input, self.kernel_size, self.stride, self.padding,
                                  self.dilation, self.ceil_mode, self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """Average pooling over (N, C, H, W) or one image (C, H, W): see
    :func:`minicnn.ops.pooling.avg_pool2d`."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, input):
        return pooling.avg_pool2d(input, self.kernel_size, self.stride, self.padding,
                                  self.ceil_mode, self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed ``output_size`` whatever the input size (int, pair, or pair with
    ``None`` to keep that input size), of a batch or of one image (C, H, W).
    ``AdaptiveAvgPool2d(1)`` is global average pooling."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        return pooling.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class Upsample(Module):
    """Resize maps to ``size`` or by ``scale_factor`` with ``mode`` 'nearest', 'nearest-exact',
    'bilinear', 'bicubic', 'area' (and 'linear'/'trilinear' for 1-D/3-D maps): see
    :func:`minicnn.ops.resize.interpolate`."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        self.size = size
        if isinstance(scale_factor, (tuple, list)):
            self.scale_factor = tuple(float(s) for s in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor else None
        self.mode, self.align_corners = mode, align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input):
        return resize.interpolate(input, self.size, self.scale_factor, self.mode,
                                  self.align_corners, self.recompute_scale_factor)

    def extra_repr(self):
        info = (f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None
                else f"size={self.size!r}")
        return info + f", mode={self.mode!r}"
