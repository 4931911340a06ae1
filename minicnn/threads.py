"""One threading (and allocation) policy for the whole CPU side of minicnn.

Three thread systems live in a minicnn process, and on a small machine (2 cores) they fight:

* OpenBLAS (NumPy's GEMM) starts a thread per core, and after every multi-threaded GEMM its
  threads keep spinning for a while, waiting for the next one;
* numba's ``prange`` kernels (pooling, batch norm) run on an OpenMP (libgomp) team whose threads,
  by default, also spin after each parallel region;
* the convolution runs chunks of the batch on its own worker threads (``minicnn/engine/``),
  each chunk with a single-threaded GEMM.

Measured on LeNet-5's training step (2 cores): every op took 2-5 times longer inside the step
than alone, because the next op's threads found the cores busy with someone else's spinning.
The policy, applied once when minicnn is imported (:func:`apply`):

1. Parallelism is minicnn's own. BLAS runs single-threaded when minicnn has more than one thread
   (``num_threads``): the convolution parallelises over chunks itself, and the small GEMMs of
   the dense layers gain little from two BLAS threads but lose a lot to their spinning. Only a
   large product outside the convolution (:func:`matmul` with at least ``blas_parallel_min_flops``,
   e.g. VGG's 4096-wide classifier) gets every thread in BLAS, for that one call: it runs twice as
   fast, and the spinning afterwards is small next to it.
2. OpenMP threads sleep when idle (``OMP_WAIT_POLICY=PASSIVE``, set before numba starts its
   OpenMP team), so a ``prange`` kernel leaves the cores to whatever runs next.
3. Large temporaries come back from the allocator without page faults. glibc hands every array
   above its mmap threshold fresh pages from the kernel and returns them on ``free``; an array
   of a few MB then costs ~0.14 ms per MB in page faults, each time it is created (a training
   step creates dozens). Raising the mmap threshold to its maximum (32 MB) and never trimming
   the heap keeps freed memory for reuse (LeNet-5's step: 22 -> 16 ms). The process keeps what it
   once used as heap; arrays over 32 MB still go back to the system.

Each part can be switched off by its environment variable set before minicnn is imported:
``OMP_WAIT_POLICY`` (ours is only a default), ``MINICNN_NUM_THREADS`` (1 leaves BLAS with its own
threads) and ``MINICNN_MALLOC_TUNING=0``. :func:`describe` says what was set (``minicnn info``).

The BLAS thread count is set through ``threadpoolctl`` (OpenBLAS, MKL, BLIS and FlexiBLAS
alike), with ONE controller made when minicnn is imported and kept. Measured here (2 cores,
OpenBLAS 0.3.31, threadpoolctl 3.8): ``with threadpool_limits(limits=2, user_api="blas")``
costs 0.21 ms per enter/exit, because each call builds a new controller by scanning the loaded
libraries (0.27 ms); the kept controller's ``limit()`` costs 7.6 us; setting its libraries'
thread counts directly (what :func:`matmul` and the convolution engine do) costs 1.6 us for a
switch and back (0.5 us for the ctypes call this replaced), nothing next to a product of 10^8
operations (~1 ms).

NOTE: threadpoolctl lets only one Python thread set OpenBLAS's (process-wide) count: the first
that does so, here the thread that imports minicnn. From any other thread the switches do
nothing: products keep one BLAS thread (slower, never wrong).
"""
import ctypes
import ctypes.util
import os
import sys

import numpy as np
from threadpoolctl import ThreadpoolController


def _default_threads():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


#: Threads minicnn uses (``$MINICNN_NUM_THREADS``; default: the cores this process may use).
num_threads = int(os.environ.get("MINICNN_NUM_THREADS", "0") or 0) or _default_threads()

#: threadpoolctl's controllers of the BLAS libraries loaded with NumPy (made once: see the
#: module doc for why not per call); empty when NumPy's BLAS has no thread control
blas_libraries = ThreadpoolController().select(user_api="blas").lib_controllers


def set_blas_threads(n):
    """Let every loaded BLAS use ``n`` threads."""
    for library in blas_libraries:
        library.set_num_threads(n)


def get_blas_threads():
    """The thread count of the first loaded BLAS (NumPy's)."""
    return blas_libraries[0].get_num_threads()


#: ``(set_blas_threads, get_blas_threads)``, or None when no BLAS thread control was found
#: (then the convolution runs its chunks one after another, see the engine)
blas = (set_blas_threads, get_blas_threads) if blas_libraries else None

# glibc's mallopt parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 * 2 ** 20   # glibc's largest allowed mmap threshold on 64-bit


def _tune_malloc():
    """Part 3 of the policy: keep freed arrays of up to 32 MB for reuse (glibc only)."""
    if os.environ.get("MINICNN_MALLOC_TUNING", "1").strip() == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):   # not glibc (macOS, Windows, musl)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX) and
                mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))


#: A product with at least this many floating-point operations (2*M*K*N) runs on ``num_threads``
#: BLAS threads in :func:`matmul` (~1 ms on one core here; LeNet-5's largest is 12 MFLOP).
blas_parallel_min_flops = 10 ** 8


def matmul(a, b):
    """``a @ b`` for 2-D or batched operands, with every BLAS thread when the product is large
    (part 1 of the policy); NumPy or CuPy."""
    if (blas is None or num_threads <= 1 or not isinstance(a, np.ndarray) or a.ndim < 1 or
            b.ndim != 2 or 2 * a.size * b.shape[-1] < blas_parallel_min_flops):
        return a @ b
    set_threads = blas[0]
    set_threads(num_threads)
    try:
        return a @ b
    finally:
        set_threads(1)


#: whether part 3 (the allocator tuning) took effect; set by :func:`apply`
malloc_tuned = False


def apply():
    """Apply the policy of the module docstring (minicnn does this once, on import)."""
    global malloc_tuned
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if num_threads > 1 and blas is not None:
        blas[0](1)
    malloc_tuned = _tune_malloc()


def describe():
    """What the policy set, for ``minicnn info``: a dict of short values::

        {"threads": 2, "blas": ["openblas 0.3.31 (pthreads): 1 thread"],
         "OMP_WAIT_POLICY": "PASSIVE", "malloc_tuning": "mmap threshold 32 MB, no trim",
         "numba_threads": 2}
    """
    libraries = [f"{lib.internal_api} {lib.version or '?'} "
                 f"({getattr(lib, 'threading_layer', None) or 'threads'}): "
                 f"{lib.get_num_threads()} thread(s)" for lib in blas_libraries]
    numba = sys.modules.get("numba")   # not imported here: minicnn's kernels load it
    return {
        "threads": num_threads,
        "blas": libraries or ["no BLAS thread control found"],
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "unset"),
        "malloc_tuning": "mmap threshold 32 MB, no trim" if malloc_tuned else "off",
        "numba_threads": numba.config.NUMBA_NUM_THREADS if numba is not None else None,
    }
