"""minicnn.gradcheck: passes correct ops, catches wrong backward passes and says where and how."""
import re

import numpy as np
import pytest

import minicnn as mc
import optest
from minicnn import ops


# ---- deliberately broken ops (defined here, in tests/, so the op registry ignores them) ---------

class SquareMissingFactor(mc.Function):
    """x ** 2 whose backward forgot the 2."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, gy):
        return gy * self.x


class ScaleFlippedSign(mc.Function):
    """3 x whose backward has the wrong sign."""

    def forward(self, x):
        return 3 * x

    def backward(self, gy):
        return -3 * gy


class MulDropsSecond(mc.Function):
    """a * b whose backward gives b nothing (zeros) instead of a * gy."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        return gy * self.b, np.zeros_like(self.b)


class MulForgetsSecond(mc.Function):
    """a * b whose backward returns None for b."""

    def forward(self, a, b):
        self.b = b
        return a * b

    def backward(self, gy):
        return gy * self.b, None


class TanhWrongAtOneElement(mc.Function):
    """tanh whose gradient is wrong at a single element: only a check that reaches it sees it."""

    def forward(self, x):
        self.y = np.tanh(x)
        return self.y

    def backward(self, gy):
        gx = gy * (1 - self.y * self.y)
        gx.flat[17] += 0.5
        return gx


def _param(values):
    return mc.Tensor(np.array(values, dtype=np.float64), requires_grad=True)


# ---- correct ops pass ---------------------------------------------------------------------------

@pytest.mark.parametrize("fn, shapes", [
    (lambda a, b: a * b + a / b, [(3, 4), (4,)]),
    (lambda a, b: a @ b, [(3, 4), (4, 2)]),
    (lambda x: ops.softmax(x, 0).log(), [(3, 4)]),
    (lambda x: (x.exp() - x.tanh()).sum(axis=1), [(3, 4)]),
], ids=["arithmetic", "matmul", "softmax-log", "exp-tanh-sum"])
def test_correct_ops_pass(fn, shapes, rng):
    tensors = [mc.Tensor(rng.uniform(0.5, 2.0, s), requires_grad=True) for s in shapes]
    assert mc.gradcheck(fn, tensors) is True


def test_a_single_tensor_and_non_tensor_arguments_are_accepted():
    x = _param([0.5, 1.5])
    assert mc.gradcheck(lambda t: t ** 3, x) is True
    assert mc.gradcheck(lambda t, p: t ** p, [x, 2.5]) is True


def test_inputs_without_requires_grad_are_not_checked():
    x, c = _param([1.0, 2.0]), mc.Tensor(np.array([3.0, 4.0]))
    assert mc.gradcheck(lambda a, b: MulForgetsSecond()(a, b), [x, c]) is True


# ---- wrong backward passes are caught, with a message that teaches ----------------------------

def test_missing_factor_is_caught_with_input_element_and_both_values():
    x = _param([1.0, 2.0, 3.0])
    with pytest.raises(mc.GradcheckError) as info:
        mc.gradcheck(lambda t: SquareMissingFactor()(t), [x])
    message = str(info.value)
    # gradcheck weighs the output with v ~ N(0, 1) drawn from default_rng(seed=0)
    v = np.random.default_rng(0).standard_normal(3)
    assert "input 0" in message and "element (0,)" in message
    assert f"{v[0] * 1.0: .6g}" in message          # what backward() gives: v x
    assert f"{2 * v[0] * 1.0: .6g}" in message      # what the difference gives: 2 v x
    assert "2 times too small" in message


def test_flipped_sign_is_caught_and_named():
    with pytest.raises(mc.GradcheckError, match="sign is flipped"):
        mc.gradcheck(lambda t: ScaleFlippedSign()(t), [_param([1.0, -2.0])])


def test_the_failing_input_is_named():
    a, b = _param([1.0, 2.0]), _param([3.0, 4.0])
    with pytest.raises(mc.GradcheckError, match=r"input 1 \(shape \(2,\)\), element \(0,\)") \
            as info:
        mc.gradcheck(lambda x, y: MulDropsSecond()(x, y), [a, b])
    assert "dropped" in str(info.value)


