"""The CUDA kernels without a GPU: sources vs. runtime table, nvcc, and the kernels run on the CPU.

* the kernel names and argument lists in ``kernels/*.cu`` equal ``cuda_kernels.KERNELS``, the
  table the launch code converts its arguments by (a renamed kernel or a changed argument list
  fails here, not at the first launch on a GPU);
* nvcc compiles every ``.cu`` with the runtime's instantiations for sm_80 and sm_90, warnings as
  errors (and a warning really does fail the check);
* every kernel, run on the CPU by ``kernels/host_harness.py`` (the unchanged ``.cu`` code, one call
  per emulated GPU thread, with AddressSanitizer and UBSan), through the same Python launch code
  the GPU uses, gives EXACTLY the NumPy reference's numbers (same summation order), in float32
  and float64, in several geometries, and the same numbers with the threads run backwards (the
  result does not depend on the thread schedule: no races);
* ``launch_view.show_kernel``'s thread -> element mapping is the one the kernels compute.

The nvcc and harness tests skip with a reason where the compiler is missing; CI has both.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import minicnn
from minicnn.kernels import KERNEL_DIR, cuda_kernels, cuda_sources, host_harness, nvcc_check
from minicnn.kernels import launch_view
from minicnn.kernels import im2col as im2col_kernels
from minicnn.kernels import pooling as pool_kernels
from minicnn.ops.pooling import pool_geometry

DTYPES = [np.float32, np.float64]


# ---------------------------------------------------------------------------------------------
# Sources vs. the runtime's table
# ---------------------------------------------------------------------------------------------

def test_kernel_names_and_arguments_match_the_sources():
    found = {}
    for cu in cuda_sources():
        for name, args in cuda_kernels.parse_signatures(cu.read_text()).items():
            found[name] = (cu.name, args)
    expected = {name: (spec.file, tuple(spec.args)) for name, spec in cuda_kernels.KERNELS.items()}
    assert found == expected
    assert nvcc_check.check_table() == []


def test_every_kernel_has_both_dtypes_and_a_thread_mapping_comment():
    for name, spec in cuda_kernels.KERNELS.items():
        text = cuda_kernels.kernel_source(name)
        assert f"__global__ void {name}(" in text
        assert "thread i  ->" in text, f"{name}: no header comment mapping the thread index"
        assert {e.split("<")[1] for e in cuda_kernels.name_expressions(spec.file)
                if e.startswith(name + "<")} == {"float>", "double>"}


def test_the_signature_check_notices_a_renamed_kernel_and_a_changed_argument():
    text = (KERNEL_DIR / "im2col.cu").read_text()
    renamed = cuda_kernels.parse_signatures(text.replace("void col2im_nhwc(", "void col2im2("))
    assert "col2im_nhwc" not in renamed and "col2im2" in renamed
    changed = cuda_kernels.parse_signatures(text.replace("long long total,\n                   "
                                                         "         int H", "int total, int H", 1))
    assert changed["im2col_nhwc"] != cuda_kernels.KERNELS["im2col_nhwc"].args


def test_plan_types_the_scalars_and_covers_every_element():
    x = np.zeros((2, 5, 5, 3), np.float32)
    cols = np.zeros((2 * 25, 27), np.float32)
    p = cuda_kernels.plan("im2col_nhwc", x.shape, (5, 5), (3, 3), (1, 1), (1, 1), x=x, cols=cols)
    assert p.name == "im2col_nhwc<float>" and p.total == cols.size
    assert p.grid * p.block >= p.total > (p.grid - 1) * p.block   # no block without work
    types = [type(a) for a in p.args[2:]]
    assert types == [np.int64] + [np.int32] * 13   # H .. pW, dH, dW, OH, OW
    with pytest.raises(ValueError, match="does not fit the kernel's int"):
        cuda_kernels.plan("im2col_nhwc", (1, 2 ** 31, 1, 1), (1, 1), (1, 1), (1, 1), (0, 0),
                          x=x, cols=cols)
    with pytest.raises(TypeError, match="float32 or float64"):
        cuda_kernels.name_expression("im2col_nhwc", np.float16)
    with pytest.raises(TypeError, match="missing"):
        cuda_kernels.plan("im2col_nhwc", x.shape, (5, 5), (3, 3), (1, 1), (1, 1), cols=cols)
    with pytest.raises(TypeError, match="unknown"):
        cuda_kernels.plan("im2col_nhwc", x.shape, (5, 5), (3, 3), (1, 1), (1, 1), x=x,
                          cols=cols, image=cols)


def test_launch_refuses_numpy_arrays_before_touching_a_gpu():
    x = np.zeros((1, 3, 3, 1), np.float32)
    with pytest.raises(TypeError, match="im2col_nhwc: argument x must be a CuPy array"):
        cuda_kernels.launch("im2col_nhwc", x.shape, (3, 3), (1, 1), (1, 1), (0, 0), x=x,
                            cols=np.zeros((9, 1), np.float32))


# ---------------------------------------------------------------------------------------------
# nvcc
# ---------------------------------------------------------------------------------------------

needs_nvcc = pytest.mark.skipif(nvcc_check.find_nvcc() is None,
                                reason="nvcc not found (CUDA toolkit not installed)")


@needs_nvcc
def test_nvcc_compiles_every_kernel_for_sm80_and_sm90_without_warnings(capsys):
    assert nvcc_check.main([]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    for cu in cuda_sources():
        assert f"{cu.name:<14} sm_80: ok" in out and f"{cu.name:<14} sm_90: ok" in out


@needs_nvcc
def test_nvcc_check_fails_on_a_warning(tmp_path):
    # the same file with one unused variable: nvcc warns, and the check must call that a failure
    bad = tmp_path / "im2col.cu"
    bad.write_text((KERNEL_DIR / "im2col.cu").read_text().replace(
        "    if (i < total) {  // the last block", "    int unused = 0;\n    if (i < total) {  "
        "// the last block", 1))
    problems = nvcc_check.compile_one(nvcc_check.find_nvcc(), bad, "sm_80", tmp_path)
    assert problems and "unused" in problems[0]


needs_nvrtc = pytest.mark.skipif(nvcc_check.find_nvrtc() is None,
                                 reason="no libnvrtc (pip install nvidia-cuda-nvrtc): the "
                                        "runtime's compiler cannot be tried here")


@needs_nvrtc
@pytest.mark.parametrize("cu", [c.name for c in cuda_sources()])
def test_nvrtc_compiles_every_kernel_as_cupy_would(cu):
    # NVRTC is what cupy.RawModule compiles with: the same source, options and name expressions,
    # and every name expression must lower to a kernel entry (what get_function looks up)
    nvrtc = nvcc_check.NVRTC(nvcc_check.find_nvrtc())
    assert nvcc_check.nvrtc_check_one(nvrtc, KERNEL_DIR / cu, "compute_80") == []


@needs_nvrtc
def test_nvrtc_check_notices_what_only_nvrtc_rejects(tmp_path):
    # g++ and nvcc's device pass know __builtin_huge_val; NVRTC does not (a bug this check
    # caught in pooling.cu): a source using it must fail the NVRTC check
    bad = tmp_path / "pooling.cu"
    bad.write_text((KERNEL_DIR / "pooling.cu").read_text().replace(
        "return -__int_as_float(0x7f800000);", "return -__builtin_huge_valf();"))
    problems = nvcc_check.nvrtc_check_one(nvcc_check.NVRTC(nvcc_check.find_nvrtc()), bad,
                                          "compute_80")
    assert problems and "__builtin_huge_valf" in problems[0]


# ---------------------------------------------------------------------------------------------
# The kernels run on the CPU (host harness)
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def harness():
    if host_harness.find_compiler() is None:
        pytest.skip("no host C++ compiler (g++/c++/clang++): the CUDA kernels cannot run on the "
                    "CPU here")
    return host_harness.build()  # cached by source hash in the temp folder


# (N, H, W, C), kernel, stride, padding: padding on both sides, stride < kernel, stride > kernel,
# a kernel larger than the image, one channel, a 1x1 kernel
CONV_GEOMETRIES = [
    ((2, 5, 6, 3), (3, 3), (1, 1), (1, 1)),
    ((1, 7, 5, 2), (2, 3), (2, 1), (0, 1)),
    ((3, 4, 4, 1), (5, 5), (1, 1), (2, 2)),
    ((2, 9, 8, 4), (3, 2), (3, 2), (1, 0)),
    ((1, 6, 6, 5), (1, 1), (1, 1), (0, 0)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, kernel, stride, padding", CONV_GEOMETRIES)
def test_im2col_and_col2im_kernels_equal_the_reference(harness, rng, shape, kernel, stride,
                                                       padding, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    expected = im2col_kernels.im2col_reference(x, kernel, stride, padding)
    gcols = rng.standard_normal(expected.shape).astype(dtype)
    expected_gx = im2col_kernels.col2im_reference(gcols, shape, kernel, stride, padding)
    for reverse in (False, True):
        with host_harness.emulate(harness, reverse=reverse):
            cols = im2col_kernels.im2col_cuda(x, kernel, stride, padding,
                                              out=np.full(expected.shape, np.nan, dtype))
            gx = im2col_kernels.col2im_cuda(gcols, shape, kernel, stride, padding)
        assert cols.dtype == dtype and gx.dtype == dtype
        np.testing.assert_array_equal(cols, expected)   # a copy: exact
        np.testing.assert_array_equal(gx, expected_gx)  # same order of additions: exact


POOL_GEOMETRIES = [  # (N, C, H, W), kernel, stride, padding, ceil_mode
    ((2, 3, 6, 7), 2, None, 0, False),
    ((1, 2, 7, 7), 3, 2, 1, False),
    ((2, 1, 5, 8), (3, 2), (2, 3), (1, 1), True),
    ((1, 4, 9, 6), 3, 1, 1, False),
    ((2, 2, 5, 5), 2, 3, 0, True),
]


def _layout(x, channels_last):
    """An NCHW-shaped array, plain or as an NCHW view of channels-last memory."""
    if channels_last:
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, kernel, stride, padding, ceil_mode", POOL_GEOMETRIES)
def test_max_pool_kernels_equal_the_reference(harness, rng, shape, kernel, stride, padding,
                                              ceil_mode, dtype, channels_last):
    # values from a few levels, so windows have ties (the first maximum must win), and a NaN
    x = rng.integers(-3, 3, size=shape).astype(dtype)
    x.reshape(-1)[5] = np.nan
    x = _layout(x, channels_last)
    k, s, p, out = pool_geometry("max_pool2d", shape, kernel, stride, padding, ceil_mode)
    y_ref, idx_ref = pool_kernels.max_pool2d_forward_reference(x, k, s, p, out)
    gy = _layout(rng.standard_normal(y_ref.shape).astype(dtype), channels_last)
    gx_ref = pool_kernels.max_pool2d_backward_reference(gy, idx_ref, shape, k, s, p)
    for reverse in (False, True):
        with host_harness.emulate(harness, reverse=reverse):
            y, idx = pool_kernels.max_pool2d_forward_cuda(x, k, s, p, out, channels_last)
            gx = pool_kernels.max_pool2d_backward_cuda(gy, idx, shape, k, s, p, channels_last)
        assert pool_kernels.is_channels_last(y) == (channels_last and shape[1] > 1)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(idx, idx_ref)
        np.testing.assert_array_equal(gx, gx_ref)
    assert np.isnan(y).any()  # the NaN propagated


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("shape, kernel, stride, padding, ceil_mode", POOL_GEOMETRIES)
def test_avg_pool_kernels_equal_the_reference(harness, rng, shape, kernel, stride, padding,
                                              ceil_mode, count_include_pad, dtype,
                                              channels_last):
    x = _layout(rng.standard_normal(shape).astype(dtype), channels_last)
    k, s, p, out = pool_geometry("avg_pool2d", shape, kernel, stride, padding, ceil_mode)
    divisors = pool_kernels.avg_pool2d_divisors(shape[2:], k, s, p, out, count_include_pad)
    y_ref = pool_kernels.avg_pool2d_forward_reference(x, k, s, p, out, divisors)
    gy = _layout(rng.standard_normal(y_ref.shape).astype(dtype), channels_last)
    gx_ref = pool_kernels.avg_pool2d_backward_reference(gy, shape, k, s, p, divisors)
    with host_harness.emulate(harness):
        y = pool_kernels.avg_pool2d_forward_cuda(x, k, s, p, divisors, channels_last)
        gx = pool_kernels.avg_pool2d_backward_cuda(gy, shape, k, s, p, divisors, channels_last)
    assert y.dtype == dtype and gx.dtype == dtype
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(gx, gx_ref)


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_window_in_the_padding_only_gives_minus_infinity(harness, rng, dtype):
    # the public op forbids such padding, but the kernel itself must still agree with the
    # reference: a window that sees padding only is -inf, its index the clamped first pixel
    x = rng.standard_normal((1, 2, 3, 4)).astype(dtype)
    args = ((1, 1), (1, 1), (1, 1), (5, 6))
    y_ref, idx_ref = pool_kernels.max_pool2d_forward_reference(x, *args)
    with host_harness.emulate(harness):
        y, idx = pool_kernels.max_pool2d_forward_cuda(x, *args, False)
    assert np.isneginf(y[0, 0, 0, 0])
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 5),
       kh=st.integers(1, 5), kw=st.integers(1, 5), sh=st.integers(1, 4), sw=st.integers(1, 4),
       ph=st.integers(0, 3), pw=st.integers(0, 3), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2 ** 16))
def test_cuda_kernels_equal_the_reference_on_drawn_geometries(harness, n, h, w, c, kh, kw, sh,
                                                              sw, ph, pw, dtype, seed):
    # any geometry with an output: im2col, col2im, and (where PyTorch allows the padding)
    # max and average pooling, forward and backward, all exact
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    assume(oh >= 1 and ow >= 1)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    k, s, p = (kh, kw), (sh, sw), (ph, pw)
    g = rng.standard_normal((n * oh * ow, kh * kw * c)).astype(dtype)
    with host_harness.emulate(harness):
        cols = im2col_kernels.im2col_cuda(x, k, s, p)
        gx = im2col_kernels.col2im_cuda(g, x.shape, k, s, p)
    np.testing.assert_array_equal(cols, im2col_kernels.im2col_reference(x, k, s, p))
    np.testing.assert_array_equal(gx, im2col_kernels.col2im_reference(g, x.shape, k, s, p))
    if ph > kh // 2 or pw > kw // 2:
        return
    xn = np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # NCHW
    out = (oh, ow)
    gy = rng.standard_normal((n, c, oh, ow)).astype(dtype)
    div = pool_kernels.avg_pool2d_divisors((h, w), k, s, p, out, count_include_pad=True)
    y_ref, idx_ref = pool_kernels.max_pool2d_forward_reference(xn, k, s, p, out)
    with host_harness.emulate(harness):
        y, idx = pool_kernels.max_pool2d_forward_cuda(xn, k, s, p, out, False)
        gxm = pool_kernels.max_pool2d_backward_cuda(gy, idx, xn.shape, k, s, p, False)
        ya = pool_kernels.avg_pool2d_forward_cuda(xn, k, s, p, div, False)
        gxa = pool_kernels.avg_pool2d_backward_cuda(gy, xn.shape, k, s, p, div, False)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    np.testing.assert_array_equal(
        gxm, pool_kernels.max_pool2d_backward_reference(gy, idx_ref, xn.shape, k, s, p))
    np.testing.assert_array_equal(
        ya, pool_kernels.avg_pool2d_forward_reference(xn, k, s, p, out, div))
    np.testing.assert_array_equal(
        gxa, pool_kernels.avg_pool2d_backward_reference(gy, xn.shape, k, s, p, div))


# ---- dilation: the kernels' taps dH rows and dW columns apart ------------------------------------

DILATED_CONV_GEOMETRIES = [  # (N, H, W, C), kernel, stride, padding, dilation
    ((2, 7, 8, 3), (3, 3), (1, 1), (2, 2), (2, 2)),     # "same" atrous conv
    ((1, 9, 7, 2), (2, 3), (2, 1), (1, 0), (3, 2)),     # strided, non-square
    ((2, 6, 6, 1), (3, 2), (1, 2), (0, 3), (1, 4)),     # dilation along one axis only
    ((1, 5, 5, 4), (3, 3), (1, 1), (4, 4), (4, 4)),     # taps that land mostly in the padding
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, kernel, stride, padding, dilation", DILATED_CONV_GEOMETRIES)
def test_dilated_im2col_and_col2im_kernels_equal_the_reference(harness, rng, shape, kernel,
                                                               stride, padding, dilation, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    expected = im2col_kernels.im2col_reference(x, kernel, stride, padding, dilation)
    gcols = rng.standard_normal(expected.shape).astype(dtype)
    expected_gx = im2col_kernels.col2im_reference(gcols, shape, kernel, stride, padding,
                                                  dilation)
    for reverse in (False, True):
        with host_harness.emulate(harness, reverse=reverse):
            cols = im2col_kernels.im2col_cuda(x, kernel, stride, padding, dilation,
                                              out=np.full(expected.shape, np.nan, dtype))
            gx = im2col_kernels.col2im_cuda(gcols, shape, kernel, stride, padding, dilation)
        np.testing.assert_array_equal(cols, expected)
        np.testing.assert_array_equal(gx, expected_gx)


DILATED_POOL_GEOMETRIES = [  # (N, C, H, W), kernel, stride, padding, dilation, ceil_mode
    ((2, 3, 9, 8), 3, 1, 1, 2, False),
    ((1, 2, 10, 9), (3, 2), (2, 3), (1, 1), (2, 3), True),
    ((2, 1, 7, 7), 2, 1, 0, 3, False),
    ((1, 2, 8, 8), 3, 3, 1, (1, 2), True),
]


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, kernel, stride, padding, dilation, ceil_mode",
                         DILATED_POOL_GEOMETRIES)
def test_dilated_max_pool_kernels_equal_the_reference(harness, rng, shape, kernel, stride,
                                                      padding, dilation, ceil_mode, dtype,
                                                      channels_last):
    x = rng.integers(-3, 3, size=shape).astype(dtype)   # ties: the first maximum must win
    x.reshape(-1)[5] = np.nan
    x = _layout(x, channels_last)
    d = (dilation, dilation) if isinstance(dilation, int) else dilation
    k, s, p, out = pool_geometry("max_pool2d", shape, kernel, stride, padding, ceil_mode, d)
    y_ref, idx_ref = pool_kernels.max_pool2d_forward_reference(x, k, s, p, out, d)
    gy = _layout(rng.standard_normal(y_ref.shape).astype(dtype), channels_last)
    gx_ref = pool_kernels.max_pool2d_backward_reference(gy, idx_ref, shape, k, s, p, d)
    for reverse in (False, True):
        with host_harness.emulate(harness, reverse=reverse):
            y, idx = pool_kernels.max_pool2d_forward_cuda(x, k, s, p, out, channels_last, d)
            gx = pool_kernels.max_pool2d_backward_cuda(gy, idx, shape, k, s, p, channels_last, d)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(idx, idx_ref)
        np.testing.assert_array_equal(gx, gx_ref)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 2), h=st.integers(1, 10), w=st.integers(1, 10), c=st.integers(1, 4),
       kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
       ph=st.integers(0, 4), pw=st.integers(0, 4), dh=st.integers(1, 4), dw=st.integers(1, 4),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2 ** 16))
def test_dilated_cuda_kernels_equal_the_reference_on_drawn_geometries(harness, n, h, w, c, kh,
                                                                      kw, sh, sw, ph, pw, dh,
                                                                      dw, dtype, seed):
    oh, ow = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    assume(oh >= 1 and ow >= 1)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    k, s, p, d = (kh, kw), (sh, sw), (ph, pw), (dh, dw)
    g = rng.standard_normal((n * oh * ow, kh * kw * c)).astype(dtype)
    with host_harness.emulate(harness):
        cols = im2col_kernels.im2col_cuda(x, k, s, p, d)
        gx = im2col_kernels.col2im_cuda(g, x.shape, k, s, p, d)
    np.testing.assert_array_equal(cols, im2col_kernels.im2col_reference(x, k, s, p, d))
    np.testing.assert_array_equal(gx, im2col_kernels.col2im_reference(g, x.shape, k, s, p, d))
    xn = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    try:
        k, s, p, out = pool_geometry("max_pool2d", xn.shape, k, s, p, False, d)
    except ValueError:   # padding beyond half the kernel, or a window with no real tap
        return
    gy = rng.standard_normal((n, c) + out).astype(dtype)
    y_ref, idx_ref = pool_kernels.max_pool2d_forward_reference(xn, k, s, p, out, d)
    with host_harness.emulate(harness):
        y, idx = pool_kernels.max_pool2d_forward_cuda(xn, k, s, p, out, False, d)
        gxm = pool_kernels.max_pool2d_backward_cuda(gy, idx, xn.shape, k, s, p, False, d)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    np.testing.assert_array_equal(
        gxm, pool_kernels.max_pool2d_backward_reference(gy, idx_ref, xn.shape, k, s, p, d))


def test_plan_refuses_a_dilation_for_a_kernel_without_one():
    x, y = np.zeros((1, 4, 4, 1), np.float32), np.zeros((1, 2, 2, 1), np.float32)
    div = np.ones((2, 2), np.float32)
    with pytest.raises(TypeError, match="avg_pool2d_forward_nhwc: the kernel takes no dilation"):
        cuda_kernels.plan("avg_pool2d_forward_nhwc", x.shape, (2, 2), (2, 2), (2, 2), (0, 0),
                          dilation=(2, 2), x=x, divisors=div, y=y)
    p = cuda_kernels.plan("im2col_nhwc", x.shape, (2, 2), (2, 2), (1, 1), (0, 0),
                          dilation=(2, 2), x=x, cols=np.zeros((4, 4), np.float32))
    assert (p.named["dH"], p.named["dW"]) == (2, 2)


def test_the_harness_catches_an_out_of_bounds_read(harness, tmp_path):
    # a launch whose scalars promise a larger image than the array holds must abort (ASan), not
    # quietly read garbage: the harness really checks memory accesses
    if "fsanitize" not in " ".join(host_harness.harness_flags(harness)):
        pytest.skip("the host compiler has no AddressSanitizer")
    x = np.zeros((1, 3, 3, 1), np.float32)
    cols = np.zeros((16, 1), np.float32)
    p = cuda_kernels.plan("im2col_nhwc", (1, 4, 4, 1), (4, 4), (1, 1), (1, 1), (0, 0), x=x,
                          cols=cols)
    with pytest.raises(RuntimeError, match="AddressSanitizer"):
        host_harness.run(p, harness)


# ---------------------------------------------------------------------------------------------
# show_kernel: the lecture's view of a launch
# ---------------------------------------------------------------------------------------------

def test_show_kernel_mapping_is_the_one_the_kernel_computes(rng):
    view = launch_view.show_kernel("im2col", (2, 5, 6, 3), kernel_size=3, stride=2, padding=1)
    x = rng.standard_normal((2, 5, 6, 3))
    cols = im2col_kernels.im2col_reference(x, (3, 3), (2, 2), (1, 1)).reshape(-1)
    assert view.total == cols.size and view.grid * view.block >= view.total
    for i in range(0, cols.size, 7):
        t = view.thread(i)
        yy, xx = t["oh"] * 2 - 1 + t["kh"], t["ow"] * 2 - 1 + t["kw"]
        inside = 0 <= yy < 5 and 0 <= xx < 6
        assert cols[i] == (x[t["n"], yy, xx, t["c"]] if inside else 0.0)
    text = str(view)
    assert "__global__ void im2col_nhwc(" in text and f"grid = ({view.grid}, 1, 1)" in text
    assert "thread 0 ->" in text


def test_show_kernel_covers_every_kernel_without_a_gpu():
    for name in launch_view.KERNEL_VIEWS:
        view = launch_view.show_kernel(name, (2, 8, 8, 4), kernel_size=2, print_source=False)
        assert view.total > 0 and view.thread(view.total - 1)["n"] == 1
    with pytest.raises(ValueError, match="show_kernel: unknown kernel 'conv'"):
        launch_view.show_kernel("conv", (1, 4, 4, 1))


# ---------------------------------------------------------------------------------------------
# Dispatch: CuPy arrays of float32/float64 go to the CUDA twins
# ---------------------------------------------------------------------------------------------

class _GpuArray:
    """Stands in for a CuPy array in dispatch decisions (its type lives in a 'cupy' module)."""
    __module__ = "cupy._stand_in"

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


@pytest.mark.parametrize("dtype, twin", [(np.float32, "cuda"), (np.float64, "cuda"),
                                         (np.float16, "reference")])
def test_gpu_arrays_are_dispatched_to_the_cuda_twins(monkeypatch, dtype, twin):
    called = []
    for module, names in ((im2col_kernels, ("im2col", "col2im")),
                          (pool_kernels, ("max_pool2d_forward", "max_pool2d_backward",
                                          "avg_pool2d_forward", "avg_pool2d_backward"))):
        for name in names:
            for kind in ("cuda", "reference"):
                monkeypatch.setattr(module, f"{name}_{kind}",
                                    lambda *a, _n=f"{name}_{kind}", **k: called.append(_n))
    a = _GpuArray(dtype)
    with minicnn.backend.reference_kernels(False):  # the fast lane, whichever lane CI runs
        _every_gpu_entry_point(a)
    assert called == [f"{n}_{twin}" for n in ("im2col", "col2im", "max_pool2d_forward",
                                              "max_pool2d_backward", "avg_pool2d_forward",
                                              "avg_pool2d_backward")]


def _every_gpu_entry_point(a):
    im2col_kernels.im2col(a, (3, 3))
    im2col_kernels.col2im(a, (1, 3, 3, 1), (3, 3))
    pool_kernels.max_pool2d_forward(a, (2, 2), (2, 2), (0, 0), (1, 1), False)
    pool_kernels.max_pool2d_backward(a, a, (1, 1, 2, 2), (2, 2), (2, 2), (0, 0), False)
    pool_kernels.avg_pool2d_forward(a, (2, 2), (2, 2), (0, 0), np.ones((1, 1)), False)
    pool_kernels.avg_pool2d_backward(a, (1, 1, 2, 2), (2, 2), (2, 2), (0, 0), np.ones((1, 1)),
                                     False)


# ---------------------------------------------------------------------------------------------
# Whole ops (and a small net) with the CUDA kernels, run on the CPU
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def cuda_kernels_on_cpu(harness, monkeypatch):
    """The ops' kernel calls go to the CUDA twins, whose launches run in the host harness: the
    ops' own code (buffers, views, layouts, chunks) drives the CUDA kernels' code."""
    for name in ("im2col", "col2im"):
        monkeypatch.setattr(im2col_kernels, name, getattr(im2col_kernels, f"{name}_cuda"))
    for name in ("max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward",
                 "avg_pool2d_backward"):
        monkeypatch.setattr(pool_kernels, name, getattr(pool_kernels, f"{name}_cuda"))
    # the fast lane (whichever lane CI runs): the engine's chunks and buffers drive the kernels
    with host_harness.emulate(harness), minicnn.backend.reference_kernels(False):
        yield


def _forward_backward(fn, arrays):
    ts = [minicnn.Tensor(a, requires_grad=True) for a in arrays]
    out = fn(*ts)
    out.backward(np.random.default_rng(5).standard_normal(out.shape))
    return [out.numpy()] + [t.grad for t in ts]


OP_CASES = {
    "conv2d 3x3 pad 1": (lambda x, w: minicnn.nn.functional.conv2d(x, w, padding=1),
                         [(2, 3, 6, 5), (4, 3, 3, 3)]),
    "conv2d 3x3 stride 2": (lambda x, w: minicnn.nn.functional.conv2d(x, w, stride=2,
                                                                      padding=1),
                            [(2, 4, 7, 7), (5, 4, 3, 3)]),
    "conv2d groups 2": (lambda x, w: minicnn.nn.functional.conv2d(x, w, padding=1, groups=2),
                        [(2, 4, 5, 5), (6, 2, 3, 3)]),
    "conv_transpose2d stride 2": (lambda x, w: minicnn.nn.functional.conv_transpose2d(
        x, w, stride=2, padding=1, output_padding=1), [(2, 3, 4, 4), (3, 2, 3, 3)]),
    "conv -> max_pool2d (channels-last)": (lambda x, w: minicnn.nn.functional.max_pool2d(
        minicnn.nn.functional.conv2d(x, w, padding=1), 3, 2, 1), [(2, 3, 8, 8), (4, 3, 3, 3)]),
    "max_pool2d NCHW ceil_mode": (lambda x: minicnn.nn.functional.max_pool2d(
        x, 2, 2, ceil_mode=True), [(2, 3, 5, 7)]),
    "avg_pool2d count_include_pad=False": (lambda x: minicnn.nn.functional.avg_pool2d(
        x, 3, 2, 1, count_include_pad=False), [(2, 3, 7, 6)]),
    "conv2d dilation 2 (flipped-kernel gx)": (lambda x, w: minicnn.nn.functional.conv2d(
        x, w, padding=2, dilation=2), [(2, 3, 7, 6), (4, 3, 3, 3)]),
    "conv2d dilation (2, 3) stride 2 (col2im gx)": (lambda x, w: minicnn.nn.functional.conv2d(
        x, w, stride=2, padding=1, dilation=(2, 3)), [(2, 4, 9, 9), (5, 4, 3, 3)]),
    "conv_transpose2d dilation 2": (lambda x, w: minicnn.nn.functional.conv_transpose2d(
        x, w, stride=2, padding=1, output_padding=1, dilation=2), [(2, 3, 4, 4), (3, 2, 3, 3)]),
    "conv -> dilated max_pool2d (channels-last)": (lambda x, w: minicnn.nn.functional.max_pool2d(
        minicnn.nn.functional.conv2d(x, w, padding=1), 3, 1, 1, dilation=2),
        [(2, 3, 8, 8), (4, 3, 3, 3)]),
}


@pytest.mark.parametrize("name", list(OP_CASES))
def test_ops_with_the_cuda_kernels_equal_the_cpu_path(name, rng, request):
    fn, shapes = OP_CASES[name]
    arrays = [rng.standard_normal(s) for s in shapes]  # float64
    expected = _forward_backward(fn, arrays)
    request.getfixturevalue("cuda_kernels_on_cpu")
    got = _forward_backward(fn, arrays)
    for k, (g, e) in enumerate(zip(got, expected)):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12,
                                   err_msg=f"{name}: {'output' if k == 0 else f'grad {k}'}")


def test_a_resnet_step_with_the_cuda_kernels_equals_the_cpu_path(rng, request):
    import copy
    minicnn.manual_seed(0)
    model = minicnn.models.cifar_resnet(depth=8, num_classes=3).to(dtype=np.float64)
    twin = copy.deepcopy(model)
    x, y = rng.standard_normal((2, 3, 8, 8)), rng.integers(0, 3, size=2)

    def step(m):
        loss = minicnn.nn.functional.cross_entropy(m(minicnn.Tensor(x)), minicnn.Tensor(y))
        loss.backward()
        return loss.item(), {k: p.grad for k, p in m.named_parameters()}

    loss, grads = step(model)
    request.getfixturevalue("cuda_kernels_on_cpu")
    loss_cuda, grads_cuda = step(twin)
    assert loss_cuda == pytest.approx(loss, rel=1e-12)
    for k, g in grads.items():
        np.testing.assert_allclose(grads_cuda[k], g, rtol=1e-9, atol=1e-12, err_msg=k)
