"""PyTorch's everyday ``Tensor`` methods, so that a student's habits work on minicnn's tensors.

``Tensor`` (in :mod:`minicnn.autograd`) inherits them from :class:`TensorMethods`; each one hands
over to an op in :mod:`minicnn.ops` (every gradient is there) or reads the array. Kept apart so
that the autograd engine stays a file a student reads in one sitting.

Names follow PyTorch's meaning, with NumPy's spelling kept where PyTorch also accepts it:
``x.sum(dim=1, keepdim=True)`` and ``x.sum(axis=1, keepdims=True)`` are the same call.
"""
import numpy as np

_ops = None  # minicnn.ops, bound by minicnn.autograd once it exists (the ops import Tensor)


def bind_ops(ops):
    global _ops
    _ops = ops


class SizeOrCount(int):
    """What ``tensor.size`` gives: PyTorch's method AND NumPy's element count.

    ``x.size()`` is the shape and ``x.size(0)`` the length of axis 0 (PyTorch's
    ``labels.size(0)``); read without a call, ``x.size`` is the number of elements (NumPy's
    attribute, which minicnn code and notebooks used before). NOTE: prefer ``x.numel()`` for
    the count in new code: in PyTorch ``x.size`` without a call is a method, not a number.
    """

    def __new__(cls, shape):
        self = super().__new__(cls, int(np.prod(shape, dtype=np.int64)))
        self.shape = tuple(shape)
        return self

    def __call__(self, dim=None):
        if dim is None:
            return self.shape
        ndim = len(self.shape)
        if not isinstance(dim, (int, np.integer)) or not -ndim <= dim < ndim:
            raise IndexError(f"size: dim {dim!r} is out of range for a tensor with {ndim} axes")
        return self.shape[dim]


class TensorMethods:
    """PyTorch's names on ``Tensor`` (mixed in; holds no data of its own)."""

    __slots__ = ()

    # ---- shape ----------------------------------------------------------------------------------
    @property
    def size(self):
        """``size()`` the shape, ``size(dim)`` one axis; ``size`` uncalled: the element count
        (see :class:`SizeOrCount`)."""
        return SizeOrCount(self.data.shape)

    def numel(self):
        """The number of elements."""
        return self.data.size

    def dim(self):
        """The number of axes (``ndim``)."""
        return self.data.ndim

    def unsqueeze(self, dim):
        return _ops.unsqueeze(self, dim)

    def squeeze(self, dim=None):
        return _ops.squeeze(self, dim)

    def clone(self):
        """A copy with its own memory; gradients flow back through it."""
        return _ops.clone(self)

    def __iter__(self):
        """Iterate over axis 0 (``for label, prediction in zip(labels, predictions)``)."""
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self)))

    # ---- numbers --------------------------------------------------------------------------------
    def _scalar(self, kind):
        if self.data.size != 1:
            raise TypeError(f"only a single-element tensor converts to {kind}, this one has "
                            f"shape {tuple(self.shape)}")
        return self.data.reshape(()).item()

    def __float__(self):
        return float(self._scalar("a float"))

    def __int__(self):
        return int(self._scalar("an int"))

    def __index__(self):
        """An integer 0-d tensor indexes a list: ``classes[labels[j]]``."""
        if self.data.dtype.kind not in "iub" or self.ndim:
            raise TypeError(f"only a 0-d integer tensor can be used as an index, this one is "
                            f"{self.dtype} of shape {tuple(self.shape)}")
        return int(self.data)

    # ---- reductions (dim/keepdim or axis/keepdims) ----------------------------------------------
    def min(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """``min()``; ``min(dim)`` -> ``(values, indices)``; ``min(axis=...)`` -> values."""
        return _ops.min(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def amax(self, dim=None, keepdim=False):
        return _ops.amax(self, dim, keepdim)

    def amin(self, dim=None, keepdim=False):
        return _ops.amin(self, dim, keepdim)

    def argmax(self, dim=None, keepdim=False, *, axis=None):
        return _arg(self, dim if axis is None else axis, keepdim, largest=True)

    def argmin(self, dim=None, keepdim=False, *, axis=None):
        return _arg(self, dim if axis is None else axis, keepdim, largest=False)

    def var(self, dim=None, keepdim=False, *, correction=1, unbiased=None, axis=None,
            keepdims=None):
        """Variance; NOTE: unbiased (divided by n - 1) by default, as in PyTorch."""
        return _ops.var(self, dim, keepdim, correction=correction, unbiased=unbiased,
                        axis=axis, keepdims=keepdims)

    def std(self, dim=None, keepdim=False, *, correction=1, unbiased=None, axis=None,
            keepdims=None):
        """Standard deviation; NOTE: unbiased (n - 1) by default, as in PyTorch."""
        return _ops.std(self, dim, keepdim, correction=correction, unbiased=unbiased,
                        axis=axis, keepdims=keepdims)

    # ---- element-wise ---------------------------------------------------------------------------
    def abs(self):
        return _ops.abs(self)

    __abs__ = abs

    def sqrt(self):
        return _ops.sqrt(self)

    def pow(self, exponent):
        return _ops.pow(self, exponent)

    def __rpow__(self, base):
        return _ops.pow(base, self)

    def clamp(self, min=None, max=None):
        return _ops.clamp(self, min, max)

    clip = clamp

    def maximum(self, other):
        return _ops.maximum(self, other)

    def minimum(self, other):
        return _ops.minimum(self, other)


def _arg(x, dim, keepdim, largest):
    """``argmax``/``argmin``: an int64 tensor without gradient; over all elements (flat index)
    when ``dim`` is None."""
    data = x.data
    if data.size == 0:
        raise ValueError(f"arg{'max' if largest else 'min'}: the tensor of shape "
                         f"{tuple(x.shape)} is empty")
    find = data.argmax if largest else data.argmin
    if dim is None:
        index = find()
        if keepdim:
            index = index.reshape((1,) * data.ndim)
    elif data.ndim == 0:
        if dim not in (0, -1):
            raise IndexError(f"argmax: dim {dim} is out of range for a 0-d tensor")
        index = np.zeros((), np.int64) if isinstance(data, np.ndarray) else x.xp.zeros((), int)
    else:
        index = find(axis=dim, keepdims=keepdim)
    return type(x)._wrap(x.xp.asarray(index).astype(np.int64, copy=False), False)
