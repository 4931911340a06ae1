"""Winograd convolution on the CPU: which 3x3 layers take it, and how it runs fast.

The algorithm and its matrices are in ``kernels/winograd.py`` (Lavin and Gray 2016): a 3x3
stride-1 convolution as ``alpha**2`` matrix products, one per position of an ``alpha x alpha``
tile (``alpha = m + 2``), between transformed input tiles and transformed weights::

    V = B^T d B  (alpha**2, tiles, C)     U = G g G^T  (alpha**2, C, OC)
    M = V @ U    (alpha**2, tiles, OC)    y = A^T M A  (the m x m outputs of each tile)

F(2x2, 3x3) (``m = 2``) multiplies 2.25 times less than im2col + GEMM, F(4x4, 3x3) (``m = 4``)
4 times less. Here, as in ``conv.py``: channels-last arrays, the batch cut into chunks whose
transformed tiles fit in the cache (``parallel.chunking``), each chunk on a worker thread --
transform (numba, serial, nogil), the ``alpha**2`` GEMMs (``np.matmul`` on the stacked arrays:
one BLAS call each, single-threaded inside a worker), transform back -- and its tiles in the
thread's reused workspace buffer. The three passes:

* forward: as above, the bias added in the output transform;
* input gradient: the forward of ``gy``, zero-padded by ``2 - padding``, with the kernel rotated
  by 180 degrees and its channels swapped (so ``padding`` may be 0, 1 or 2);
* weight gradient: ``gW = G^T (sum over tiles of V^T (A gY A^T)) G``, the gradient of the
  expression above (a Winograd correlation of the input with the output gradient).

Which layers: :func:`tile_size` answers 0 (not Winograd: im2col, the direct or the 1x1 path of
``conv.py``), 2 or 4. Only dense 3x3 kernels at stride 1, one group, padding 0-2, NumPy arrays,
the fast lane (the reference lane runs the lecture's im2col). Among those, the setting
``MINICNN_CONV_ALGORITHM`` (or :func:`conv_algorithm` for a block of code) decides:

* ``auto`` (default): F(4x4, 3x3) when both channel counts are at least ``F4_MIN_CHANNELS``,
  F(2x2, 3x3) when both are at least ``MIN_CHANNELS``, else im2col. Below 32 channels the GEMMs
  are too narrow to be limited by multiplications, and the transforms' extra passes over memory
  cost more than the multiplications saved. Measured on a quiet 2-core AMD EPYC (Zen 4) with
  ``python benchmarks/bench_winograd.py --passes --repeats 8`` (one thread, CPU time, batch 32;
  ``benchmarks/results/winograd_passes.md``), forward + both gradients in ms, im2col / F(2x2) /
  F(4x4): 8 channels at 32x32 1.35+2.17 / 2.09+4.48 / 2.35+8.19 (Winograd slower), 16 at 32x32
  4.19+7.07 / 4.46+8.86 / 4.77+9.85 (slower), 32 at 16x16 2.79+5.80 / 1.70+3.10 / 2.46+2.88,
  64 at 8x8 2.10+4.59 / 2.67+4.83 / 2.01+4.13, 128 at 8x8 7.94+15.07 / 7.10+13.43 /
  6.39+12.46, 64 at 28x28 21.58+48.57 / 17.87+34.06 / 9.98+26.60. F(4x4)'s float32 error is
  about ten times F(2x2)'s (worst 1.5e-5 of the output's largest value against 1.3e-6, over 3
  to 512 channels; ``bench_winograd.py --accuracy``, the bounds in ``tests/test_winograd.py``):
  still below the 1e-5-ish reordering noise of a batch-norm sum over 8192 terms, so it is used
  where it is fastest, from 64 channels;
* ``im2col``: never Winograd; ``winograd2`` / ``winograd4``: F(2x2) / F(4x4) on every layer
  that can take it (for tests and measurements).

:func:`algorithm_name` names the choice for ``mc.summary``.
"""
import contextlib
import os

import numpy as np

from minicnn import backend
from minicnn.engine.parallel import chunking, parallel
from minicnn.engine.workspace import workspace
from minicnn.kernels import winograd as kernels

