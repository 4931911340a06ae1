"""Every op in minicnn/ops through the shared helper (tests/optest.py): forward against a plain
NumPy reference, float64 gradient check, comparison with PyTorch, GPU equals CPU.

The references are written from the definitions with NumPy (or loops), never with minicnn.
``test_every_function_has_a_case`` fails when a ``Function`` subclass in the package has no case.
"""
import itertools

import numpy as np
import pytest

import minicnn as mc
import optest
from minicnn import ops
from minicnn.ops import activation, arithmetic, loss, reduce, shape
from minicnn.ops.linear import Linear  # (``ops.linear`` is the function)
from optest import (OpCase, away_from_zero, distinct, fixed, inputs, integers, normal, positive,
                    torch)

if torch is not None:
    import torch.nn.functional as TF

CASES = []


def case(name, fn, ref, make, covers, torch_fn=None, **kw):
    CASES.append(OpCase(name, fn, ref, make, tuple(covers), torch_fn, **kw))


# ---- arithmetic with broadcasting -------------------------------------------------------------

BINARY = [  # name, operator form (minicnn, numpy and torch alike), Function
    ("add", lambda a, b: a + b, arithmetic.Add),
    ("sub", lambda a, b: a - b, arithmetic.Sub),
    ("mul", lambda a, b: a * b, arithmetic.Mul),
    ("div", lambda a, b: a / b, arithmetic.Div),
]
BROADCAST_SHAPES = [
    ((3, 4), (3, 4)),
    ((), (3, 4)),          # scalar tensor on the left
    ((3, 4), ()),          # ... and on the right
    ((), ()),
    ((3, 1), (1, 4)),      # both stretched
    ((2, 3, 4), (4,)),     # a new leading axis for b
    ((4,), (2, 3, 4)),
    ((2, 1, 4), (3, 1)),
    ((1,), (2, 3)),
    ((2, 3, 1), (1, 3, 4)),
]
for (name, op, cls), (sa, sb) in itertools.product(BINARY, BROADCAST_SHAPES):
    make_b = away_from_zero(*sb, low=0.5) if name == "div" else normal(*sb)
    case(f"{name} {sa}{sb}", op, op, inputs(normal(*sa), make_b), [cls], op)

SCALAR_OPERANDS = [  # a Python (or NumPy) number on either side keeps float32
    ("2.5+x", lambda x: 2.5 + x, arithmetic.Add),
    ("x+2", lambda x: x + 2, arithmetic.Add),
    ("x-1.5", lambda x: x - 1.5, arithmetic.Sub),
    ("1.5-x", lambda x: 1.5 - x, arithmetic.Sub),
    ("3*x", lambda x: 3 * x, arithmetic.Mul),
    ("x*-0.5", lambda x: x * -0.5, arithmetic.Mul),
    ("x*np.float64(2)", lambda x: x * np.float64(2.0), arithmetic.Mul),
    ("x/4", lambda x: x / 4, arithmetic.Div),
    ("4/x", lambda x: 4 / x, arithmetic.Div),
]
for name, op, cls in SCALAR_OPERANDS:
    case(name, op, op, inputs(positive(3, 4)), [cls], op)

case("neg", lambda x: -x, np.negative, inputs(normal(3, 4)), [arithmetic.Neg], lambda x: -x)

for p in (2, 3, 0.5, -1, 1.5, 0, -0.5, 2.0):
    case(f"pow {p!r} (positive x)", lambda x, p=p: x ** p, lambda x, p=p: np.power(x, p),
         inputs(positive(3, 4)), [arithmetic.Pow], lambda x, p=p: x ** p)
for p in (2, 3):
    case(f"pow {p} (any sign)", lambda x, p=p: x ** p, lambda x, p=p: x ** p,
         inputs(normal(3, 4)), [arithmetic.Pow], lambda x, p=p: x ** p)
case("pow np.float64(0.5)", lambda x: x ** np.float64(0.5), np.sqrt, inputs(positive(3, 4)),
     [arithmetic.Pow], lambda x: x ** 0.5)


