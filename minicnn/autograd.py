"""The autograd engine: ``Tensor``, ``Function`` and the backward pass.

A ``Tensor`` wraps one array (NumPy or CuPy). Every differentiable op is a ``Function`` subclass
with ``forward(*arrays)`` and ``backward(*grads)`` side by side; calling the function on tensors
runs ``forward`` and, when a gradient is wanted, records the call in the graph: each output
remembers its ``creator`` and the creator remembers its ``inputs``.

``loss.backward()`` then

1. orders the recorded functions so that every function comes after all the functions that use
   its outputs (a topological sort, depth first),
2. seeds the gradient of ``loss`` with 1,
3. walks that order once: each function turns the gradients of its outputs into gradients of its
   inputs, which are summed where a tensor was used more than once (diamond graphs),
4. adds the finished gradients of the leaves (parameters, inputs) into their ``.grad``.

Gradients are arrays of the same shape and dtype as the data they belong to. Like PyTorch, they
accumulate across ``backward()`` calls until ``zero_grad`` clears them, and only leaves keep them
(call ``retain_grad()`` on an intermediate tensor to keep its gradient too).
"""
import contextlib
import weakref

import numpy as np

from minicnn import backend, tensor_methods

_grad_enabled = True


def is_grad_enabled():
    """False inside ``no_grad()``: ops then record nothing."""
    return _grad_enabled


class _GradMode(contextlib.ContextDecorator):
    def __init__(self, enabled):
        self.enabled = enabled
        self.previous = []  # a stack: a decorated function may call itself (re-entered)

    def __enter__(self):
        global _grad_enabled
        self.previous.append(_grad_enabled)
        _grad_enabled = self.enabled

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self.previous.pop()
        return False


def no_grad():
    """Context manager (and decorator) in which no graph is recorded: for evaluation and updates."""
    return _GradMode(False)


def enable_grad():
    """Context manager (and decorator) that turns recording back on inside ``no_grad()``."""
    return _GradMode(True)


_anomaly = False


class AnomalyError(FloatingPointError):
    """An op produced NaN or Inf inside ``detect_anomaly()``; the message names the op."""


class detect_anomaly(contextlib.ContextDecorator):
    """Anomaly mode: check every op's outputs (forward) and input gradients (backward) for NaN
    and Inf, and raise :class:`AnomalyError` naming the first op that produced one.

    Slower (one pass over every array), so it is off by default: switch it on to find where a
    NaN loss came from. ``with mc.detect_anomaly(): loss = model(x) ...; loss.backward()``.
    """

    def __init__(self, enabled=True):
        self.enabled, self.previous = enabled, []

    def __enter__(self):
        global _anomaly
        self.previous.append(_anomaly)
        _anomaly = self.enabled

    def __exit__(self, *exc):
        global _anomaly
        _anomaly = self.previous.pop()
        return False


def _check_finite(fn, arrays, what):
    for i, a in enumerate(arrays):
        if a is not None and a.dtype.kind in "fc" and not bool(backend.get_array_module(a)
                                                                 .isfinite(a).all()):
            xp = backend.get_array_module(a)
            n_nan, n_inf = int(xp.isnan(a).sum()), int(xp.isinf(a).sum())
            shapes = ", ".join(str(tuple(x.shape)) for x in fn.inputs) if fn.inputs else "?"
            raise AnomalyError(
                f"{type(fn).__name__} produced {n_nan} NaN and {n_inf} Inf values in its "
                f"{what} {i} (shape {tuple(a.shape)}; inputs of shapes {shapes}). Look at this "
                "op's inputs: a log of 0, a division by 0, an exp that overflowed, or a learning "
                "rate so large that the weights blew up.")


# ---------------------------------------------------------------------------------------------
# Function: one op, forward and backward together
# ---------------------------------------------------------------------------------------------

