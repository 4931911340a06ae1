"""im2col / col2im (kernels/im2col.py): the NumPy reference against a hand-worked example
and its own definition, the numba twins against the reference on many configurations, and
col2im as the adjoint of im2col. No PyTorch needed here."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn.kernels import im2col as K
from minicnn.kernels.geometry import conv_output_size

# (H, W, C, kernel, stride, padding): square and not, strides that skip pixels, padding wider
# than the kernel's reach, kernels as large as the padded input, 1x1
CONFIGS = [
    (5, 5, 1, (3, 3), (1, 1), (0, 0)),
    (5, 6, 3, (3, 2), (1, 2), (1, 0)),
    (7, 7, 2, (3, 3), (2, 2), (1, 1)),
    (6, 5, 3, (2, 3), (3, 1), (2, 1)),
    (4, 4, 4, (4, 4), (1, 1), (0, 0)),
    (3, 5, 4, (1, 1), (1, 1), (0, 0)),
    (3, 5, 2, (1, 1), (2, 2), (0, 0)),
    (2, 2, 3, (5, 5), (1, 1), (2, 2)),
    (8, 8, 16, (3, 3), (1, 1), (1, 1)),
    (8, 9, 5, (5, 5), (2, 3), (2, 2)),
    (4, 4, 2, (2, 2), (2, 2), (0, 0)),
    (1, 7, 3, (1, 3), (1, 1), (0, 1)),
    (6, 6, 2, (3, 3), (1, 1), (3, 3)),     # padding larger than the kernel's reach
]


def test_im2col_reference_on_a_hand_worked_example():
    # a 3x3 one-channel image 0..8, a 2x2 kernel: four windows, read row by row
    x = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)
    cols = K.im2col_reference(x, (2, 2), (1, 1), (0, 0))
    np.testing.assert_array_equal(cols, [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]])
    # padding 1: the first window covers the top-left padding corner and pixel 0
    cols = K.im2col_reference(x, (2, 2), (2, 2), (1, 1))
    np.testing.assert_array_equal(cols, [[0, 0, 0, 0], [0, 0, 1, 2], [0, 3, 0, 6], [4, 5, 7, 8]])


def test_columns_interleave_the_channels_of_a_pixel():
    # cols[(n, oh, ow), (kh, kw, c)]: the C channels of one pixel sit side by side
    x = np.arange(2 * 2 * 2, dtype=np.float64).reshape(1, 2, 2, 2)   # (N, H, W, C)
    cols = K.im2col_numba(x, (2, 2), (1, 1), (0, 0))
    np.testing.assert_array_equal(cols, x.reshape(1, 8))


def _definition_im2col(x, kernel, stride, padding, dilation=(1, 1)):
    """Straight from the header's formula, one number at a time."""
    N, H, W, C = x.shape
    (KH, KW), (sH, sW), (pH, pW), (dH, dW) = kernel, stride, padding, dilation
    OH, OW = conv_output_size(H, KH, sH, pH, dH), conv_output_size(W, KW, sW, pW, dW)
    cols = np.zeros((N * OH * OW, KH * KW * C), dtype=x.dtype)
    for n, oh, ow, kh, kw, c in itertools.product(range(N), range(OH), range(OW), range(KH),
                                                  range(KW), range(C)):
        y, xx = oh * sH - pH + kh * dH, ow * sW - pW + kw * dW
        if 0 <= y < H and 0 <= xx < W:
            cols[(n * OH + oh) * OW + ow, (kh * KW + kw) * C + c] = x[n, y, xx, c]
    return cols


