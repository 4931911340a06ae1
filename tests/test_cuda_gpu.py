"""The GPU path on a real GPU: every test here carries the ``gpu`` marker and is SKIPPED, with the
reason ``minicnn.cuda`` gives, where no CUDA GPU works (so ``pytest -ra`` lists them; they never
vanish silently). Run them with ``pytest -m gpu`` (``benchmarks/gpu_all.sh`` does, on a lent GPU).

* each CUDA kernel on the GPU equals the NumPy reference (float32 and float64);
* every op of every ``CASES`` list (tests/optest.py): output and input gradients on the GPU equal
  the CPU's, in float32 and float64, and stay on the GPU;
* a few SGD steps of a small ResNet (CIFAR ResNet-8 with batch norm) on both devices from the same
  weights give the same losses and weights;
* device handling: ``Tensor.to``, ``Module.to``, ``.numpy()``, the DataLoader's device, mixed
  devices rejected, ``MINICNN_DEVICE=auto``.
"""
import copy

import numpy as np
import pytest

import minicnn as mc
import minicnn.nn as nn
import minicnn.nn.functional as F
import optest
from minicnn import backend
from minicnn.kernels import im2col as im2col_kernels
from minicnn.kernels import pooling as pool_kernels
from minicnn.ops.pooling import pool_geometry

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not mc.cuda.is_available(),
                       reason=f"no usable CUDA GPU: {mc.cuda.why_unavailable()}"),
]

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


@pytest.fixture
def cp():
    """CuPy, with the kernels in the fast lane (whichever lane the suite runs in): the kernel
    tests below are about the CUDA twins."""
    import cupy
    with backend.reference_kernels(False):
        yield cupy


# ---------------------------------------------------------------------------------------------
# Kernels on the GPU vs. the NumPy references
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, kernel, stride, padding", [
    ((2, 5, 6, 3), (3, 3), (1, 1), (1, 1)), ((3, 9, 8, 4), (3, 2), (3, 2), (1, 0)),
    ((4, 32, 32, 16), (3, 3), (2, 2), (1, 1)), ((2, 7, 7, 1), (5, 5), (1, 1), (2, 2))])
def test_im2col_col2im_on_gpu_equal_the_reference(cp, rng, shape, kernel, stride, padding,
                                                   dtype):
    x = rng.standard_normal(shape).astype(dtype)
    cols = im2col_kernels.im2col(cp.asarray(x), kernel, stride, padding)
    expected = im2col_kernels.im2col_reference(x, kernel, stride, padding)
    np.testing.assert_array_equal(cols.get(), expected)  # a copy: exact
    g = rng.standard_normal(expected.shape).astype(dtype)
    gx = im2col_kernels.col2im(cp.asarray(g), shape, kernel, stride, padding)
    np.testing.assert_allclose(gx.get(), im2col_kernels.col2im_reference(g, shape, kernel,
                                                                         stride, padding),
                               **TOL[dtype])


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, kernel, stride, padding, ceil_mode", [
    ((2, 3, 6, 7), 2, None, 0, False), ((1, 2, 7, 7), 3, 2, 1, False),
    ((2, 4, 5, 8), (3, 2), (2, 3), (1, 1), True), ((8, 16, 32, 32), 3, 2, 1, False)])
def test_pooling_kernels_on_gpu_equal_the_reference(cp, rng, shape, kernel, stride, padding,
                                                    ceil_mode, dtype, channels_last):
    def layout(a):
        if channels_last:
            return a.transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2)
        return np.ascontiguousarray(a)

    x = layout(rng.integers(-4, 4, size=shape).astype(dtype))  # ties: the first max must win
    k, s, p, out = pool_geometry("max_pool2d", shape, kernel, stride, padding, ceil_mode)
    y_ref, idx_ref = pool_kernels.max_pool2d_forward_reference(x, k, s, p, out)
    xg = cp.asarray(x) if not channels_last else \
        cp.asarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    y, idx = pool_kernels.max_pool2d_forward(xg, k, s, p, out, channels_last)
    np.testing.assert_array_equal(y.get(), y_ref)
    np.testing.assert_array_equal(idx.get(), idx_ref)
    gy = rng.standard_normal(y_ref.shape).astype(dtype)
    gx = pool_kernels.max_pool2d_backward(cp.asarray(gy), idx, shape, k, s, p, channels_last)
    np.testing.assert_allclose(
        gx.get(), pool_kernels.max_pool2d_backward_reference(gy, idx_ref, shape, k, s, p),
        **TOL[dtype])
    for count_include_pad in (True, False):
        div = pool_kernels.avg_pool2d_divisors(shape[2:], k, s, p, out, count_include_pad)
        y = pool_kernels.avg_pool2d_forward(xg, k, s, p, div, channels_last)
        np.testing.assert_allclose(
            y.get(), pool_kernels.avg_pool2d_forward_reference(x, k, s, p, out, div),
            **TOL[dtype])
        gx = pool_kernels.avg_pool2d_backward(cp.asarray(gy), shape, k, s, p, div, channels_last)
        np.testing.assert_allclose(
            gx.get(), pool_kernels.avg_pool2d_backward_reference(gy, shape, k, s, p, div),
            **TOL[dtype])