def test_an_input_that_receives_no_gradient_is_reported():
    with pytest.raises(mc.GradcheckError, match="input 1.*no gradient"):
        mc.gradcheck(lambda x, y: MulForgetsSecond()(x, y), [_param([1.0]), _param([2.0])])


def test_the_element_of_a_matrix_is_named():
    x = _param([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(mc.GradcheckError, match=r"element \(0, 0\)"):
        mc.gradcheck(lambda t: SquareMissingFactor()(t), [x])


def test_relu_at_zero_gives_the_kink_hint():
    x = _param([1.0, 0.0, -2.0])
    with pytest.raises(mc.GradcheckError) as info:
        mc.gradcheck(ops.relu, [x])
    message = str(info.value)
    assert "element (1,)" in message and "kink" in message and "ReLU" in message


def test_max_with_a_three_way_tie_gives_the_kink_hint():
    # (for a two-way tie the central difference, 1/2, happens to equal the even split)
    with pytest.raises(mc.GradcheckError, match="kink"):
        mc.gradcheck(lambda t: t.max(), [_param([2.0, 2.0, 2.0])])


def test_relu_away_from_zero_passes():
    assert mc.gradcheck(ops.relu, [_param([1.0, -0.5, 0.2, -2.0])])


# ---- large inputs: random directions ------------------------------------------------------------

def _counting(fn):
    calls = []

    def wrapped(*xs):
        calls.append(1)
        return fn(*xs)
    return wrapped, calls


def test_large_inputs_are_checked_along_random_directions(rng):
    x = mc.Tensor(rng.standard_normal((10, 30)), requires_grad=True)
    fn, calls = _counting(lambda t: t.tanh())
    assert mc.gradcheck(fn, [x], max_elementwise=64, n_directions=5)
    # one recorded call, then three evaluations per direction: not three per element (900)
    assert len(calls) == 1 + 3 * 5


def test_random_directions_still_catch_a_wrong_gradient(rng):
    x = mc.Tensor(rng.standard_normal((10, 30)), requires_grad=True)
    with pytest.raises(mc.GradcheckError, match="random direction"):
        mc.gradcheck(lambda t: TanhWrongAtOneElement()(t), [x])


def test_small_inputs_are_checked_element_by_element(rng):
    x = mc.Tensor(rng.standard_normal(6), requires_grad=True)
    fn, calls = _counting(lambda t: t.tanh())
    assert mc.gradcheck(fn, [x])
    assert len(calls) == 1 + 3 * 6


# ---- precision and side effects -----------------------------------------------------------------

def test_float32_inputs_are_checked_in_float64():
    x = mc.Tensor(np.array([0.3, 0.7, 1.1], np.float32), requires_grad=True)
    seen = []

    def fn(t):
        seen.append(t.dtype)
        return (t * t).exp()

    assert mc.gradcheck(fn, [x])
    assert set(seen) == {np.dtype(np.float64)}
    assert x.dtype == np.float32 and x.grad is None  # the caller's tensor is untouched


def test_gradcheck_leaves_the_inputs_alone():
    x = _param([1.0, 2.0])
    before = x.data.copy()
    mc.gradcheck(lambda t: t * t, [x])
    np.testing.assert_array_equal(x.data, before)
    assert x.grad is None


def test_nothing_to_check_is_an_error():
    with pytest.raises(ValueError, match="requires_grad"):
        mc.gradcheck(lambda t: t * 2, [mc.Tensor(np.ones(2))])


def test_fn_must_return_a_tensor():
    with pytest.raises(TypeError, match="must return a Tensor"):
        mc.gradcheck(lambda t: t.data * 2, [_param([1.0])])


# ---- the op registry ----------------------------------------------------------------------------

def test_the_op_registry_ignores_functions_defined_in_tests():
    found = optest.all_minicnn_functions()
    assert SquareMissingFactor not in found and TanhWrongAtOneElement not in found
    assert not any(re.match(r"(test_|optest|conftest)", cls.__module__) for cls in found)
    assert all(cls.__module__.startswith("minicnn.") for cls in found)
    names = {cls.__name__ for cls in found}
    assert {"Add", "MatMul", "CrossEntropy", "Split", "GetItem"} <= names
