"""``Linear`` (the fully connected layer) and ``Identity`` (the layer that does nothing)."""
import math

import numpy as np

from minicnn.nn import functional as F
from minicnn.nn import init
from minicnn.nn.module import Module
from minicnn.nn.parameter import Parameter


class Linear(Module):
    """``y = x @ weight.T + bias`` with ``weight`` (out_features, in_features).

    Input (..., in_features), output (..., out_features). Initialised like PyTorch: weight and
    bias uniform in ±1/sqrt(in_features) (``kaiming_uniform_(a=sqrt(5))`` for the weight).
    Parameters are float32 unless ``dtype`` says otherwise, created on the CPU and moved to
    ``device`` when one is given.
    """

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"Linear: {name} must be a non-negative int, got {value!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        dtype = np.float32 if dtype is None else dtype
        self.weight = Parameter(np.empty((self.out_features, self.in_features), dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty(self.out_features, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()
        if device is not None:
            self.to(device=device)

    def reset_parameters(self):
        """PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias."""
        # a=sqrt(5) makes kaiming's bound gain*sqrt(3/fan_in) = sqrt(1/3)*sqrt(3/fan_in)
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.in_features
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Identity(Module):
    """Returns its input unchanged. Takes (and ignores) any arguments, so it can stand in for a
    layer with the same constructor call (``norm = BatchNorm2d if bn else Identity``)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input
