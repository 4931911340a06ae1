"""PyTorch's everyday names and options on minicnn (issue 16, items 5 and 7).

The new ops are OpCases (tests/optest.py: NumPy reference, float64 gradcheck, PyTorch, GPU);
the names that only read or build tensors are compared with PyTorch directly below.
"""
import numpy as np
import pytest

import minicnn as mc
import minicnn.nn.functional as F
from minicnn.ops import activation, arithmetic, loss, reduce, shape
from optest import OpCase, distinct, fixed, inputs, integers, normal, positive, torch

if torch is not None:
    import torch.nn.functional as TF

CASES = []


def case(name, fn, ref, make, covers, torch_fn=None, **kw):
    CASES.append(OpCase(name, fn, ref, make, tuple(covers), torch_fn, **kw))


# ---- pow with a tensor exponent ---------------------------------------------------------------

for sa, sb in [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 3), (4, 1)), ((), (2, 3))]:
    case(f"pow tensor exponent {sa}**{sb}", lambda a, b: a ** b, np.power,
         inputs(positive(*sa), normal(*sb)), [arithmetic.PowTensor], lambda a, b: a ** b)
case("2.5 ** tensor", lambda b: 2.5 ** b, lambda b: np.power(2.5, b), inputs(normal(3, 4)),
     [arithmetic.PowTensor], lambda b: 2.5 ** b)
case("mc.pow(a, b)", mc.pow, np.power, inputs(positive(5), normal(5)), [arithmetic.PowTensor],
     lambda a, b: torch.pow(a, b))

# ---- maximum, minimum, clamp ------------------------------------------------------------------

for sa, sb in [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3), ())]:
    # NOTE: distinct values: no ties (there each input gets half; tested below)
    both = lambda rng, sa=sa, sb=sb: list(np.split(distinct(int(np.prod(sa)) + int(np.prod(
        sb)))(rng), [int(np.prod(sa))])) if True else None
    make = (lambda rng, sa=sa, sb=sb, both=both: [p.reshape(s) for p, s in
                                                   zip(both(rng), (sa, sb))])
    case(f"maximum {sa} {sb}", mc.maximum, np.maximum, make, [arithmetic.Extremum],
         lambda a, b: torch.maximum(a, b))
    case(f"minimum {sa} {sb}", mc.minimum, np.minimum, make, [arithmetic.Extremum],
         lambda a, b: torch.minimum(a, b))
case("max(a, b) is maximum", lambda a, b: mc.max(a, b), np.maximum,
     inputs(distinct(2, 3), fixed(np.full((2, 3), 0.1))), [arithmetic.Extremum],
     lambda a, b: torch.max(a, b))

CLAMPS = [(-0.5, 0.7), (-0.5, None), (None, 0.3), (0.9, 0.2)]   # (0.9, 0.2): min > max
for low, high in CLAMPS:
    case(f"clamp({low}, {high})", lambda x, lo=low, hi=high: x.clamp(lo, hi),
         lambda x, lo=low, hi=high: np.minimum(np.maximum(x, -np.inf if lo is None else lo),
                                               np.inf if hi is None else hi),
         inputs(distinct(4, 5, spacing=0.13)), [arithmetic.Clamp],
         lambda x, lo=low, hi=high: torch.clamp(x, lo, hi))
case("clip(min=-1)", lambda x: mc.clip(x, min=-1.0), lambda x: np.maximum(x, -1.0),
     inputs(distinct(3, 4, spacing=0.3)), [arithmetic.Clamp], lambda x: x.clip(min=-1.0))
case("clamp with tensor bounds", lambda x, lo, hi: mc.clamp(x, lo, hi),
     lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi),
     inputs(fixed([-2.0, -0.3, 0.2, 1.7]), fixed([-1.0, -1.1, -1.0, -1.2]),
            fixed([1.0, 1.1, 0.9, 1.2])), [arithmetic.Extremum],
     lambda x, lo, hi: torch.clamp(x, lo, hi))

# ---- abs, sqrt ----------------------------------------------------------------------------------

case("abs", lambda x: x.abs(), np.abs, inputs(lambda r: r.choice([-1.0, 1.0], (3, 4)) *
                                              r.uniform(0.2, 2, (3, 4))),
     [activation.Abs], torch and torch.abs)
