"""Batch norm and local response norm: the shared op checks, PyTorch's results (outputs,
gradients, running statistics) over hypothesis-drawn shapes and layouts, the layers, the kernels
and the argument errors."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minicnn as mc
from minicnn.kernels import normalization as K
from minicnn.nn.normalization import BatchNorm1d, BatchNorm2d, LocalResponseNorm
from minicnn.ops import normalization
from minicnn.ops.normalization import batch_norm, batch_norm_relu, local_response_norm
from optest import OpCase, inputs, normal, positive, torch

if torch is not None:
    import torch.nn.functional as TF


# ---- plain references --------------------------------------------------------------------------

def bn_ref(x, weight=None, bias=None, mean=None, var=None, eps=1e-5):
    """Batch norm from the definition; batch statistics unless ``mean``/``var`` are given."""
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if mean is None:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def lrn_ref(x, size, alpha=1e-4, beta=0.75, k=1.0):
    c = x.shape[1]
    y = np.empty_like(x)
    for ch in range(c):
        lo, hi = max(0, ch - size // 2), min(c, ch + (size - 1) // 2 + 1)
        window = (x[:, lo:hi] ** 2).sum(axis=1)
        y[:, ch] = x[:, ch] / (k + alpha / size * window) ** beta
    return y


# ---- the shared checks -------------------------------------------------------------------------

CASES = []


def _torch(fn):
    return fn if torch is not None else None


for shape in [(4, 3, 3, 2), (6, 4), (3, 2, 5)]:
    c = shape[1]
    CASES.append(OpCase(
        f"batch_norm train {shape}",
        lambda x, w, b: batch_norm(x, np.zeros(x.shape[1]), np.ones(x.shape[1]), w, b, True),
        lambda x, w, b: bn_ref(x, w, b),
        inputs(normal(*shape), positive(c), normal(c)), (normalization.BatchNorm,),
        _torch(lambda x, w, b: TF.batch_norm(x, None, None, w, b, True)),
        fwd_tol=(1e-4, 1e-5)))
for shape in [(0, 3, 2, 2), (0, 4)]:  # an empty batch: an empty output, zero gamma/beta grads
    c = shape[1]
    CASES.append(OpCase(
        f"batch_norm train, empty batch {shape}",
        lambda x, w, b: batch_norm(x, np.zeros(x.shape[1]), np.ones(x.shape[1]), w, b, True),
        lambda x, w, b: x.copy(),  # nothing to normalise
        inputs(normal(*shape), positive(c), normal(c)), (normalization.BatchNorm,),
        _torch(lambda x, w, b: TF.batch_norm(x, torch.zeros(x.shape[1], dtype=x.dtype),
                                             torch.ones(x.shape[1], dtype=x.dtype), w, b,
                                             True))))
CASES.append(OpCase(
    "batch_norm train, no affine (5, 2, 2, 2)",
    lambda x: batch_norm(x, None, None, training=True), lambda x: bn_ref(x),
    inputs(normal(5, 2, 2, 2)), (normalization.BatchNorm,),
    _torch(lambda x: TF.batch_norm(x, None, None, training=True)), fwd_tol=(1e-4, 1e-5)))
CASES.append(OpCase(
    "batch_norm train, weight only (5, 3, 2)",
    lambda x, w: batch_norm(x, None, None, w, training=True), lambda x, w: bn_ref(x, w),
    inputs(normal(5, 3, 2), positive(3)), (normalization.BatchNorm,),
    _torch(lambda x, w: TF.batch_norm(x, None, None, w, training=True)), fwd_tol=(1e-4, 1e-5)))
for shape in [(6, 3, 3, 2), (7, 4)]:   # batch norm + ReLU in one op
    c = shape[1]
    CASES.append(OpCase(
        f"batch_norm_relu train {shape}",
        lambda x, w, b: batch_norm_relu(x, np.zeros(x.shape[1]), np.ones(x.shape[1]), w, b,
                                        True),
        lambda x, w, b: np.maximum(bn_ref(x, w, b), 0),
        inputs(normal(*shape), positive(c), normal(c)), (normalization.BatchNorm,),
        _torch(lambda x, w, b: torch.relu(TF.batch_norm(x, None, None, w, b, True))),
        fwd_tol=(1e-4, 1e-5)))
_RM, _RV = np.array([0.3, -0.2, 1.0]), np.array([0.5, 2.0, 1.5])
CASES.append(OpCase(
    "batch_norm_relu eval (2, 3, 4, 3)",
    lambda x, w, b: batch_norm_relu(x, _RM.copy(), _RV.copy(), w, b, False),
    lambda x, w, b: np.maximum(bn_ref(x, w, b, _RM, _RV), 0),
    inputs(normal(2, 3, 4, 3), positive(3), normal(3)), (normalization.BatchNorm,),
    _torch(lambda x, w, b: torch.relu(TF.batch_norm(x, torch.tensor(_RM), torch.tensor(_RV), w,
                                                    b, False)))))
CASES.append(OpCase(
    "batch_norm eval (2, 3, 4, 3)",
    lambda x, w, b: batch_norm(x, _RM.copy(), _RV.copy(), w, b, False),
    lambda x, w, b: bn_ref(x, w, b, _RM, _RV),
    inputs(normal(2, 3, 4, 3), positive(3), normal(3)), (normalization.BatchNorm,),
    _torch(lambda x, w, b: TF.batch_norm(x, torch.tensor(_RM), torch.tensor(_RV), w, b, False))))

for shape, size in [((2, 5, 3, 3), 3), ((2, 4, 3, 2), 2), ((2, 6, 4), 5), ((1, 3, 2, 2), 1)]:
    CASES.append(OpCase(
        f"local_response_norm {shape} size={size}",
        lambda x, size=size: local_response_norm(x, size, alpha=0.5, beta=0.75, k=1.5),
        lambda x, size=size: lrn_ref(x, size, 0.5, 0.75, 1.5),
        inputs(normal(*shape)), (normalization.LocalResponseNorm,),
        _torch(lambda x, size=size: TF.local_response_norm(x, size, 0.5, 0.75, 1.5))))


# (the four shared checks run over these CASES in tests/test_ops.py)


# ---- batch norm against PyTorch over many shapes and layouts -----------------------------------

def _channels_last(x):
    return np.ascontiguousarray(np.moveaxis(x, 1, -1)).transpose(
        0, x.ndim - 1, *range(1, x.ndim - 1))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([(8, 5), (4, 3, 6), (3, 4, 5, 6), (2, 1, 3, 3), (5, 7, 1, 1),
                        (0, 3, 4, 4), (0, 5), (0, 2, 3), (2, 3, 0, 4), (3, 2, 2, 1, 2)]),
       st.booleans(), st.booleans(), st.floats(0.01, 0.9), st.booleans())
def test_batch_norm_equals_torch(shape, training, channels_last, momentum, affine):
    pytest.importorskip("torch", reason="PyTorch is not installed: no comparison with it")
    rng = np.random.default_rng(0)
    c = shape[1]
    x = rng.standard_normal(shape) * 3 + 2
    if channels_last:
        x = _channels_last(x)
    w, b = rng.uniform(0.5, 2, c), rng.standard_normal(c)
    rm, rv = rng.standard_normal(c), rng.uniform(0.5, 2, c)
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    t, tw, tb = (mc.Tensor(a, requires_grad=True) for a in (x, w, b))
    y = batch_norm(t, rm, rv, tw if affine else None, tb if affine else None, training,
                   momentum)
    gy = rng.standard_normal(shape)
    y.backward(gy)
    tx, ttw, ttb = (torch.tensor(np.ascontiguousarray(a), requires_grad=True) for a in (x, w, b))
    ty = TF.batch_norm(tx, trm, trv, ttw if affine else None, ttb if affine else None, training,
                       momentum)
    ty.backward(torch.tensor(gy))
    close = dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **close)
    np.testing.assert_allclose(t.grad, tx.grad.numpy(), **close)
    if affine:
        np.testing.assert_allclose(tw.grad, ttw.grad.numpy(), **close)
        np.testing.assert_allclose(tb.grad, ttb.grad.numpy(), **close)
    np.testing.assert_allclose(rm, trm.numpy(), **close)  # updated in place (training only)
    np.testing.assert_allclose(rv, trv.numpy(), **close)


@pytest.mark.parametrize("shape", [(4, 6, 5, 5), (16, 8), (3, 4, 7)])
def test_channels_last_gives_the_same_results_and_keeps_its_layout(shape):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    gy = rng.standard_normal(shape).astype(np.float32)
    c = shape[1]
    results = []
    for data in (x, _channels_last(x)):
        t = mc.Tensor(data, requires_grad=True)
        w = mc.Tensor(np.linspace(0.5, 1.5, c, dtype=np.float32), requires_grad=True)
        b = mc.Tensor(np.linspace(-1, 1, c, dtype=np.float32), requires_grad=True)
        rm, rv = np.zeros(c, np.float32), np.ones(c, np.float32)
        y = batch_norm(t, rm, rv, w, b, training=True)
        y.backward(gy)
        if data is not x and len(shape) > 2:
            assert np.moveaxis(y.data, 1, -1).flags.c_contiguous, "channels-last was lost"
            assert np.moveaxis(t.grad, 1, -1).flags.c_contiguous or t.grad.flags.c_contiguous
        for a in (y.data, t.grad, w.grad, b.grad, rm, rv):
            assert a.dtype == np.float32
        results.append((y.numpy(), t.grad, w.grad, b.grad, rm, rv))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_float32_stays_float32_and_matches_float64():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 4, 5, 5)) * 10 + 50  # a large mean: E[x^2] - mean^2 must hold
    ys = []
    for dtype in (np.float32, np.float64):
        y = batch_norm(mc.Tensor(x.astype(dtype)), None, None, training=True)
        assert y.dtype == dtype
        ys.append(y.numpy())
    np.testing.assert_allclose(ys[0], ys[1], rtol=1e-4, atol=1e-4)


# ---- the layers --------------------------------------------------------------------------------

def test_running_stats_after_several_steps_equal_torch():
    pytest.importorskip("torch", reason="PyTorch is not installed: no comparison with it")
    rng = np.random.default_rng(3)
    ours, theirs = BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    for step in range(5):
        x = (rng.standard_normal((4, 3, 5, 5)) * (step + 1) + step).astype(np.float32)
        y = ours(mc.Tensor(x))
        ty = theirs(torch.from_numpy(x))
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-4, atol=1e-5)
    sd, tsd = ours.state_dict(), theirs.state_dict()
    assert list(sd) == list(tsd) == ["weight", "bias", "running_mean", "running_var",
                                     "num_batches_tracked"]
    for key in sd:
        assert sd[key].dtype == tsd[key].numpy().dtype, key
        np.testing.assert_allclose(sd[key], tsd[key].numpy(), rtol=1e-5, atol=1e-6)
    assert int(sd["num_batches_tracked"]) == 5
    ours.eval()
    theirs.eval()
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(ours(mc.Tensor(x)).numpy(),
                               theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_eval_mode_uses_the_running_statistics_and_leaves_them_alone():
    bn = BatchNorm2d(2)
    bn.running_mean.data[...] = [1.0, -1.0]
    bn.running_var.data[...] = [4.0, 0.25]
    bn.eval()
    x = np.full((1, 2, 2, 2), 3.0, np.float32)
    y = bn(mc.Tensor(x)).numpy()
    np.testing.assert_allclose(y[0, 0], (3 - 1) / np.sqrt(4 + 1e-5), rtol=1e-6)
    np.testing.assert_allclose(y[0, 1], (3 + 1) / np.sqrt(0.25 + 1e-5), rtol=1e-6)
    assert list(bn.running_mean.data) == [1.0, -1.0] and int(bn.num_batches_tracked.data) == 0


def test_momentum_none_is_a_cumulative_average_like_torch():
    pytest.importorskip("torch", reason="PyTorch is not installed: no comparison with it")
    rng = np.random.default_rng(4)
    ours, theirs = BatchNorm1d(4, momentum=None), torch.nn.BatchNorm1d(4, momentum=None)
    for _ in range(3):
        x = rng.standard_normal((6, 4)).astype(np.float32)
        ours(mc.Tensor(x))
        theirs(torch.from_numpy(x))
    np.testing.assert_allclose(ours.running_mean.data, theirs.running_mean.numpy(), rtol=1e-5)
    np.testing.assert_allclose(ours.running_var.data, theirs.running_var.numpy(), rtol=1e-5)


def test_without_running_stats_batch_statistics_are_used_in_eval_too():
    bn = BatchNorm2d(3, track_running_stats=False).eval()
    assert list(bn.state_dict()) == ["weight", "bias"]
    x = np.random.default_rng(5).standard_normal((4, 3, 2, 2)).astype(np.float32)
    np.testing.assert_allclose(bn(mc.Tensor(x)).numpy(), bn_ref(x), rtol=1e-4, atol=1e-5)


def test_layer_gradients_and_a_torch_state_dict_load():
    pytest.importorskip("torch", reason="PyTorch is not installed: no comparison with it")
    theirs = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 2)
        theirs.bias.uniform_(-1, 1)
        theirs.running_mean.uniform_(-1, 1)
    ours = BatchNorm2d(3)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(6).standard_normal((2, 3, 4, 4)).astype(np.float32)
    t = mc.Tensor(x, requires_grad=True)
    ours(t).sum().backward()
    tx = torch.from_numpy(x).requires_grad_()
    theirs(tx).sum().backward()
    np.testing.assert_allclose(t.grad, tx.grad.numpy(), atol=1e-5)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), rtol=1e-5)


def test_bias_false_keeps_only_the_scale():
    bn = BatchNorm2d(4, bias=False)
    assert bn.bias is None and list(bn.state_dict())[:1] == ["weight"]
    assert "bias=False" in repr(bn)


def test_reprs_match_torch():
    pytest.importorskip("torch", reason="PyTorch is not installed: no comparison with it")
    pairs = [(BatchNorm2d(16), torch.nn.BatchNorm2d(16)),
             (BatchNorm1d(8, momentum=None, affine=False),
              torch.nn.BatchNorm1d(8, momentum=None, affine=False)),
             (LocalResponseNorm(5, k=2.0), torch.nn.LocalResponseNorm(5, k=2.0))]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)


def test_local_response_norm_layer_equals_torch():
    pytest.importorskip("torch", reason="PyTorch is not installed: no comparison with it")
    x = np.random.default_rng(7).standard_normal((2, 96, 5, 5)).astype(np.float32) * 3
    y = LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(mc.Tensor(x))  # AlexNet's setting
    ty = torch.nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(torch.from_numpy(x))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), ty.numpy(), rtol=1e-5, atol=1e-6)


# ---- empty batches and the input ranks PyTorch takes ------------------------------------------

@pytest.mark.parametrize("layer, shape", [("BatchNorm2d", (0, 3, 4, 4)), ("BatchNorm1d", (0, 3)),
                                          ("BatchNorm1d", (0, 3, 5))])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_an_empty_batch_leaves_the_running_statistics_alone_like_torch(layer, shape, momentum):
    pytest.importorskip("torch", reason="PyTorch is not installed: no comparison with it")
    ours = {"BatchNorm2d": BatchNorm2d, "BatchNorm1d": BatchNorm1d}[layer](3, momentum=momentum)
    theirs = getattr(torch.nn, layer)(3, momentum=momentum)
    ours.running_mean.data[...] = theirs.running_mean.numpy()[...] = [0.5, -1.0, 2.0]
    for training in (True, False):
        ours.train(training)
        theirs.train(training)
        t = mc.Tensor(np.zeros(shape, np.float32), requires_grad=True)
        y = ours(t)
        y.sum().backward()
        ty = theirs(torch.zeros(shape))
        assert y.shape == tuple(ty.shape) == shape and t.grad.shape == shape
        for key, value in theirs.state_dict().items():  # num_batches_tracked counts it, as torch
            np.testing.assert_array_equal(ours.state_dict()[key], value.numpy(), err_msg=key)
    assert (ours.weight.grad == 0).all() and (ours.bias.grad == 0).all()


def test_functional_batch_norm_takes_the_ranks_torch_takes():
    """``F.batch_norm`` reads any (N, C, ...) input, a 3-D one as (N, C, L) (there is no
    unbatched form: a (C, H, W) image is N=C samples of H channels), and an empty 1-D input."""
    pytest.importorskip("torch", reason="PyTorch is not installed: no comparison with it")
    rng = np.random.default_rng(9)
    for shape in [(3, 4, 5), (2, 3, 2, 2, 3), (0,)]:
        x = rng.standard_normal(shape)
        c = shape[1] if len(shape) > 1 else 0
        y = batch_norm(mc.Tensor(x), np.zeros(c), np.ones(c), training=True)
        ty = TF.batch_norm(torch.tensor(x), torch.zeros(c, dtype=torch.float64),
                           torch.ones(c, dtype=torch.float64), training=True)
        assert y.shape == tuple(ty.shape)
        np.testing.assert_allclose(y.numpy(), ty.numpy(), rtol=1e-10, atol=1e-10)
    # one value per channel is refused in training (no variance), zero values are not
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        batch_norm(mc.Tensor(np.zeros((1, 3, 1))), None, None, training=True)
    assert batch_norm(mc.Tensor(np.zeros((2, 3, 0))), None, None, training=True).shape == \
        (2, 3, 0)


def test_the_layers_refuse_an_unbatched_input_as_torch_does():
    """PyTorch's BatchNorm2d takes only (N, C, H, W) and BatchNorm1d (N, C) or (N, C, L): an
    unbatched (C, H, W) image or (C, L) signal is refused by both libraries."""
    pytest.importorskip("torch", reason="PyTorch is not installed: no comparison with it")
    image, signal = np.zeros((3, 4, 5), np.float32), np.zeros((3, 5), np.float32)
    with pytest.raises(ValueError):
        torch.nn.BatchNorm2d(3)(torch.from_numpy(image))
    with pytest.raises(ValueError, match="expected a 4-D .* got a 3-D"):
        BatchNorm2d(3)(mc.Tensor(image))
    with pytest.raises(RuntimeError):  # read as (N=3, C=5): 5 channels, not 3
        torch.nn.BatchNorm1d(3)(torch.from_numpy(signal))
    with pytest.raises(ValueError, match=r"expected an input with 3 channels .* got 5"):
        BatchNorm1d(3)(mc.Tensor(signal))


# ---- the kernels: numba twins equal the readable references ------------------------------------

@pytest.mark.parametrize("shape, channels_last", [((4, 3, 5, 6), False), ((4, 3, 5, 6), True),
                                                  ((7, 5), True), ((3, 4, 9), False)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_kernels_equal_references(shape, channels_last, dtype):
    rng = np.random.default_rng(8)
    x = rng.standard_normal(shape).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    if channels_last and len(shape) > 2:
        x, gy = _channels_last(x), _channels_last(gy)
    x3, chosen = K.as_acb(x)
    assert chosen == channels_last and np.shares_memory(x3, x)
    g3 = K.like_acb(gy, chosen)
    c = shape[1]
    mean, a, b, d = (rng.standard_normal(c).astype(dtype) for _ in range(4))
    tol = dict(rtol=1e-5, atol=1e-5)
    for got, want in zip(K.channel_sums(x3), K.channel_sums_reference(x3)):
        np.testing.assert_allclose(got, want, **tol)
    for got, want in zip(K.grad_sums(g3, x3, mean), K.grad_sums_reference(g3, x3, mean)):
        np.testing.assert_allclose(got, want, **tol)
    out3, out = K.empty_acb(x.shape, dtype, chosen)
    K.normalize(x3, mean, a, b, out3)
    np.testing.assert_allclose(out3, K.normalize_reference(x3, mean, a, b), **tol)
    K.combine(g3, x3, mean, a, b, d, out3)
    np.testing.assert_allclose(out3, K.combine_reference(g3, x3, mean, a, b, d), **tol)
    assert out.shape == x.shape and np.shares_memory(out, out3)


@pytest.mark.parametrize("shape, channels_last", [((0, 3, 5, 6), False), ((0, 3, 5, 6), True),
                                                  ((0, 5), True), ((2, 3, 0, 4), False)])
def test_kernels_take_empty_arrays(shape, channels_last):
    """An empty batch through both kernel lanes: zero sums, empty outputs (no reshape of -1)."""
    x = np.zeros(shape, np.float32)
    if channels_last and len(shape) > 2:
        x = _channels_last(x)
    x3, chosen = K.as_acb(x)  # (NumPy calls an empty array C-contiguous in any layout)
    assert x3.size == 0 and x3.shape[1] == shape[1]
    c = shape[1]
    for lane in (False, True):
        with mc.reference_kernels(lane):
            for sums in (K.channel_sums(x3), K.grad_sums(x3, x3, np.zeros(c, np.float32))):
                for total in sums:
                    np.testing.assert_array_equal(total, np.zeros(c))
            out3, out = K.empty_acb(x.shape, np.float32, chosen)
            ones = np.ones(c, np.float32)
            K.normalize(x3, ones, ones, ones, out3)
            K.combine(x3, x3, ones, ones, ones, ones, out3)
            assert out.shape == x.shape


# ---- errors --------------------------------------------------------------------------------------

X4 = mc.Tensor(np.zeros((2, 3, 4, 4), np.float32))


@pytest.mark.parametrize("call, message", [
    (lambda: batch_norm(X4, np.zeros(4), np.ones(4), training=True),
     r"running_mean has shape \(4,\) but the input has 3 channels"),
    (lambda: batch_norm(X4, None, None, np.ones(5), training=True),
     r"weight has shape \(5,\) .* expected \(3,\)"),
    (lambda: batch_norm(mc.Tensor(np.zeros((1, 3), np.float32)), None, None, training=True),
     "more than 1 value per channel"),
    (lambda: batch_norm(X4, None, None, training=False), "needed when not training"),
    (lambda: batch_norm(mc.Tensor(np.zeros(3, np.float32)), None, None, training=True),
     "expected an input of shape"),
    (lambda: BatchNorm2d(3)(mc.Tensor(np.zeros((2, 3, 4), np.float32))),
     "expected a 4-D .* got a 3-D"),
    (lambda: BatchNorm1d(3)(X4), "expected a 2-D .* got a 4-D"),
    (lambda: BatchNorm2d(4)(X4), r"BatchNorm2d\(4\): expected an input with 4 channels .* got 3"),
    (lambda: BatchNorm2d(0), "num_features"),
    (lambda: local_response_norm(mc.Tensor(np.zeros((2, 3), np.float32)), 2), "3 or more axes"),
    (lambda: local_response_norm(X4, 0), "size must be a positive int"),
])
def test_bad_arguments_give_clear_errors(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()
