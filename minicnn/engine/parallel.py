"""Chunks of the batch, on worker threads, each with a single-threaded GEMM.

Why chunks: the column matrix of a whole batch is large (75 MB for a 16-channel 32x32 layer at
batch 128); writing it, then reading it back in the GEMM, runs at memory speed. Cut into chunks
of a few images whose columns fit in the CPU cache (``chunk_bytes``) -- im2col a chunk, multiply
it, next chunk -- the GEMM reads its operand from the cache (twice as fast here), and memory stays
bounded (``max_column_bytes``).

Why our own threads: each of ``num_threads`` workers takes the next chunk and does its im2col
(numba, without the GIL) and its GEMM (single-threaded BLAS) on its own core. The copies then run
in parallel too, and a busy machine slows us gracefully: a multi-threaded GEMM waits at every
call for its slowest thread, while here a slow core just takes fewer chunks. (Measured on a
2-core machine: a 16->16 3x3 layer's forward at batch 128 took 5.9 ms this way and 8 ms with
OpenBLAS's two threads when idle; 12 ms vs 60-150 ms with one core busy elsewhere.)

NOTE: the pool's threads do not survive ``fork()``; a child process starts without them (the
``register_at_fork`` hook below), and the pool is shut down at exit.
"""
import atexit
import concurrent.futures
import os
import threading

import numpy as np

from minicnn import threads
from minicnn.engine.workspace import workspace

#: Upper bound (bytes) of a layer's column buffers together; the batch is cut into chunks to
#: stay below it (a single image's columns are the smallest chunk).
max_column_bytes = int(float(os.environ.get("MINICNN_CONV_MAX_COLUMN_MB", "256")) * 2 ** 20)
#: Target size (bytes) of a chunk's column matrix: small enough to stay in the CPU cache
#: between im2col and the GEMM, large enough for an efficient GEMM (tuned on a 2-core AMD EPYC
#: with 2 MB L2 per core and 32 MB L3; see benchmarks/bench_conv.py).
chunk_bytes = 4 * 2 ** 20
#: Worker threads that process chunks in parallel (``$MINICNN_NUM_THREADS``; default: the
#: cores this process may use; see ``minicnn/threads.py``). 1 runs every chunk in the calling
#: thread.
num_threads = threads.num_threads
#: Passes with fewer column bytes than this run in the calling thread: handing chunks to the
#: worker threads costs about 0.1 ms, more than it saves on small layers.
parallel_min_bytes = 2 ** 20


class Parallel:
    """The worker threads, and one BLAS thread per GEMM while they run."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pool = None
        self.pool_size = 0
        self.active = 0      # calls running chunks on the pool right now
        self.saved = None    # the BLAS thread count to restore afterwards

    def workers(self, xp):
        """How many threads share a call's chunks (1: the caller alone). Without OpenBLAS's
        thread control (another BLAS) the chunks run one after another, so that BLAS threads
        and ours never compete for the cores."""
        return num_threads if (xp is np and num_threads > 1 and threads.blas is not None) else 1

    def run(self, task, n_tasks, workers):
        """``[task(i) for i in range(n_tasks)]``; on the worker threads when ``workers`` > 1
        (each takes the next task when it is done with one). The results come back in order,
        whichever thread ran them."""
        if workers <= 1 or n_tasks <= 1:
            return [task(i) for i in range(n_tasks)]
        set_blas_threads, get_blas_threads = threads.blas
        with self.lock:
            if self.pool is None or self.pool_size != num_threads:
                if self.pool is not None:   # num_threads changed: new threads, new buffers
                    self.pool.shutdown(wait=False)
                    workspace.release()
                self.pool = concurrent.futures.ThreadPoolExecutor(
                    num_threads, thread_name_prefix="minicnn-conv")
                self.pool_size = num_threads
            if self.active == 0:
                self.saved = get_blas_threads()
                set_blas_threads(1)
            self.active += 1
            pool = self.pool
        try:
            return list(pool.map(task, range(n_tasks)))
        finally:
            with self.lock:
                self.active -= 1
                if self.active == 0:
                    set_blas_threads(self.saved)

    def forget(self):
        """After fork(): the child has none of the parent's threads."""
        self.__init__()

    def shutdown(self):
        if self.pool is not None:
            self.pool.shutdown(wait=False)


parallel = Parallel()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=parallel.forget)
atexit.register(parallel.shutdown)


def chunking(xp, n_images, bytes_per_image):
    """``(images per chunk, chunks, workers)`` for columns of ``bytes_per_image`` per image.

    A chunk holds as many images as fit in ``chunk_bytes``, and all workers' chunks together in
    ``max_column_bytes``; at least one image, and no more than a worker's share of the batch.
    """
    if bytes_per_image <= 0:
        return max(n_images, 1), 1, 1
    if xp is not np:
        # a GPU wants few, large launches (chunk_bytes is sized for a CPU cache): one chunk
        # unless the columns of the whole batch would exceed max_column_bytes
        step = max(1, min(n_images, max_column_bytes // bytes_per_image))
        return step, -(-n_images // step), 1
    workers = parallel.workers(xp) if n_images * bytes_per_image >= parallel_min_bytes else 1
    budget = min(chunk_bytes, max_column_bytes // workers)
    step = max(1, min(n_images, budget // bytes_per_image, -(-n_images // workers)))
    chunks = -(-n_images // step)
    return step, chunks, min(workers, chunks)


def split_evenly(n_images, bytes_per_image):
    """``(images per chunk, chunks, workers)`` with one chunk per worker (for kernels that need
    no column buffer, such as the direct convolution)."""
    workers = parallel.workers(np) if n_images * bytes_per_image >= parallel_min_bytes else 1
    step = max(1, -(-n_images // workers))
    chunks = -(-n_images // step) if n_images else 0
    return step, chunks, workers