case("abs()", lambda x: abs(x), np.abs, inputs(normal(5)), [activation.Abs],
     torch and torch.abs)
case("sqrt", lambda x: x.sqrt(), np.sqrt, inputs(positive(3, 4)), [activation.Sqrt],
     torch and torch.sqrt)

# ---- max/min along a dim: (values, indices); var, std ------------------------------------------

for dim, keepdim in [(0, False), (1, True), (-1, False), (2, True)]:
    case(f"max(dim={dim}, keepdim={keepdim}).values",
         lambda x, d=dim, k=keepdim: mc.max(x, d, keepdim=k).values,
         lambda x, d=dim, k=keepdim: np.max(x, axis=d, keepdims=k), inputs(distinct(2, 3, 4)),
         [reduce.MaxAlong], lambda x, d=dim, k=keepdim: torch.max(x, d, keepdim=k).values)
    case(f"min(dim={dim}, keepdim={keepdim}).values",
         lambda x, d=dim, k=keepdim: x.min(d, keepdim=k)[0],
         lambda x, d=dim, k=keepdim: np.min(x, axis=d, keepdims=k), inputs(distinct(2, 3, 4)),
         [reduce.MaxAlong], lambda x, d=dim, k=keepdim: torch.min(x, d, keepdim=k)[0])
case("max(-1) of a 0-d tensor", lambda x: x.max(-1).values, lambda x: x, inputs(normal()),
     [reduce.MaxAlong], lambda x: x.max(-1).values)
case("min() of all", lambda x: x.min(), np.min, inputs(distinct(3, 4)), [reduce.Max],
     lambda x: x.min())

for dim, correction in [(None, 1), (1, 1), (0, 0), ((0, 2), 1)]:
    for name, npf, tf in [("var", np.var, torch and torch.var), ("std", np.std,
                                                                    torch and torch.std)]:
        case(f"{name}(dim={dim}, correction={correction})",
             lambda x, m=name, d=dim, c=correction: getattr(x, m)(d, correction=c),
             lambda x, f=npf, d=dim, c=correction: f(x, axis=d, ddof=c),
             inputs(normal(3, 4, 2)), [reduce.Mean, reduce.Sum],
             lambda x, f=tf, d=dim, c=correction: f(x, dim=d, correction=c))

# ---- shape ops with PyTorch's names --------------------------------------------------------------

case("unsqueeze(1)", lambda x: x.unsqueeze(1), lambda x: np.expand_dims(x, 1),
     inputs(normal(2, 3)), [shape.Reshape], lambda x: x.unsqueeze(1))
case("unsqueeze(-1)", lambda x: mc.unsqueeze(x, -1), lambda x: np.expand_dims(x, -1),
     inputs(normal(2, 3)), [shape.Reshape], lambda x: x.unsqueeze(-1))
case("squeeze()", lambda x: x.squeeze(), np.squeeze, inputs(normal(1, 3, 1, 2)),
     [shape.Reshape], lambda x: x.squeeze())
case("squeeze(2)", lambda x: x.squeeze(2), lambda x: np.squeeze(x, 2),
     inputs(normal(1, 3, 1, 2)), [shape.Reshape], lambda x: x.squeeze(2))
case("squeeze(1) keeps a long axis", lambda x: x.squeeze(1), lambda x: x,
     inputs(normal(1, 3, 1, 2)), [shape.Reshape], lambda x: x.squeeze(1))
case("clone", lambda x: x.clone(), np.copy, inputs(normal(3, 4)), [shape.Clone],
     lambda x: x.clone())
case("flatten of a 0-d tensor", lambda x: x.flatten(), lambda x: np.reshape(x, 1),
     inputs(normal()), [shape.Reshape], lambda x: x.flatten())
case("transpose(0, 0) of a 0-d tensor", lambda x: x.transpose(0, 0), lambda x: x,
     inputs(normal()), [shape.Transpose], lambda x: x.transpose(0, 0))
