"""The autograd engine: accumulation, graph shapes, grad modes, hooks, dtypes and clear errors."""
import sys

import numpy as np
import pytest

import minicnn as mc
from minicnn import ops


def leaf(values, dtype=np.float32):
    return mc.Tensor(np.array(values, dtype=dtype), requires_grad=True)


# ---- accumulation and graph shapes --------------------------------------------------------------

def test_gradients_accumulate_across_backward_calls_until_zero_grad():
    x = leaf([1.0, 2.0, 3.0])
    y = (x * x).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad, [2, 4, 6])
    y.backward()  # the graph is still there; the gradient adds up
    np.testing.assert_array_equal(x.grad, [4, 8, 12])
    x.zero_grad()
    assert x.grad is None
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [3, 3, 3])


def test_a_tensor_used_twice_gets_the_sum_of_both_paths():
    x = leaf([1.0, -2.0])
    a = x * 3      # diamond: x -> a, x -> b, (a, b) -> y
    b = x.exp()
    (a + b).sum().backward()
    np.testing.assert_allclose(x.grad, 3 + np.exp([1.0, -2.0]), rtol=1e-6)


def test_the_same_tensor_twice_in_one_op():
    x = leaf([3.0])
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0])
    x.zero_grad()
    (x + x + x).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0])


def test_a_deep_chain_does_not_hit_the_recursion_limit():
    x = leaf([1.0, 2.0])
    y = x
    depth = max(5000, 2 * sys.getrecursionlimit())
    for _ in range(depth):
        y = y * 1.0 + 0.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])
    del y  # freeing a deep graph must not overflow the stack either


def test_backward_on_a_leaf():
    x = leaf([1.0, 2.0])
    x.backward(np.array([5.0, 6.0]))
    np.testing.assert_array_equal(x.grad, [5.0, 6.0])
    assert x.grad.dtype == np.float32


def test_backward_with_an_explicit_gradient():
    x = leaf([1.0, 2.0])
    (x * 2).backward(np.array([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad, [2.0, 20.0])


def test_intermediate_tensors_do_not_keep_gradients_unless_retained():
    x = leaf([1.0, 2.0])
    y = x * 2
    z = x * 3
    z.retain_grad()
    (y * z).sum().backward()
    assert y.grad is None
    np.testing.assert_array_equal(z.grad, [2.0, 4.0])  # d(y z)/dz = y
    np.testing.assert_array_equal(x.grad, [12.0, 24.0])  # 2 * 2 * 3 * x


def test_only_inputs_that_require_grad_get_gradients():
    x, c = leaf([1.0, 2.0]), mc.Tensor(np.array([3.0, 4.0], np.float32))
    (x * c).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])
    assert c.grad is None


# ---- grad modes -------------------------------------------------------------------------------

def test_no_grad_as_context_records_nothing():
    x = leaf([1.0, 2.0])
    with mc.no_grad():
        assert not mc.is_grad_enabled()
        y = x * 2
    assert mc.is_grad_enabled()
    assert not y.requires_grad and y.creator is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_no_grad_as_decorator_records_nothing():
    @mc.no_grad()
    def evaluate(x):
        return x * 2

    y = evaluate(leaf([1.0]))
    assert not y.requires_grad and y.creator is None
    assert mc.is_grad_enabled()


def test_no_grad_decorator_on_a_recursive_function_restores_the_mode():
    @mc.no_grad()
    def depth(n):
        assert not mc.is_grad_enabled()
        return 0 if n == 0 else 1 + depth(n - 1)

    assert depth(3) == 3
    assert mc.is_grad_enabled()


def test_enable_grad_inside_no_grad():
    x = leaf([1.0, 2.0])
    with mc.no_grad():
        with mc.enable_grad():
            y = x * 2
        z = x * 2
    assert y.requires_grad and not z.requires_grad
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])


def test_no_grad_restores_the_mode_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with mc.no_grad():
            1 / 0
    assert mc.is_grad_enabled()


def test_detach_cuts_the_graph_and_shares_the_data():
    x = leaf([1.0, 2.0])
    d = (x * 2).detach()
    assert not d.requires_grad and d.creator is None
    y = (x * d).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])  # d counted as a constant
    x2 = leaf([1.0])
    assert x2.detach().data is x2.data


# ---- hooks ----------------------------------------------------------------------------------

def test_hook_on_a_leaf_sees_the_full_gradient_once():
    x = leaf([1.0, 2.0])
    seen = []
    x.register_hook(lambda g: seen.append(g.copy()))
    (x * 2 + x * 3).sum().backward()
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], [5.0, 5.0])
    np.testing.assert_array_equal(x.grad, [5.0, 5.0])