def matmul_ref(a, b):
    """Matrix product by its definition, with NumPy's rules for 1-D operands and batch axes."""
    a1, b1 = a.ndim == 1, b.ndim == 1
    a = a[None, :] if a1 else a
    b = b[:, None] if b1 else b
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = np.broadcast_to(a, batch + a.shape[-2:])
    b = np.broadcast_to(b, batch + b.shape[-2:])
    out = np.zeros(batch + (a.shape[-2], b.shape[-1]))
    for idx in np.ndindex(*batch):
        for i in range(a.shape[-2]):
            for j in range(b.shape[-1]):
                out[idx + (i, j)] = sum(a[idx + (i, k)] * b[idx + (k, j)]
                                        for k in range(a.shape[-1]))
    if a1:
        out = out[..., 0, :]
    if b1:
        out = out[..., 0]
    return out


MATMUL_SHAPES = [  # (a, b, Functions used)
    ((3, 4), (4, 5), [arithmetic.MatMul]),
    ((2, 3, 4), (2, 4, 5), [arithmetic.MatMul]),
    ((2, 3, 4), (4, 5), [arithmetic.MatMul]),            # batch only on the left
    ((3, 4), (2, 4, 5), [arithmetic.MatMul]),            # batch only on the right
    ((1, 3, 4), (2, 4, 5), [arithmetic.MatMul]),         # batch axis stretched
    ((2, 1, 3, 4), (3, 4, 2), [arithmetic.MatMul]),      # batch axes broadcast both ways
    ((4,), (4, 5), [arithmetic.MatMul, shape.Reshape]),  # vector on the left
    ((3, 4), (4,), [arithmetic.MatMul, shape.Reshape]),  # vector on the right
    ((4,), (2, 4, 5), [arithmetic.MatMul, shape.Reshape]),
    ((2, 3, 4), (4,), [arithmetic.MatMul, shape.Reshape]),
    ((4,), (4,), [arithmetic.Mul, reduce.Sum]),          # dot product
]
for sa, sb, covers in MATMUL_SHAPES:
    case(f"matmul {sa}@{sb}", lambda a, b: a @ b, matmul_ref, inputs(normal(*sa), normal(*sb)),
         covers, lambda a, b: a @ b)

case("astype float32->float64", lambda x: ops.astype(x, np.float64),
     lambda x: x.astype(np.float64), inputs(normal(3, 4)), [arithmetic.AsType],
     lambda x: x.to(torch.float64), out_dtype=np.float64)
case("double()", lambda x: x.double(), lambda x: x.astype(np.float64), inputs(normal(3, 4)),
     [arithmetic.AsType], lambda x: x.double(), out_dtype=np.float64)
# through float32 and back: the finite difference needs a step float32 can resolve
case("astype ->float32->float64", lambda x: ops.astype(ops.astype(x, np.float32), np.float64),
     lambda x: x.astype(np.float32).astype(np.float64), inputs(normal(3, 4)),
     [arithmetic.AsType], lambda x: x.to(torch.float32).to(torch.float64),
     out_dtype=np.float64, gradcheck_kwargs={"eps": 1e-3}, torch_tol=(1e-7, 1e-7))
# there and back, so that on a GPU the output is on the GPU again
case("to_device cpu", lambda x: ops.to_device(ops.to_device(x, "cpu"), x.device),
     lambda x: x.copy(), inputs(normal(3, 4)), [arithmetic.ToDevice], lambda x: x.to("cpu"))


# ---- shapes ------------------------------------------------------------------------------------

for new in [(6, 4), (-1,), (4, -1, 2), (1, 24, 1)]:
    case(f"reshape {new}", lambda x, s=new: x.reshape(*s), lambda x, s=new: np.reshape(x, s),
         inputs(normal(2, 3, 4)), [shape.Reshape], lambda x, s=new: x.reshape(*s))
