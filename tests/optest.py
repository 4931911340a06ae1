"""The one helper that tests every op.

An op is described once, as an :class:`OpCase`: the minicnn call, a plain NumPy reference written
independently of minicnn, an optional PyTorch equivalent, a generator of inputs, and the
``Function`` subclasses it exercises. From that one description four checks follow:

* :func:`check_forward`   float32 output equals the reference, keeps float32 (no silent float64
                          upcast, a NumPy 2 / NEP 50 trap), raises no overflow or invalid-value
                          warning, really uses the ``Function`` classes it claims to cover, and
                          every backward in its graph returns gradients of its inputs' shapes and
                          dtypes (the engine's final cast would hide an upcast inside an op);
* :func:`check_gradcheck` :func:`minicnn.gradcheck` in float64 on every differentiable input;
* :func:`check_torch`     output and every input gradient equal PyTorch's (float64, tight
                          tolerance, the same upstream gradient), when torch is importable;
* :func:`check_device`    the op on ``device`` equals the op on the CPU (run for ``cuda`` only where
                          a GPU works; skipped with a reason elsewhere).

A test module lists its cases in a module-level ``CASES`` list and parametrises the four checks
over it (see ``tests/test_ops.py``). :func:`uncovered_functions` walks every ``Function``
subclass defined in the minicnn package and reports those no ``CASES`` list in
``tests/test_*.py`` covers; a test fails on them, so a new op cannot land without its checks.

NOTE: keep inputs away from kinks and ties (ReLU at 0, equal values under a max): there no single
derivative exists and a finite difference disagrees with any backward. The generators below
(:func:`away_from_zero`, :func:`distinct`) do that.
"""
import contextlib
import dataclasses
import importlib
import pathlib
import pkgutil
import sys
import warnings
import zlib
from typing import Any, Callable, Optional

import numpy as np
import pytest

import minicnn
from minicnn import backend
from minicnn.autograd import Function, Tensor, topological_order

try:
    import torch
except ImportError:  # the torch comparison is skipped, with a reason, without it
    torch = None

TESTS_DIR = pathlib.Path(__file__).resolve().parent


# ---------------------------------------------------------------------------------------------
# Describing an op
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class OpCase:
    """One op under test.

    ``make(rng)`` returns the inputs as NumPy arrays: floating ones in float64 (the checks cast
    them to float32 or keep float64), integer ones (class targets, indices) as they are.
    ``fn(*tensors)`` is the minicnn call, ``ref(*arrays)`` the NumPy reference and
    ``torch_fn(*torch_tensors)`` the PyTorch equivalent; each returns one output or a tuple.
    ``covers`` names the ``Function`` subclasses the case exercises (checked against the graph).
    """
    name: str
    fn: Callable
    ref: Callable
    make: Callable
    covers: tuple
    torch_fn: Optional[Callable] = None
    out_dtype: Any = np.float32          # dtype of the outputs for float32 inputs
    fwd_tol: tuple = (2e-5, 1e-6)        # (rtol, atol) of float32 forward vs. reference
    torch_tol: tuple = (1e-9, 1e-12)     # (rtol, atol) of the float64 comparison with torch
    gradcheck_kwargs: dict = dataclasses.field(default_factory=dict)
    grad_inputs: Optional[tuple] = None  # differentiable inputs; default: the floating ones

    def __str__(self):
        return self.name

    def differentiable(self, arrays):
        if self.grad_inputs is not None:
            return set(self.grad_inputs)
        return {i for i, a in enumerate(arrays) if np.asarray(a).dtype.kind == "f"}

    def arrays(self):
        """The case's inputs; the seed depends on the name only, so every check sees the same."""
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        return [np.asarray(a) for a in self.make(rng)]


# ---- input generators: each returns ``rng -> array`` ------------------------------------------

def normal(*shape):
    return lambda rng: rng.standard_normal(shape)


def positive(*shape, low=0.5, high=2.0):
    return lambda rng: rng.uniform(low, high, shape)


def away_from_zero(*shape, low=0.2, high=2.0):
    """Values with |x| in [low, high]: no input sits at the kink of ReLU."""
    return lambda rng: rng.choice([-1.0, 1.0], shape) * rng.uniform(low, high, shape)


def distinct(*shape, spacing=0.25):
    """All values different by at least ``spacing / 2``: no ties under a max."""
    def make(rng):
        n = int(np.prod(shape))
        values = (rng.permutation(n) - n / 2) * spacing
        return (values + rng.uniform(-spacing / 4, spacing / 4, n)).reshape(shape)
    return make


def integers(low, high, *shape):
    return lambda rng: rng.integers(low, high, shape)


def fixed(array):
    return lambda rng: np.array(array)


def inputs(*makers):
    """``make`` for an OpCase from one generator per input."""
    return lambda rng: [m(rng) for m in makers]


# ---------------------------------------------------------------------------------------------
# Running a case
# ---------------------------------------------------------------------------------------------