case("cat(dim=1)", lambda a, b: mc.cat([a, b], dim=1), lambda a, b: np.concatenate([a, b], 1),
     inputs(normal(2, 3), normal(2, 1)), [shape.Cat], lambda a, b: torch.cat([a, b], dim=1))
for name in ("sum", "mean"):
    case(f"{name}(dim=-1) of a 0-d tensor", lambda x, n=name: getattr(x, n)(-1),
         lambda x: x, inputs(normal()), [getattr(reduce, name.capitalize())],
         lambda x, n=name: getattr(x, n)(-1))
    case(f"{name}(dim=1, keepdim=True)", lambda x, n=name: getattr(x, n)(dim=1, keepdim=True),
         lambda x, n=name: getattr(np, n)(x, axis=1, keepdims=True), inputs(normal(2, 3, 4)),
         [getattr(reduce, name.capitalize())],
         lambda x, n=name: getattr(x, n)(dim=1, keepdim=True))

# ---- softmax with dtype=, on empty tensors -------------------------------------------------------

case("softmax(dim=1, dtype=float64)", lambda x: F.softmax(x, dim=1, dtype=np.float64),
     lambda x: np.exp(x) / np.exp(x).sum(1, keepdims=True), inputs(normal(3, 4)),
     [loss.Softmax, arithmetic.AsType], lambda x: TF.softmax(x, 1, dtype=torch.float64),
     out_dtype=np.float64)
case("log_softmax(dtype=float64)", lambda x: x.log_softmax(-1, dtype=np.float64),
     lambda x: x - np.log(np.exp(x).sum(-1, keepdims=True)), inputs(normal(3, 4)),
     [loss.LogSoftmax, arithmetic.AsType], lambda x: x.log_softmax(-1, dtype=torch.float64),
     out_dtype=np.float64)
for name, fn, tfn in [("softmax", F.softmax, torch and torch.softmax),
                      ("log_softmax", F.log_softmax, torch and torch.log_softmax)]:
    case(f"{name} of a (5, 0, 0) tensor", lambda x, f=fn: f(x, -1), lambda x: x,
         inputs(normal(5, 0, 0)), [getattr(loss, "Softmax" if name == "softmax" else
                                           "LogSoftmax")], lambda x, f=tfn: f(x, -1))


# ---- cross_entropy: weight, label_smoothing, class-probability targets ---------------------------

def log_softmax_rows(z):
    z = np.moveaxis(z, 1, -1)
    shifted = z - z.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def cross_entropy_ref(z, t, weight=None, smoothing=0.0, reduction="mean", ignore=-100):
    """From the definition, one row at a time: the target distribution q (one-hot, or the
    given probabilities) smoothed to (1 - e) q + e / C, each class weighted by w_c; the mean
    divides by the summed w of the index targets, or by the row count for probabilities."""
    c = z.shape[1]
    logp = log_softmax_rows(z).reshape(-1, c)
    w = np.ones(c) if weight is None else weight
    soft = t.dtype.kind == "f"
    q = np.moveaxis(t, 1, -1).reshape(-1, c) if soft else t.reshape(-1)
    losses, denominator = np.zeros(len(logp)), 0.0
    for i in range(len(logp)):
        if not soft and q[i] == ignore:
            continue
        target = q[i] if soft else np.eye(c)[q[i]]
        target = (1 - smoothing) * target + smoothing / c
        losses[i] = -sum(w[k] * target[k] * logp[i, k] for k in range(c))
        denominator += 1 if soft else w[q[i]]
    if reduction == "none":
        return losses.reshape(z.shape[:1] + z.shape[2:])
    return losses.sum() if reduction == "sum" else losses.sum() / denominator


def probabilities(*shape):
    """Rows (along axis 1) of positive numbers summing to 1."""
    def make(rng):
        p = rng.uniform(0.1, 1.0, shape)
        return p / p.sum(axis=1, keepdims=True)
    return make