#: the values of ``MINICNN_CONV_ALGORITHM`` and :func:`conv_algorithm`
ALGORITHMS = ("auto", "im2col", "winograd2", "winograd4")
#: what ``mc.summary`` calls each tile size
NAMES = {2: "winograd F(2x2,3x3)", 4: "winograd F(4x4,3x3)"}
#: ``auto`` takes F(2x2, 3x3) when C_in and C_out are both at least this
MIN_CHANNELS = 32
#: ... and F(4x4, 3x3) when both are at least this
F4_MIN_CHANNELS = 64


def _check(name):
    name = str(name).strip().lower() or "auto"
    if name not in ALGORITHMS:
        raise ValueError(f"convolution algorithm {name!r} is not one of {', '.join(ALGORITHMS)} "
                         f"(MINICNN_CONV_ALGORITHM or conv_algorithm())")
    return name


_setting = _check(os.environ.get("MINICNN_CONV_ALGORITHM", "auto"))


def algorithm_setting():
    """The setting now: ``"auto"``, ``"im2col"``, ``"winograd2"`` or ``"winograd4"``."""
    return _setting


@contextlib.contextmanager
def conv_algorithm(name):
    """Run the block with the convolution algorithm ``name`` (one of :data:`ALGORITHMS`)::

        with conv_algorithm("winograd4"):
            y = F.conv2d(x, w, padding=1)      # F(4x4, 3x3) wherever a layer can take it

    Process-wide, like ``mc.reference_kernels()``."""
    global _setting
    previous, _setting = _setting, _check(name)
    try:
        yield
    finally:
        _setting = previous


def can_take(on_cpu, w_shape, stride, padding, groups, dilation=(1, 1)):
    """Can this convolution run as Winograd here? (3x3, stride 1, one group, padding 0-2, a
    NumPy array, the fast lane.)"""
    return (on_cpu and not backend.reference_lane() and tuple(w_shape[2:]) == (3, 3)
            and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1) and groups == 1
            and all(0 <= p <= 2 for p in padding))


def choose(on_cpu, w_shape, stride, padding, groups, dilation=(1, 1)):
    """0 (not Winograd), 2 for F(2x2, 3x3) or 4 for F(4x4, 3x3), for a weight of ``w_shape``
    (OC, C, KH, KW) on NumPy arrays (``on_cpu``) or not (see the module doc)."""
    if _setting == "im2col" or not can_take(on_cpu, w_shape, stride, padding, groups, dilation):
        return 0
    if _setting == "winograd2":
        return 2
    if _setting == "winograd4":
        return 4
    channels = min(w_shape[0], w_shape[1])
    return 4 if channels >= F4_MIN_CHANNELS else 2 if channels >= MIN_CHANNELS else 0


def tile_size(x, w_shape, stride, padding, groups, dilation=(1, 1)):
    """:func:`choose` for the input array ``x`` (what ``engine/conv.py`` asks)."""
    return choose(backend.get_array_module(x) is np, w_shape, stride, padding, groups, dilation)


def algorithm_name(m):
    """``"winograd F(2x2,3x3)"`` for ``m = 2`` (etc.), None for 0."""
    return NAMES.get(m)


# ---------------------------------------------------------------------------------------------
# The three passes, chunk by chunk
# ---------------------------------------------------------------------------------------------

def _split(buffer, *shapes):
    """Consecutive views of ``buffer`` with the given shapes."""
    views, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        views.append(buffer[start:start + size].reshape(shape))
        start += size
    return views


def _chunking(n_images, winograd_bytes, im2col_bytes):
    """``parallel.chunking`` for tiles of ``winograd_bytes`` per image, with no more images per
    chunk than im2col's columns (``im2col_bytes`` per image) would take: the buffers stay within
    the same limits (``chunk_bytes``, ``max_column_bytes``), and no larger than the im2col path's
    wherever the tiles take fewer bytes than its columns -- F(2x2, 3x3) unless C_out > 1.25 C_in,
    F(4x4, 3x3) unless C_out > 3 C_in -- so ``minicnn.engine.memory``'s prediction (the im2col
    path's) bounds them there too (for output sizes that are multiples of m; the tiles cut by
    the edge add a little)."""
    return chunking(np, n_images, max(winograd_bytes, im2col_bytes))


