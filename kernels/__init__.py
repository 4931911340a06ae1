"""The hand-written kernels, installed as ``minicnn.kernels``.

Each kernel exists as a readable NumPy version (the lecture and test reference), a numba twin for
speed on the CPU and, for the GPU, a CUDA C twin in a ``.cu`` file compiled by CuPy. Which twin
runs is decided in one place, ``kernels/dispatch.py``; output sizes in one place,
``kernels/geometry.py``; every CUDA twin launches through ``cuda_kernels.launch``.

Numba threading policy (the one rule every numba twin follows)
---------------------------------------------------------------

* A kernel the convolution engine splits into chunks of the batch (im2col, col2im, the direct
  one-channel convolution) is **serial and releases the GIL** (``nogil=True``, no
  ``parallel=True``): the engine runs several chunks at once on its own worker threads, each
  followed by a one-thread GEMM (``minicnn/engine/``). A ``prange`` inside would nest a second
  team of threads in the engine's: on 2 cores that made the copies 10-100 times slower, while
  the serial copy of an in-cache chunk already runs close to ``memcpy`` speed.
* A kernel that runs over the whole batch in the calling thread (max and average pooling, the
  batch-norm sums and maps -- with or without the ReLU fused into them --, ReLU and the fused
  residual sum + ReLU from ``elementwise._PARALLEL_MIN`` elements on) is
  **parallel** (``parallel=True``, ``prange`` over images, planes or a fixed number of row
  chunks), so that it uses every core. Its OpenMP threads sleep when idle
  (``OMP_WAIT_POLICY=PASSIVE``, ``minicnn/threads.py``), so they leave the cores to whatever
  runs next.

Measured (2-core AMD EPYC, shared with other jobs: load average 4-7 during the runs, so single
numbers move by tens of percent) with::

    python benchmarks/bench_threading.py --rounds 3 --steps 10

which compares each prange kernel with the same kernel compiled serially, alone at the nets'
sizes (batch 128, channels-last) and inside training steps (batch 128, median of 10 steps, the
two variants in alternating processes). serial / prange time, two runs:

==========================================  ===========  ===========
case                                        run 1        run 2
==========================================  ===========  ===========
max pool fwd, LeNet 128x6x28x28             1.62         1.11
max pool bwd, LeNet 128x6x28x28             1.12         1.23
max pool fwd/bwd, LeNet 128x16x10x10        0.99 / 0.93  1.06 / 1.15
batch norm fwd / bwd, 128x16x32x32          1.46 / 1.41  1.11 / 0.99
batch norm fwd / bwd, 128x32x16x16          0.93 / 1.13  0.99 / 1.13
batch norm fwd / bwd, 128x64x8x8            0.86 / 1.03  0.86 / 0.90
ReLU fwd+bwd, 128x16x32x32                  0.34         0.63
LeNet-5 training step                       0.79         1.14
ResNet-20 training step                     1.01         1.26
==========================================  ===========  ===========

So: at the largest activations of both nets prange is 1.1-1.6 times faster alone; at the
smallest ones (ResNet-20's last stage) the two are within noise, serial slightly ahead; in a
whole step neither wins in both runs (0.79-1.26). Nothing measured justifies changing the
split above, and serial everywhere would give up the second core on the biggest pooling and
batch-norm passes. NOTE: ReLU's prange twin lost alone in both runs on this busy machine
(0.34-0.63): its threshold is a candidate to re-measure on an idle one.
"""
import pathlib

KERNEL_DIR = pathlib.Path(__file__).resolve().parent


def cuda_sources():
    """The CUDA C sources that ship with the package (``*.cu`` next to this file)."""
    return sorted(KERNEL_DIR.glob("*.cu"))
