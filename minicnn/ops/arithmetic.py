"""Arithmetic with broadcasting: add, sub, mul, div, neg, pow, matmul, maximum, minimum, clamp,
and dtype/device moves.

Broadcasting copies an input along new or size-1 axes in the forward pass, so in the backward
pass the gradient of that input is the sum over those axes (:func:`unbroadcast`).
"""
import numpy as np

from minicnn import backend
from minicnn.autograd import Function, as_tensor


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched, giving ``shape``."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


class Add(Function):
    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a + b

    def backward(self, gy):
        return unbroadcast(gy, self.a_shape), unbroadcast(gy, self.b_shape)


class Sub(Function):
    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a - b

    def backward(self, gy):
        return unbroadcast(gy, self.a_shape), unbroadcast(-gy, self.b_shape)


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        return unbroadcast(gy * self.b, self.a.shape), unbroadcast(gy * self.a, self.b.shape)


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        ga = gy / self.b
        gb = -ga * self.a / self.b
        return unbroadcast(ga, self.a.shape), unbroadcast(gb, self.b.shape)


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Pow(Function):
    """``x ** p`` for a constant exponent ``p``."""

    def __init__(self, exponent):
        self.p = exponent

    def forward(self, x):
        self.x = x
        return x ** self.p

    def backward(self, gy):
        return gy * self.p * self.x ** (self.p - 1)


class PowTensor(Function):
    """``a ** b`` with a tensor exponent ``b`` (broadcasting): ``d/da = b a^(b-1)``,
    ``d/db = a^b log(a)``.

    NOTE: ``log(a)`` exists only for ``a > 0``. As in PyTorch, the exponent's gradient is 0 where
    ``a == 0`` and NaN where ``a < 0``; the base's gradient is 0 where ``b == 0``."""

    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = a ** b
        return self.y

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        a, b = self.a, self.b
        need_a, need_b = self.needs_input_grad
        ga = gb = None
        if need_a:
            ga = unbroadcast(xp.where(b == 0, gy.dtype.type(0), gy * b * a ** (b - 1)), a.shape)
        if need_b:
            log_a = xp.log(xp.where(a > 0, a, a.dtype.type(1)))
            log_a = xp.where(a < 0, a.dtype.type(np.nan), log_a)
            gb = unbroadcast(gy * self.y * log_a, b.shape)
        return ga, gb


class Extremum(Function):
    """Element-wise ``maximum(a, b)`` (``largest=True``) or ``minimum(a, b)``, broadcasting.

    NOTE: where ``a == b`` no single derivative exists; as PyTorch does, each input receives half
    of the gradient there."""

    def __init__(self, largest=True):
        self.largest = largest

    def forward(self, a, b):
        xp = backend.get_array_module(a)
        self.a, self.b = a, b
        return xp.maximum(a, b) if self.largest else xp.minimum(a, b)

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        a_wins = self.a > self.b if self.largest else self.a < self.b
        ga = xp.where(a_wins, gy, xp.where(self.a == self.b, gy * 0.5, gy.dtype.type(0)))
        return unbroadcast(ga, self.a.shape), unbroadcast(gy - ga, self.b.shape)


class Clamp(Function):
    """``x`` clipped to ``[low, high]`` (numbers; either may be None). The gradient passes where
    ``low <= x <= high``, the bounds included, as in PyTorch."""

    def __init__(self, low, high):
        self.low, self.high = low, high

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.x = x
        return xp.clip(x, self.low, self.high)

    def backward(self, gy):
        inside = True
        if self.low is not None:
            inside = self.x >= self.low
        if self.high is not None:
            inside = inside & (self.x <= self.high)
        return gy * inside


class MatMul(Function):
    """``a @ b`` for arrays of two or more axes; leading (batch) axes broadcast."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, gy):
        ga = gy @ self.b.swapaxes(-1, -2)
        gb = self.a.swapaxes(-1, -2) @ gy
        return unbroadcast(ga, self.a.shape), unbroadcast(gb, self.b.shape)


class AsType(Function):
    """A dtype conversion; the gradient is converted back."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return gy.astype(self.in_dtype)


class ToDevice(Function):
    """A copy between devices; the gradient travels back to where the input lives."""

    def __init__(self, device):
        self.device = device

    def forward(self, x):
        self.in_device = backend.device_of(x)
        return backend.to_device(x, self.device)

    def backward(self, gy):
        return backend.to_device(gy, self.in_device)


