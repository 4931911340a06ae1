"""The two kernel lanes: the fast engine and the plain NumPy reference (the lecture's version).

``MINICNN_KERNELS=reference`` or ``with mc.reference_kernels():`` runs every op on the reference
kernels: im2col + one GEMM forward, two GEMMs + col2im backward, the whole batch at once, with
no numba, no chunks, no threads. The two lanes must compute the same numbers:

* a few SGD steps of ResNet-20 give the same losses and parameter gradients in both lanes;
* each convolution, pooling and batch-norm op gives the same output and gradients;
* the environment variable selects the lane, and a wrong value is a clear error.

Tolerances. The lanes add the same products in different orders (chunks of the batch, partial
weight gradients summed per chunk, the input gradient as a flipped-kernel convolution instead of
col2im, BLAS blocking that depends on the matrix shapes). In float32 (machine epsilon 1.2e-7)
one reordered sum of K terms differs by about sqrt(K) * eps relative to its size; the largest
sums here are batch-norm and weight-gradient sums over N*H*W = 8192 terms (about 1e-5). So the
gradients of the two lanes are compared at the SAME weights at every step (both lanes' backward
from one set of parameters, then one SGD step with the fast lane's gradients): they stay below
2e-6 relative to each gradient's largest entry, and the test allows 5e-5 (far below what a real
bug does: a wrong sign, a dropped term or a misplaced pixel changes a gradient by O(1)).
NOTE: two runs that each follow their own lane's updates drift apart faster than rounding:
with batch norm over 8 images every step feeds the difference into the next, and on NumPy 2.2's
OpenBLAS (Python 3.10) ResNet-20's first-conv gradient differed by 2e-3 relative after one step.
Their losses are compared too, at 1e-4. The single ops are checked in float64, where
reordering costs about 1e-15 and 1e-10 is strict.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import minicnn as mc
import minicnn.nn.functional as F
from minicnn import backend
from minicnn.engine import parallel
from minicnn.engine.winograd import conv_algorithm
from minicnn.engine.workspace import release_workspace, workspace
from minicnn.kernels import im2col as im2col_kernels


def _resnet20_batch(seed):
    mc.manual_seed(seed)
    model = mc.models.resnet20(num_classes=10)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((8, 3, 32, 32)).astype(np.float32)
    return model, mc.Tensor(x), mc.Tensor(rng.integers(0, 10, 8))


def _loss_and_gradients(model, x, y, reference):
    # im2col in the fast lane: Winograd rounds differently, and one pre-ReLU value within
    # rounding of 0 then flips its ReLU (3 seeds of 10); tests/test_winograd.py bounds Winograd
    with mc.reference_kernels(reference), conv_algorithm("im2col"):
        model.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
    return loss.item(), {name: p.grad.copy() for name, p in model.named_parameters()}


def test_resnet20_gives_the_same_gradients_in_both_lanes_at_every_step():
    model, x, y = _resnet20_batch(seed=0)
    optimizer = mc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for step in range(3):
        ref_loss, ref = _loss_and_gradients(model, x, y, reference=True)
        fast_loss, fast = _loss_and_gradients(model, x, y, reference=False)
        assert ref_loss == pytest.approx(fast_loss, rel=1e-5)
        assert fast.keys() == ref.keys()
        for name in fast:
            scale = np.abs(ref[name]).max()
            np.testing.assert_allclose(ref[name], fast[name], rtol=0, atol=5e-5 * scale,
                                       err_msg=f"step {step}: gradient of {name}")
        optimizer.step()  # with the fast lane's gradients, the last computed


def test_resnet20_trains_to_the_same_losses_in_both_lanes():
    losses = {}
    for reference in (False, True):
        model, x, y = _resnet20_batch(seed=0)
        optimizer = mc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        losses[reference] = []
        for _ in range(3):
            loss, _ = _loss_and_gradients(model, x, y, reference)
            losses[reference].append(loss)
            optimizer.step()
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-4)


# ---- every conv, pooling and batch-norm op -------------------------------------------------------

def _conv(stride, padding, groups=1, dilation=1):
    return lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups)


OPS = {  # name: (function of the tensors, input shapes); the inputs are float64 normals
    "conv2d 3x3 p1 (flipped-kernel gx)": (_conv(1, 1), [(3, 4, 7, 6), (6, 4, 3, 3), (6,)]),
    "conv2d 3x3 s2 (col2im gx)": (_conv(2, 1), [(3, 4, 9, 8), (6, 4, 3, 3), (6,)]),
    "conv2d 1x1 (pointwise)": (_conv(1, 0), [(3, 4, 5, 5), (6, 4, 1, 1), (6,)]),
    "conv2d one channel (direct)": (_conv(1, 2), [(3, 1, 8, 8), (6, 1, 5, 5), (6,)]),
    "conv2d groups=2": (_conv(1, 1, groups=2), [(2, 4, 6, 6), (6, 2, 3, 3), (6,)]),
    "conv2d padding >= kernel": (_conv(1, 3), [(2, 3, 5, 5), (2, 3, 3, 3), (2,)]),
    "conv_transpose2d s2": (lambda x, w, b: F.conv_transpose2d(x, w, b, 2, 1, 1),
                            [(2, 4, 5, 5), (4, 3, 3, 3), (3,)]),
    "conv_transpose2d s1 groups=2": (lambda x, w, b: F.conv_transpose2d(x, w, b, 1, 1, 0, 2),
                                     [(2, 4, 5, 5), (4, 3, 3, 3), (6,)]),
    "conv2d dilation 2 (flipped-kernel gx)": (_conv(1, 2, dilation=2),
                                              [(3, 4, 8, 7), (6, 4, 3, 3), (6,)]),
    "conv2d dilation (2, 3) s2 groups=2 (col2im gx)": (_conv(2, 1, 2, (2, 3)),
                                                       [(2, 4, 10, 11), (6, 2, 3, 3), (6,)]),
    "conv2d one channel dilation 3": (_conv(1, 3, dilation=3), [(2, 1, 8, 8), (4, 1, 3, 3),
                                                                (4,)]),
    "conv_transpose2d s2 dilation 2": (lambda x, w, b: F.conv_transpose2d(x, w, b, 2, 1, 1, 1, 2),
                                       [(2, 4, 5, 5), (4, 3, 3, 3), (3,)]),
    "conv2d unbatched": (_conv(1, 1), [(4, 6, 5), (3, 4, 3, 3), (3,)]),
    "max_pool2d": (lambda x: F.max_pool2d(x, 3, 2, 1), [(2, 3, 9, 9)]),
    "max_pool2d dilation 2": (lambda x: F.max_pool2d(x, 3, 1, 1, dilation=2), [(2, 3, 9, 8)]),
    "max_pool2d dilation (2, 3) ceil_mode": (lambda x: F.max_pool2d(x, 2, 2, 1, (2, 3), True),
                                             [(2, 3, 9, 10)]),
    "max_pool2d unbatched": (lambda x: F.max_pool2d(x, 2), [(3, 6, 6)]),
    "avg_pool2d unbatched": (lambda x: F.avg_pool2d(x, 3, 1, 1), [(3, 5, 6)]),
    "max_pool2d ceil_mode": (lambda x: F.max_pool2d(x, 2, 2, 0, ceil_mode=True), [(2, 3, 7, 7)]),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), [(2, 3, 9, 9)]),
    "adaptive_avg_pool2d": (lambda x: F.adaptive_avg_pool2d(x, (3, 2)), [(2, 3, 7, 5)]),
    "global average pool": (lambda x: F.adaptive_avg_pool2d(x, 1), [(2, 3, 4, 4)]),
    "batch_norm training": (lambda x, w, b: F.batch_norm(x, np.zeros(3), np.ones(3), w, b, True),
                            [(4, 3, 5, 5), (3,), (3,)]),
    "batch_norm evaluation": (lambda x, w, b: F.batch_norm(x, np.full(3, 0.1), np.full(3, 2.0),
                                                           w, b, False),
                              [(4, 3, 5, 5), (3,), (3,)]),
}


def _channels_last(a):
    """Inputs as the convolutions hand them on: NCHW-shaped views of channels-last memory."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2) if a.ndim == 4 \
        else a