# ---------------------------------------------------------------------------------------------
# Every op: GPU vs. CPU, outputs and gradients, float32 and float64
# ---------------------------------------------------------------------------------------------

def _run(case, arrays, device, dtype):
    mc.manual_seed(0)  # dropout masks come from minicnn's (CPU) generator: the same on both
    ts, grads = optest._tensors(case, arrays, dtype, device=device)
    outs = optest.as_tuple(case.fn(*ts))
    optest._backward(outs, optest._upstream(outs, dtype))
    return outs, {i: ts[i].grad for i in grads}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", optest.collect_cases(), ids=str)
def test_every_op_on_gpu_equals_the_cpu(case, dtype):
    arrays = case.arrays()
    cpu_outs, cpu_grads = _run(case, arrays, "cpu", dtype)
    outs, grads = _run(case, arrays, "cuda", dtype)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else TOL[np.float64]
    for k, (o, c) in enumerate(zip(outs, cpu_outs)):
        assert o.device == "cuda", f"{case.name}: output {k} left the GPU"
        assert o.dtype == c.dtype
        np.testing.assert_allclose(o.numpy(), c.numpy(), **tol,
                                   err_msg=f"{case.name}: output {k} differs from the CPU")
    for i, g in grads.items():
        assert backend.device_of(g) == "cuda", f"{case.name}: gradient {i} left the GPU"
        np.testing.assert_allclose(backend.to_numpy(g), cpu_grads[i], **tol,
                                   err_msg=f"{case.name}: gradient {i} differs from the CPU")


# ---------------------------------------------------------------------------------------------
# Training: a small ResNet, a few steps on both devices
# ---------------------------------------------------------------------------------------------

def _train(model, device, x, y, steps):
    model = model.to(device)
    opt = mc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    xt, yt = mc.Tensor(x, device=device), mc.Tensor(y, device=device)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, {k: backend.to_numpy(v) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-7), (np.float32, 2e-3)])
def test_resnet_training_steps_match_between_gpu_and_cpu(rng, dtype, rtol):
    mc.manual_seed(3)
    model = mc.models.cifar_resnet(depth=8, num_classes=10).to(dtype=dtype)
    twin = copy.deepcopy(model)
    x = rng.standard_normal((8, 3, 16, 16)).astype(dtype)
    y = rng.integers(0, 10, size=8)
    cpu_losses, cpu_weights = _train(model, "cpu", x, y, steps=4)
    gpu_losses, gpu_weights = _train(twin, "cuda", x, y, steps=4)
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=rtol)
    assert cpu_losses[-1] < cpu_losses[0]  # it learns something (a broken backward would not)
    for key, value in cpu_weights.items():
        np.testing.assert_allclose(gpu_weights[key], value, rtol=rtol, atol=rtol * 1e-2,
                                   err_msg=f"{key} after 4 steps differs between GPU and CPU")


# ---------------------------------------------------------------------------------------------
# Device handling
# ---------------------------------------------------------------------------------------------

def test_tensor_and_module_move_between_devices(cp, rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    t = mc.Tensor(a, requires_grad=True).to("cuda")
    assert t.device == "cuda" and isinstance(t.data, cp.ndarray)
    assert isinstance(t.numpy(), np.ndarray) and np.array_equal(t.numpy(), a)
    layer = nn.Conv2d(2, 3, 3, padding=1).to("cuda")
    assert all(p.device == "cuda" for p in layer.parameters())
    out = layer(mc.Tensor(rng.standard_normal((1, 2, 5, 5)).astype(np.float32), device="cuda"))
    assert out.device == "cuda"
    assert all(isinstance(v, np.ndarray) for v in layer.state_dict().values())
    assert all(p.device == "cpu" for p in layer.to("cpu").parameters())


def test_mixed_devices_fail_clearly(rng):
    a = mc.Tensor(rng.standard_normal(3).astype(np.float32), device="cuda")
    b = mc.Tensor(rng.standard_normal(3).astype(np.float32))
    with pytest.raises(Exception, match="different devices"):
        a + b


def test_dataloader_places_batches_on_the_gpu():
    from minicnn.data.dataset import ArrayDataset
    images = np.zeros((5, 1, 4, 4), np.uint8)
    data = ArrayDataset(images, np.arange(5))
    x, y = next(iter(mc.data.DataLoader(data, batch_size=2, device="cuda")))
    assert x.device == "cuda" and y.device == "cuda"


def test_auto_device_picks_the_gpu(monkeypatch):
    monkeypatch.setenv("MINICNN_DEVICE", "auto")
    assert backend.default_device() == "cuda"