def as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


def _tensors(case, arrays, dtype, device=None):
    grads = case.differentiable(arrays)
    return [Tensor(a.astype(dtype) if i in grads else a, requires_grad=i in grads, device=device)
            for i, a in enumerate(arrays)], grads


def _upstream(outs, dtype, seed=7):
    """A fixed random upstream gradient for each output (so every output element counts)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(o.shape).astype(dtype) for o in outs]


def _backward(outs, gys):
    """Backpropagate ``gys`` from ``outs`` at once (several outputs: through sum(o * gy))."""
    if len(outs) == 1:
        outs[0].backward(gys[0])
        return
    total = None
    for o, g in zip(outs, gys):
        term = (o * Tensor(g, device=o.device)).sum()
        total = term if total is None else total + term
    total.backward()


@contextlib.contextmanager
def strict_floating_point():
    """Overflow, division by zero and invalid values raise instead of warning (underflow to 0
    is fine: it is how softmax of very negative logits is meant to behave)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
            yield


def functions_in_graph(outs):
    """The Function classes recorded in the graph below ``outs``."""
    return {type(fn) for o in outs if o.creator is not None
            for fn in topological_order(o.creator)}


def _check_what_backward_returns(case, fn):
    """Make ``fn.backward`` (this one recorded call) assert that each gradient it returns has
    the shape and dtype of its input: the engine would quietly cast a float64 gradient back
    to float32, hiding a slow upcast inside the op."""
    original = fn.backward

    def backward(*gys):
        gxs = original(*gys)
        for k, (x, gx) in enumerate(zip(fn.inputs, as_tuple(gxs))):
            if gx is None or not x.requires_grad:
                continue
            name = f"{case.name}: {type(fn).__name__}.backward"
            assert gx.shape == x.shape, \
                f"{name} returns a gradient of shape {gx.shape} for input {k} of shape {x.shape}"
            assert gx.dtype == x.dtype, \
                f"{name} returns a {gx.dtype} gradient for the {x.dtype} input {k}"
        return gxs

    fn.backward = backward  # an instance attribute: only this recorded call is checked


def check_forward(case):
    arrays = case.arrays()
    ts, grads = _tensors(case, arrays, np.float32)
    with strict_floating_point():
        outs = as_tuple(case.fn(*ts))
    reference_inputs = [a.astype(np.float32).astype(np.float64) if i in grads else a
                        for i, a in enumerate(arrays)]
    with strict_floating_point():
        expected = as_tuple(case.ref(*reference_inputs))
    assert len(outs) == len(expected), \
        f"{case.name}: {len(outs)} outputs, the reference gives {len(expected)}"
    rtol, atol = case.fwd_tol
    for k, (o, e) in enumerate(zip(outs, expected)):
        assert isinstance(o, Tensor), f"{case.name}: output {k} is a {type(o).__name__}"
        assert isinstance(o.data, np.ndarray), \
            f"{case.name}: output {k} holds a {type(o.data).__name__}, not an ndarray"
        assert o.dtype == np.dtype(case.out_dtype), \
            f"{case.name}: output {k} is {o.dtype} for float32 inputs, expected " \
            f"{np.dtype(case.out_dtype)} (a silent upcast?)"
        assert o.shape == np.shape(e), \
            f"{case.name}: output {k} has shape {o.shape}, the reference {np.shape(e)}"
        np.testing.assert_allclose(o.numpy(), e, rtol=rtol, atol=atol,
                                   err_msg=f"{case.name}: output {k} differs from the reference")

    used = functions_in_graph(outs)
    claimed = set(case.covers)
    assert claimed <= used, (
        f"{case.name} claims to cover {sorted(c.__name__ for c in claimed - used)} but its graph "
        f"holds only {sorted(c.__name__ for c in used)}")

    for fn in {fn for o in outs if o.creator is not None for fn in topological_order(o.creator)}:
        _check_what_backward_returns(case, fn)
    with strict_floating_point():
        _backward(outs, _upstream(outs, np.float32))
    for i in grads:
        t = ts[i]
        assert t.grad is not None, f"{case.name}: input {i} received no gradient"
        assert t.grad.shape == t.shape, \
            f"{case.name}: gradient of input {i} has shape {t.grad.shape}, the input {t.shape}"
        assert t.grad.dtype == np.float32, \
            f"{case.name}: gradient of float32 input {i} is {t.grad.dtype}"
        assert np.isfinite(t.grad).all(), f"{case.name}: gradient of input {i} is not finite"


def check_gradcheck(case):
    arrays = case.arrays()
    ts, _ = _tensors(case, arrays, np.float64)

    def fn(*xs):
        outs = as_tuple(case.fn(*xs))
        if len(outs) == 1:
            return outs[0]
        return minicnn.cat([o.reshape(-1) for o in outs])  # one output carrying them all

    assert minicnn.gradcheck(fn, ts, **case.gradcheck_kwargs)