WEIGHT = np.array([0.5, 2.0, 1.0, 1.5])
CE = [  # name, logits, target, weight, label_smoothing
    ("weight", normal(5, 4), fixed([0, 3, -100, 1, 3]), WEIGHT, 0.0),
    ("label_smoothing", normal(5, 4), fixed([0, 3, -100, 1, 3]), None, 0.1),
    ("weight+label_smoothing", normal(5, 4), fixed([0, 3, -100, 1, 3]), WEIGHT, 0.25),
    ("(N,C,H,W) weight", normal(2, 4, 2, 3), integers(0, 4, 2, 2, 3), WEIGHT, 0.0),
    ("probabilities", normal(5, 4), probabilities(5, 4), None, 0.0),
    ("probabilities+weight+smoothing", normal(5, 4), probabilities(5, 4), WEIGHT, 0.2),
    ("(N,C,H,W) probabilities", normal(2, 4, 2, 2), probabilities(2, 4, 2, 2), None, 0.1),
]
for name, make_z, make_t, weight, smoothing in CE:
    for red in ("mean", "sum", "none"):
        case(f"cross_entropy {name} {red}",
             lambda z, t, w=weight, e=smoothing, r=red: F.cross_entropy(
                 z, t, weight=w, label_smoothing=e, reduction=r),
             lambda z, t, w=weight, e=smoothing, r=red: cross_entropy_ref(z, t, w, e, r),
             inputs(make_z, make_t), [loss.CrossEntropy],
             lambda z, t, w=weight, e=smoothing, r=red: TF.cross_entropy(
                 z, t, weight=None if w is None else torch.tensor(w), label_smoothing=e,
                 reduction=r))


# ---- behaviour the op cases do not pin down ------------------------------------------------------

def test_max_and_min_along_a_dim_give_values_and_indices_like_pytorch():
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, -1.0, 5.0, 5.0]], np.float32)
    t = mc.Tensor(x, requires_grad=True)
    result = mc.max(t, 1)
    values, indices = result                       # unpacks like torch.return_types.max
    assert result.values is values and result.indices is indices
    assert type(result).__name__ == "max" and type(t.min(0)).__name__ == "min"
    assert indices.dtype == np.int64 and not indices.requires_grad
    np.testing.assert_array_equal(values.numpy(), [3.0, 5.0])
    np.testing.assert_array_equal(indices.numpy(), [1, 2])     # the first of the ties
    values.sum().backward()
    np.testing.assert_array_equal(t.grad, [[0, 1, 0, 0], [0, 0, 1, 0]])   # not shared
    if torch is not None:
        tt = torch.tensor(x, requires_grad=True)
        tv, ti = torch.max(tt, 1)
        tv.sum().backward()
        np.testing.assert_array_equal(indices.numpy(), ti.numpy())
        np.testing.assert_array_equal(t.grad, tt.grad.numpy())
        tmin = torch.min(torch.from_numpy(x), 0, keepdim=True)
        ours = mc.min(mc.Tensor(x), 0, keepdim=True)
        np.testing.assert_array_equal(ours.indices.numpy(), tmin.indices.numpy())
        np.testing.assert_array_equal(ours.values.numpy(), tmin.values.numpy())
    s = mc.Tensor(np.array(1.5, np.float32))
    assert s.max(-1).values.shape == () and int(s.max(-1).indices) == 0


def test_numpy_spelling_of_max_still_gives_values():
    x = mc.Tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert isinstance(x.max(axis=1), mc.Tensor) and x.max(axis=(0, 1)).item() == 5
    assert x.max().item() == 5 and mc.amax(x, (0, 1)).item() == 5
    np.testing.assert_array_equal(x.max(axis=1, keepdims=True).numpy(), [[2], [5]])


def test_maximum_and_minimum_share_the_gradient_at_ties_like_pytorch():
    a = np.array([1.0, 2.0, 3.0], np.float32)
    b = np.array([1.0, 5.0, 0.0], np.float32)
    for fn, tfn in [(mc.maximum, "maximum"), (mc.minimum, "minimum")]:
        ta, tb = mc.Tensor(a, requires_grad=True), mc.Tensor(b, requires_grad=True)
        fn(ta, tb).sum().backward()
        assert ta.grad[0] == tb.grad[0] == 0.5
        if torch is not None:
            xa = torch.tensor(a, requires_grad=True)
            xb = torch.tensor(b, requires_grad=True)
            getattr(torch, tfn)(xa, xb).sum().backward()
            np.testing.assert_array_equal(ta.grad, xa.grad.numpy())
            np.testing.assert_array_equal(tb.grad, xb.grad.numpy())