case("reshape((3, 8))", lambda x: x.reshape((3, 8)), lambda x: np.reshape(x, (3, 8)),
     inputs(normal(2, 3, 4)), [shape.Reshape], lambda x: x.reshape(3, 8))
case("view(24)", lambda x: x.view(24), lambda x: np.reshape(x, 24),
     inputs(normal(2, 3, 4)), [shape.Reshape], lambda x: x.view(24))

TRANSPOSES = [  # name, minicnn, numpy, torch
    ("transpose(0, 2)", lambda x: x.transpose(0, 2), lambda x: np.swapaxes(x, 0, 2),
     lambda x: x.transpose(0, 2)),
    ("transpose(-1, -2)", lambda x: x.transpose(-1, -2), lambda x: np.swapaxes(x, -1, -2),
     lambda x: x.transpose(-1, -2)),
    ("transpose()", lambda x: x.transpose(), lambda x: np.transpose(x),
     lambda x: x.permute(2, 1, 0)),
    ("T", lambda x: x.T, lambda x: x.T, lambda x: x.permute(2, 1, 0)),
    ("permute(2, 0, 1)", lambda x: x.permute(2, 0, 1), lambda x: np.transpose(x, (2, 0, 1)),
     lambda x: x.permute(2, 0, 1)),
    ("ops.transpose((1, 2, 0))", lambda x: ops.transpose(x, (1, 2, 0)),
     lambda x: np.transpose(x, (1, 2, 0)), lambda x: x.permute(1, 2, 0)),
]
for name, fn, ref, tfn in TRANSPOSES:
    case(name, fn, ref, inputs(normal(2, 3, 4)), [shape.Transpose], tfn)
case("T of a matrix", lambda x: x.T, lambda x: x.T, inputs(normal(3, 4)), [shape.Transpose],
     lambda x: x.T)

for args in [(), (1,), (0, 1), (1, 2), (-2, -1)]:
    case(f"flatten{args}", lambda x, a=args: ops.flatten(x, *a),
         lambda x, a=args: np.reshape(x, _flat_shape(x.shape, *a)),
         inputs(normal(2, 3, 2, 2)), [shape.Reshape], lambda x, a=args: torch.flatten(x, *a))


def _flat_shape(s, start=0, end=-1):
    start, end = start % len(s), end % len(s)
    return s[:start] + (int(np.prod(s[start:end + 1])),) + s[end + 1:]


MASK = np.array([[True, False, True, False, False], [False, False, False, True, True],
                 [True, True, False, False, False], [False, False, False, False, True]])
GETITEMS = [  # name, key for NumPy and minicnn, torch version of it (None: the same key)
    ("x[1:3, ::2]", (slice(1, 3), slice(None, None, 2)), None),
    ("x[1]", 1, None),
    ("x[-1, 2] (0-d)", (-1, 2), None),
    ("x[..., 0]", (Ellipsis, 0), None),
    ("x[None, :, -1]", (None, slice(None), -1), None),
    ("x[[0, 2, 0, 0]] (repeats)", [0, 2, 0, 0], None),
    ("x[[[0, 1], [1, 1]]] (2-D index)", np.array([[0, 1], [1, 1]]), "tensor"),
    ("x[[0, 0, 1], [2, 2, 3]]", ([0, 0, 1], [2, 2, 3]), None),
    ("x[1:, [4, 0, 4]]", (slice(1, None), [4, 0, 4]), None),
    ("x[mask]", MASK, "tensor"),
    ("x[row mask]", np.array([True, False, True, True]), "tensor"),
]


def _torch_key(key, how):
    if how == "tensor":
        return torch.from_numpy(key)
    return key


for name, key, how in GETITEMS:
    case(f"getitem {name}", lambda x, k=key: x[k], lambda x, k=key: x[k], inputs(normal(4, 5)),
         [shape.GetItem], lambda x, k=key, h=how: x[_torch_key(k, h)])
