"""Edge cases that used to crash (issue 16, item 6): each one now equals PyTorch or is refused
with a clear error. Empty tensors, 0-d tensors, and an empty batch (N = 0) through every layer
type of the zoo's small nets.
"""
import numpy as np
import pytest

import minicnn as mc
import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn.models import MODELS
from optest import torch

EMPTY = np.zeros((5, 0, 0), np.float32)
SCALAR = np.array(1.5, np.float32)


def _same_as_torch(ours, theirs_fn, *arrays):
    """``ours`` (a minicnn tensor) has torch's shape and values; with torch absent, its shape
    must still be the one given by NumPy's rules checked by the caller."""
    if torch is None:
        return
    expected = theirs_fn(*[torch.from_numpy(a) for a in arrays])
    expected = expected[0] if isinstance(expected, tuple) else expected
    assert ours.shape == tuple(expected.shape)
    np.testing.assert_array_equal(ours.numpy(), expected.numpy())


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_of_an_empty_tensor_is_empty(name):
    x = mc.Tensor(EMPTY, requires_grad=True)
    y = getattr(F, name)(x, -1)
    assert y.shape == (5, 0, 0)
    y.sum().backward()
    assert x.grad.shape == (5, 0, 0)
    _same_as_torch(y, lambda t: getattr(torch, name)(t, -1), EMPTY)


def test_flatten_of_a_0d_tensor_has_shape_1():
    s = mc.Tensor(SCALAR, requires_grad=True)
    y = s.flatten()
    assert y.shape == (1,)
    y.sum().backward()
    assert s.grad.shape == () and float(s.grad) == 1.0
    _same_as_torch(y, lambda t: t.flatten(), SCALAR)
    assert mc.flatten(s).shape == (1,)


@pytest.mark.parametrize("dims", [(0, 0), (-1, 0), (-1, -1)])
def test_transpose_of_a_0d_tensor_is_itself(dims):
    y = mc.Tensor(SCALAR).transpose(*dims)
    assert y.shape == () and y.item() == 1.5
    _same_as_torch(y, lambda t: t.transpose(*dims), SCALAR)
    with pytest.raises(IndexError, match="out of range"):
        mc.Tensor(SCALAR).transpose(0, 1)


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
@pytest.mark.parametrize("dim", [-1, 0])
def test_reductions_of_a_0d_tensor_accept_dim_0_and_minus_1(name, dim):
    s = mc.Tensor(SCALAR, requires_grad=True)
    y = getattr(s, name)(dim)
    values = y.values if isinstance(y, tuple) else y
    assert values.shape == () and values.item() == 1.5
    values.backward()
    assert isinstance(s.grad, np.ndarray) and s.grad.shape == () and float(s.grad) == 1.0
    _same_as_torch(values, lambda t: getattr(t, name)(dim), SCALAR)
    with pytest.raises(IndexError, match="out of range"):
        getattr(s, name)(1)


def test_flatten_layer_takes_an_empty_batch():
    x = mc.Tensor(np.zeros((0, 4, 3, 3), np.float32))
    y = nn.Flatten()(x)
    assert y.shape == (0, 36)
    _same_as_torch(y, lambda t: torch.nn.Flatten()(t), x.numpy())


def test_reshape_of_an_empty_tensor():
    x = mc.Tensor(np.zeros((0, 4), np.float32))
    assert x.reshape(-1, 2).shape == (0, 2) and x.reshape(0, 2, 2).shape == (0, 2, 2)
    with pytest.raises(ValueError, match="could be any size"):   # torch refuses it too
        x.reshape(0, -1)


def test_max_of_an_empty_axis_is_refused_clearly():
    x = mc.Tensor(np.zeros((0, 3), np.float32))
    with pytest.raises(ValueError, match="empty"):
        x.max(0)
    with pytest.raises(ValueError, match="empty"):
        x.max()
    assert x.max(1).values.shape == (0,)        # reducing a non-empty axis: fine, as in torch
    with pytest.raises(ValueError, match="empty"):
        x.argmax()


# ---- an empty batch through every layer type of the small nets ----------------------------------

SMALL_NETS = ["lenet5", "alexnet_small", "vgg_small", "googlenet_small", "resnet20",
              "densenet_small"]


def _layer_types():
    """One instance of every layer type the small nets use (leaves of the module tree)."""
    found = {}
    for name in SMALL_NETS:
        for module in mc.models.get_model(name).modules():
            if not list(module.children()):
                found.setdefault(type(module).__name__, module)
    return found


LAYERS = _layer_types()


def _empty_input_for(layer):
    if isinstance(layer, nn.Linear):
        return np.zeros((0, layer.in_features), np.float32)
    channels = getattr(layer, "in_channels", None) or getattr(layer, "num_features", None) or 3
    return np.zeros((0, channels, 8, 8), np.float32)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_an_empty_batch_passes_every_layer_type(name, training):
    layer = LAYERS[name].train(training)
    x = mc.Tensor(_empty_input_for(layer), requires_grad=True)
    y = layer(x)
    assert y.shape[0] == 0
    y.sum().backward()
    assert x.grad.shape == x.shape


@pytest.mark.parametrize("name", SMALL_NETS)
def test_an_empty_batch_passes_the_small_nets(name):
    model = mc.models.get_model(name).eval()
    out = model(mc.Tensor(np.zeros((0,) + MODELS[name][1], np.float32)))
    out = out[0] if isinstance(out, tuple) else out
    assert out.shape == (0, 10)


def test_cross_entropy_of_an_empty_batch_is_zero_not_nan():
    # NOTE: PyTorch's mean over no targets is 0 / 0 = NaN; minicnn's is 0, so that a batch
    # whose targets are all ignored adds nothing to a running loss (a documented difference)
    loss = F.cross_entropy(mc.Tensor(np.zeros((0, 3), np.float32), requires_grad=True),
                           np.zeros(0, np.int64))
    assert loss.item() == 0.0
    loss.backward()
