"""Reductions: sum, mean, max and min over all axes or some of them, var and std.

Each output element is made of several inputs, so in the backward pass its gradient is copied
back (broadcast) to all of them: unchanged for ``sum``, divided by their number for ``mean``,
and only to the largest one for ``max``.

The functions take PyTorch's ``dim``/``keepdim`` and NumPy's ``axis``/``keepdims`` alike.
``max``/``min`` follow PyTorch: along one ``dim`` they return ``(values, indices)``.
"""
import builtins
from collections import namedtuple

import numpy as np

from minicnn import backend
from minicnn.autograd import Function, Tensor, as_tensor
from minicnn.ops.arithmetic import maximum, minimum

#: what ``max(x, dim)`` and ``min(x, dim)`` return, like ``torch.return_types.max``
MaxResult = namedtuple("max", ["values", "indices"])
MinResult = namedtuple("min", ["values", "indices"])


def resolve_dim(dim, axis, keepdim=False, keepdims=None, op="reduction"):
    """PyTorch's ``dim``/``keepdim`` or NumPy's ``axis``/``keepdims`` (one spelling at a time)."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: give dim or axis (the same thing), not both")
        dim = axis
    if keepdims is not None:
        keepdim = keepdims
    return dim, bool(keepdim)


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    # NOTE: as in PyTorch a 0-d tensor has one pseudo-axis: dim 0 or -1 reduce nothing
    for a in axes:
        if not -builtins.max(ndim, 1) <= a < builtins.max(ndim, 1):  # (``max`` is the op)
            raise IndexError(f"reduction: dim {a} is out of range for a tensor with {ndim} axes "
                             f"(valid: {-builtins.max(ndim, 1)} to {builtins.max(ndim, 1) - 1})")
    axes = tuple(sorted(a % ndim for a in axes)) if ndim else ()
    if len(set(axes)) != len(axes):
        raise ValueError(f"reduction: axis {axis} names an axis twice")
    return axes


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


class MaxAlong(Function):
    """``torch.max(x, dim)`` (or ``min``): the extreme value along one axis and the index of
    its first occurrence. NOTE: the gradient goes to that one element only, as in PyTorch
    (``amax``, the NumPy-spelled ``max(axis=...)``, shares it among ties instead)."""

    def __init__(self, axis, keepdims, largest=True):
        self.axis, self.keepdims, self.largest = axis, keepdims, largest

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.in_shape = x.shape
        x1 = x.reshape(1) if x.ndim == 0 else x  # a 0-d tensor: its one element, index 0
        index = (x1.argmax if self.largest else x1.argmin)(axis=self.axis, keepdims=True)
        self.index = index
        values = xp.take_along_axis(x1, index, axis=self.axis)
        shape = () if x.ndim == 0 else index.shape if self.keepdims else \
            x.shape[:self.axis] + x.shape[self.axis + 1:]
        self.indices = index.reshape(shape).astype(xp.int64, copy=False)
        return values.reshape(shape)

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        shape = self.index.shape
        n = 1 if len(self.in_shape) == 0 else self.in_shape[self.axis]
        positions = xp.arange(n).reshape([n if i == self.axis else 1
                                          for i in range(len(shape))])
        gx = xp.where(positions == self.index, gy.reshape(shape), gy.dtype.type(0))
        return gx.reshape(self.in_shape)


def sum(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Sum over ``dim`` (an int, a tuple, or None for all axes)."""
    x = as_tensor(x)
    dim, keepdim = resolve_dim(dim, axis, keepdim, keepdims, "sum")
    return Sum(_axes(dim, x.ndim), keepdim)(x)