# PyTorch has no negative steps: flip instead
case("getitem x[::-1, 3:0:-2]", lambda x: x[::-1, 3:0:-2], lambda x: x[::-1, 3:0:-2],
     inputs(normal(4, 5)), [shape.GetItem], lambda x: x.flip(0)[:, [3, 1]])
case("getitem x[:, ::-1]", lambda x: x[:, ::-1], lambda x: x[:, ::-1],
     inputs(normal(4, 5)), [shape.GetItem], lambda x: x.flip(1))
case("getitem with a Tensor index", lambda x: x[mc.Tensor(np.array([3, 3, 1]))],
     lambda x: x[[3, 3, 1]], inputs(normal(4, 5)), [shape.GetItem], lambda x: x[[3, 3, 1]])


def cat_ref(axis):
    def ref(*xs):
        out = xs[0]
        for x in xs[1:]:
            out = np.concatenate([out, x], axis=axis)
        return out
    return ref


for shapes, axis in [([(2, 3), (4, 3)], 0), ([(2, 3), (2, 1), (2, 2)], 1),
                     ([(2, 3, 2), (2, 3, 1)], -1), ([(3,)], 0)]:
    case(f"cat {shapes} axis={axis}", lambda *xs, a=axis: mc.cat(list(xs), axis=a),
         cat_ref(axis), inputs(*[normal(*s) for s in shapes]), [shape.Cat],
         lambda *xs, a=axis: torch.cat(xs, dim=a))

for axis in (0, 1, 2, -1):
    case(f"stack axis={axis}", lambda *xs, a=axis: mc.stack(list(xs), axis=a),
         lambda *xs, a=axis: np.stack(xs, axis=a),
         inputs(normal(2, 3), normal(2, 3), normal(2, 3)), [shape.Stack],
         lambda *xs, a=axis: torch.stack(xs, dim=a))


def split_ref(x, sizes, axis):
    pieces, start = [], 0
    for s in sizes:
        index = [slice(None)] * x.ndim
        index[axis] = slice(start, start + s)
        pieces.append(x[tuple(index)])
        start += s
    return tuple(pieces)


SPLITS = [  # shape, split_size_or_sections, axis, the sizes it means
    ((5, 3), 2, 0, [2, 2, 1]),        # the last piece is smaller
    ((2, 6), [1, 3, 2], 1, [1, 3, 2]),
    ((4, 3), 4, 0, [4]),              # one piece
    ((3, 5), 2, -1, [2, 2, 1]),
    ((3, 4), [0, 4], 1, [0, 4]),      # an empty piece
]
for s, arg, axis, sizes in SPLITS:
    case(f"split {s} by {arg} axis={axis}", lambda x, g=arg, a=axis: mc.split(x, g, axis=a),
         lambda x, z=sizes, a=axis: split_ref(x, z, a), inputs(normal(*s)), [shape.Split],
         lambda x, g=arg, a=axis: torch.split(x, g, dim=a))


