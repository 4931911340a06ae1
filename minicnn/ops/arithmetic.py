"""Arithmetic with broadcasting: add, sub, mul, div, neg, pow, matmul, and dtype/device moves.

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
    """``x ** exponent`` for a number ``exponent``."""
    if hasattr(exponent, "creator"):
        raise TypeError("pow: the exponent must be a number; for a tensor exponent write "
                        "(b * a.log()).exp()")
    if isinstance(exponent, np.generic):  # np.float64(0.5) would turn float32 into float64
        exponent = exponent.item()
    return Pow(exponent)(x)


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
