"""Reductions: sum, mean, max over all axes or some of them.

Each output element is made of several inputs, so in the backward pass its gradient is copied
back (broadcast) to all of them: unchanged for ``sum``, divided by their number for ``mean``,
and only to the largest one for ``max``.
"""
import builtins

from minicnn import backend
from minicnn.autograd import Function, as_tensor


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for a in axes:
        if not -ndim <= a < builtins.max(ndim, 1):  # (``max`` below is the op)
            raise IndexError(f"reduction over axis {a} of a tensor with {ndim} axes")
    return tuple(sorted(a % ndim for a in axes)) if ndim else ()


def _expand(gy, in_shape, axes, keepdims):
    """Bring the gradient of a reduction back to the input's shape (as a broadcast view)."""
    xp = backend.get_array_module(gy)
    if not keepdims:
        gy = gy.reshape([1 if i in axes else n for i, n in enumerate(in_shape)])
    return xp.broadcast_to(gy, in_shape)


class Sum(Function):
    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        return _expand(gy, self.in_shape, self.axes, self.keepdims)


class Mean(Function):
    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        self.count = 1
        for a in self.axes:
            self.count *= x.shape[a]
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        return _expand(gy / self.count, self.in_shape, self.axes, self.keepdims)


class Max(Function):
    """NOTE: where several elements tie for the maximum, the gradient is shared equally among
    them (like ``torch.amax``); the gradient check keeps inputs away from ties."""

    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.x = x
        self.y = x.max(axis=self.axes, keepdims=True)
        return self.y if self.keepdims else self.y.reshape(
            [n for i, n in enumerate(x.shape) if i not in self.axes])

    def backward(self, gy):
        mask = self.x == self.y
        count = mask.sum(axis=self.axes, keepdims=True)
        gy = _expand(gy, self.y.shape, (), True) if self.keepdims else \
            gy.reshape(self.y.shape)
        return mask * (gy / count).astype(gy.dtype)


def sum(x, axis=None, keepdims=False):
    x = as_tensor(x)
    return Sum(_axes(axis, x.ndim), keepdims)(x)


def mean(x, axis=None, keepdims=False):
    x = as_tensor(x)
    return Mean(_axes(axis, x.ndim), keepdims)(x)


def max(x, axis=None, keepdims=False):
    x = as_tensor(x)
    if x.size == 0:
        raise ValueError("max: the tensor is empty")
    return Max(_axes(axis, x.ndim), keepdims)(x)
