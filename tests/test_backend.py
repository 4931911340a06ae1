"""Devices without a GPU: ``minicnn.cuda`` never raises, device names resolve or fail clearly."""
import sys
import types

import numpy as np
import pytest

import minicnn as mc
from minicnn import backend, cuda


@pytest.fixture
def fresh_probe():
    """Forget the cached GPU probe before and after the test (the real answer comes back)."""
    cuda._probe.cache_clear()
    yield
    cuda._probe.cache_clear()


@pytest.fixture
def no_gpu(monkeypatch, fresh_probe):
    """Pretend there is no usable GPU, whatever this machine has."""
    monkeypatch.setitem(sys.modules, "cupy", None)  # ``import cupy`` raises ImportError
    return monkeypatch


def _has_working_gpu():
    cuda._probe.cache_clear()
    try:
        return cuda.is_available()
    finally:
        cuda._probe.cache_clear()


# ---- is_available never raises ---------------------------------------------------------------

def test_is_available_here_is_a_bool_and_gives_a_reason(fresh_probe):
    available = cuda.is_available()
    assert isinstance(available, bool)
    if not available:
        assert cuda.why_unavailable()
        assert cuda.device_count() == 0


def test_without_cupy_is_available_is_false(no_gpu):
    assert cuda.is_available() is False
    assert "not importable" in cuda.why_unavailable()
    assert cuda.device_count() == 0


@pytest.mark.parametrize("error", [ImportError("libcudart.so.12: cannot open shared object"),
                                   OSError("broken install"), RuntimeError("weird")])
def test_cupy_whose_import_raises(monkeypatch, fresh_probe, error):
    class Finder:  # a meta-path finder that makes ``import cupy`` raise ``error``
        def find_spec(self, name, path=None, target=None):
            if name == "cupy":
                raise error
            return None

    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Finder()] + sys.meta_path)
    assert cuda.is_available() is False
    assert type(error).__name__ in cuda.why_unavailable()


def _broken_cupy(get_device_count):
    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(
        getDeviceCount=get_device_count))
    fake.float32 = np.float32
    fake.arange = lambda *a, **k: np.arange(*a, **k)
    return fake


def _raise(exc):
    def f(*args, **kwargs):
        raise exc
    return f


@pytest.mark.parametrize("count, expected", [
    (_raise(RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")),
     "does not work"),
    (_raise(OSError("CUDA driver version is insufficient")), "does not work"),
    (lambda: 0, "no device"),
], ids=["no-device", "old-driver", "zero-devices"])
def test_cupy_present_but_broken(monkeypatch, fresh_probe, count, expected):
    monkeypatch.setitem(sys.modules, "cupy", _broken_cupy(count))
    assert cuda.is_available() is False
    assert expected in cuda.why_unavailable()
    assert cuda.device_count() == 0


def test_cupy_that_computes_wrong_is_not_usable(monkeypatch, fresh_probe):
    fake = _broken_cupy(lambda: 1)
    fake.arange = lambda *a, **k: np.zeros(4, np.float32)  # a "GPU" that answers 0
    monkeypatch.setitem(sys.modules, "cupy", fake)
    assert cuda.is_available() is False
    assert "expected 12.0" in cuda.why_unavailable()


def test_is_available_swallows_even_a_failing_probe(monkeypatch):
    monkeypatch.setattr(cuda, "_probe", _raise(SystemError("boom")))
    assert cuda.is_available() is False
    assert "boom" in cuda.why_unavailable()


def test_the_answer_is_cached(monkeypatch, fresh_probe):
    monkeypatch.setitem(sys.modules, "cupy", None)
    assert cuda.is_available() is False
    monkeypatch.setitem(sys.modules, "cupy", _broken_cupy(lambda: 1))  # would say True now
    assert cuda.is_available() is False


# ---- device names ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["cpu", "CPU", "auto", " auto ", ""])
def test_minicnn_device_cpu_and_auto_resolve_to_cpu_without_a_gpu(no_gpu, name):
    no_gpu.setenv("MINICNN_DEVICE", name)
    assert backend.default_device() == "cpu"


def test_default_device_without_the_variable(no_gpu):
    no_gpu.delenv("MINICNN_DEVICE", raising=False)
    assert backend.default_device() == "cpu"
    assert backend.normalize_device(None) == "cpu"


@pytest.mark.parametrize("name", ["cpu", "auto", "AUTO"])
def test_normalize_device(no_gpu, name):
    assert backend.normalize_device(name) == "cpu"


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "CUDA"])
def test_asking_for_cuda_without_a_gpu_says_how_to_fix_it(no_gpu, name):
    with pytest.raises(RuntimeError) as info:
        backend.normalize_device(name)
    message = str(info.value)
    assert "no usable GPU" in message
    assert "pip install" in message and "device='cpu'" in message
    assert "not importable" in message  # and why