def _run(fn, arrays, reference):
    with mc.reference_kernels(reference):
        tensors = [mc.Tensor(a, requires_grad=True) for a in arrays]
        y = fn(*tensors)
        gy = np.cos(np.arange(y.size)).reshape(y.shape)
        y.backward(gy)
        return [y.numpy()] + [t.grad for t in tensors]


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("name", list(OPS))
def test_each_op_gives_the_same_output_and_gradients_in_both_lanes(name, layout):
    fn, shapes = OPS[name]
    rng = np.random.default_rng(list(OPS).index(name))
    # distinct values (a shuffled grid): no ties in max pooling, in either lane
    arrays = [rng.permutation(np.prod(s)).reshape(s) / np.prod(s) - 0.5 for s in shapes]
    if layout == "channels_last":
        arrays = [_channels_last(a) for a in arrays]
    fast, ref = _run(fn, arrays, False), _run(fn, arrays, True)
    for what, f, r in zip(["output"] + [f"gradient {i}" for i in range(len(arrays))], fast, ref):
        assert f.shape == r.shape and f.dtype == r.dtype == np.float64
        np.testing.assert_allclose(r, f, rtol=1e-10, atol=1e-12, err_msg=f"{name}: {what}")


def test_the_reference_lane_uses_no_engine_machinery(monkeypatch):
    """No numba im2col/col2im, no worker threads, no workspace buffer: the lecture's version."""
    def forbidden(*args, **kwargs):
        raise AssertionError("the reference lane called the fast engine")

    monkeypatch.setattr(im2col_kernels, "im2col", forbidden)
    monkeypatch.setattr(im2col_kernels, "col2im", forbidden)
    monkeypatch.setattr(parallel.parallel, "run", forbidden)
    release_workspace()
    for name in ("conv2d 3x3 p1 (flipped-kernel gx)", "conv2d 3x3 s2 (col2im gx)",
                 "conv2d one channel (direct)", "conv_transpose2d s2"):
        fn, shapes = OPS[name]
        _run(fn, [np.ones(s) for s in shapes], True)
    assert workspace.total_bytes() == 0


