"""Dropout layers: ``Dropout`` (single elements) and ``Dropout2d`` (whole channels).

Active in training mode only (``model.train()``); in evaluation mode (``model.eval()``) they
return their input unchanged. See :mod:`minicnn.ops.dropout`.
"""
from minicnn.nn.module import Module
from minicnn.ops import dropout as ops_dropout


class _DropoutNd(Module):
    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        ops_dropout._check_p(p, type(self).__name__)
        self.p = p
        self.inplace = inplace  # accepted for PyTorch compatibility; minicnn never works in place

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """In training, zero each element with probability ``p`` and scale the others by
    ``1 / (1 - p)``; the identity in evaluation mode."""

    def forward(self, input):
        return ops_dropout.dropout(input, self.p, self.training)


class Dropout2d(_DropoutNd):
    """In training, zero whole channels of (N, C, H, W) input with probability ``p`` and scale the
    others by ``1 / (1 - p)``; the identity in evaluation mode. A 3-D input is (N, C, L), as in
    PyTorch (with its warning): see :func:`minicnn.ops.dropout.dropout2d`."""

    def forward(self, input):
        return ops_dropout.dropout2d(input, self.p, self.training)
