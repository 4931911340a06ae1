"""Dropout: the shared op checks with a seeded mask, and the behaviour that matters in training:
identity in evaluation, the expected value preserved, masks repeatable from a seed, float32."""
import warnings

import numpy as np
import pytest

import minicnn as mc
from minicnn import random as mc_random
from minicnn.nn.dropout import Dropout, Dropout2d
from minicnn.ops import dropout as ops_dropout
from minicnn.ops.dropout import dropout, dropout2d
from optest import OpCase, inputs, normal, torch


def _seeded(fn, seed=0):
    """``fn`` with minicnn's generator seeded first, so every call draws the same mask."""
    def run(*xs):
        mc.manual_seed(seed)
        return fn(*xs)
    return run


def dropout_ref(x, p, seed=0):
    # the mask is drawn as float32 uniforms in [0, 1) (minicnn's draw for float32 input)
    keep = np.random.default_rng(seed).random(x.shape, dtype=np.float32) >= p
    return x * keep / (1 - p)


def dropout2d_ref(x, p, seed=0):
    """One mask value per (sample, channel), the same over the other axes."""
    keep = np.random.default_rng(seed).random(x.shape[:2], dtype=np.float32) >= p
    return x * keep.reshape(x.shape[:2] + (1,) * (x.ndim - 2)) / (1 - p)


def _quiet(fn):
    """``fn`` without dropout2d's (N, C, L) warning (tested by itself below)."""
    def run(*xs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "dropout2d: Received a 3D input")
            return fn(*xs)
    return run


CASES = [
    OpCase("dropout p=0.3 (4, 5)", _seeded(lambda x: dropout(x, 0.3)),
           lambda x: dropout_ref(x, 0.3), inputs(normal(4, 5)), (ops_dropout.Dropout,)),
    OpCase("dropout p=0.5 (2, 3, 3, 3)", _seeded(lambda x: dropout(x, 0.5)),
           lambda x: dropout_ref(x, 0.5), inputs(normal(2, 3, 3, 3)), (ops_dropout.Dropout,)),
    OpCase("dropout2d p=0.4 (3, 4, 2, 2)", _seeded(lambda x: dropout2d(x, 0.4)),
           lambda x: dropout2d_ref(x, 0.4), inputs(normal(3, 4, 2, 2)), (ops_dropout.Dropout,)),
    OpCase("dropout2d p=0.5 3-D (N, C, L) (3, 4, 5)", _quiet(_seeded(lambda x: dropout2d(x, 0.5))),
           lambda x: dropout2d_ref(x, 0.5), inputs(normal(3, 4, 5)), (ops_dropout.Dropout,)),
    OpCase("dropout2d p=0.5 empty batch (0, 3, 2, 2)", _seeded(lambda x: dropout2d(x, 0.5)),
           lambda x: dropout2d_ref(x, 0.5), inputs(normal(0, 3, 2, 2)), (ops_dropout.Dropout,)),
]


@pytest.fixture(autouse=True)
def _restore_generator():
    """These tests reseed minicnn's generator; give the next test the state it had."""
    state = mc_random.get_rng_state()
    yield
    mc_random.set_rng_state(state)


# (the four shared checks run over these CASES in tests/test_ops.py)


# ---- behaviour -----------------------------------------------------------------------------------

def test_eval_and_p0_return_the_input_itself():
    x = mc.Tensor(np.ones((3, 3), np.float32), requires_grad=True)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x
    assert dropout2d(mc.Tensor(np.ones((1, 2, 2, 2))), 0.5, training=False).shape == (1, 2, 2, 2)


def test_p1_zeroes_everything_and_its_gradient():
    x = mc.Tensor(np.ones((4, 4), np.float32), requires_grad=True)
    y = dropout(x, 1.0)
    y.backward(np.ones((4, 4), np.float32))
    assert (y.numpy() == 0).all() and (x.grad == 0).all() and np.isfinite(x.grad).all()


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_training_keeps_the_expected_value(p):
    mc.manual_seed(1)
    x = mc.Tensor(np.ones((400, 500), np.float32))
    y = dropout(x, p).numpy()
    dropped = (y == 0).mean()
    assert abs(dropped - p) < 0.01  # 200,000 draws: the standard error is ~0.001
    assert abs(y.mean() - 1.0) < 0.03
    np.testing.assert_allclose(y[y != 0], 1 / (1 - p), rtol=1e-6)


def test_masks_repeat_with_the_seed_and_differ_without():
    x = mc.Tensor(np.ones((50, 50), np.float32))
    mc.manual_seed(7)
    a = dropout(x, 0.5).numpy()
    b = dropout(x, 0.5).numpy()
    mc.manual_seed(7)
    c = dropout(x, 0.5).numpy()
    assert (a == c).all() and not (a == b).all()