def pad_ref(x, widths, value=0.0):
    """``widths`` in PyTorch's order: (before, after) pairs from the last axis backwards."""
    before, after = [0] * x.ndim, [0] * x.ndim
    for k in range(len(widths) // 2):
        before[x.ndim - 1 - k], after[x.ndim - 1 - k] = widths[2 * k], widths[2 * k + 1]
    out = np.full([n + b + a for n, b, a in zip(x.shape, before, after)], value)
    out[tuple(slice(b, b + n) for n, b in zip(x.shape, before))] = x
    return out


for s, widths, value in [((2, 3), (1, 2), 0.0), ((2, 3, 3), (1, 1, 2, 0), 0.0),
                         ((1, 2, 2, 3), (0, 1, 1, 0, 1, 1), 0.0), ((2, 3), (2, 0), 0.5),
                         ((2, 3), (0, 0), 0.0)]:
    case(f"pad {s} {widths} value={value}", lambda x, w=widths, v=value: ops.pad(x, w, value=v),
         lambda x, w=widths, v=value: pad_ref(x, w, v), inputs(normal(*s)), [shape.Pad],
         lambda x, w=widths, v=value: TF.pad(x, w, value=v))


# ---- reductions --------------------------------------------------------------------------------

def _torch_dims(axis, ndim):
    return tuple(range(ndim)) if axis is None else axis


REDUCTIONS = [  # name, Function, NumPy, torch, input generator
    ("sum", reduce.Sum, np.sum, lambda x, d, k: torch.sum(x, dim=d, keepdim=k), normal(2, 3, 4)),
    ("mean", reduce.Mean, np.mean, lambda x, d, k: torch.mean(x, dim=d, keepdim=k),
     normal(2, 3, 4)),
    ("max", reduce.Max, np.max, lambda x, d, k: torch.amax(x, dim=d, keepdim=k),
     distinct(2, 3, 4)),  # NOTE: no ties, or the gradient is not unique
]
AXES = [None, 0, 1, 2, -1, (0, 2), (1, 2), (0, 1, 2), (-1, 0)]
for (name, cls, npf, tf, make), axis, keepdims in itertools.product(REDUCTIONS, AXES,
                                                                    (False, True)):
    case(f"{name} axis={axis} keepdims={keepdims}",
         lambda x, n=name, a=axis, k=keepdims: getattr(x, n)(axis=a, keepdims=k),
         lambda x, f=npf, a=axis, k=keepdims: f(x, axis=a, keepdims=k), inputs(make), [cls],
         lambda x, f=tf, a=axis, k=keepdims: f(x, _torch_dims(a, 3), k))
case("sum of a 0-d tensor", lambda x: x.sum(), np.sum, inputs(normal()), [reduce.Sum],
     lambda x: x.sum())
case("ops.max of a vector", lambda x: ops.max(x), np.max, inputs(distinct(7)), [reduce.Max],
     lambda x: x.max())


# ---- element-wise functions --------------------------------------------------------------------

def sigmoid_ref(x):
    return np.exp(-np.logaddexp(0.0, -x))  # 1 / (1 + e^-x) without overflow


LARGE = [-1000.0, -100.0, -30.0, -1.5, 0.25, 30.0, 100.0, 1000.0]
ELEMENTWISE = [  # name, minicnn, NumPy, torch, input generator, Function
    ("exp", lambda x: x.exp(), np.exp, torch and torch.exp, normal(3, 4), activation.Exp),
    ("log", lambda x: x.log(), np.log, torch and torch.log, positive(3, 4, low=0.1, high=5),
     activation.Log),
    ("relu", ops.relu, lambda x: np.where(x > 0, x, 0.0), torch and torch.relu,
     away_from_zero(3, 4), activation.ReLU),  # NOTE: not at the kink x = 0
    ("relu method", lambda x: x.relu(), lambda x: np.where(x > 0, x, 0.0), torch and torch.relu,
     away_from_zero(2, 3, 4), activation.ReLU),
    ("tanh", ops.tanh, np.tanh, torch and torch.tanh, normal(3, 4), activation.Tanh),
    ("sigmoid", ops.sigmoid, sigmoid_ref, torch and torch.sigmoid,
     lambda r: 3 * r.standard_normal((3, 4)), activation.Sigmoid),
    ("tanh large |x|", lambda x: x.tanh(), np.tanh, torch and torch.tanh, fixed(LARGE),
     activation.Tanh),
    ("sigmoid large |x|", lambda x: x.sigmoid(), sigmoid_ref, torch and torch.sigmoid,
     fixed(LARGE), activation.Sigmoid),
]
for name, fn, ref, tfn, make, cls in ELEMENTWISE:
    case(name, fn, ref, inputs(make), [cls], tfn)
case("add_relu", ops.add_relu, lambda a, b: np.where(a + b > 0, a + b, 0.0),
     inputs(away_from_zero(3, 4), lambda r: 0.05 * r.standard_normal((3, 4))),  # not at a + b = 0
     [activation.AddReLU], torch and (lambda a, b: torch.relu(a + b)))


# ---- softmax and the losses --------------------------------------------------------------------

def softmax_ref(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax_ref(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


EXTREME = [[1000.0, -1000.0, 999.0], [0.0, 1000.0, -1000.0]]
for axis in (0, 1, 2, -1):
    case(f"softmax axis={axis}", lambda x, a=axis: ops.softmax(x, a),
         lambda x, a=axis: softmax_ref(x, a), inputs(normal(2, 3, 4)), [loss.Softmax],
         lambda x, a=axis: torch.softmax(x, a))
    case(f"log_softmax axis={axis}", lambda x, a=axis: x.log_softmax(a),
         lambda x, a=axis: log_softmax_ref(x, a), inputs(normal(2, 3, 4)), [loss.LogSoftmax],
         lambda x, a=axis: torch.log_softmax(x, a))
case("softmax extreme logits", lambda x: x.softmax(-1), lambda x: softmax_ref(x, -1),
     inputs(fixed(EXTREME)), [loss.Softmax], lambda x: torch.softmax(x, -1))
case("log_softmax extreme logits", lambda x: ops.log_softmax(x, 1),
     lambda x: log_softmax_ref(x, 1), inputs(fixed(EXTREME)), [loss.LogSoftmax],
     lambda x: torch.log_softmax(x, 1))


def cross_entropy_ref(logits, target, reduction="mean", ignore_index=-100):
    """One sample (or pixel) at a time: loss = log(sum_c exp(z_c)) - z_target."""
    c = logits.shape[1]
    rows = np.moveaxis(logits, 1, -1).reshape(-1, c)
    targets = target.reshape(-1)
    losses, counted = np.zeros(len(targets)), 0
    for i, (z, t) in enumerate(zip(rows, targets)):
        if t == ignore_index:
            continue
        m = max(z)
        losses[i] = m + np.log(sum(np.exp(zc - m) for zc in z)) - z[t]
        counted += 1
    if reduction == "none":
        return losses.reshape(target.shape)
    return losses.sum() if reduction == "sum" else losses.sum() / counted


CROSS_ENTROPY = [  # name, logits generator, target generator, reduction, ignore_index
    ("(N,C)", normal(4, 5), integers(0, 5, 4), "mean", -100),
    ("(N,C)", normal(4, 5), integers(0, 5, 4), "sum", -100),
    ("(N,C)", normal(4, 5), integers(0, 5, 4), "none", -100),
    ("(N,C,H,W)", normal(2, 3, 2, 2), integers(0, 3, 2, 2, 2), "mean", -100),
    ("(N,C,H,W)", normal(2, 3, 2, 2), integers(0, 3, 2, 2, 2), "sum", -100),
    ("(N,C,H,W)", normal(2, 3, 2, 2), integers(0, 3, 2, 2, 2), "none", -100),
    ("(N,C) ignored -100", normal(5, 4), fixed([0, -100, 3, -100, 1]), "mean", -100),
    ("(N,C) ignored -100", normal(5, 4), fixed([0, -100, 3, -100, 1]), "sum", -100),
    ("(N,C) ignored -100", normal(5, 4), fixed([0, -100, 3, -100, 1]), "none", -100),
    ("(N,C) ignore_index=1", normal(5, 4), fixed([1, 0, 1, 3, 2]), "mean", 1),
    ("(N,C,H,W) ignored", normal(2, 3, 2, 2), fixed([[[0, -100], [2, 1]], [[-100, -100], [1, 2]]]),
     "mean", -100),
    ("extreme logits", fixed(EXTREME + [[-1000.0, 1000.0, 999.0]]), fixed([1, 2, 2]), "mean",
     -100),
    ("extreme logits", fixed(EXTREME + [[-1000.0, 1000.0, 999.0]]), fixed([1, 2, 2]), "none",
     -100),
]
for name, make_z, make_t, red, ignore in CROSS_ENTROPY:
    case(f"cross_entropy {name} {red}",
         lambda z, t, r=red, i=ignore: ops.cross_entropy(z, t, reduction=r, ignore_index=i),
         lambda z, t, r=red, i=ignore: cross_entropy_ref(z, t, r, i),
         inputs(make_z, make_t), [loss.CrossEntropy],
         lambda z, t, r=red, i=ignore: TF.cross_entropy(z, t, reduction=r, ignore_index=i))

for red in ("mean", "sum", "none"):
    case(f"mse_loss {red}", lambda a, b, r=red: ops.mse_loss(a, b, reduction=r),
         lambda a, b, r=red: {"mean": np.mean, "sum": np.sum, "none": lambda d: d}[r]((a - b) ** 2),
         inputs(normal(3, 4), normal(3, 4)), [loss.MSELoss],
         lambda a, b, r=red: TF.mse_loss(a, b, reduction=r))


def linear_ref(x, w, b=None):
    y = np.einsum("...i,oi->...o", x, w)
    return y if b is None else y + b


for xs, bias in [((4, 3), True), ((4, 3), False), ((2, 4, 3), True), ((2, 4, 3), False)]:
    makers = [normal(*xs), normal(5, 3)] + ([normal(5)] if bias else [])
    case(f"linear x{xs} bias={bias}", ops.linear, linear_ref, inputs(*makers), [Linear],
         TF.linear if torch is not None else None)


# ---- the four checks, for every case of every test file ---------------------------------------
# Each tests/test_*.py that defines op cases lists them in a module-level CASES; they all run here,
# so a case cannot be written and then forgotten.

ALL_CASES = optest.collect_cases()


@pytest.mark.parametrize("case", ALL_CASES, ids=str)
def test_forward(case):
    optest.check_forward(case)


@pytest.mark.parametrize("case", ALL_CASES, ids=str)
def test_gradcheck(case):
    optest.check_gradcheck(case)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("case", ALL_CASES, ids=str)
def test_against_torch(case):
    optest.check_torch(case)


@pytest.mark.parametrize("case", ALL_CASES, ids=str)
def test_device_equals_cpu(case, device):
    optest.check_device(case, device)


# ---- every op has a case -----------------------------------------------------------------------

def test_every_minicnn_module_imports():
    failed = optest.import_all_minicnn_modules()
    assert not failed, "these modules fail to import, so their ops cannot be checked:\n" + \
        "\n".join(f"  {name}: {err}" for name, err in failed.items())


def test_every_function_has_a_case():
    optest.import_all_minicnn_modules()
    missing = optest.uncovered_functions()
    assert not missing, (
        "these Function subclasses have no OpCase (add one to a CASES list in tests/):\n  "
        + "\n  ".join(missing))


def test_registry_notices_a_missing_case():
    every = optest.uncovered_functions(cases=[])
    assert "minicnn.ops.arithmetic.Add" in every and "minicnn.ops.loss.CrossEntropy" in every
    cases = optest.collect_cases()
    without_add = [c for c in cases if arithmetic.Add not in c.covers]
    newly_missing = set(optest.uncovered_functions(without_add)) - \
        set(optest.uncovered_functions(cases))
    assert newly_missing == {"minicnn.ops.arithmetic.Add"}


def test_cases_cover_what_they_claim():
    bad = OpCase("claims too much", lambda x: x + 1.0, lambda x: x + 1.0, inputs(normal(2)),
                 (arithmetic.Add, arithmetic.Mul))
    with pytest.raises(AssertionError, match="Mul"):
        optest.check_forward(bad)


# ---- op-specific behaviour the generic checks do not pin down ----------------------------------

def test_getitem_with_repeated_indices_sums_the_gradients():
    x = mc.Tensor(np.arange(8, dtype=np.float32).reshape(4, 2), requires_grad=True)
    x[[0, 2, 0, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad, [[3, 3], [0, 0], [1, 1], [0, 0]])
    x.zero_grad()
    x[[1, 1], [0, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 0], [2, 0], [0, 0], [0, 0]])


def test_getitem_with_a_boolean_mask_routes_the_gradient():
    x = mc.Tensor(np.arange(20, dtype=np.float32).reshape(4, 5), requires_grad=True)
    y = x[MASK]
    assert y.shape == (int(MASK.sum()),)
    y.backward(np.arange(1, MASK.sum() + 1, dtype=np.float32))
    expected = np.zeros((4, 5), np.float32)
    expected[MASK] = np.arange(1, MASK.sum() + 1)
    np.testing.assert_array_equal(x.grad, expected)


def test_split_outputs_that_are_not_used_get_zero_gradient():
    x = mc.Tensor(np.arange(10, dtype=np.float32).reshape(5, 2), requires_grad=True)
    a, b, c = mc.split(x, 2)
    assert [p.shape for p in (a, b, c)] == [(2, 2), (2, 2), (1, 2)]
    (b * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 0], [0, 0], [3, 3], [3, 3], [0, 0]])
    assert x.grad.dtype == np.float32
    x.zero_grad()
    a, b = mc.split(x, [4, 1])
    b.sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 0]] * 4 + [[1, 1]])


