"""Batch norm + ReLU fused into one op (``F.batch_norm_relu``, ``nn.norm_relu``), and a residual
sum + ReLU (``F.add_relu``, ``nn.residual_act``): the same
numbers as ``relu(batch_norm(x))`` -- forward to the last bit, gradients to rounding -- in both
layouts, training and evaluation; the numba kernels equal their references; the models fuse
only where nothing watches the tensor in between. (Gradcheck and PyTorch: the batch_norm_relu
cases in ``tests/test_normalization.py``, run by ``tests/test_ops.py``.)"""
import numpy as np
import pytest

import minicnn as mc
import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn.kernels import normalization as K
from minicnn.models.resnet import resnet18, resnet50
from minicnn.models.resnet_cifar import resnet20
from minicnn.ops import normalization


def _channels_last(x):
    return np.ascontiguousarray(np.moveaxis(x, 1, -1)).transpose(
        0, x.ndim - 1, *range(1, x.ndim - 1))


def _run(fused, x, w, b, gy, training, rm=None, rv=None):
    """Output and gradients (x, w, b) of the fused op or of relu(batch_norm(...))."""
    t, tw, tb = (mc.Tensor(a, requires_grad=True) for a in (x, w, b))
    args = (rm, rv, tw, tb, training)
    y = F.batch_norm_relu(t, *args) if fused else F.relu(F.batch_norm(t, *args))
    y.backward(gy)
    return y.numpy(), t.grad, tw.grad, tb.grad


@pytest.mark.parametrize("shape", [(16, 8, 6, 6), (32, 5), (4, 3, 7)])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_fused_equals_relu_of_batch_norm(shape, channels_last, training):
    rng = np.random.default_rng(1)
    c = shape[1]
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
    gy = rng.standard_normal(shape).astype(np.float32)
    if channels_last and len(shape) > 2:
        x, gy = _channels_last(x), _channels_last(gy)
    w = rng.uniform(0.5, 2, c).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    rm, rv = rng.standard_normal(c), rng.uniform(0.5, 2, c)
    fused = _run(True, x, w, b, gy, training, rm.copy(), rv.copy())
    plain = _run(False, x, w, b, gy, training, rm.copy(), rv.copy())
    np.testing.assert_array_equal(fused[0], plain[0])        # forward: bit for bit
    assert 0.2 < (fused[0] > 0).mean() < 0.8                 # the ReLU cuts a real share
    for a, p in zip(fused[1:], plain[1:]):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, p, rtol=1e-5, atol=1e-5)


def test_running_statistics_are_updated_as_by_batch_norm():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 3, 4, 4)).astype(np.float32)
    stats = [(np.zeros(3), np.ones(3)) for _ in range(2)]
    F.batch_norm_relu(mc.Tensor(x), *stats[0], training=True, momentum=0.3)
    F.batch_norm(mc.Tensor(x), *stats[1], training=True, momentum=0.3)
    for a, b in zip(*stats):
        np.testing.assert_array_equal(a, b)


def test_nan_passes_through_as_relu_lets_it():
    x = np.array([[1.0, 2.0], [np.nan, -1.0], [3.0, 0.5]], dtype=np.float32)
    y = F.batch_norm_relu(mc.Tensor(x), np.zeros(2), np.ones(2), training=False).numpy()
    assert np.isnan(y[1, 0]) and y[1, 1] == 0 and y[0, 0] > 0


