"""Activation layers: ``ReLU``, ``Tanh``, ``Sigmoid``, ``Softmax``, ``LogSoftmax``; and
``residual_act``, the end of a residual block (a sum and its activation, fused for ReLU).

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


def residual_act(act, out, identity):
    """``act(out + identity)``: the end of a residual block, with the sum and a ReLU fused into
    one op (``F.add_relu``) when they can be: ``act`` a ``ReLU`` with no hooks on it, and the two
    summands of one shape. Otherwise the sum, then the module, as written."""
    if type(act) is ReLU and not (act._forward_hooks or act._forward_pre_hooks) \
            and tuple(out.shape) == tuple(identity.shape):
        return F.add_relu(out, identity)
    return act(out + identity)