# ---- functions ------------------------------------------------------------------------------

def _binary(op, name, a, b):
    a_is_tensor = hasattr(a, "creator")
    a = as_tensor(a, like=None if a_is_tensor or not hasattr(b, "creator") else b)
    b = as_tensor(b, like=a)
    try:
        return op()(a, b)
    except ValueError as exc:
        if a.ndim and b.ndim and "broadcast" in str(exc):
            raise ValueError(f"{name}: shapes {tuple(a.shape)} and {tuple(b.shape)} do not "
                             "broadcast: trailing axes must be equal or 1") from None
        raise


def add(a, b):
    """``a + b`` with broadcasting."""
    return _binary(Add, "add", a, b)


def sub(a, b):
    """``a - b`` with broadcasting."""
    return _binary(Sub, "sub", a, b)


def mul(a, b):
    """``a * b`` with broadcasting."""
    return _binary(Mul, "mul", a, b)


def div(a, b):
    """``a / b`` with broadcasting."""
    return _binary(Div, "div", a, b)


def neg(x):
    return Neg()(x)


def pow(x, exponent):
    """``x ** exponent``: a number or a tensor (broadcasting) as the exponent; a number as the
    base works too (``2 ** t``)."""
    if hasattr(exponent, "creator") or hasattr(exponent, "shape") and np.ndim(exponent):
        return _binary(PowTensor, "pow", x, exponent)
    if isinstance(exponent, (np.generic, np.ndarray)):  # np.float64(0.5) would upcast float32
        exponent = exponent.item()
    return Pow(exponent)(as_tensor(x))


def maximum(a, b):
    """Element-wise larger of ``a`` and ``b`` (broadcasting); at ties each gets half the
    gradient, as in PyTorch."""
    return _binary(lambda: Extremum(True), "maximum", a, b)


def minimum(a, b):
    """Element-wise smaller of ``a`` and ``b`` (broadcasting); see :func:`maximum`."""
    return _binary(lambda: Extremum(False), "minimum", a, b)


def clamp(x, min=None, max=None):
    """``x`` limited to ``[min, max]`` (``torch.clamp``; ``clip`` is the same). Numbers, or
    tensors (then ``minimum(maximum(x, min), max)``: NOTE at exact ties the gradient is then
    split, where PyTorch gives it all to ``x``). ``min > max`` gives ``max`` everywhere, as in
    PyTorch."""
    if min is None and max is None:
        raise ValueError("clamp: give at least one of min and max")
    x = as_tensor(x)
    if hasattr(min, "creator") or hasattr(max, "creator"):
        out = x if min is None else maximum(x, min)
        return out if max is None else minimum(out, max)
    low, high = (v.item() if isinstance(v, np.generic) else v for v in (min, max))
    return Clamp(low, high)(x)


clip = clamp


def matmul(a, b):
    """Matrix product with NumPy's rules: (..., n, k) @ (..., k, m) -> (..., n, m); a 1-D operand
    is a vector (a row on the left, a column on the right) and its axis is dropped again."""
    a, b = as_tensor(a), as_tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least one axis, got shapes "
                         f"{tuple(a.shape)} and {tuple(b.shape)}; use * for scalars")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(
            f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied: the "
            f"last axis of the first ({a.shape[-1]}) must equal the "
            f"{'second-to-last' if b.ndim > 1 else 'only'} axis of the second "
            f"({b.shape[-2 if b.ndim > 1 else 0]})")
    if a.dtype != b.dtype and a.dtype.kind == "f" and b.dtype.kind == "f":
        raise TypeError(f"matmul: operands are {a.dtype} and {b.dtype}; convert one of them "
                        "(.float() or .double()) so that no silent float64 copy is made")
    if a.ndim == 1:
        return matmul(a.reshape(1, -1), b).reshape(*b.shape[:-2], b.shape[-1]) \
            if b.ndim > 1 else (a * b).sum()
    if b.ndim == 1:
        return matmul(a, b.reshape(-1, 1)).reshape(*a.shape[:-1])
    try:
        return MatMul()(a, b)
    except ValueError:
        raise ValueError(f"matmul: the batch axes of {tuple(a.shape)} and {tuple(b.shape)} do "
                         "not broadcast") from None


def astype(x, dtype):
    return AsType(dtype)(x)


def to_device(x, device):
    return ToDevice(backend.normalize_device(device))(x)