def test_gradient_uses_the_forward_mask():
    mc.manual_seed(3)
    x = mc.Tensor(np.full((20, 20), 2.0, np.float32), requires_grad=True)
    y = dropout(x, 0.25)
    y.backward(np.ones((20, 20), np.float32))
    np.testing.assert_allclose(x.grad, y.numpy() / 2.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype):
    x = mc.Tensor(np.ones((8, 8), dtype), requires_grad=True)
    y = dropout(x, 0.5)
    y.backward(np.ones((8, 8), dtype))
    assert y.dtype == dtype and x.grad.dtype == dtype


def test_channels_last_input_stays_channels_last_with_the_same_mask():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    last = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    mc.manual_seed(5)
    a = dropout(mc.Tensor(x), 0.5).numpy()
    mc.manual_seed(5)
    b = dropout(mc.Tensor(last), 0.5)
    assert b.data.transpose(0, 2, 3, 1).flags.c_contiguous
    np.testing.assert_array_equal(a, b.numpy())


def test_dropout2d_drops_whole_channels():
    mc.manual_seed(2)
    y = dropout2d(mc.Tensor(np.ones((8, 16, 3, 3), np.float32)), 0.5).numpy()
    per_channel = y.reshape(8, 16, 9)
    assert ((per_channel == 0).all(axis=2) | (per_channel == 2).all(axis=2)).all()
    assert 0 < (per_channel == 0).all(axis=2).mean() < 1


@pytest.mark.parametrize("p", [-0.1, 1.5, "0.5", None])
def test_invalid_p_is_refused(p):
    x = mc.Tensor(np.ones(3, np.float32))
    with pytest.raises(ValueError, match="between 0 and 1"):
        dropout(x, p)
    with pytest.raises(ValueError, match="between 0 and 1"):
        Dropout(p)


def test_dropout2d_needs_4d_input():
    with pytest.raises(ValueError, match="4-D input"):
        dropout2d(mc.Tensor(np.ones((2, 3), np.float32)), 0.5)
    # PyTorch takes these with a deprecation warning ("will result in an error in a future
    # release"); minicnn refuses them now and says what to use instead
    with pytest.raises(ValueError, match="4-D input .* got a 5-D .*reshape"):
        dropout2d(mc.Tensor(np.ones((2, 3, 2, 2, 2), np.float32)), 0.5)
    with pytest.raises(ValueError, match="4-D input .* got a 1-D"):
        dropout2d(mc.Tensor(np.ones(3, np.float32)), 0.5)


@pytest.mark.parametrize("training", [True, False])
def test_dropout2d_reads_a_3d_input_as_n_c_l_with_torchs_warning(training):
    """PyTorch 2.x reads a 3-D input to dropout2d as (N, C, L) -- one mask value per (n, c) --
    and warns that a future release will read it as one (C, H, W) image; minicnn does the same
    (in evaluation mode too: the warning comes before the mode is looked at)."""
    x = np.ones((6, 8, 5), np.float32)
    mc.manual_seed(4)
    with pytest.warns(UserWarning, match=r"interpreted as shape \(N, C, L\)"):
        y = dropout2d(mc.Tensor(x), 0.5, training).numpy()
    assert y.shape == x.shape
    assert ((y == y[:, :, :1]).all(axis=2)).all()  # constant along L
    if training:
        assert 0 < (y[:, :, 0] == 0).mean() < 1
    if torch is not None:
        with pytest.warns(UserWarning, match=r"interpreted as shape \(N, C, L\)"):
            ty = torch.nn.functional.dropout2d(torch.from_numpy(x), 0.5, training).numpy()
        assert ((ty == ty[:, :, :1]).all(axis=2)).all()
    layer = Dropout2d(0.5).train(training)
    with pytest.warns(UserWarning, match="dropout2d: Received a 3D input"):
        assert layer(mc.Tensor(x)).shape == x.shape


def test_layers_follow_train_and_eval():
    layer = Dropout(0.5)
    x = mc.Tensor(np.ones((10, 10), np.float32))
    mc.manual_seed(0)
    assert (layer(x).numpy() == 0).any()
    layer.eval()
    assert layer(x) is x
    assert repr(layer) == "Dropout(p=0.5, inplace=False)"
    assert repr(Dropout2d(0.2)) == "Dropout2d(p=0.2, inplace=False)"
    if torch is not None:
        assert repr(layer) == repr(torch.nn.Dropout(0.5))