@pytest.mark.parametrize("config", CONFIGS[:8], ids=str)
def test_reference_follows_the_index_mapping(config):
    H, W, C, kernel, stride, padding = config
    x = np.random.default_rng(0).standard_normal((2, H, W, C))
    np.testing.assert_array_equal(K.im2col_reference(x, kernel, stride, padding),
                                  _definition_im2col(x, kernel, stride, padding))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_numba_twins_equal_the_reference(config, dtype):
    H, W, C, kernel, stride, padding = config
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, H, W, C)).astype(dtype)
    cols = K.im2col_numba(x, kernel, stride, padding)
    assert cols.dtype == dtype
    np.testing.assert_array_equal(cols, K.im2col_reference(x, kernel, stride, padding))
    g = rng.standard_normal(cols.shape).astype(dtype)
    gx = K.col2im_numba(g, x.shape, kernel, stride, padding)
    assert gx.dtype == dtype and gx.shape == x.shape
    # the twins sum the same numbers in a different order
    np.testing.assert_allclose(gx, K.col2im_reference(g, x.shape, kernel, stride, padding),
                               rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


# (H, W, C, kernel, stride, padding, dilation): atrous "same" convs, dilation along one axis,
# strided and dilated, taps that reach far into the padding, a dilated 1x1 (no gaps to leave)
DILATED_CONFIGS = [
    (7, 7, 3, (3, 3), (1, 1), (2, 2), (2, 2)),
    (9, 8, 2, (3, 3), (1, 1), (4, 4), (4, 4)),
    (6, 9, 4, (2, 3), (2, 1), (1, 0), (3, 2)),
    (8, 5, 1, (3, 2), (1, 2), (0, 3), (1, 4)),
    (5, 5, 2, (3, 3), (2, 2), (4, 4), (3, 3)),
    (4, 6, 3, (1, 1), (1, 1), (0, 0), (5, 5)),
    (7, 7, 16, (3, 3), (1, 1), (3, 3), (3, 3)),
]


@pytest.mark.parametrize("config", DILATED_CONFIGS, ids=str)
def test_dilated_reference_follows_the_index_mapping(config):
    H, W, C, kernel, stride, padding, dilation = config
    x = np.random.default_rng(0).standard_normal((2, H, W, C))
    np.testing.assert_array_equal(K.im2col_reference(x, kernel, stride, padding, dilation),
                                  _definition_im2col(x, kernel, stride, padding, dilation))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", DILATED_CONFIGS, ids=str)
def test_dilated_numba_twins_equal_the_reference(config, dtype):
    H, W, C, kernel, stride, padding, dilation = config
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, H, W, C)).astype(dtype)
    args = (kernel, stride, padding, dilation)
    cols = K.im2col_numba(x, *args)
    np.testing.assert_array_equal(cols, K.im2col_reference(x, *args))
    g = rng.standard_normal(cols.shape).astype(dtype)
    gx = K.col2im_numba(g, x.shape, *args)
    np.testing.assert_allclose(gx, K.col2im_reference(g, x.shape, *args),
                               rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)
    # the adjoint, dilated too
    assert np.isclose(np.vdot(cols.astype(np.float64), g), np.vdot(x.astype(np.float64), gx),
                      rtol=1e-4 if dtype == np.float32 else 1e-10)


def test_a_dilated_3x3_column_holds_the_taps_two_pixels_apart():
    x = np.arange(25, dtype=np.float64).reshape(1, 5, 5, 1)
    cols = K.im2col_reference(x, (3, 3), (1, 1), (0, 0), (2, 2))    # one 5x5 window
    np.testing.assert_array_equal(cols, [[0, 2, 4, 10, 12, 14, 20, 22, 24]])
    # col2im of ones (padding 2 keeps 5x5 outputs): each pixel counts the windows it is a tap of
    counts = K.col2im_numba(np.ones((25, 9)), (1, 5, 5, 1), (3, 3), (1, 1), (2, 2), (2, 2))
    np.testing.assert_array_equal(counts[0, :, :, 0], np.outer([2, 2, 3, 2, 2], [2, 2, 3, 2, 2]))


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_col2im_is_the_adjoint_of_im2col(config):
    # <im2col(x), g> == <x, col2im(g)> for all x, g: what makes col2im the gradient of im2col
    H, W, C, kernel, stride, padding = config
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, H, W, C))
    cols = K.im2col(x, kernel, stride, padding)
    g = rng.standard_normal(cols.shape)
    assert np.isclose(np.vdot(cols, g), np.vdot(x, K.col2im(g, x.shape, kernel, stride, padding)))


