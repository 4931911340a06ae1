"""One rule picks a kernel's twin (kernels/dispatch.py), and the reference lane really runs the
references: with every numba twin made to raise, each public entry point still works inside
``backend.reference_kernels()`` and gives the numbers of its fast twin."""
import numpy as np
import pytest

from minicnn import backend
from minicnn.kernels import elementwise as E
from minicnn.kernels import im2col as I
from minicnn.kernels import normalization as B
from minicnn.kernels import pooling as P
from minicnn.kernels.dispatch import choose_twin

#: every numba twin behind a public entry point, by module
NUMBA_TWINS = {
    I: ("im2col_numba", "col2im_numba"),
    P: ("max_pool2d_forward_numba", "max_pool2d_backward_numba", "avg_pool2d_forward_numba",
        "avg_pool2d_backward_numba"),
    B: ("_sum_and_sumsq", "_sum_and_dot", "_normalize", "_combine"),
    E: ("_relu_forward_serial", "_relu_forward_parallel", "_relu_backward_serial",
        "_relu_backward_parallel"),
}


class _GpuArray:
    """Stands in for a CuPy array in dispatch decisions (its type lives in a 'cupy' module)."""
    __module__ = "cupy._stand_in"

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


def test_the_rule():
    x = np.zeros(3, np.float32)
    with backend.reference_kernels(False):
        assert choose_twin(x) == "numba"
        assert choose_twin(x, numba=False) == "reference"
        assert choose_twin(_GpuArray(np.float32)) == "cuda"
        assert choose_twin(_GpuArray(np.float64)) == "cuda"
        assert choose_twin(_GpuArray(np.float16)) == "reference"   # no CUDA twin for it
    with backend.reference_kernels():
        for a in (x, _GpuArray(np.float32)):
            assert choose_twin(a) == "reference"


def _every_entry_point(rng):
    """``{name: result}`` of every public kernel entry point on small float64 inputs, in both
    layouts where a kernel has two (channels-last and NCHW)."""
    out = {}
    x = rng.standard_normal((2, 5, 6, 3))                        # (N, H, W, C)
    cols = I.im2col(x, (3, 3), (2, 1), (1, 1))
    out["im2col"] = cols
    out["col2im"] = I.col2im(rng.standard_normal(cols.shape), x.shape, (3, 3), (2, 1), (1, 1))
    for layout, xn in (("nchw", np.ascontiguousarray(x.transpose(0, 3, 1, 2))),
                       ("nhwc", x.transpose(0, 3, 1, 2))):
        channels_last = P.is_channels_last(xn)
        k, s, p, o = (3, 2), (2, 2), (1, 1), (3, 3)
        y, idx = P.max_pool2d_forward(xn, k, s, p, o, channels_last)
        gy = rng.standard_normal(y.shape)
        out[f"max_pool2d_forward {layout}"] = y
        out[f"max_pool2d_backward {layout}"] = P.max_pool2d_backward(
            gy, idx, xn.shape, k, s, p, channels_last)
        div = P.avg_pool2d_divisors(xn.shape[2:], k, s, p, o, count_include_pad=False)
        out[f"avg_pool2d_forward {layout}"] = P.avg_pool2d_forward(xn, k, s, p, div,
                                                                   channels_last)
        out[f"avg_pool2d_backward {layout}"] = P.avg_pool2d_backward(gy, xn.shape, k, s, p, div,
                                                                     channels_last)
        x3, last = B.as_acb(xn)
        g3 = B.like_acb(rng.standard_normal(xn.shape), last)
        mean = x3.mean(axis=(0, 2))
        c = x3.shape[1]
        scale, shift, a, b, d = (rng.standard_normal(c) for _ in range(5))
        out[f"channel_sums {layout}"] = np.concatenate(B.channel_sums(x3))
        out[f"grad_sums {layout}"] = np.concatenate(B.grad_sums(g3, x3, mean))
        out[f"normalize {layout}"] = B.normalize(x3, mean, scale, shift, np.empty_like(x3))
        out[f"combine {layout}"] = B.combine(g3, x3, mean, a, b, d, np.empty_like(x3))
    big = rng.standard_normal(E._PARALLEL_MIN + 7)                # the parallel twins too
    for name, arr in (("small", x), ("big", big)):
        y = E.relu_forward(arr)
        out[f"relu_forward {name}"] = y
        out[f"relu_backward {name}"] = E.relu_backward(rng.standard_normal(arr.shape), y)
    return out


def test_every_entry_point_takes_the_reference_in_the_reference_lane(monkeypatch):
    with backend.reference_kernels(False):
        fast = _every_entry_point(np.random.default_rng(0))

    def forbidden(*args, **kwargs):
        raise AssertionError("a numba twin ran in the reference lane")

    for module, names in NUMBA_TWINS.items():
        for name in names:
            monkeypatch.setattr(module, name, forbidden)
    with backend.reference_kernels():
        reference = _every_entry_point(np.random.default_rng(0))
    with backend.reference_kernels(False), pytest.raises(AssertionError, match="numba twin"):
        _every_entry_point(np.random.default_rng(0))   # the patch does bite in the fast lane
    assert reference.keys() == fast.keys()
    for name, got in reference.items():
        np.testing.assert_allclose(got, fast[name], rtol=1e-12, atol=1e-12, err_msg=name)


def test_the_lane_follows_the_environment_variable():
    import subprocess
    import sys
    code = ("from minicnn import backend\n"
            "from minicnn.kernels.dispatch import choose_twin\n"
            "import numpy as np\n"
            "print(backend.kernel_lane(), choose_twin(np.zeros(1)))\n")
    env = {"MINICNN_KERNELS": "reference", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    assert out.stdout.split() == ["reference", "reference"]