class Function:
    """Base class of every differentiable op.

    Subclasses implement ``forward(*xs)`` on arrays, returning one array or a tuple of arrays,
    and ``backward(*gys)`` returning one gradient per input (``None`` for an input that needs
    none, such as integer targets). Whatever ``backward`` needs, ``forward`` stores on ``self``.
    Op parameters (stride, axis...) are passed to the constructor: ``Sum(axis=1)(x)``.
    """

    inputs = ()

    def __call__(self, *inputs):
        inputs = [x if isinstance(x, Tensor) else Tensor(x) for x in inputs]
        if len(inputs) > 1 and len({x.device for x in inputs}) > 1:
            raise RuntimeError(
                f"{type(self).__name__}: inputs are on different devices "
                f"({', '.join(x.device for x in inputs)}); move them to one device with "
                ".to(device) first")
        ys = self.forward(*[x.data for x in inputs])
        single = not isinstance(ys, tuple)
        if single:
            ys = (ys,)
        # NumPy reductions over all axes return scalars (np.float32), not 0-d arrays
        ys = tuple(np.asarray(y) if isinstance(y, np.generic) else y for y in ys)
        if _anomaly:
            self.inputs = inputs
            _check_finite(self, ys, "output")
        record = _grad_enabled and any(x.requires_grad for x in inputs)
        outputs = tuple(Tensor._wrap(y, record) for y in ys)
        if record:
            self.inputs = inputs
            self.n_outputs = len(outputs)
            for i, y in enumerate(outputs):
                y.creator, y._index = self, i
        return outputs[0] if single else outputs

    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, *gys):
        raise NotImplementedError

    @property
    def needs_input_grad(self):
        """One bool per input, for use inside ``backward``: does this input want a gradient?
        (PyTorch's ``ctx.needs_input_grad``.) A frozen weight (``requires_grad=False``) or data
        that needs none says False, and ``backward`` may skip that product and return None."""
        return tuple(x.requires_grad for x in self.inputs)

    # hooks and retained gradients of this function's outputs, keyed by output index
    _output_hooks = None
    _retained = None


# ---------------------------------------------------------------------------------------------
# Tensor
# ---------------------------------------------------------------------------------------------

