"""The pooling kernels: each numba twin gives what its readable NumPy reference gives, in both
memory layouts, in float32 and float64, over hypothesis-drawn shapes and window settings."""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from minicnn.kernels import pooling as K
from minicnn.ops.pooling import pool_geometry, pool_output_size

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def geometries(draw):
    """(shape, kernel, stride, padding, output_size) that PyTorch would accept."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    size = tuple(draw(st.integers(max(1, k - 2 * p), 10)) for k, p in zip(kernel, padding))
    ceil_mode = draw(st.booleans())
    out = tuple(pool_output_size(n, k, s, p, ceil_mode)
                for n, k, s, p in zip(size, kernel, stride, padding))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 5))) + size
    return shape, kernel, stride, padding, out


def _layout(x, channels_last):
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2) \
        if channels_last else x


@SETTINGS
@given(geometries(), st.booleans(), st.sampled_from([np.float32, np.float64]),
       st.booleans())
def test_max_pool_numba_equals_reference(geometry, channels_last, dtype, with_ties):
    shape, kernel, stride, padding, out = geometry
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, shape) if with_ties else rng.standard_normal(shape)
    x = _layout(x.astype(dtype), channels_last)
    y_ref, i_ref = K.max_pool2d_forward_reference(x, kernel, stride, padding, out)
    y, i = K.max_pool2d_forward(x, kernel, stride, padding, out, channels_last)
    assert y.dtype == dtype and y.shape == y_ref.shape
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(i, i_ref)  # ties included: both take the first maximum
    gy = _layout(rng.standard_normal(y.shape).astype(dtype), channels_last)
    gx_ref = K.max_pool2d_backward_reference(gy, i_ref, shape, kernel, stride, padding)
    gx = K.max_pool2d_backward(gy, i, shape, kernel, stride, padding, channels_last)
    assert gx.dtype == dtype and gx.shape == shape
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-6, atol=1e-6)


@SETTINGS
@given(geometries(), st.booleans(), st.sampled_from([np.float32, np.float64]),
       st.booleans(), st.sampled_from([None, 3]))
def test_avg_pool_numba_equals_reference(geometry, channels_last, dtype, count_include_pad,
                                         divisor_override):
    shape, kernel, stride, padding, out = geometry
    rng = np.random.default_rng(1)
    x = _layout(rng.standard_normal(shape).astype(dtype), channels_last)
    divisors = K.avg_pool2d_divisors(shape[2:], kernel, stride, padding, out, count_include_pad,
                                     divisor_override)
    y_ref = K.avg_pool2d_forward_reference(x, kernel, stride, padding, out, divisors)
    y = K.avg_pool2d_forward(x, kernel, stride, padding, divisors, channels_last)
    assert y.dtype == dtype and y_ref.dtype == dtype
    np.testing.assert_allclose(y, y_ref, rtol=1e-6, atol=1e-6)
    gy = _layout(rng.standard_normal(y.shape).astype(dtype), channels_last)
    gx_ref = K.avg_pool2d_backward_reference(gy, shape, kernel, stride, padding, divisors)
    gx = K.avg_pool2d_backward(gy, shape, kernel, stride, padding, divisors, channels_last)
    assert gx.dtype == dtype and gx.shape == shape
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-6, atol=1e-6)


def test_all_minus_infinity_windows_point_at_their_first_real_element():
    # PyTorch's rule; padding (which also counts as -inf) must never be reported
    x = np.full((1, 1, 3, 3), -np.inf, np.float32)
    for fwd in (K.max_pool2d_forward_reference,
                lambda *a: K.max_pool2d_forward(*a, channels_last=False)):
        y, i = fwd(x, (3, 3), (2, 2), (1, 1), (2, 2))
        assert np.isneginf(y).all()
        np.testing.assert_array_equal(i[0, 0], [[0, 1], [3, 4]])


@st.composite
def dilated_geometries(draw):
    """(shape, kernel, stride, padding, dilation, output_size) of a dilated max pooling that
    the op accepts (pool_geometry: padding at most half the kernel, every window with a real
    tap)."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dilation = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    size = (draw(st.integers(1, 12)), draw(st.integers(1, 12)))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4))) + size
    try:
        k, s, p, out = pool_geometry("max_pool2d", shape, kernel, stride, padding,
                                     draw(st.booleans()), dilation)
    except ValueError:
        assume(False)
    return shape, k, s, p, dilation, out


@SETTINGS
@given(dilated_geometries(), st.booleans(), st.sampled_from([np.float32, np.float64]),
       st.booleans())