def check_torch(case):
    if torch is None:
        pytest.skip("PyTorch is not installed: no comparison with it")
    if case.torch_fn is None:
        pytest.skip(f"{case.name}: no PyTorch equivalent given")
    arrays = case.arrays()
    ts, grads = _tensors(case, arrays, np.float64)
    outs = as_tuple(case.fn(*ts))
    gys = _upstream(outs, np.float64)
    _backward(outs, gys)

    tts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) if i in grads
           else torch.from_numpy(np.array(a)) for i, a in enumerate(arrays)]
    touts = as_tuple(case.torch_fn(*tts))
    assert len(touts) == len(outs), f"{case.name}: torch gives {len(touts)} outputs"
    pairs = [(o, g) for o, g in zip(touts, gys) if o.requires_grad]
    torch.autograd.backward([o for o, _ in pairs], [torch.from_numpy(g) for _, g in pairs])

    rtol, atol = case.torch_tol
    for k, (o, to) in enumerate(zip(outs, touts)):
        expected = to.detach().numpy()
        assert o.shape == expected.shape, \
            f"{case.name}: output {k} has shape {o.shape}, torch's {expected.shape}"
        np.testing.assert_allclose(o.numpy(), expected, rtol=rtol, atol=atol,
                                   err_msg=f"{case.name}: output {k} differs from torch")
    for i in grads:
        expected = tts[i].grad
        expected = np.zeros(arrays[i].shape) if expected is None else expected.numpy()
        np.testing.assert_allclose(ts[i].grad, expected, rtol=rtol, atol=atol,
                                   err_msg=f"{case.name}: gradient of input {i} differs "
                                           "from torch")


def _run(case, arrays, device):
    ts, grads = _tensors(case, arrays, np.float32, device=device)
    outs = as_tuple(case.fn(*ts))
    _backward(outs, _upstream(outs, np.float32))
    return outs, {i: ts[i].grad for i in grads}


def check_device(case, device):
    """The op on ``device`` gives the CPU's outputs and gradients (float32), and keeps them
    on ``device``."""
    arrays = case.arrays()
    cpu_outs, cpu_grads = _run(case, arrays, "cpu")
    outs, grads = _run(case, arrays, device)
    for k, (o, c) in enumerate(zip(outs, cpu_outs)):
        assert o.device == device, f"{case.name}: output {k} is on {o.device}, not {device}"
        np.testing.assert_allclose(o.numpy(), c.numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=f"{case.name}: output {k} on {device} differs "
                                           "from the CPU")
    for i, g in grads.items():
        assert backend.device_of(g) == device, \
            f"{case.name}: gradient of input {i} is on {backend.device_of(g)}, not {device}"
        np.testing.assert_allclose(backend.to_numpy(g), cpu_grads[i], rtol=1e-5, atol=1e-6,
                                   err_msg=f"{case.name}: gradient of input {i} on {device} "
                                           "differs from the CPU")


# ---------------------------------------------------------------------------------------------
# Every op must have a case
# ---------------------------------------------------------------------------------------------

def import_all_minicnn_modules():
    """Import every module of the minicnn package, so that every Function subclass exists.
    Returns ``{module name: error}`` for the modules that failed to import."""
    failed = {}

    def onerror(name):
        failed[name] = repr(sys.exc_info()[1])

    for info in pkgutil.walk_packages(minicnn.__path__, "minicnn.", onerror=onerror):
        if info.name.endswith("__main__"):
            continue  # importing it would run the command line
        try:
            importlib.import_module(info.name)
        except Exception as exc:  # reported by the registry test
            failed[info.name] = f"{type(exc).__name__}: {exc}"
    return failed


def all_minicnn_functions():
    """Every concrete ``Function`` subclass defined in the minicnn package (not in tests)."""
    found, todo = set(), list(Function.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        module = cls.__module__ or ""
        if (module == "minicnn" or module.startswith("minicnn.")) and \
                cls.forward is not Function.forward:
            found.add(cls)
    return found


def collect_cases():
    """The ``CASES`` of every ``tests/test_*.py`` module."""
    cases = []
    for path in sorted(TESTS_DIR.glob("test_*.py")):
        if "CASES" not in path.read_text(encoding="utf-8"):
            continue  # no op cases there: do not import it for nothing
        module = sys.modules.get(path.stem)
        if module is None or pathlib.Path(getattr(module, "__file__", "")).resolve() != path:
            module = importlib.import_module(path.stem)
        cases.extend(getattr(module, "CASES", []))
    return cases


def uncovered_functions(cases=None):
    """Names of the minicnn Function subclasses no case covers, sorted."""
    cases = collect_cases() if cases is None else cases
    covered = {cls for case in cases for cls in case.covers}
    return sorted(f"{cls.__module__}.{cls.__qualname__}"
                  for cls in all_minicnn_functions() - covered)
