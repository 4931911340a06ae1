"""Tests of minicnn.nn.init: the formulas (against PyTorch's where it defines them), the
statistics of large draws, in-place writing and repeatability under mc.manual_seed."""
import math

import numpy as np
import pytest

import minicnn as mc
import minicnn.nn as nn
from minicnn.nn import init


def torch_or_skip():
    return pytest.importorskip("torch", reason="PyTorch is the reference for this test")


def big(shape=(1000, 1000), dtype=np.float32):
    return nn.Parameter(np.zeros(shape, dtype=dtype))


@pytest.mark.parametrize("nonlinearity, param", [
    ("linear", None), ("conv2d", None), ("conv_transpose2d", None), ("sigmoid", None),
    ("tanh", None), ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2),
    ("leaky_relu", math.sqrt(5)), ("leaky_relu", 0), ("selu", None)])
def test_calculate_gain_equals_pytorch(nonlinearity, param):
    torch = torch_or_skip()
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(
        torch.nn.init.calculate_gain(nonlinearity, param))


def test_calculate_gain_values_and_errors():
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="negative_slope"):
        init.calculate_gain("leaky_relu", True)


@pytest.mark.parametrize("shape, expected", [
    ((30, 20), (20, 30)),             # Linear (out, in)
    ((16, 8, 3, 3), (72, 144)),       # Conv2d (out, in, kH, kW): the kernel counts
    ((4, 6, 5), (30, 20)),            # Conv1d
])
def test_fan_in_and_fan_out(shape, expected):
    assert init._calculate_fan_in_and_fan_out(nn.Parameter(np.zeros(shape))) == expected
    torch = pytest.importorskip("torch")
    assert torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(shape)) == expected


def test_fan_needs_two_dimensions():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(nn.Parameter(np.zeros(5)))


def test_init_writes_in_place_keeps_dtype_and_returns_the_tensor():
    for dtype in (np.float32, np.float64):
        t = big((20, 30), dtype)
        array = t.data
        for fn in (init.uniform_, init.normal_, init.xavier_uniform_, init.xavier_normal_,
                   init.kaiming_uniform_, init.kaiming_normal_, init.trunc_normal_,
                   init.zeros_, init.ones_):
            assert fn(t) is t, fn.__name__
            assert t.data is array and t.dtype == dtype, fn.__name__
    raw = np.zeros((3, 4), dtype=np.float32)  # a bare array works too
    assert init.constant_(raw, 2.5) is raw and np.all(raw == 2.5)


def test_constant_zeros_ones():
    t = big((3, 4))
    assert np.all(init.constant_(t, -1.5).data == -1.5)
    assert np.all(init.zeros_(t).data == 0)
    assert np.all(init.ones_(t).data == 1)


def test_uniform_and_normal_statistics():
    mc.manual_seed(0)
    u = init.uniform_(big(), -2.0, 3.0).data
    assert u.min() >= -2 and u.max() < 3 and u.min() < -1.99 and u.max() > 2.99
    assert u.mean() == pytest.approx(0.5, abs=0.01)
    v = init.uniform_(big()).data  # default U(0, 1)
    assert v.min() >= 0 and v.max() < 1 and v.mean() == pytest.approx(0.5, abs=0.005)
    n = init.normal_(big(), mean=1.0, std=0.5).data
    assert n.mean() == pytest.approx(1.0, abs=0.005)
    assert n.std() == pytest.approx(0.5, rel=0.01)


def test_xavier_uniform_bound_and_xavier_normal_std():
    mc.manual_seed(0)
    fan_in, fan_out = 1000, 500
    for gain in (1.0, init.calculate_gain("tanh")):
        w = init.xavier_uniform_(big((fan_out, fan_in)), gain=gain).data
        bound = gain * math.sqrt(6 / (fan_in + fan_out))
        assert np.abs(w).max() <= bound * (1 + 1e-6) and np.abs(w).max() > 0.999 * bound
        assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.01)
    w = init.xavier_normal_(big((fan_out, fan_in)), gain=2.0).data
    assert w.std() == pytest.approx(2.0 * math.sqrt(2 / (fan_in + fan_out)), rel=0.01)
    assert abs(w.mean()) < 0.001


