"""Array modules and devices.

Every tensor holds one array: a ``numpy.ndarray`` on the CPU or a ``cupy.ndarray`` on an NVIDIA
GPU. Ops are written once against ``xp = get_array_module(x)``; only the hand-written kernels in
``kernels/`` differ per device.

Device names: ``"cpu"``, ``"cuda"`` (``"cuda:0"`` is accepted), and ``"auto"``, which resolves to
``"cuda"`` when :func:`minicnn.cuda.is_available` and to ``"cpu"`` otherwise. The environment
variable ``MINICNN_DEVICE=cpu|cuda|auto`` sets the default that :func:`default_device` returns.

Kernel lanes: ``"fast"`` (the default) runs the numba/CUDA twins and the engine's chunks, buffers
and threads; ``"reference"`` runs every op on the plain NumPy reference kernels, the lecture's
version, with no numba, no chunking and no threads. ``MINICNN_KERNELS=reference`` sets it for a
process; :func:`reference_kernels` for a block of code.
"""
import contextlib
import os

import numpy as np

from minicnn import cuda
from minicnn import threads as _threads

DEVICES = ("cpu", "cuda", "auto")


def get_array_module(*arrays):
    """``cupy`` if any argument is a CuPy array, else ``numpy``. Never imports CuPy itself."""
    for a in arrays:
        if type(a).__module__.startswith("cupy"):
            import cupy  # lazy: CuPy is optional and heavy; a CuPy array means it is imported
            return cupy
    return np


def device_of(array):
    """``"cuda"`` for a CuPy array, ``"cpu"`` for anything else."""
    return "cuda" if type(array).__module__.startswith("cupy") else "cpu"


def normalize_device(device):
    """Check a device name and resolve ``"auto"``; returns ``"cpu"`` or ``"cuda"``.

    Raises a clear error for an unknown name or for ``"cuda"`` on a machine without a usable GPU.
    """
    if device is None:
        return default_device()
    name = str(device).lower()
    if name.startswith("cuda:"):
        name = "cuda"
    if name not in DEVICES:
        raise ValueError(f"unknown device {device!r}: expected one of 'cpu', 'cuda', 'auto'")
    if name == "auto":
        return "cuda" if cuda.is_available() else "cpu"
    if name == "cuda" and not cuda.is_available():
        raise RuntimeError(
            "device 'cuda' was asked for but no usable GPU was found "
            f"({cuda.why_unavailable()}). Install CuPy for your CUDA version "
            "(pip install 'minicnn[gpu]') on a machine with an NVIDIA GPU, or use device='cpu'.")
    return name


def default_device():
    """The device named by ``$MINICNN_DEVICE`` (default ``auto``), resolved to cpu or cuda."""
    env = os.environ.get("MINICNN_DEVICE", "auto").strip() or "auto"
    if env.lower() not in DEVICES and not env.lower().startswith("cuda:"):
        raise ValueError(f"MINICNN_DEVICE={env!r} is not a device: use cpu, cuda or auto")
    return normalize_device(env)


def to_device(array, device):
    """Return ``array`` on ``device`` ("cpu" or "cuda"); no copy when it is already there."""
    device = normalize_device(device)
    if device == device_of(array):
        return array
    if device == "cpu":
        return array.get()
    import cupy  # lazy (optional, heavy); normalize_device made sure a GPU works
    return cupy.asarray(array)


def to_numpy(array):
    """A NumPy array with the same values (copies from the GPU when needed)."""
    return array.get() if device_of(array) == "cuda" else np.asarray(array)


KERNEL_LANES = ("fast", "reference")


def _lane_from_environment():
    lane = os.environ.get("MINICNN_KERNELS", "fast").strip().lower() or "fast"
    if lane not in KERNEL_LANES:
        raise ValueError(f"MINICNN_KERNELS={lane!r} is not a kernel lane: use fast or reference")
    return lane


_kernel_lane = _lane_from_environment()


def kernel_lane():
    """The kernel lane ops run on now: ``"fast"`` or ``"reference"``."""
    return _kernel_lane


def reference_lane():
    """True when every op must run its plain NumPy reference kernel (no numba, chunks, threads)."""
    return _kernel_lane == "reference"


@contextlib.contextmanager
def reference_kernels(enabled=True):
    """Run the block on the plain NumPy reference kernels (``enabled=False``: on the fast ones).

        with mc.reference_kernels():
            loss = F.cross_entropy(model(x), y)   # the lecture's im2col, col2im, pooling loops
            loss.backward()

    The lane is process-wide (not per thread): the engine's worker threads follow it too.
    """
    global _kernel_lane
    previous, _kernel_lane = _kernel_lane, ("reference" if enabled else "fast")
    try:
        yield
    finally:
        _kernel_lane = previous


def scatter_add(xp, target, index, values):
    """``target[index] += values`` with repeated indices summed (unbuffered), on either device."""
    if xp is np:
        np.add.at(target, index, values)
    else:
        import cupyx  # lazy: optional, heavy; target is a CuPy array, so CuPy is loaded
        cupyx.scatter_add(target, index, values)


_threads.apply()  # the CPU threading policy (minicnn/threads.py), applied once
