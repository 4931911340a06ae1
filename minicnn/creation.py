"""Making tensors the way PyTorch does: ``mc.tensor``, ``mc.from_numpy``, ``mc.zeros``,
``mc.ones``, ``mc.full``, ``mc.randn``, ``mc.rand``, ``mc.arange`` (and ``*_like``), the dtype
names (``mc.float32``...) and ``mc.device``.

PyTorch's defaults: floating-point tensors are float32 (Python floats too), integers int64.
Random tensors come from minicnn's one generator (:func:`minicnn.manual_seed`), so a seeded run
repeats.
"""
import numpy as np

from minicnn import backend
from minicnn.autograd import Tensor
from minicnn.random import get_generator

# PyTorch's dtype names, as NumPy dtypes (``mc.zeros(3, dtype=mc.int64)``)
float16, float32, float64 = np.float16, np.float32, np.float64
int8, int16, int32, int64, uint8 = np.int8, np.int16, np.int32, np.int64, np.uint8
long, half, double = np.int64, np.float16, np.float64


class device(str):
    """``mc.device('cuda:0' if mc.cuda.is_available() else 'cpu')``: a device name with
    PyTorch's ``.type`` and ``.index``. It is a ``str``, so everything that takes a device
    name (``Tensor.to``, ``Module.to``, ``device=``) takes it."""

    def __new__(cls, type, index=None):
        name = str(type)
        kind, _, number = name.partition(":")
        if kind not in ("cpu", "cuda"):
            raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {name!r}")
        if number and index is not None:
            raise ValueError(f"device: the index is given twice ({name!r} and index={index})")
        index = int(number) if number else index
        self = super().__new__(cls, kind if index is None else f"{kind}:{index}")
        self.type, self.index = kind, index
        return self

    def __repr__(self):
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{index})"


def _shape(size):
    """``zeros(2, 3)`` and ``zeros((2, 3))`` alike."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(int(n) for n in size)


def _make(array, dtype, device, requires_grad):
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    return Tensor(array, requires_grad=requires_grad, device=device)


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor holding a COPY of ``data`` (a list, a number, an array or a Tensor).
    Python floats become float32, Python ints int64; arrays keep their dtype."""
    if isinstance(data, Tensor):
        data = data.data
    copied = backend.to_numpy(data).copy() if backend.device_of(data) == "cuda" else \
        np.array(data, copy=True)
    if copied.dtype == np.float64 and not isinstance(data, (np.ndarray, np.generic)):
        copied = copied.astype(np.float32)   # Python floats: PyTorch's default float32
    return _make(copied, dtype, device, requires_grad)


def from_numpy(array):
    """A tensor SHARING ``array``'s memory and dtype (a change to one shows in the other)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a NumPy array, got {type(array).__name__}")
    return Tensor(array)


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return _make(np.zeros(_shape(size), dtype or np.float32), None, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _make(np.ones(_shape(size), dtype or np.float32), None, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    if dtype is None:
        dtype = np.int64 if isinstance(fill_value, (int, np.integer)) and \
            not isinstance(fill_value, bool) else np.float32
    return _make(np.full(_shape((size,)), fill_value, dtype), None, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False):
    """Like PyTorch's ``empty``, but filled with zeros (uninitialised memory teaches nothing)."""
    return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False):
    """Standard normal values from minicnn's generator (repeatable after ``manual_seed``)."""
    array = get_generator().standard_normal(_shape(size), dtype=np.float32)
    return _make(array, dtype, device, requires_grad)


def rand(*size, dtype=None, device=None, requires_grad=False):
    """Uniform values in [0, 1) from minicnn's generator."""
    array = get_generator().random(_shape(size), dtype=np.float32)
    return _make(array, dtype, device, requires_grad)


def randint(low, high=None, size=(), dtype=None, device=None):
    """Integers in [low, high) (``randint(high, size=...)`` starts at 0), int64 by default."""
    low, high = (0, low) if high is None else (low, high)
    array = get_generator().integers(low, high, _shape((size,)), dtype=np.int64)
    return _make(array, dtype, device, False)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """``start, start + step, ...`` below ``end`` (``arange(5)``: 0..4). int64 when every
    argument is an integer, else float32."""
    if end is None:
        start, end = 0, start
    integral = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
    array = np.arange(start, end, step, dtype=np.int64 if integral else np.float32)
    return _make(array, dtype, device, requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    array = np.linspace(start, end, int(steps), dtype=np.float32)
    return _make(array, dtype, device, requires_grad)


def _like(fn, x, dtype, device, requires_grad, *args):
    x = x if isinstance(x, Tensor) else Tensor(x)
    out = fn(*args, x.shape, dtype=dtype or x.dtype, device=device or x.device)
    return out.requires_grad_(True) if requires_grad else out


def zeros_like(x, dtype=None, device=None, requires_grad=False):
    return _like(zeros, x, dtype, device, requires_grad)


def ones_like(x, dtype=None, device=None, requires_grad=False):
    return _like(ones, x, dtype, device, requires_grad)


def randn_like(x, dtype=None, device=None, requires_grad=False):
    return _like(randn, x, dtype, device, requires_grad)


def rand_like(x, dtype=None, device=None, requires_grad=False):
    return _like(rand, x, dtype, device, requires_grad)


def full_like(x, fill_value, dtype=None, device=None, requires_grad=False):
    x = x if isinstance(x, Tensor) else Tensor(x)
    out = full(x.shape, fill_value, dtype=dtype or x.dtype, device=device or x.device)
    return out.requires_grad_(True) if requires_grad else out


def is_tensor(obj):
    return isinstance(obj, Tensor)


def numel(x):
    return x.numel()