def test_kaiming_normal_std_is_sqrt_two_over_fan():
    mc.manual_seed(0)
    w = init.kaiming_normal_(big((1000, 1000)), nonlinearity="relu").data
    assert w.std() == pytest.approx(math.sqrt(2 / 1000), rel=0.01)
    assert abs(w.mean()) < 0.001
    # conv weight (out=64, in=16, 3, 3), mode fan_out: fan = 64 * 9
    conv = init.kaiming_normal_(big((64, 16, 3, 3)), mode="fan_out", nonlinearity="relu").data
    assert conv.std() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.02)


def test_kaiming_uniform_bound():
    mc.manual_seed(0)
    w = init.kaiming_uniform_(big((500, 2000)), nonlinearity="relu").data
    bound = math.sqrt(2) * math.sqrt(3 / 2000)
    assert np.abs(w).max() <= bound * (1 + 1e-6) and np.abs(w).max() > 0.999 * bound
    # a=sqrt(5) (the Linear/Conv2d default) gives exactly 1 / sqrt(fan_in)
    w = init.kaiming_uniform_(big((500, 2000)), a=math.sqrt(5)).data
    assert np.abs(w).max() <= (1 + 1e-6) / math.sqrt(2000)
    assert np.abs(w).max() > 0.999 / math.sqrt(2000)
    # the default leaky_relu slope 0.01: gain sqrt(2 / (1 + 1e-4))
    w = init.kaiming_uniform_(big((500, 2000))).data
    assert w.std() == pytest.approx(math.sqrt(2 / 1.0001) / math.sqrt(2000), rel=0.01)


def test_kaiming_rejects_bad_mode_and_warns_on_empty():
    with pytest.raises(ValueError, match="fan_in"):
        init.kaiming_uniform_(big((3, 3)), mode="fan_avg")
    with pytest.warns(UserWarning, match="zero-element"):
        init.kaiming_normal_(nn.Parameter(np.zeros((0, 3), dtype=np.float32)))


def test_trunc_normal_stays_inside_and_has_the_right_centre():
    mc.manual_seed(0)
    w = init.trunc_normal_(big((300, 300)), mean=0.5, std=1.0, a=0.0, b=1.5).data
    assert w.min() >= 0.0 and w.max() <= 1.5
    assert w.min() < 0.01 and w.max() > 1.49
    # truncated-normal mean: mu + sigma * (pdf(-0.5) - pdf(1.0)) / (cdf(1.0) - cdf(-0.5))
    assert w.mean() == pytest.approx(0.7066, abs=0.01)
    w = init.trunc_normal_(big((300, 300)), std=0.02).data  # ViT-style: bounds far outside
    assert w.std() == pytest.approx(0.02, rel=0.02)
    with pytest.raises(ValueError, match="less than 0.1%"):
        init.trunc_normal_(big((2, 2)), mean=0.0, std=1.0, a=10.0, b=11.0)


def test_manual_seed_makes_every_initialiser_repeatable():
    for fn in (init.uniform_, init.normal_, init.xavier_uniform_, init.xavier_normal_,
               init.kaiming_uniform_, init.kaiming_normal_, init.trunc_normal_):
        mc.manual_seed(7)
        a = fn(big((8, 9))).data.copy()
        mc.manual_seed(7)
        b = fn(big((8, 9))).data.copy()
        mc.manual_seed(8)
        c = fn(big((8, 9))).data.copy()
        np.testing.assert_array_equal(a, b, err_msg=fn.__name__)
        assert not np.array_equal(a, c), fn.__name__


def test_explicit_generator_is_used_instead_of_the_global_one():
    a = init.normal_(big((4, 4)), generator=np.random.default_rng(5)).data.copy()
    mc.manual_seed(123)  # the global generator has no say
    b = init.normal_(big((4, 4)), generator=np.random.default_rng(5)).data.copy()
    np.testing.assert_array_equal(a, b)