@pytest.mark.parametrize("shape, channels_last", [((6, 4, 5, 5), False), ((6, 4, 5, 5), True),
                                                  ((9, 7), True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_kernels_equal_references(shape, channels_last, dtype):
    rng = np.random.default_rng(3)
    x, gy = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    if channels_last and len(shape) > 2:
        x, gy = _channels_last(x), _channels_last(gy)
    x3, chosen = K.as_acb(x)
    gy3 = K.like_acb(gy, chosen)
    c = shape[1]
    mean, scale, shift, a, b, d = (rng.standard_normal(c).astype(dtype) for _ in range(6))
    out = np.empty_like(x3)
    K.normalize_relu(x3, mean, scale, shift, out)
    y = K.normalize_reference(x3, mean, scale, shift)
    np.testing.assert_array_equal(out, y * (y > 0))
    with mc.reference_kernels():
        expected = K.masked_grad_sums(gy3, x3, mean, scale, shift)
    for got, ref in zip(K.masked_grad_sums(gy3, x3, mean, scale, shift), expected):
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)
    mask = y > 0
    np.testing.assert_allclose(expected[0], (gy3 * mask).astype(np.float64).sum(axis=(0, 2)),
                               rtol=1e-6)
    K.masked_combine(gy3, x3, mean, scale, shift, a, b, d, out)
    ref = K.combine_reference(gy3 * mask, x3, mean, a, b, d)
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)


def test_norm_relu_fuses_batch_norm_and_relu_into_one_op():
    bn, act = nn.BatchNorm2d(3), nn.ReLU()
    x = mc.Tensor(np.random.default_rng(4).standard_normal((4, 3, 5, 5)).astype(np.float32),
                  requires_grad=True)
    y = nn.norm_relu(bn, act, x)
    assert isinstance(y.creator, normalization.BatchNorm) and y.creator.relu
    np.testing.assert_array_equal(y.numpy(), act(bn(x)).numpy())
    assert int(bn.num_batches_tracked.data) == 2               # both calls counted the batch


def test_norm_relu_runs_the_modules_when_a_hook_watches_or_the_pair_is_not_bn_relu():
    x = mc.Tensor(np.random.default_rng(5).standard_normal((4, 3, 5, 5)).astype(np.float32),
                  requires_grad=True)
    bn, act = nn.BatchNorm2d(3), nn.ReLU()
    seen = []
    with bn.register_forward_hook(lambda m, args, out: seen.append(out)):
        y = nn.norm_relu(bn, act, x)
    assert len(seen) == 1 and y.creator is not None
    assert not isinstance(y.creator, normalization.BatchNorm)    # the ReLU's own op
    for norm, activation in ((nn.BatchNorm2d(3), nn.Tanh()), (nn.Identity(), nn.ReLU())):
        y = nn.norm_relu(norm, activation, x)
        np.testing.assert_array_equal(y.numpy(), activation(norm(x)).numpy())


@pytest.mark.parametrize("make, size", [(resnet20, 16), (resnet18, 32), (resnet50, 32)])
def test_resnet_and_plain_nets_give_the_same_loss_and_gradients_fused_or_not(monkeypatch, make,
                                                                              size):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 3, size, size)).astype(np.float32)
    labels = rng.integers(0, 10, 4)
    for plain in (False, True):
        results = []
        for fuse in (True, False):
            if not fuse:   # the modules one after the other, as written in the docstrings
                monkeypatch.setattr(nn, "norm_relu", lambda norm, act, x: act(norm(x)))
                monkeypatch.setattr(nn, "residual_act", lambda act, out, x: act(out + x))
            mc.manual_seed(0)
            model = make(num_classes=10, plain=plain)
            loss = F.cross_entropy(model(mc.Tensor(x)), mc.Tensor(labels))
            loss.backward()
            results.append((loss.item(), [p.grad.copy() for p in model.parameters()]))
            monkeypatch.undo()
        (loss_f, grads_f), (loss_u, grads_u) = results
        assert loss_f == loss_u
        for a, b in zip(grads_f, grads_u):
            # the sums' order differs (float64, rounded to float32), and a deep net with batch
            # norm over few values per channel (ResNet-18/50's last stage here: 4 images at 1x1)
            # amplifies a last-bit difference; measured worst: 1.8e-5 of a weight's largest grad
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3 * np.abs(b).max())


def test_bad_arguments_give_clear_errors():
    with pytest.raises(ValueError, match="batch_norm_relu: expected an input of shape"):
        F.batch_norm_relu(mc.Tensor(np.ones(3, np.float32)), None, None, training=True)
    with pytest.raises(ValueError, match="batch_norm_relu: weight has shape"):
        F.batch_norm_relu(mc.Tensor(np.ones((4, 3), np.float32)), None, None,
                          mc.Tensor(np.ones(2, np.float32)), training=True)
    with pytest.raises(ValueError, match="batch_norm_relu: running_mean and running_var"):
        F.batch_norm_relu(mc.Tensor(np.ones((4, 3), np.float32)), None, None, training=False)


def test_residual_act_fuses_the_sum_and_relu_only_when_it_can():
    rng = np.random.default_rng(7)
    out, identity = (mc.Tensor(rng.standard_normal((2, 3, 4, 4)).astype(np.float32),
                               requires_grad=True) for _ in range(2))
    y = nn.residual_act(nn.ReLU(), out, identity)
    assert type(y.creator).__name__ == "AddReLU"
    np.testing.assert_array_equal(y.numpy(), np.maximum(out.numpy() + identity.numpy(), 0))
    y.backward(np.ones(y.shape, np.float32))
    np.testing.assert_array_equal(out.grad, (y.numpy() > 0).astype(np.float32))
    np.testing.assert_array_equal(identity.grad, out.grad)
    act = nn.ReLU()
    with act.register_forward_hook(lambda m, args, o: None):
        assert type(nn.residual_act(act, out, identity).creator).__name__ == "ReLU"
    assert type(nn.residual_act(nn.Tanh(), out, identity).creator).__name__ == "Tanh"
    with pytest.raises(ValueError, match="add_relu: the two inputs must have the same shape"):
        F.add_relu(out, identity[:, :2])