def test_col2im_of_ones_counts_the_windows_over_each_pixel():
    ones = np.ones((9, 9), dtype=np.float64)           # 3x3 outputs of a 3x3 kernel on 5x5
    counts = K.col2im_numba(ones, (1, 5, 5, 1), (3, 3), (1, 1), (0, 0))[0, :, :, 0]
    np.testing.assert_array_equal(counts, np.outer([1, 2, 3, 2, 1], [1, 2, 3, 2, 1]))
    # stride = kernel: the windows tile the image, every pixel in exactly one
    ones = np.ones((4, 4), dtype=np.float64)
    np.testing.assert_array_equal(K.col2im_numba(ones, (1, 4, 4, 1), (2, 2), (2, 2), (0, 0)), 1)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 5),
       kh=st.integers(1, 5), kw=st.integers(1, 5), sh=st.integers(1, 3), sw=st.integers(1, 3),
       ph=st.integers(0, 3), pw=st.integers(0, 3), seed=st.integers(0, 2 ** 16))
def test_numba_twins_equal_the_reference_on_drawn_configurations(n, h, w, c, kh, kw, sh, sw, ph,
                                                                 pw, seed):
    if h + 2 * ph < kh or w + 2 * pw < kw:
        return  # no output: the op refuses such a configuration before any kernel runs
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c))
    args = ((kh, kw), (sh, sw), (ph, pw))
    cols = K.im2col_numba(x, *args)
    np.testing.assert_array_equal(cols, K.im2col_reference(x, *args))
    g = rng.standard_normal(cols.shape)
    np.testing.assert_allclose(K.col2im_numba(g, x.shape, *args),
                               K.col2im_reference(g, x.shape, *args), rtol=1e-12, atol=1e-12)


def test_out_buffers_are_filled_and_returned():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 5, 3)).astype(np.float32)
    buffer = np.full((2 * 5 * 5, 27), np.nan, dtype=np.float32)   # stale contents get overwritten
    assert K.im2col(x, (3, 3), (1, 1), (1, 1), out=buffer) is buffer
    np.testing.assert_array_equal(buffer, K.im2col_reference(x, (3, 3), (1, 1), (1, 1)))
    image = np.full(x.shape, np.nan, dtype=np.float32)
    assert K.col2im(buffer, x.shape, (3, 3), (1, 1), (1, 1), out=image) is image
    assert np.isfinite(image).all()
    with pytest.raises(ValueError, match="out must have shape"):
        K.im2col(x, (3, 3), (1, 1), (1, 1), out=np.empty((10, 27), np.float32))
    with pytest.raises(ValueError, match="do not belong"):
        K.col2im(buffer[:10], x.shape, (3, 3), (1, 1), (1, 1))


def test_numba_im2col_accepts_a_non_contiguous_image():
    x = np.random.default_rng(4).standard_normal((2, 6, 6, 8))[..., 2:5]   # a channel slice
    np.testing.assert_array_equal(K.im2col_numba(x, (3, 3), (2, 1), (1, 0)),
                                  K.im2col_reference(x, (3, 3), (2, 1), (1, 0)))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 2), h=st.integers(1, 10), w=st.integers(1, 10), c=st.integers(1, 4),
       kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
       ph=st.integers(0, 4), pw=st.integers(0, 4), dh=st.integers(1, 4), dw=st.integers(1, 4),
       seed=st.integers(0, 2 ** 16))
def test_dilated_numba_twins_equal_the_reference_on_drawn_configurations(n, h, w, c, kh, kw, sh,
                                                                         sw, ph, pw, dh, dw,
                                                                         seed):
    if h + 2 * ph < dh * (kh - 1) + 1 or w + 2 * pw < dw * (kw - 1) + 1:
        return  # no output: the op refuses such a configuration before any kernel runs
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c))
    args = ((kh, kw), (sh, sw), (ph, pw), (dh, dw))
    cols = K.im2col_numba(x, *args)
    np.testing.assert_array_equal(cols, K.im2col_reference(x, *args))
    g = rng.standard_normal(cols.shape)
    np.testing.assert_allclose(K.col2im_numba(g, x.shape, *args),
                               K.col2im_reference(g, x.shape, *args), rtol=1e-12, atol=1e-12)
