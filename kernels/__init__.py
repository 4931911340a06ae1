"""The hand-written kernels, installed as ``minicnn.kernels``.

Each kernel exists as a readable NumPy version (the lecture and test reference), a numba twin for
speed on the CPU and, for the GPU, a CUDA C twin in a ``.cu`` file compiled by CuPy.
"""
import pathlib

KERNEL_DIR = pathlib.Path(__file__).resolve().parent


def cuda_sources():
    """The CUDA C sources that ship with the package (``*.cu`` next to this file)."""
    return sorted(KERNEL_DIR.glob("*.cu"))