def test_the_context_manager_restores_the_lane():
    before = backend.kernel_lane()
    with mc.reference_kernels():
        assert backend.reference_lane() and backend.kernel_lane() == "reference"
        with mc.reference_kernels(False):
            assert backend.kernel_lane() == "fast"
        assert backend.kernel_lane() == "reference"
    assert backend.kernel_lane() == before


# ---- the environment variable --------------------------------------------------------------------

def _python(code, lane):
    env = dict(os.environ, MINICNN_KERNELS=lane)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)


def test_the_environment_variable_selects_the_reference_lane():
    code = ("import numpy as np, minicnn as mc, minicnn.nn.functional as F\n"
            "from minicnn.kernels import im2col as K\n"
            "def forbidden(*a, **k): raise AssertionError('fast kernel called')\n"
            "K.im2col = K.col2im = forbidden\n"
            "x = mc.Tensor(np.ones((2, 3, 6, 6), np.float32), requires_grad=True)\n"
            "w = mc.Tensor(np.ones((4, 3, 3, 3), np.float32), requires_grad=True)\n"
            "F.conv2d(x, w, padding=1).sum().backward()\n"
            "print(mc.backend.kernel_lane(), float(x.grad.sum()))")
    out = _python(code, "reference")
    assert out.returncode == 0, out.stderr
    lane, total = out.stdout.split()
    # each pixel sits in 2 (edge) or 3 windows per axis: 2+3+3+3+3+2 = 16 per axis, 4 filters
    assert lane == "reference" and float(total) == 2 * 3 * 4 * 16 * 16
    assert _python("import minicnn; print(minicnn.backend.kernel_lane())",
                   " Fast ").stdout.strip() == "fast"


def test_a_wrong_lane_name_is_a_clear_error():
    out = _python("import minicnn", "turbo")
    assert out.returncode != 0
    assert "MINICNN_KERNELS='turbo' is not a kernel lane: use fast or reference" in out.stderr
