"""Activation layers: ``ReLU``, ``Tanh``, ``Sigmoid``, ``Softmax``, ``LogSoftmax``.

Each is a thin module around the function in ``minicnn.nn.functional``; they exist so that
activations can sit inside a ``Sequential`` and show up in the model's ``repr``.
"""
from minicnn.nn import functional as F
from minicnn.nn.module import Module


class ReLU(Module):
    """``max(x, 0)`` element-wise.

    ``inplace`` is accepted so that PyTorch code (``ReLU(inplace=True)``) runs unchanged, but it
    is ignored: minicnn always returns a new tensor. It still shows in the repr, as in PyTorch.
    """

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.relu(input)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class Tanh(Module):
    """``tanh(x)`` element-wise."""

    def forward(self, input):
        return F.tanh(input)


class Sigmoid(Module):
    """``1 / (1 + exp(-x))`` element-wise."""

    def forward(self, input):
        return F.sigmoid(input)


class Softmax(Module):
    """Softmax along ``dim``, so that the values along it are positive and sum to 1.

    NOTE: ``dim=None`` means the last axis here. PyTorch's deprecated implicit choice differs
    for 0-, 1- and 3-D inputs (it picks axis 0), so always pass ``dim`` explicitly.
    """

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.softmax(input, -1 if self.dim is None else self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """``log(softmax(x))`` along ``dim`` (``None``: the last axis; see ``Softmax``)."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.log_softmax(input, -1 if self.dim is None else self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"