def test_dilated_max_pool_numba_equals_reference(geometry, channels_last, dtype, with_ties):
    shape, kernel, stride, padding, dilation, out = geometry
    rng = np.random.default_rng(2)
    x = rng.integers(0, 3, shape) if with_ties else rng.standard_normal(shape)
    x = _layout(x.astype(dtype), channels_last)
    y_ref, i_ref = K.max_pool2d_forward_reference(x, kernel, stride, padding, out, dilation)
    y, i = K.max_pool2d_forward(x, kernel, stride, padding, out, channels_last, dilation)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(i, i_ref)
    gy = _layout(rng.standard_normal(y.shape).astype(dtype), channels_last)
    gx_ref = K.max_pool2d_backward_reference(gy, i_ref, shape, kernel, stride, padding, dilation)
    gx = K.max_pool2d_backward(gy, i, shape, kernel, stride, padding, channels_last, dilation)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-6, atol=1e-6)


def test_a_dilated_window_looks_only_at_its_taps():
    # a 2x2 window with dilation 2 over a 3x3 plane sees its four corners, never the centre
    x = np.zeros((1, 1, 3, 3), np.float32)
    x[0, 0, 1, 1] = 9.0
    x[0, 0, 2, 0] = 1.0
    for fwd in (K.max_pool2d_forward_reference,
                lambda *a: K.max_pool2d_forward(*a[:5], False, a[5])):
        y, i = fwd(x, (2, 2), (1, 1), (0, 0), (1, 1), (2, 2))
        assert y[0, 0, 0, 0] == 1.0 and i[0, 0, 0, 0] == 6
    # all -inf: the index is the first tap that is not padding, 2 rows/columns into the image
    x = np.full((1, 1, 5, 5), -np.inf, np.float32)
    y, i = K.max_pool2d_forward_reference(x, (2, 2), (1, 1), (1, 1), (3, 3), (3, 3))
    assert i[0, 0, 0, 0] == 2 * 5 + 2 and i[0, 0, 1, 1] == 0


@pytest.mark.parametrize("channels_last", [False, True])
def test_layout_helpers_copy_nothing_for_the_two_layouts(channels_last):
    x = _layout(np.zeros((2, 3, 4, 5), np.float32), channels_last)
    assert K.is_channels_last(x) == channels_last
    images = K.to_images(x, channels_last)
    assert np.shares_memory(images, x)
    assert images.shape == ((2, 4, 5, 3) if channels_last else (6, 4, 5, 1))
    back = K.from_images(images, 2, 3, channels_last)
    assert back.shape == x.shape and np.shares_memory(back, x)


def test_other_layouts_are_copied_to_nchw():
    x = np.zeros((2, 3, 4, 5), np.float32).transpose(0, 1, 3, 2)  # W and H swapped in memory
    assert not K.is_channels_last(x)
    images = K.to_images(x, False)
    assert images.flags.c_contiguous and images.shape == (6, 5, 4, 1)


def test_divisors_follow_pytorchs_rules():
    # 5 wide, kernel 2, stride 2, padding 1, ceil_mode: windows [-1,0], [1,2], [3,4]
    d = K.avg_pool2d_divisors((5, 5), (2, 2), (2, 2), (1, 1), (3, 3), True)
    np.testing.assert_array_equal(d[0], [4, 4, 4])
    d = K.avg_pool2d_divisors((5, 5), (2, 2), (2, 2), (1, 1), (3, 3), False)
    np.testing.assert_array_equal(d[0], [1, 2, 2])
    # 6 wide, kernel 3, stride 2, padding 1, ceil_mode: 4 windows; the last, rows 5..7, is
    # clipped at the end of the right padding (row 6), so it counts 2 rows, padding included
    d = K.avg_pool2d_divisors((6, 6), (3, 3), (2, 2), (1, 1), (4, 4), True)
    np.testing.assert_array_equal(d[-1], [6, 6, 6, 4])
    np.testing.assert_array_equal(K.avg_pool2d_divisors((4, 4), (2, 2), (2, 2), (0, 0), (2, 2),
                                                        True, 7), 7)


@pytest.mark.parametrize("channels_last", [False, True])
def test_an_infinity_stays_in_its_own_windows(channels_last):
    x = np.zeros((1, 2, 4, 4), np.float32)
    x[0, :, 0, 0] = np.inf
    x = _layout(x, channels_last)
    d = K.avg_pool2d_divisors((4, 4), (2, 2), (2, 2), (0, 0), (2, 2), True)
    y = K.avg_pool2d_forward(x, (2, 2), (2, 2), (0, 0), d, channels_last)
    assert np.isposinf(y[0, :, 0, 0]).all() and (y[0, :, 1:, :] == 0).all()
    assert (y[0, :, 0, 1] == 0).all()
    y, _ = K.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (2, 2), channels_last)
    assert np.isposinf(y[0, :, 0, 0]).all() and (y[0, :, 0, 1] == 0).all()