def test_clamp_passes_the_gradient_at_the_bounds_like_pytorch():
    x = mc.Tensor(np.array([-1.0, 0.0, 0.5, 1.0, 2.0], np.float32), requires_grad=True)
    x.clamp(0.0, 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 1, 1, 1, 0])
    with pytest.raises(ValueError, match="at least one"):
        x.clamp()


def test_pow_gradients_at_zero_and_negative_bases_follow_pytorch():
    a = np.array([0.0, 0.0, -2.0, 2.0], np.float32)
    b = np.array([2.0, 0.0, 2.0, 0.0], np.float32)
    ta, tb = mc.Tensor(a, requires_grad=True), mc.Tensor(b, requires_grad=True)
    with np.errstate(all="ignore"):
        (ta ** tb).sum().backward()
    if torch is None:
        pytest.skip("PyTorch is not installed")
    xa, xb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    (xa ** xb).sum().backward()
    np.testing.assert_array_equal(ta.grad, xa.grad.numpy())
    np.testing.assert_array_equal(tb.grad, xb.grad.numpy())     # NaN where a < 0 on both


@pytest.mark.parametrize("make", [lambda: mc.Tensor(np.array(2.0, np.float32)),
                                  lambda: mc.Tensor(np.float32(2.0))],
                         ids=["0-d array", "numpy scalar"])
def test_grad_of_a_0d_tensor_is_an_ndarray(make):
    s = make()
    s.requires_grad_()
    y = s * s + s * mc.Tensor(np.array(3.0, np.float32))
    y.backward()
    assert isinstance(s.grad, np.ndarray) and s.grad.shape == () and s.grad == 7.0
    y = s * s
    y.backward()                                  # accumulates: still an array
    assert isinstance(s.grad, np.ndarray) and s.grad.shape == () and s.grad == 11.0


def test_size_is_pytorchs_method_and_numel_the_count():
    x = mc.zeros(2, 3, 4)
    assert x.size() == (2, 3, 4) and x.size(0) == 2 and x.size(-1) == 4
    assert x.numel() == 24 and x.dim() == 3
    assert x.size == 24            # uncalled: NumPy's count, kept for existing code (a NOTE)
    with pytest.raises(IndexError, match="out of range"):
        x.size(3)
    if torch is not None:
        assert tuple(torch.zeros(2, 3, 4).size()) == x.size()