def test_split_returns_a_tuple_even_for_one_piece():
    pieces = mc.split(mc.Tensor(np.ones((3, 2), np.float32)), 5)
    assert isinstance(pieces, tuple) and len(pieces) == 1 and pieces[0].shape == (3, 2)


@pytest.mark.parametrize("fn", [ops.sigmoid, ops.tanh, lambda x: ops.softmax(x, 0),
                                lambda x: ops.log_softmax(x, 0)], ids=["sigmoid", "tanh",
                                                                       "softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_saturating_functions_stay_finite_without_warnings(fn, dtype):
    x = mc.Tensor(np.array([-1e4, -1000, -89, 0.0, 89, 1000, 1e4], dtype), requires_grad=True)
    with optest.strict_floating_point():
        y = fn(x)
        y.backward(np.ones(y.shape, dtype))
    assert np.isfinite(y.data).all() and np.isfinite(x.grad).all()
    assert y.dtype == dtype and x.grad.dtype == dtype


def test_sigmoid_saturates_to_exactly_zero_and_one():
    y = ops.sigmoid(mc.Tensor(np.array([-1000.0, 1000.0], np.float32)))
    np.testing.assert_array_equal(y.data, [0.0, 1.0])


def test_cross_entropy_with_extreme_logits_is_finite_and_right():
    z = mc.Tensor(np.array([[1000.0, -1000.0], [-1000.0, 1000.0]], np.float32), requires_grad=True)
    loss_value = ops.cross_entropy(z, np.array([1, 1]))
    loss_value.backward()
    assert loss_value.item() == pytest.approx(1000.0)  # (2000 + 0) / 2
    np.testing.assert_allclose(z.grad, [[0.5, -0.5], [0.0, 0.0]], atol=1e-7)


def test_cross_entropy_mean_ignores_ignored_targets_in_the_count():
    z = np.zeros((4, 2), np.float32)
    value = ops.cross_entropy(mc.Tensor(z), np.array([0, -100, -100, 1])).item()
    assert value == pytest.approx(np.log(2.0))


def test_full_reductions_give_ndarray_data():
    x = mc.Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    for y in (x.sum(), x.mean(), x.max(), ops.mse_loss(x, x * 2),
              ops.cross_entropy(x, np.array([0, 1]))):
        assert isinstance(y.data, np.ndarray) and y.shape == () and y.dtype == np.float32


def test_to_same_device_and_dtype_is_a_no_op():
    x = mc.Tensor(np.ones(3, np.float32), requires_grad=True)
    assert x.to("cpu") is x and x.float() is x and x.to(dtype=np.float32) is x


def test_max_shares_the_gradient_equally_among_ties():
    # NOTE: at a tie no single derivative exists; like torch.amax the gradient is split evenly
    x = mc.Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], np.float32), requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
    assert x.grad.dtype == np.float32