def mean(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Mean over ``dim`` (an int, a tuple, or None for all axes)."""
    x = as_tensor(x)
    dim, keepdim = resolve_dim(dim, axis, keepdim, keepdims, "mean")
    return Mean(_axes(dim, x.ndim), keepdim)(x)


def amax(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """The largest values over ``dim`` (int, tuple or None), values only (``torch.amax``,
    NumPy's ``max``); the gradient is shared equally among ties."""
    x = as_tensor(x)
    dim, keepdim = resolve_dim(dim, axis, keepdim, keepdims, "amax")
    axes = _axes(dim, x.ndim)
    if any(x.shape[a] == 0 for a in axes) or (x.data.size == 0 and not axes):
        raise ValueError(f"max: cannot reduce an empty axis (tensor of shape {tuple(x.shape)}, "
                         f"axis {dim}): the maximum of no numbers does not exist")
    return Max(axes, keepdim)(x)


def amin(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """The smallest values over ``dim`` (``torch.amin``): ``-amax(-x)``."""
    return -amax(-as_tensor(x), dim, keepdim, axis=axis, keepdims=keepdims)


def _extreme(x, dim, keepdim, axis, keepdims, largest):
    name = "max" if largest else "min"
    if isinstance(dim, Tensor):   # torch.max(a, b): element-wise
        return (maximum if largest else minimum)(x, dim)
    if isinstance(dim, np.integer):
        dim = int(dim)
    x = as_tensor(x)
    if dim is None or not isinstance(dim, int):   # all elements, or NumPy's axis=
        return (amax if largest else amin)(x, dim, keepdim, axis=axis, keepdims=keepdims)
    ndim = builtins.max(x.ndim, 1)
    if not -ndim <= dim < ndim:
        raise IndexError(f"{name}: dim {dim} is out of range for a tensor with {x.ndim} axes")
    dim = dim % ndim
    if x.ndim and x.shape[dim] == 0:
        raise ValueError(f"{name}: dim {dim} of the tensor of shape {tuple(x.shape)} is empty: "
                         "there is no value (and no index) to return")
    fn = MaxAlong(dim, bool(keepdim if keepdims is None else keepdims), largest)
    values = fn(x)
    return (MaxResult if largest else MinResult)(values, Tensor._wrap(fn.indices, False))


def max(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """PyTorch's three calls: ``max(x)``, the largest element; ``max(x, dim, keepdim=False)``,
    a ``(values, indices)`` pair along one axis (``_, predicted = torch.max(outputs, 1)``);
    ``max(x, other)``, the element-wise :func:`maximum`. NumPy's spelling ``max(x, axis=...,
    keepdims=...)`` (one or several axes) gives the values only, as ``amax``."""
    return _extreme(x, dim, keepdim, axis, keepdims, largest=True)


def min(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """The smallest: ``min(x)``, ``min(x, dim) -> (values, indices)``, ``min(x, other)``; see
    :func:`max`."""
    return _extreme(x, dim, keepdim, axis, keepdims, largest=False)


def var(x, dim=None, keepdim=False, *, correction=1, unbiased=None, axis=None, keepdims=None):
    """Variance over ``dim``: ``sum((x - mean)^2) / (n - correction)``. NOTE: PyTorch divides by
    ``n - 1`` by default (the unbiased estimate; NumPy's ``var`` divides by ``n``):
    ``correction=0`` or ``unbiased=False`` gives NumPy's."""
    x = as_tensor(x)
    dim, keepdim = resolve_dim(dim, axis, keepdim, keepdims, "var")
    if unbiased is not None:
        correction = int(bool(unbiased))
    axes = _axes(dim, x.ndim)
    n = 1
    for a in axes:
        n *= x.shape[a]
    centred = x - mean(x, axes, keepdim=True)
    return sum(centred * centred, axes, keepdim) / float(builtins.max(n - correction, 0))


def std(x, dim=None, keepdim=False, *, correction=1, unbiased=None, axis=None, keepdims=None):
    """Standard deviation, ``sqrt(var(...))`` (by default unbiased, like PyTorch)."""
    return var(x, dim, keepdim, correction=correction, unbiased=unbiased, axis=axis,
               keepdims=keepdims) ** 0.5
