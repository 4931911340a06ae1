"""The ReLU kernels: the numba twins give what the NumPy references give, bit for bit, in every
layout the conv engine produces; layouts they cannot walk as flat buffers take the reference.
And the memory layout of activations and gradients survives a ResNet step (a layout flip makes
every element-wise op after it several times slower, see ``minicnn/ops/shape.py: Pad``)."""
import numpy as np
import pytest

import minicnn as mc
import minicnn.nn.functional as F
from minicnn.kernels import elementwise as K


def _channels_last(a):
    """The NCHW-shaped view of channels-last (NHWC) memory, as the conv engine returns."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def _inputs(shape, dtype, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    x.flat[::7] = 0.0  # exact zeros: the derivative there is 0
    return x


LAYOUTS = {"C": lambda a: a, "channels_last": _channels_last,
           "F": np.asfortranarray}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (4, 16, 32, 32)])  # serial and parallel
def test_relu_twins_equal_reference(layout, dtype, shape):
    x = LAYOUTS[layout](_inputs(shape, dtype))
    gy = LAYOUTS[layout](_inputs(shape, dtype, seed=1))
    y = K.relu_forward(x)
    np.testing.assert_array_equal(y, K.relu_forward_reference(x))
    assert y.strides == x.strides  # the result keeps the input's layout
    gx = K.relu_backward(gy, y)
    np.testing.assert_array_equal(gx, K.relu_backward_reference(gy, y))
    np.testing.assert_array_equal(gx, np.where(x > 0, gy, 0))


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (4, 16, 32, 32)])  # serial and parallel
def test_add_relu_twin_equals_reference(layout, dtype, shape):
    a = LAYOUTS[layout](_inputs(shape, dtype))
    b = LAYOUTS[layout](_inputs(shape, dtype, seed=2))
    y = K.add_relu(a, b)
    np.testing.assert_array_equal(y, K.add_relu_reference(a, b))
    np.testing.assert_array_equal(y, np.maximum(a + b, 0))
    assert y.strides == a.strides


def test_add_relu_of_mixed_layouts_takes_the_reference_and_lets_nan_through():
    a = _inputs((2, 3, 6, 6), np.float32)
    b = _channels_last(_inputs(a.shape, np.float32, seed=1))
    np.testing.assert_array_equal(K.add_relu(a, b), np.maximum(a + b, 0))
    y = K.add_relu(np.array([np.nan, 1.0, -3.0], np.float32), np.ones(3, np.float32))
    assert np.isnan(y[0]) and list(y[1:]) == [2.0, 0.0]


def test_relu_nan_passes_through_forward_and_gets_no_gradient():
    x = np.array([np.nan, -1.0, 2.0, 0.0], dtype=np.float32)
    y = K.relu_forward(x)
    assert np.isnan(y[0]) and list(y[1:]) == [0.0, 2.0, 0.0]
    gx = K.relu_backward(np.ones(4, np.float32), y)
    assert list(gx) == [0.0, 0.0, 1.0, 0.0]


def test_mixed_layouts_and_gapped_views_take_the_reference():
    x = _inputs((2, 3, 6, 6), np.float32)
    gapped = x[:, :, ::2, ::2]  # a view with gaps: no flat walk
    assert not K._is_dense(gapped)
    np.testing.assert_array_equal(K.relu_forward(gapped), np.maximum(gapped, 0))
    gy = _channels_last(_inputs(x.shape, np.float32, seed=1))  # other layout than y
    y = K.relu_forward(x)
    assert not K._dense_alike(gy, y)
    np.testing.assert_array_equal(K.relu_backward(gy, y), gy * (x > 0))


def _channels_last_or_small(a):
    return a.ndim < 4 or a.transpose(0, 2, 3, 1).flags.c_contiguous


def test_resnet_step_keeps_activations_and_gradients_channels_last():
    """Every 4-D activation and every 4-D gradient reaching an element-wise op of a ResNet-20
    step (stride-2 option-A shortcuts included) is channels-last; a C-ordered pad or gradient
    scatter would flip stages 2 and 3 to NCHW and mix layouts in ReLU and the gradient sums."""
    from minicnn.models.resnet_cifar import resnet20
    from minicnn.ops import activation, arithmetic
    mc.manual_seed(0)
    model = resnet20()
    seen = []

    def spy(cls):
        forward, backward = cls.forward, cls.backward

        def spy_forward(self, *xs):
            seen.extend(("forward", cls.__name__, x.shape) for x in xs
                        if not _channels_last_or_small(x))
            return forward(self, *xs)

        def spy_backward(self, gy):
            if not _channels_last_or_small(gy):
                seen.append(("backward", cls.__name__, gy.shape))
            return backward(self, gy)
        return spy_forward, spy_backward

    patched = [activation.ReLU, arithmetic.Add]
    saved = [(cls.forward, cls.backward) for cls in patched]
    try:
        for cls in patched:
            cls.forward, cls.backward = spy(cls)
        x = mc.Tensor(np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32))
        loss = F.cross_entropy(model(x), mc.Tensor(np.arange(4) % 10))
        loss.backward()
    finally:
        for cls, (forward, backward) in zip(patched, saved):
            cls.forward, cls.backward = forward, backward
    assert seen == []
