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

Why the calling thread works too, and why the chunks are handed out by a counter: a pass has
10-100 chunks of 0.1-0.5 ms each, and a future per chunk (``pool.map``) cost tens of
microseconds each, under the GIL, while the other worker waited for it. Now ``num_threads - 1``
pool threads and the caller each run a loop that takes the next chunk number from one shared
counter (``next()`` on an ``itertools.count`` is atomic under the GIL) until none are left: one
future per helper thread per pass, and no thread sits idle waiting for the others' results.
Measured on the 2-core Zen 4: ResNet-20's three 3x3 layer shapes, forward + backward, batch
128, summed, 47.8 ms with a future per chunk and 43.5 ms with the counter at 4 MB chunks (67.8
and 51.4 ms at 0.5 MB; ``benchmarks/bench_parallel.py``); whole training steps alternating the
two in one process (``benchmarks/bench_step_ab.py``, change ``dispatch``): ResNet-20 and
plain-20 12-13% faster with the counter, LeNet-5 6% (results in ``benchmarks/results/``).

NOTE: the pool's threads do not survive ``fork()``; a child process starts without them (the
``register_at_fork`` hook below), and the pool is shut down at exit.
"""
import atexit
import concurrent.futures
import itertools
import os
import threading

import numpy as np

from minicnn import threads
from minicnn.engine.workspace import workspace

#: Upper bound (bytes) of a layer's column buffers together; the batch is cut into chunks to
#: stay below it (a single image's columns are the smallest chunk).
max_column_bytes = int(float(os.environ.get("MINICNN_CONV_MAX_COLUMN_MB", "256")) * 2 ** 20)
#: Target size (bytes) of a chunk's column matrix (``$MINICNN_CONV_CHUNK_MB``, default 2): small
#: enough to stay in a core's own cache between im2col and the GEMM, large enough for an
#: efficient GEMM. The 2-core AMD EPYC (Zen 4) here has 2 MB of L2 per core and 32 MB of L3
#: shared. Whole training steps, 2 MB against the 4 MB used before, alternating in one process
#: (``benchmarks/bench_step_ab.py``, change ``chunk``): paired ratios 1.013 (ResNet-20), 1.028
#: (plain-20) and 1.027 (LeNet-5), each with its lower quartile just below 1: a small gain at
#: most, within noise.
chunk_bytes = int(float(os.environ.get("MINICNN_CONV_CHUNK_MB", "2")) * 2 ** 20)
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
        """``[task(i) for i in range(n_tasks)]``, on ``workers`` threads (the caller and
        ``workers - 1`` pool threads) when ``workers`` > 1: each takes the next task number
        from a shared counter until none are left. The results come back in task order, whichever
        thread ran them; an exception is raised after every thread has stopped."""
        if workers <= 1 or n_tasks <= 1:
            return [task(i) for i in range(n_tasks)]
        pool = self._enter()
        results = [None] * n_tasks
        numbers = itertools.count()
        failed = []                         # set by a thread whose task raised: the others stop

        def drain():
            try:
                for i in numbers:
                    if i >= n_tasks or failed:
                        return
                    results[i] = task(i)
            except BaseException:
                failed.append(True)
                raise

        try:
            helpers = [pool.submit(drain) for _ in range(min(workers, num_threads) - 1)]
            try:
                drain()
            finally:
                for helper in helpers:      # wait for all of them, then raise the first error
                    helper.exception()
            for helper in helpers:
                helper.result()
            return results
        finally:
            self._leave()

    def _enter(self):
        """The pool (made on first use, remade if ``num_threads`` changed), with BLAS set to one
        thread while any call runs chunks."""
        with self.lock:
            if self.pool is None or self.pool_size != num_threads:
                if self.pool is not None:   # num_threads changed: new threads, new buffers
                    self.pool.shutdown(wait=False)
                    workspace.release()
                self.pool = concurrent.futures.ThreadPoolExecutor(
                    max(1, num_threads - 1), thread_name_prefix="minicnn-conv")
                self.pool_size = num_threads
            if self.active == 0 and threads.blas is not None:
                self.saved = threads.blas[1]()
                threads.blas[0](1)
            self.active += 1
            return self.pool

    def _leave(self):
        with self.lock:
            self.active -= 1
            if self.active == 0 and threads.blas is not None:
                threads.blas[0](self.saved)

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
