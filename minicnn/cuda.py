"""Is there a usable NVIDIA GPU?

``import cupy`` succeeds on machines without a GPU or driver, so importing is not enough: we ask
the CUDA runtime for a device and run one tiny computation on it. Nothing here ever raises.

How a CUDA kernel maps to GPU threads is shown by ``minicnn.kernels.launch_view.show_kernel``
(it needs no GPU): the kernels sit above this module, which imports nothing of minicnn.
"""
import functools


@functools.lru_cache(maxsize=1)
def _probe():
    """(True, "") when a GPU works, else (False, reason). Cached: the answer cannot change."""
    try:
        import cupy  # lazy: CuPy is an optional, heavy dependency (seconds to import)
    except Exception as exc:  # not installed, or a broken install
        return False, f"CuPy is not importable: {type(exc).__name__}: {exc}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
        if count < 1:
            return False, "the CUDA runtime reports no device"
        value = float((cupy.arange(4, dtype=cupy.float32) * 2).sum())
        if value != 12.0:
            return False, f"a test computation on the GPU gave {value}, expected 12.0"
        return True, ""
    except Exception as exc:  # no driver, no device, or an incompatible CUDA runtime
        return False, f"CuPy imports but the GPU does not work: {type(exc).__name__}: {exc}"


def is_available():
    """True when CuPy imports and a CUDA device runs a computation. Never raises."""
    try:
        return _probe()[0]
    except Exception:
        return False


def why_unavailable():
    """A sentence saying why :func:`is_available` is False (empty when it is True)."""
    try:
        return _probe()[1]
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def device_count():
    """The number of usable CUDA devices (0 without a working GPU)."""
    if not is_available():
        return 0
    import cupy  # lazy, as in _probe
    return cupy.cuda.runtime.getDeviceCount()
