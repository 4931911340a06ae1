"""Element-wise kernels of the activations: ReLU forward and backward, and a residual sum
followed by ReLU in one pass.

    forward:  y  = max(x, 0)                       (NaN stays NaN, as in PyTorch)
    backward: gx = gy  where y > 0,  else 0         (the derivative at 0 is taken as 0)
    add_relu: y  = max(a + b, 0)                    (a ResNet block's end: act(F(x) + x))

Element-wise work is memory-bound: its speed is the number of passes over the activations and
the number of cores doing them. The readable versions (``*_reference``, NumPy or CuPy) take two
passes (a comparison that writes a mask, then a multiply) on one core; the numba twins take one
pass, split over the cores. Backward reads the forward's *output* ``y`` (``y > 0`` exactly where
``x > 0``), so no mask has to be kept between the passes.

The twins walk the arrays as flat buffers in memory order, which is only correct when every
array has the same layout (same strides) and no gaps: that holds for the channels-last
activations of the conv engine and for C-ordered arrays, and :func:`_dense_alike` checks it;
any other case (views with gaps, mixed layouts) takes the reference. There is no CUDA twin: on
the GPU, CuPy runs the reference. The public entry points run the twin ``kernels/dispatch.py``
chooses (so the reference lane takes the reference too).
"""
import numpy as np
from numba import njit, prange

from minicnn.kernels.dispatch import choose_twin


#: below this many elements the thread start-up costs more than it saves: numba runs serially
_PARALLEL_MIN = 1 << 14


def relu_forward_reference(x):
    """``max(x, 0)`` with the array module's own functions (two passes: compare, multiply)."""
    return x * (x > 0)


def relu_backward_reference(gy, y):
    """``gy`` where the forward's output ``y`` is positive, else 0."""
    return gy * (y > 0)


@njit(cache=True)
def _relu_forward_serial(x, y):
    for i in range(x.size):
        v = x[i]
        # NOTE: written as "not v <= 0" so that NaN (for which every comparison is False)
        # passes through as NaN, as max(NaN, 0) does in PyTorch; "v > 0" would turn it into 0
        y[i] = v if not v <= 0 else 0


@njit(parallel=True, cache=True)
def _relu_forward_parallel(x, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = v if not v <= 0 else 0


@njit(cache=True)
def _relu_backward_serial(gy, y, gx):
    for i in range(gy.size):
        gx[i] = gy[i] if y[i] > 0 else 0


@njit(parallel=True, cache=True)
def _relu_backward_parallel(gy, y, gx):
    for i in prange(gy.size):
        gx[i] = gy[i] if y[i] > 0 else 0


def _is_dense(a):
    """True when ``a`` fills its memory without gaps in some order of its axes (C order, the
    channels-last view of NHWC memory, ...), so that ``ravel(order='K')`` is a view."""
    expected = a.itemsize
    for axis in sorted(range(a.ndim), key=lambda k: abs(a.strides[k])):
        if a.shape[axis] != 1 and a.strides[axis] != expected:
            return False
        expected *= a.shape[axis]
    return True


def _dense_alike(*arrays):
    """All NumPy, same shape, dtype and strides, and dense: the flat twins apply."""
    first = arrays[0]
    return all(isinstance(a, np.ndarray) and a.shape == first.shape and a.dtype == first.dtype
               and a.strides == first.strides for a in arrays) and _is_dense(first)


def relu_forward(x):
    """``max(x, 0)``, the numba twin for dense NumPy arrays (the result has ``x``'s layout)."""
    if choose_twin(x, numba=_dense_alike(x)) != "numba":  # reference lane, CuPy, gaps
        return relu_forward_reference(x)
    y = np.empty_like(x)  # order 'K': the same strides as x, since x is dense
    kernel = _relu_forward_parallel if x.size >= _PARALLEL_MIN else _relu_forward_serial
    kernel(x.ravel(order="K"), y.ravel(order="K"))
    return y


def relu_backward(gy, y):
    """The ReLU input gradient from ``gy`` and the forward's output ``y``."""
    if choose_twin(gy, numba=_dense_alike(gy, y)) != "numba":
        return relu_backward_reference(gy, y)
    gx = np.empty_like(gy)
    kernel = _relu_backward_parallel if gy.size >= _PARALLEL_MIN else _relu_backward_serial
    kernel(gy.ravel(order="K"), y.ravel(order="K"), gx.ravel(order="K"))
    return gx


@njit(cache=True)
def _add_relu_serial(a, b, y):
    for i in range(a.size):
        v = a[i] + b[i]
        y[i] = v if not v <= 0 else 0


@njit(parallel=True, cache=True)
def _add_relu_parallel(a, b, y):
    for i in prange(a.size):
        v = a[i] + b[i]
        y[i] = v if not v <= 0 else 0


def add_relu_reference(a, b):
    """``max(a + b, 0)``: the sum, then :func:`relu_forward_reference` (three passes)."""
    return relu_forward_reference(a + b)


def add_relu(a, b):
    """``max(a + b, 0)`` of two arrays of the same shape, one pass on all cores for dense NumPy
    arrays of one layout (its backward is :func:`relu_backward` of the output, for both)."""
    if choose_twin(a, numba=_dense_alike(a, b)) != "numba":
        return add_relu_reference(a, b)
    y = np.empty_like(a)
    kernel = _add_relu_parallel if a.size >= _PARALLEL_MIN else _add_relu_serial
    kernel(a.ravel(order="K"), b.ravel(order="K"), y.ravel(order="K"))
    return y