def test_hook_on_an_intermediate_sees_its_gradient():
    x = leaf([1.0, 2.0])
    y = x * 2
    seen = []
    y.register_hook(lambda g: seen.append(g.copy()))
    (y * y).sum().backward()
    np.testing.assert_array_equal(seen[0], [4.0, 8.0])  # 2 y
    np.testing.assert_array_equal(x.grad, [8.0, 16.0])


def test_a_hook_can_replace_the_gradient():
    x = leaf([1.0, 2.0])
    y = x * 2
    y.register_hook(lambda g: g * 10)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [20.0, 20.0])

    w = leaf([1.0, 2.0])
    w.register_hook(lambda g: np.zeros_like(g))
    (w * 5).sum().backward()
    np.testing.assert_array_equal(w.grad, [0.0, 0.0])


def test_removed_hooks_no_longer_fire():
    x = leaf([1.0])
    y = x * 2
    calls = []
    h1 = x.register_hook(lambda g: calls.append("leaf"))
    h2 = y.register_hook(lambda g: calls.append("intermediate"))
    h1.remove()
    h2.remove()
    h2.remove()  # twice is harmless
    y.sum().backward()
    assert calls == []
    np.testing.assert_array_equal(x.grad, [2.0])


def test_hook_on_an_intermediate_whose_object_was_deleted_still_fires():
    x = leaf([1.0, 2.0])
    y = x * 3
    seen = []
    y.register_hook(lambda g: seen.append(g.copy()) or g * 2)
    loss = y.sum()
    del y
    loss.backward()
    np.testing.assert_array_equal(seen[0], [1.0, 1.0])
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])


def test_hook_on_a_tensor_without_grad_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        mc.Tensor(np.ones(2, np.float32)).register_hook(lambda g: g)


def test_retain_grad_keeps_an_intermediate_gradient_and_accumulates():
    x = leaf([1.0, 2.0])
    y = (x * 2).retain_grad()
    loss = (y * y).sum()
    loss.backward()
    np.testing.assert_array_equal(y.grad, [4.0, 8.0])
    loss.backward()
    np.testing.assert_array_equal(y.grad, [8.0, 16.0])


# ---- dtypes -------------------------------------------------------------------------------------

def test_python_lists_default_to_float32_and_int64():
    assert mc.Tensor([1.0, 2.0]).dtype == np.float32
    assert mc.Tensor(2.5).dtype == np.float32
    assert mc.Tensor([1, 2]).dtype == np.int64
    assert mc.Tensor(np.zeros(2)).dtype == np.float64  # arrays keep theirs
    assert mc.Tensor([1, 2], dtype=np.float32).dtype == np.float32


def _small_network(x, w, b):
    h = ops.linear(x, w, b).relu()
    h = (h * 0.5 + 1.0 - h / 3.0) ** 2
    z = ops.cat([h, h.tanh().sigmoid()], axis=1)
    return ops.cross_entropy(z, np.array([0, 3])) + ops.mse_loss(h, h.detach() * 0.9) + \
        z.log_softmax(1).mean() + z.max(axis=1).sum() * 0.1 + z[:, 1:].exp().mean()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_in_every_output_and_gradient(dtype):
    rng = np.random.default_rng(0)
    x = mc.Tensor(rng.standard_normal((2, 3)).astype(dtype), requires_grad=True)
    w = mc.Tensor(rng.standard_normal((4, 3)).astype(dtype), requires_grad=True)
    b = mc.Tensor(rng.standard_normal(4).astype(dtype), requires_grad=True)
    loss = _small_network(x, w, b)
    assert loss.dtype == dtype
    loss.backward()
    for t in (x, w, b):
        assert t.grad.dtype == dtype and t.grad.shape == t.shape


def test_mixed_precision_gradients_come_back_in_the_input_dtype():
    a = leaf([1.0, 2.0], np.float32)
    b = leaf([3.0, 4.0], np.float64)
    (a * b).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


def test_requires_grad_on_an_int_tensor_is_a_type_error():
    with pytest.raises(TypeError, match="floating-point"):
        mc.Tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(TypeError, match="int64"):
        mc.Tensor(np.arange(3)).requires_grad_()


# ---- clear errors -------------------------------------------------------------------------------

def test_backward_on_a_non_scalar_without_grad_is_an_error():
    y = leaf([1.0, 2.0]) * 2
    with pytest.raises(RuntimeError, match=r"single-element.*\(2,\)"):
        y.backward()


def test_backward_with_a_gradient_of_the_wrong_shape_is_an_error():
    y = leaf([1.0, 2.0]) * 2
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        y.backward(np.ones(3))


def test_backward_on_a_tensor_that_does_not_require_grad_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        mc.Tensor([1.0, 2.0]).sum().backward()


@pytest.mark.parametrize("op", [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b,
                                lambda a, b: a / b], ids=["add", "sub", "mul", "div"])