def test_dim_and_keepdim_keywords_and_their_numpy_aliases():
    x = mc.Tensor(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    for name in ("sum", "mean"):
        a = getattr(x, name)(dim=1, keepdim=True).numpy()
        b = getattr(x, name)(axis=1, keepdims=True).numpy()
        np.testing.assert_array_equal(a, b)
        with pytest.raises(TypeError, match="not both"):
            getattr(x, name)(dim=1, axis=1)
    np.testing.assert_array_equal(x.argmax(dim=2).numpy(), x.argmax(axis=2).numpy())
    assert x.argmax().item() == 23 and x.argmin(1, keepdim=True).shape == (2, 1, 4)
    assert mc.cat([x, x], dim=2).shape == (2, 3, 8) == mc.cat([x, x], axis=2).shape
    assert mc.stack([x, x], dim=1).shape == (2, 2, 3, 4)
    assert [p.shape for p in mc.split(x, 2, dim=2)] == [(2, 3, 2), (2, 3, 2)]
    assert F.softmax(x, dim=0).shape == x.softmax(axis=0).shape


def test_factories_follow_pytorchs_dtypes_and_shapes():
    assert mc.zeros(2, 3).dtype == np.float32 and mc.zeros((2, 3)).shape == (2, 3)
    assert mc.ones(4, dtype=mc.int64).dtype == np.int64
    assert mc.arange(5).dtype == np.int64 and mc.arange(0, 1, 0.25).shape == (4,)
    assert mc.tensor([1.0, 2.0]).dtype == np.float32 and mc.tensor([1, 2]).dtype == np.int64
    assert mc.tensor(np.zeros(2)).dtype == np.float64          # arrays keep their dtype
    assert mc.full((2, 2), 7).dtype == np.int64 and mc.full((2,), 0.5).dtype == np.float32
    mc.manual_seed(3)
    a = mc.randn(3, 4)
    mc.manual_seed(3)
    assert np.array_equal(a.numpy(), mc.randn(3, 4).numpy())  # one seeded generator
    assert mc.zeros_like(a).shape == (3, 4) and mc.ones_like(a).numpy().sum() == 12
    assert mc.randn_like(a).dtype == np.float32 and mc.rand(2).shape == (2,)
    t = mc.tensor([1.0, 2.0], requires_grad=True)
    assert t.requires_grad and t.is_leaf
    array = np.zeros(3, np.float32)
    shared = mc.from_numpy(array)
    array[0] = 5
    assert shared.numpy()[0] == 5                              # from_numpy shares memory
    copied = mc.tensor(array)
    array[1] = 6
    assert copied.numpy()[1] == 0                              # tensor copies
    c = t.clone()
    c.data[0] = 9
    assert t.numpy()[0] == 1.0


def test_device_objects_work_wherever_a_device_name_does():
    d = mc.device("cuda:0" if mc.cuda.is_available() else "cpu")
    assert str(d) in ("cpu", "cuda:0") and d.type in ("cpu", "cuda")
    assert repr(mc.device("cuda", 1)) == "device(type='cuda', index=1)"
    x = mc.ones(2).to(mc.device("cpu"))
    assert x.device == "cpu"
    net = mc.nn.Linear(2, 2).to(mc.device("cpu"))
    assert net.weight.device == "cpu"
    with pytest.raises(ValueError, match="expected"):
        mc.device("tpu")


def test_tensors_index_lists_and_convert_to_numbers():
    classes = ("plane", "car", "bird")
    labels = mc.tensor([2, 0])
    assert classes[labels[0]] == "bird" and [classes[k] for k in labels] == ["bird", "plane"]
    assert float(mc.tensor(2.5)) == 2.5 and int(mc.tensor([3])) == 3
    predicted = mc.tensor([2, 1])
    assert (predicted == labels).sum().item() == 1
    with pytest.raises(TypeError, match="0-d integer"):
        classes[mc.tensor(1.0)]


def test_save_and_load_a_state_dict(tmp_path):
    net = mc.nn.Sequential(mc.nn.Linear(3, 2), mc.nn.BatchNorm1d(2))
    path = tmp_path / "net.pth"
    mc.save(net.state_dict(), path)
    loaded = mc.load(path)
    assert list(loaded) == list(net.state_dict())
    for key, value in net.state_dict().items():
        assert np.array_equal(loaded[key], value) and loaded[key].dtype == value.dtype
    other = mc.nn.Sequential(mc.nn.Linear(3, 2), mc.nn.BatchNorm1d(2))
    other.load_state_dict(mc.load(path, weights_only=True))
    assert np.array_equal(other[0].weight.numpy(), net[0].weight.numpy())
    assert np.load(path)["0.weight"].shape == (2, 3)            # np.load opens it too
    mixed = {"epoch": 3, "loss": 0.25, "betas": (0.9, 0.99), "w": mc.ones(2), "names": ["a"]}
    mc.save(mixed, tmp_path / "mixed.pt")
    back = mc.load(tmp_path / "mixed.pt")
    assert back["epoch"] == 3 and back["betas"] == (0.9, 0.99) and back["names"] == ["a"]
    assert isinstance(back["w"], np.ndarray) and back["w"].tolist() == [1.0, 1.0]


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "keep.pth"
    mc.save({"a": np.ones(2)}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="cannot store"):
        mc.save({"a": object()}, path)                          # fails before writing
    import minicnn.saving as saving

    def broken(f, *args, **kwargs):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(saving, "write_archive", broken)
    with pytest.raises(OSError, match="disk full"):
        mc.save({"a": np.zeros(2)}, path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == \
        ["keep.pth"]


def test_load_reads_a_pytorch_file(tmp_path):
    if torch is None:
        pytest.skip("PyTorch is not installed")
    path = tmp_path / "t.pth"
    torch.save({"w": torch.ones(2, 3)}, path)
    assert mc.load(path)["w"].shape == (2, 3)