def forward(x, w, b, padding, m):
    """``y (N, OH, OW, OC)`` of the channels-last ``x (N, H, W, C)``, ``w (OC, C, 3, 3)``, bias
    ``b`` or None, stride 1, by F(m x m, 3x3)."""
    N, H, W, C = x.shape
    OC = w.shape[0]
    OH, OW = kernels.output_hw((H, W), padding)
    th, tw = kernels.tile_counts((OH, OW), m)
    T, P = th * tw, (m + 2) ** 2                                   # tiles per image, positions
    y = np.empty((N, OH, OW, OC), dtype=x.dtype)
    if N == 0:
        return y
    u = kernels.weight_transform(w, m)                             # (P, C, OC)
    step, n_chunks, workers = _chunking(N, P * T * (C + OC) * x.itemsize,
                                        OH * OW * 9 * C * x.itemsize)

    def chunk(i):
        n0, n1 = i * step, min(N, (i + 1) * step)
        rows = (n1 - n0) * T
        v, mt = _split(workspace.get(np, (P * rows * (C + OC),), x.dtype),
                       (P, rows, C), (P, rows, OC))
        kernels.input_tiles_numba(x[n0:n1], m, padding, out=v)    # B^T d B
        np.matmul(v, u, out=mt)                                    # P GEMMs (rows, C) @ (C, OC)
        kernels.output_tiles_numba(mt, m, (n1 - n0, OH, OW, OC), b, out=y[n0:n1])  # A^T M A + b

    parallel.run(chunk, n_chunks, workers)
    return y


def input_grad(gy, w, padding, m):
    """``gx (N, H, W, C)`` of ``gy (N, OH, OW, OC)``: the forward of ``gy`` padded by ``2 -
    padding`` with the flipped, channel-swapped kernel."""
    full = (2 - padding[0], 2 - padding[1])
    return forward(gy, kernels.flipped_weight(w), None, full, m)


def weight_grad(x, gy, padding, m):
    """``gW (OC, C, 3, 3) = G^T (sum over tiles of V^T gM) G`` with ``V = B^T d B`` of the
    input's tiles and ``gM = A gY A^T`` of the output gradient's; the chunks' partial sums are
    added in chunk order (the result does not depend on which thread ran which chunk)."""
    N, H, W, C = x.shape
    OC = gy.shape[3]
    th, tw = kernels.tile_counts(gy.shape[1:3], m)
    T, P = th * tw, (m + 2) ** 2
    if N == 0:
        return np.zeros((OC, C, 3, 3), dtype=x.dtype)
    step, n_chunks, workers = _chunking(N, P * T * (C + OC) * x.itemsize,
                                        gy.shape[1] * gy.shape[2] * 9 * C * x.itemsize)

    def chunk(i):
        n0, n1 = i * step, min(N, (i + 1) * step)
        rows = (n1 - n0) * T
        v, gm = _split(workspace.get(np, (P * rows * (C + OC),), x.dtype),
                       (P, rows, C), (P, rows, OC))
        kernels.input_tiles_numba(x[n0:n1], m, padding, out=v)    # B^T d B
        kernels.output_grad_tiles_numba(gy[n0:n1], m, out=gm)     # A gY A^T
        return np.matmul(v.transpose(0, 2, 1), gm)                 # P GEMMs (C, rows) @ (rows, OC)

    partials = parallel.run(chunk, n_chunks, workers)
    gu = partials[0]
    for p in partials[1:]:
        gu += p
    return kernels.weight_grad_untransform(gu, m, x.dtype)       # G^T gU G


def backward(x, w, gy, padding, need_x, need_w, m):
    """``(gx, gW)`` by F(m x m, 3x3); None for the one not needed."""
    gx = input_grad(gy, w, padding, m) if need_x else None
    gw = weight_grad(x, gy, padding, m) if need_w else None
    return gx, gw