def _as_array(data, dtype=None):
    """Turn ``data`` into an array. Python floats become float32 (PyTorch's default), Python
    ints int64, and arrays keep their dtype unless ``dtype`` is given."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, (np.ndarray, np.generic)) or backend.device_of(data) == "cuda":
        array = data if isinstance(data, np.ndarray) or not isinstance(data, np.generic) \
            else np.asarray(data)
    else:
        array = np.asarray(data)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
    if dtype is not None and array.dtype != np.dtype(dtype):
        array = array.astype(dtype)
    return array


class Tensor(tensor_methods.TensorMethods):
    """An array with a gradient. ``Tensor(data, requires_grad=False, device=None, dtype=None)``.

    ``data`` may be a list, a number, a NumPy or CuPy array. Python floats become float32; NumPy
    arrays keep their dtype (so float64 stays float64, which the gradient checks use).
    PyTorch's everyday methods (``size``, ``unsqueeze``, ``clamp``...) are in
    :mod:`minicnn.tensor_methods`.
    """

    __slots__ = ("data", "grad", "requires_grad", "creator", "_index", "_hooks", "name",
                 "__weakref__")
    # let ``ndarray + Tensor`` call Tensor.__radd__ instead of NumPy broadcasting over objects
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False, device=None, dtype=None):
        array = _as_array(data, dtype)
        if device is not None:
            array = backend.to_device(array, device)
        self.data = array
        self.grad = None
        self.creator = None
        self._index = 0
        self._hooks = None
        self.name = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, array, requires_grad):
        """Fast constructor for op outputs: no conversion, no checks."""
        t = object.__new__(Tensor)
        t.data, t.grad, t.creator, t._index, t._hooks, t.name = array, None, None, 0, None, None
        t.requires_grad = requires_grad
        return t

    # ---- properties ----------------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def device(self):
        return backend.device_of(self.data)

    @property
    def xp(self):
        """The array module of this tensor: ``numpy`` or ``cupy``."""
        return backend.get_array_module(self.data)

    @property
    def is_leaf(self):
        return self.creator is None

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        body = np.array2string(backend.to_numpy(self.data), separator=", ", precision=4,
                               threshold=50, prefix="Tensor(")
        extra = "" if self.dtype == np.float32 else f", dtype={self.dtype}"
        if self.device != "cpu":
            extra += f", device='{self.device}'"
        if self.requires_grad:
            extra += ", requires_grad=True"
        return f"Tensor({body}{extra})"

    # ---- gradient bookkeeping --------------------------------------------------------------
    def requires_grad_(self, requires_grad=True):
        """Switch gradient tracking on or off for this (leaf) tensor; returns ``self``."""
        if requires_grad and self.data.dtype.kind not in "fc":
            raise TypeError(
                f"only floating-point tensors can require gradients, but this tensor is "
                f"{self.data.dtype}; create it with dtype=float32 (or call .float()) first")
        self.requires_grad = bool(requires_grad)
        return self

    def backward(self, grad=None):
        """Compute the gradient of this tensor with respect to every leaf that requires one.

        ``grad`` is the gradient of some final scalar with respect to this tensor; it may be
        left out only when this tensor holds a single element (a loss).
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() was called on a tensor that does not require grad: none of its "
                "inputs had requires_grad=True, or it was computed inside no_grad()")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a single-element output (a loss), but "
                    f"this tensor has shape {self.shape}; reduce it first (y.sum(), y.mean()) or "
                    f"pass grad= an array of shape {self.shape}")
            grad = self.xp.ones_like(self.data)
        else:
            grad = _as_array(grad, self.dtype)
            grad = backend.to_device(grad, self.device)
            if grad.shape != self.shape:
                raise ValueError(f"backward(): grad has shape {grad.shape} but the tensor has "
                                 f"shape {self.shape}")
        run_backward(self, grad)

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient has been computed during backward.

        The hook may return a new array that replaces the gradient. Returns a handle with
        ``remove()``.
        """
        if not self.requires_grad:
            raise RuntimeError("register_hook: this tensor does not require grad, so no gradient "
                               "will ever reach it")
        if self.creator is None:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        else:  # kept on the creator, so the hook works even after this tensor object is gone
            fn = self.creator
            if fn._output_hooks is None:
                fn._output_hooks = {}
            hooks = fn._output_hooks.setdefault(self._index, [])
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    def retain_grad(self):
        """Keep the gradient of this intermediate tensor in ``.grad`` after backward."""
        if self.creator is not None:
            fn = self.creator
            if fn._retained is None:
                fn._retained = {}
            fn._retained[self._index] = weakref.ref(self)
        return self

    def zero_grad(self):
        self.grad = None

    def detach(self):
        """A new tensor sharing the data, cut from the graph (no gradient flows through it)."""
        return Tensor._wrap(self.data, False)

    # ---- conversion ----------------------------------------------------------------------------
    def numpy(self):
        """The data as a NumPy array (copied from the GPU when needed)."""
        return backend.to_numpy(self.data)

    def item(self):
        """The single element as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item(): only a single-element tensor converts to a number, "
                             f"this one has shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def to(self, device=None, dtype=None):
        """This tensor on ``device`` and/or with ``dtype``: ``self`` when nothing changes, else a
        new tensor through which gradients flow back."""
        t = self
        if dtype is not None and np.dtype(dtype) != self.dtype:
            t = _ops.astype(t, dtype)
        if device is not None and backend.normalize_device(device) != t.device:
            t = _ops.to_device(t, device)
        return t

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    def long(self):
        return Tensor._wrap(self.data.astype(np.int64), False)

    def astype(self, dtype):
        return self.to(dtype=dtype)

    # ---- arithmetic (each line hands over to the op in minicnn/ops) ----------------------------
    def __add__(self, other):
        return _ops.add(self, other)

    def __radd__(self, other):
        return _ops.add(other, self)

    def __sub__(self, other):
        return _ops.sub(self, other)

    def __rsub__(self, other):
        return _ops.sub(other, self)

    def __mul__(self, other):
        return _ops.mul(self, other)

    def __rmul__(self, other):
        return _ops.mul(other, self)

    def __truediv__(self, other):
        return _ops.div(self, other)

    def __rtruediv__(self, other):
        return _ops.div(other, self)

    def __matmul__(self, other):
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    def __pow__(self, exponent):
        return _ops.pow(self, exponent)

    def __neg__(self):
        return _ops.neg(self)

    def __getitem__(self, key):
        return _ops.getitem(self, key)

    # comparisons give boolean tensors without gradient (for masks and accuracy)
    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor._wrap(op(self.data, other), False)

    def __eq__(self, other):
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    __hash__ = object.__hash__

    def __bool__(self):
        # ``if loss < best:``; NumPy raises for several elements, as PyTorch does
        return bool(self.data)

    # ---- methods -------------------------------------------------------------------------------
    # PyTorch's dim/keepdim, or NumPy's axis/keepdims
    def sum(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return _ops.sum(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def mean(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return _ops.mean(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def max(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """``max()``; ``max(dim)`` -> ``(values, indices)``; ``max(axis=...)`` -> values."""
        return _ops.max(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def reshape(self, *shape):
        return _ops.reshape(self, *shape)

    view = reshape

    def transpose(self, *axes):
        return _ops.transpose(self, *axes)

    def permute(self, *axes):
        return _ops.permute(self, *axes)

    @property
    def T(self):
        return _ops.permute(self, *reversed(range(self.ndim)))

    def flatten(self, start_dim=0, end_dim=-1):
        return _ops.flatten(self, start_dim, end_dim)

    def exp(self):
        return _ops.exp(self)

    def log(self):
        return _ops.log(self)

    def relu(self):
        return _ops.relu(self)

    def tanh(self):
        return _ops.tanh(self)

    def sigmoid(self):
        return _ops.sigmoid(self)

    def softmax(self, dim=-1, dtype=None, *, axis=None):
        return _ops.softmax(self, dim if axis is None else axis, dtype)

    def log_softmax(self, dim=-1, dtype=None, *, axis=None):
        return _ops.log_softmax(self, dim if axis is None else axis, dtype)


class _HookHandle:
    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


# ---------------------------------------------------------------------------------------------
# The backward pass
# ---------------------------------------------------------------------------------------------

def topological_order(root_fn):
    """Every function the graph below ``root_fn`` holds, producers before their consumers.

    An iterative depth-first search (deep nets would overflow Python's recursion limit).
    """
    order, seen = [], {root_fn}
    stack = [(root_fn, iter(root_fn.inputs))]
    while stack:
        fn, pending = stack[-1]
        for x in pending:
            producer = x.creator
            if producer is not None and producer not in seen:
                seen.add(producer)
                stack.append((producer, iter(producer.inputs)))
                break
        else:  # all inputs visited: fn is finished
            stack.pop()
            order.append(fn)
    return order


def _run_hooks(hooks, grad):
    for hook in hooks:
        replaced = hook(grad)
        if replaced is not None:
            grad = replaced
    return grad


def _accumulate(total, grad):
    return grad if total is None else total + grad


def _grad_array(grad):
    """NOTE: NumPy turns arithmetic on 0-d arrays into scalars (np.float32); ``.grad`` stays an
    ndarray of the tensor's shape."""
    return np.asarray(grad) if isinstance(grad, np.generic) else grad


def run_backward(root, seed):
    """Propagate ``seed`` (the gradient of ``root``) to every leaf below ``root``."""
    leaf_grads = {}  # id(leaf) -> [leaf, summed gradient]
    if root.creator is None:
        leaf_grads[id(root)] = [root, seed]
    else:
        order = topological_order(root.creator)
        pending = {fn: [None] * fn.n_outputs for fn in order}  # gradients of each fn's outputs
        pending[root.creator][root._index] = seed
        for fn in reversed(order):  # consumers before producers
            gys = pending.pop(fn)
            if fn._output_hooks:
                for i, hooks in fn._output_hooks.items():
                    if gys[i] is not None:
                        gys[i] = _run_hooks(hooks, gys[i])
            if fn._retained:
                for i, ref in fn._retained.items():
                    y = ref()
                    if y is not None and gys[i] is not None:
                        y.grad = _accumulate(y.grad, gys[i])
            if all(g is None for g in gys):
                continue  # nothing reaches this function (e.g. an unused output of split)
            if len(gys) > 1:  # multi-output ops get zeros for outputs that received nothing
                for i, g in enumerate(gys):
                    if g is None:
                        ref = next(g for g in gys if g is not None)
                        gys[i] = _zeros_for_output(fn, i, ref)
            gxs = fn.backward(*gys)
            if not isinstance(gxs, tuple):
                gxs = (gxs,)
            if _anomaly:
                _check_finite(fn, gxs, "gradient for input")
            for x, gx in zip(fn.inputs, gxs):
                if gx is None or not x.requires_grad:
                    continue
                if gx.dtype != x.data.dtype:  # mixed-precision inputs: gradient in x's dtype
                    gx = gx.astype(x.data.dtype)
                producer = x.creator
                if producer is None:
                    entry = leaf_grads.setdefault(id(x), [x, None])
                    entry[1] = _accumulate(entry[1], gx)
                else:
                    slots = pending[producer]
                    slots[x._index] = _accumulate(slots[x._index], gx)
    for leaf, grad in leaf_grads.values():
        if leaf._hooks:
            grad = _run_hooks(leaf._hooks, grad)
        # copy: the same array may have been handed to several leaves, or be a read-only view
        leaf.grad = _grad_array(grad.copy(order="K") if leaf.grad is None else leaf.grad + grad)


def _zeros_for_output(fn, index, like):
    shapes = getattr(fn, "output_shapes", None)
    if shapes is None:
        raise RuntimeError(f"{type(fn).__name__} has several outputs but does not record "
                           "output_shapes for the ones that received no gradient")
    return backend.get_array_module(like).zeros(shapes[index], dtype=like.dtype)


def as_tensor(value, like=None):
    """``value`` as a Tensor; a Python number takes the dtype and device of ``like``."""
    if isinstance(value, Tensor):
        return value
    if like is not None and isinstance(value, (int, float, bool)) and \
            (like.dtype.kind in "fc" or not isinstance(value, float)):
        return Tensor._wrap(like.xp.asarray(value, dtype=like.dtype), False)
    return Tensor(value)


from minicnn import ops as _ops  # noqa: E402  (ops import Tensor and Function from this module)
tensor_methods.bind_ops(_ops)