def test_minicnn_device_cuda_without_a_gpu_is_a_clear_error(no_gpu):
    no_gpu.setenv("MINICNN_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match="pip install"):
        backend.default_device()


@pytest.mark.parametrize("name", ["gpu", "tpu", "cuda0", "mps"])
def test_unknown_device_names_are_a_value_error(name):
    with pytest.raises(ValueError, match="cpu.*cuda.*auto"):
        backend.normalize_device(name)


def test_unknown_minicnn_device_is_a_value_error(monkeypatch):
    monkeypatch.setenv("MINICNN_DEVICE", "gpu")
    with pytest.raises(ValueError, match="MINICNN_DEVICE"):
        backend.default_device()


# ---- tensors and devices -------------------------------------------------------------------------

@pytest.mark.parametrize("move", [lambda t: t.to("cuda"), lambda t: t.cuda(),
                                  lambda t: mc.Tensor(t.data, device="cuda")],
                         ids=["to", "cuda()", "constructor"])
def test_moving_a_tensor_to_cuda_without_a_gpu_is_a_clear_error(no_gpu, move):
    x = mc.Tensor(np.ones(3, np.float32), requires_grad=True)
    with pytest.raises(RuntimeError, match="no usable GPU"):
        move(x)


def test_cpu_tensors_report_their_device():
    x = mc.Tensor([1.0], device="cpu")
    assert x.device == "cpu" and x.xp is np
    assert x.to("cpu") is x and x.cpu() is x


def test_array_module_helpers_on_numpy():
    a = np.ones(3)
    assert backend.get_array_module(a, 1.0) is np
    assert backend.device_of(a) == "cpu"
    assert backend.to_device(a, "cpu") is a
    assert backend.to_numpy(a) is a


def test_scatter_add_sums_repeats_on_the_cpu():
    target = np.zeros(3)
    backend.scatter_add(np, target, np.array([0, 2, 0]), np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(target, [4.0, 0.0, 2.0])


def test_the_device_fixture_runs_cuda_only_with_a_gpu(device):
    """The ``cuda`` run of this test is skipped with a reason wherever no GPU works."""
    x = mc.Tensor(np.arange(3, dtype=np.float32), device=device, requires_grad=True)
    assert x.device == device
    (x * x).sum().backward()
    np.testing.assert_array_equal(backend.to_numpy(x.grad), [0.0, 2.0, 4.0])


@pytest.mark.skipif(_has_working_gpu(), reason="this machine has a working GPU")
def test_this_machine_really_has_no_gpu():
    """Without a GPU, ``cuda`` runs must be skipped, not silently dropped: conftest's reason."""
    import conftest
    cuda_param = conftest.DEVICES[1]
    assert cuda_param.values == ("cuda",)
    skips = [m for m in cuda_param.marks if m.name == "skipif"]
    assert skips and skips[0].args[0] is True and "no usable CUDA GPU" in skips[0].kwargs["reason"]
    assert any(m.name == "gpu" for m in cuda_param.marks)