def test_elementwise_ops_with_mismatched_shapes_name_both_shapes(op):
    a, b = leaf(np.ones((2, 3))), leaf(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        op(a, b)


@pytest.mark.parametrize("sa, sb", [((2, 3), (4, 5)), ((2, 3), (4,)), ((3,), (4, 2)),
                                    ((2, 2, 3), (3, 3, 4))])
def test_matmul_with_mismatched_shapes_names_both_shapes(sa, sb):
    a, b = leaf(np.ones(sa)), leaf(np.ones(sb))
    with pytest.raises(ValueError, match=rf"{str(sa)[:-1]}.*{str(sb)[:-1]}".replace("(", r"\(")):
        a @ b


def test_matmul_with_a_scalar_is_a_clear_error():
    with pytest.raises(ValueError, match="at least one axis"):
        leaf(2.0) @ leaf([1.0, 2.0])


# ---- mixing with NumPy and Python ---------------------------------------------------------------

def test_ndarray_op_tensor_returns_a_tensor():
    x = leaf([1.0, 2.0])
    a = np.array([10.0, 20.0], np.float32)
    for y in (a + x, a - x, a * x, a / x, a @ x):
        assert isinstance(y, mc.Tensor) and y.requires_grad
    y = a * x
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, a)


def test_numbers_on_either_side_keep_the_dtype():
    x = leaf([1.0, 2.0])
    for y in (1 + x, x + 1, 2.0 * x, x * 2.0, 1 - x, 1 / x, x / 2, x ** 2, -x,
              x * np.float64(2.0), x ** np.float64(0.5)):
        assert isinstance(y, mc.Tensor) and y.dtype == np.float32


def test_comparison_ops_return_bool_tensors_without_gradient():
    x = leaf([1.0, 2.0, 3.0])
    y = mc.Tensor([3.0, 2.0, 1.0])
    for result, expected in [(x < 2, [True, False, False]), (x <= 2, [True, True, False]),
                             (x > y, [False, False, True]), (x >= y, [False, True, True]),
                             (x == y, [False, True, False]), (x != 2.0, [True, False, True])]:
        assert isinstance(result, mc.Tensor) and result.dtype == np.bool_
        assert not result.requires_grad
        np.testing.assert_array_equal(result.data, expected)


def test_truth_value_of_a_one_element_tensor():
    loss, best = mc.Tensor(0.5), 1.0
    assert bool(loss < best) and not bool(loss > best)
    assert not mc.Tensor([0.0])
    with pytest.raises(ValueError, match="ambiguous"):
        bool(mc.Tensor([1.0, 2.0]))


def test_tensors_stay_hashable_by_identity():
    a, b = mc.Tensor([1.0]), mc.Tensor([1.0])
    assert len({a, b}) == 2 and {a: 1}[a] == 1


def test_item_and_numpy():
    x = mc.Tensor([[2.5]])
    assert x.item() == 2.5 and isinstance(x.item(), float)
    assert isinstance(x.numpy(), np.ndarray)
    with pytest.raises(ValueError, match="single-element"):
        mc.Tensor([1.0, 2.0]).item()


def test_linear_and_matmul_refuse_mixed_float_dtypes():
    """A float64 batch through float32 weights would silently run the layer in float64."""
    import minicnn.nn as nn
    layer = nn.Linear(3, 2)
    with pytest.raises(TypeError, match="linear: input is float64 but the weight is float32"):
        layer(mc.Tensor(np.ones((1, 3))))
    with pytest.raises(TypeError, match="matmul: operands are float32 and float64"):
        mc.Tensor(np.ones((2, 2), np.float32)) @ mc.Tensor(np.ones((2, 2)))


def test_flatten_rejects_start_after_end():
    with pytest.raises(ValueError, match="start_dim 2 comes after end_dim 1"):
        mc.Tensor(np.zeros((2, 3, 4))).flatten(2, 1)


def test_anomaly_mode_names_the_op_that_made_a_nan():
    x = mc.Tensor(np.array([1.0, 0.0, 2.0], np.float32), requires_grad=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = (x.log() * 0.0).sum()  # log(0) = -inf, -inf * 0 = nan: silent without anomaly mode
        assert np.isnan(y.item())
        with mc.detect_anomaly():
            with pytest.raises(mc.AnomalyError, match=r"^Log produced 0 NaN and 1 Inf"):
                x.log()
            with pytest.raises(mc.AnomalyError, match=r"^Mul produced 1 NaN and 0 Inf"):
                mc.Tensor(np.array([-np.inf], np.float32)) * 0.0


def test_anomaly_mode_checks_gradients_in_backward():
    x = mc.Tensor(np.array([0.0, 1.0], np.float32), requires_grad=True)
    y = (x ** 0.5).sum()  # d sqrt(x) / dx = inf at 0, finite forward
    with mc.detect_anomaly(), np.errstate(divide="ignore"):
        with pytest.raises(mc.AnomalyError, match=r"^Pow produced .* gradient for input 0"):
            y.backward()
    assert not mc.autograd._anomaly  # switched off again after the block
