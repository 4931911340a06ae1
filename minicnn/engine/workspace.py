"""Reused scratch buffers for column matrices: one per thread, array module and dtype.

Why: a large fresh array costs page faults on every call (the kernel hands out zeroed pages one
at a time), and a convolution asks for one or two column matrices per pass. Reusing a buffer
from call to call avoids that. It is safe because a buffer is used only inside one call, by one
thread, and nothing that outlives the call points into it: results are written to fresh arrays,
and backward recomputes columns from the saved input instead of keeping them.
"""
import math
import threading

import numpy as np


class Workspace:
    """Scratch buffers, grown when a larger one is needed, kept for the next call."""

    def __init__(self):
        self.lock = threading.Lock()
        self.buffers = {}
        self.largest_bytes = 0  # the largest buffer handed out (for tests and the predictor)

    def get(self, xp, shape, dtype):
        """An uninitialised array of ``shape`` in this thread's buffer (valid until this thread
        asks for the next one)."""
        dtype = np.dtype(dtype)
        n = math.prod(shape)
        key = (threading.get_ident(), xp.__name__, dtype.str)
        buffer = self.buffers.get(key)
        if buffer is None or buffer.size < n:
            self.buffers.pop(key, None)  # let the old buffer go before allocating the new one
            buffer = xp.empty(n, dtype=dtype)
            with self.lock:
                self.buffers[key] = buffer
        with self.lock:
            self.largest_bytes = max(self.largest_bytes, n * dtype.itemsize)
        return buffer[:n].reshape(shape)

    def total_bytes(self):
        """Bytes held by all buffers now."""
        return sum(b.nbytes for b in list(self.buffers.values()))

    def release(self):
        """Free every buffer (they are rebuilt when needed)."""
        with self.lock:
            self.buffers.clear()
            self.largest_bytes = 0


#: The one workspace every convolution shares.
workspace = Workspace()


def release_workspace():
    """Free the column buffers kept for reuse (they are rebuilt when needed)."""
    workspace.release()
