"""Convolution: ``conv2d`` and ``conv_transpose2d``, as im2col + one matrix product (GEMM).

The idea (the lecture's): copy the window under the kernel at every output position into one row
of a matrix (im2col, ``minicnn/kernels/im2col.py``). A filter is then a vector of ``KH*KW*C``
weights, and the whole convolution is one matrix product::

    cols (N*OH*OW, KH*KW*C)  @  W.T (KH*KW*C, OC)  =  y (N*OH*OW, OC)

Backward, with ``gy`` the gradient of ``y`` in the same (N*OH*OW, OC) form:

* ``gW = gy.T @ cols``: each weight meets every input pixel it ever multiplied;
* ``gx = col2im(gy @ W)``: each column entry goes back to the pixel it was copied from, summed
  where windows overlap. ``conv_transpose2d`` IS this map (it is the adjoint of ``conv2d``), so
  its forward is col2im and its backward uses im2col.

How it is made fast on a CPU (measured on a 2-core machine; ``benchmarks/bench_conv.py``):

1. Channels last in memory. The GEMM's output ``(N*OH*OW, OC)`` is an NHWC image. ``conv2d``
   returns it as an NCHW-*shaped* view (``y.transpose(0, 3, 1, 2)``, no copy), so shapes are
   PyTorch's while the memory stays channels-last. The next conv asks for
   ``x.transpose(0, 2, 3, 1)``, which is then contiguous already (no copy), and NumPy's
   element-wise ops (ReLU, batch norm) keep the layout of their input. In that layout a window
   row is ``KW*C`` consecutive numbers, so im2col copies runs instead of single numbers.
2. Chunks that stay in the cache. The column matrix of a whole batch is large (75 MB for a
   16-channel 32x32 layer at batch 128) and writing it, then reading it back in the GEMM, runs at
   memory speed. So the batch is cut into chunks of a few images whose columns fit in the cache
   (``chunk_bytes``): im2col a chunk, multiply it, next chunk. The GEMM then reads its operand from
   the cache (twice as fast here), and memory stays bounded.
3. Chunks in parallel. Each of ``num_threads`` worker threads takes the next chunk and does its
   im2col (numba, without the GIL) and its GEMM (single-threaded BLAS) on its own core. That
   runs the copies in parallel too, and it degrades gracefully on a busy machine: a
   multi-threaded GEMM waits at every call for its slowest thread, while here a slow core just
   takes fewer chunks. (Measured: a 16->16 3x3 layer's forward at batch 128 took 5.9 ms this way
   and 8 ms with OpenBLAS's two threads on an idle machine, 12 ms vs 60-150 ms with one core
   busy elsewhere.)
4. Reused buffers. A chunk's columns go into its thread's workspace buffer, reused from call to
   call (large fresh arrays cost page faults on every call). Nothing that outlives a call points
   into it: backward recomputes columns from the saved input instead of keeping them (keeping
   them would cost ``KH*KW`` times the input's memory per layer).
5. The input gradient of a stride-1 convolution is itself a convolution: of ``gy`` with the
   kernel flipped and its in/out channels swapped, zero-padded by ``KH-1-padding``. Its column
   matrix, ``im2col(gy)``, then serves both gradients: ``gx = im2col(gy) @ W_flipped`` and
   ``gW_flipped = im2col(gy).T @ x``: backward builds ONE column matrix instead of two, and needs
   no col2im (a sum of ``KH*KW`` entries per pixel). Used when it moves fewer bytes (not when
   C_out is much larger than C_in, as in a first layer); strided convolutions, large paddings and
   ``conv_transpose2d`` use col2im.
6. 1x1 convolutions with stride 1 and no padding need no im2col: the channels-last input is its
   own column matrix.
7. float32 stays float32: no Python float, no float64 temporary on the way.
8. A layer with one input channel (a grayscale first layer, LeNet-5's C1) skips im2col: its
   column matrix would be 25 numbers wide for a 5x5 kernel, a GEMM that runs at memory speed.
   ``minicnn/kernels/direct_conv.py`` computes it directly, one shifted image per kernel tap,
   forward and weight gradient (2-3 times faster on C1). Such a layer's input is usually the
   data, which needs no gradient; when it does, the input gradient takes the usual path.
9. The bias gradient, a sum over all pixels per channel, is one matrix-vector product
   (``ones @ gy``): NumPy's ``sum(axis=0)`` over a (N*OH*OW, OC) array with few channels is ten
   times slower.

Memory: :func:`conv2d_column_bytes` predicts the column buffers of a layer. Together they stay
below ``max_column_bytes`` (256 MB unless ``$MINICNN_CONV_MAX_COLUMN_MB`` says otherwise) unless
the columns of a single image are larger: the batch is cut into chunks to respect it.
"""
import atexit
import concurrent.futures
import math
import os
import threading

import numpy as np

from minicnn import backend, threads
from minicnn.autograd import Function, as_tensor
from minicnn.kernels import direct_conv
from minicnn.kernels import im2col as kernels
from minicnn.ops.shape import as_pair as _pair

# ---------------------------------------------------------------------------------------------
# Knobs
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Workspace: reused column buffers, one per thread
# ---------------------------------------------------------------------------------------------

class _Workspace:
    """Scratch buffers for column matrices, reused across calls: one flat buffer per thread,
    array module and dtype, grown when a larger one is needed. A buffer is used only inside one
    call, by one thread, and never returned, so reuse is safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.buffers = {}
        self.largest_bytes = 0  # the largest buffer handed out (for tests and the predictor)

    def get(self, xp, shape, dtype):
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
        with self.lock:
            self.buffers.clear()
            self.largest_bytes = 0


_workspace = _Workspace()


def release_workspace():
    """Free the column buffers kept for reuse (they are rebuilt when needed)."""
    _workspace.release()


# ---------------------------------------------------------------------------------------------
# Threads: chunks in parallel, each with a single-threaded GEMM
# ---------------------------------------------------------------------------------------------

#: OpenBLAS's thread control (None for another BLAS: the chunks then run one after another, so
#: that BLAS threads and ours never compete for the cores).
_blas = threads.blas


class _Parallel:
    """The worker threads, and one BLAS thread per GEMM while they run."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pool = None
        self.pool_size = 0
        self.active = 0      # calls running chunks on the pool right now
        self.saved = None    # the BLAS thread count to restore afterwards

    def workers(self, xp):
        """How many threads share a call's chunks (1: the caller alone)."""
        return num_threads if (xp is np and num_threads > 1 and _blas is not None) else 1

    def run(self, task, n_tasks, workers):
        """``[task(i) for i in range(n_tasks)]``; on the worker threads when ``workers`` > 1
        (each takes the next task when it is done with one). The results come back in order,
        whichever thread ran them."""
        if workers <= 1 or n_tasks <= 1:
            return [task(i) for i in range(n_tasks)]
        with self.lock:
            if self.pool is None or self.pool_size != num_threads:
                if self.pool is not None:   # num_threads changed: new threads, new buffers
                    self.pool.shutdown(wait=False)
                    _workspace.release()
                self.pool = concurrent.futures.ThreadPoolExecutor(
                    num_threads, thread_name_prefix="minicnn-conv")
                self.pool_size = num_threads
            if self.active == 0:
                self.saved = _blas[1]()
                _blas[0](1)
            self.active += 1
            pool = self.pool
        try:
            return list(pool.map(task, range(n_tasks)))
        finally:
            with self.lock:
                self.active -= 1
                if self.active == 0:
                    _blas[0](self.saved)

    def forget(self):
        """After fork(): the child has none of the parent's threads."""
        self.__init__()


_parallel = _Parallel()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_parallel.forget)
atexit.register(lambda: _parallel.pool is not None and _parallel.pool.shutdown(wait=False))


def _chunking(xp, n_images, bytes_per_image):
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
    workers = _parallel.workers(xp) if n_images * bytes_per_image >= parallel_min_bytes else 1
    budget = min(chunk_bytes, max_column_bytes // workers)
    step = max(1, min(n_images, budget // bytes_per_image, -(-n_images // workers)))
    chunks = -(-n_images // step)
    return step, chunks, min(workers, chunks)


# ---------------------------------------------------------------------------------------------
# Sizes and argument checks (everything here runs before any array work)
# ---------------------------------------------------------------------------------------------



def conv2d_output_size(size, kernel, stride=1, padding=0):
    """Output length along one axis: ``floor((size + 2*padding - kernel) / stride) + 1``."""
    return (size + 2 * padding - kernel) // stride + 1


def conv_transpose2d_output_size(size, kernel, stride=1, padding=0, output_padding=0):
    """Output length along one axis: ``(size - 1)*stride - 2*padding + kernel + output_padding``."""
    return (size - 1) * stride - 2 * padding + kernel + output_padding


def _check_tensors(op, x, w, b, weight_layout):
    """Ranks, float dtypes that agree, one device, bias shape."""
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got a {x.ndim}-D input of "
                         f"shape {tuple(x.shape)}" +
                         (" (add the batch axis with x.reshape(1, *x.shape))" if x.ndim == 3
                          else ""))
    if w.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D weight {weight_layout}, got a {w.ndim}-D weight "
                         f"of shape {tuple(w.shape)}")
    devices = {t.device for t in (x, w, b) if t is not None}
    if len(devices) > 1:
        where = ", ".join(f"{name} on {t.device}" for name, t in
                          (("input", x), ("weight", w), ("bias", b)) if t is not None)
        raise RuntimeError(f"{op}: the tensors are on different devices ({where}); move them to "
                           "one device with .to(device) first")
    if x.dtype.kind != "f" or x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: the input must be float32 or float64, got {x.dtype}; convert it "
                        "with x.float()")
    for name, t in (("weight", w), ("bias", b)):
        if t is not None and t.dtype != x.dtype:
            raise TypeError(
                f"{op}: the input is {x.dtype} but the {name} is {t.dtype}; they must match. "
                f"Convert the input (x.float() for float32, x.double() for float64) or the "
                f"layer (layer.to(dtype=np.{x.dtype}))")


def _check_geometry(op, in_size, kernel, stride, padding):
    if min(stride) <= 0:
        raise ValueError(f"{op}: stride must be positive, got {stride} (a stride of 0 would never "
                         "move the kernel)")
    if min(padding) < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {padding}")
    if min(kernel) <= 0:
        raise ValueError(f"{op}: the kernel must be at least 1x1, got {kernel[0]}x{kernel[1]}")


def _conv2d_geometry(x, w, b, stride, padding, groups):
    """Check conv2d's arguments; return (stride, padding, extra_pad) with pairs of ints.

    ``extra_pad`` is ``(bottom, right)`` padding beyond the symmetric one, only needed for
    ``padding='same'`` with an even kernel (PyTorch pads the extra row/column at the end).
    """
    op = "conv2d"
    _check_tensors(op, x, w, b, "(C_out, C_in/groups, kH, kW)")
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    N, C, H, W = x.shape
    OC, Cg, KH, KW = w.shape
    if C % groups:
        raise ValueError(f"{op}: the input's {C} channels are not divisible by groups={groups}")
    if OC % groups:
        raise ValueError(f"{op}: the weight's {OC} output channels (weight shape "
                         f"{tuple(w.shape)}) are not divisible by groups={groups}")
    if C != Cg * groups:
        expects = f"{Cg}" if groups == 1 else f"{Cg} * groups={groups} = {Cg * groups}"
        raise ValueError(f"{op}: input has {C} channels but the weight expects {expects} "
                         f"(weight shape {tuple(w.shape)} is (C_out, C_in/groups, kH, kW); "
                         f"input shape {tuple(x.shape)})")
    stride = _pair(stride, "stride", op)
    extra = (0, 0)
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{op}: padding='same' is not supported for strided "
                                 f"convolutions (stride {stride}), as in PyTorch")
            padding = ((KH - 1) // 2, (KW - 1) // 2)
            extra = ((KH - 1) % 2, (KW - 1) % 2)
        else:
            raise ValueError(f"{op}: padding must be an int, a pair, 'same' or 'valid', got "
                             f"{padding!r}")
    padding = _pair(padding, "padding", op)
    _check_geometry(op, (H, W), (KH, KW), stride, padding)
    padded = (H + 2 * padding[0] + extra[0], W + 2 * padding[1] + extra[1])
    if KH > padded[0] or KW > padded[1]:
        raise ValueError(
            f"{op}: the {KH}x{KW} kernel is larger than the padded input {padded[0]}x{padded[1]} "
            f"(input {H}x{W}, padding {padding}): the convolution leaves no output. Use a "
            "smaller kernel, more padding or a larger input.")
    if b is not None and tuple(b.shape) != (OC,):
        raise ValueError(f"{op}: bias must have shape ({OC},) (one per output channel), got "
                         f"{tuple(b.shape)}")
    return stride, padding, extra


def _conv_transpose2d_geometry(x, w, b, stride, padding, output_padding, groups):
    op = "conv_transpose2d"
    _check_tensors(op, x, w, b, "(C_in, C_out/groups, kH, kW)")
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    N, C, H, W = x.shape
    Cin, OCg, KH, KW = w.shape
    if C != Cin:
        raise ValueError(f"{op}: input has {C} channels but the weight expects {Cin} (weight "
                         f"shape {tuple(w.shape)} is (C_in, C_out/groups, kH, kW); input shape "
                         f"{tuple(x.shape)})")
    if C % groups:
        raise ValueError(f"{op}: the input's {C} channels are not divisible by groups={groups}")
    stride = _pair(stride, "stride", op)
    padding = _pair(padding, "padding", op)
    output_padding = _pair(output_padding, "output_padding", op)
    _check_geometry(op, (H, W), (KH, KW), stride, padding)
    for op_, s in zip(output_padding, stride):
        if op_ < 0 or op_ >= s:
            raise ValueError(f"{op}: output_padding must be non-negative and smaller than the "
                             f"stride, got output_padding={output_padding} for stride={stride}")
    out = tuple(conv_transpose2d_output_size(n, k, s, p, o) for n, k, s, p, o in
                zip((H, W), (KH, KW), stride, padding, output_padding))
    if min(out) < 1:
        raise ValueError(f"{op}: padding {padding} removes more than the {H}x{W} input grows to "
                         f"(computed output size {out[0]}x{out[1]}): it leaves no output")
    if b is not None and tuple(b.shape) != (OCg * groups,):
        raise ValueError(f"{op}: bias must have shape ({OCg * groups},) (one per output "
                         f"channel), got {tuple(b.shape)}")
    return stride, padding, out


# ---------------------------------------------------------------------------------------------
# The engine: three primitives on channels-last arrays (any array module)
# ---------------------------------------------------------------------------------------------

def _weight_matrix(w):
    """(OC, C, KH, KW) -> (OC, KH*KW*C), columns in im2col's (kh, kw, c) order."""
    return w.transpose(0, 2, 3, 1).reshape(w.shape[0], -1)


def _flipped_weight_matrix(w):
    """(OC, C, KH, KW) -> (KH*KW*OC, C): the kernel rotated by 180 degrees with the channel roles
    swapped, the weight of the convolution that maps ``gy`` to ``gx`` (stride 1)."""
    return w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1).reshape(-1, w.shape[1])


def _unflip(t, w_shape):
    """Inverse of :func:`_flipped_weight_matrix` for a (KH*KW*OC, C) gradient -> (OC, C, KH, KW)."""
    OC, C, KH, KW = w_shape
    return t.reshape(KH, KW, OC, C)[::-1, ::-1].transpose(2, 3, 0, 1)


def _is_pointwise(kernel, stride, padding):
    return kernel == (1, 1) and stride == (1, 1) and padding == (0, 0)


def _full_padding(kernel, padding):
    return kernel[0] - 1 - padding[0], kernel[1] - 1 - padding[1]


def _input_grad_as_convolution(kernel, stride, padding, in_hw, out_hw, cin_g, cout_g,
                               with_weight_grad):
    """Take the input gradient as the convolution im2col(gy) @ W_flipped (point 5 of the module
    docstring) instead of col2im(gy @ W)?

    Possible at stride 1 with padding < kernel. Worth it when it costs less, estimated per image
    in numbers written or read: the convolution copies ``in_hw * kH*kW * C_out`` numbers (im2col
    of gy) and reads them once per GEMM (one for gx, one more for gW); col2im writes ``gy @ W``
    (``out_hw * kH*kW * C_in``) and adds it back run by run, and the weight gradient then needs
    im2col(x) of that size too. A copied or added run (one kernel row of a window, ``kW*C``
    numbers) has a fixed cost of about 8 numbers' worth in both im2col and col2im (measured on
    LeNet-5's and ResNet-20's layers); it makes the convolution the slow choice when C_out is
    much larger than C_in, and col2im the slow one for few channels out.
    """
    if stride != (1, 1) or padding[0] >= kernel[0] or padding[1] >= kernel[1]:
        return False
    KH, KW = kernel
    n_in, n_out = in_hw[0] * in_hw[1], out_hw[0] * out_hw[1]
    gemms = 2 if with_weight_grad else 1
    as_convolution = n_in * KH * (KW * cout_g + 8) + gemms * n_in * KH * KW * cout_g
    with_col2im = n_out * KH * KW * cin_g + n_out * KH * (KW * cin_g + 8)
    if with_weight_grad:
        with_col2im += n_out * KH * (KW * cin_g + 8) + n_out * KH * KW * cin_g
    return as_convolution <= with_col2im


def _columns(a, n0, n1, g, groups, kernel, stride, padding, rows_per_image):
    """``im2col`` of images ``n0:n1`` of the channels-last ``a``, channels of group ``g``, in
    this thread's workspace buffer (use it before asking for the next one). A 1x1 kernel with
    stride 1 and no padding gives the input itself: it is its own column matrix."""
    xp = backend.get_array_module(a)
    Cg = a.shape[3] // groups
    part = a[n0:n1] if groups == 1 else a[n0:n1, :, :, g * Cg:(g + 1) * Cg]
    part = xp.ascontiguousarray(part)
    if _is_pointwise(kernel, stride, padding):
        return part.reshape(-1, Cg)
    buffer = _workspace.get(xp, ((n1 - n0) * rows_per_image, kernel[0] * kernel[1] * Cg),
                            a.dtype)
    return kernels.im2col(part, kernel, stride, padding, out=buffer)


def _sum_in_order(partials, groups):
    """Per group, the sum of the chunks' partial weight gradients, in chunk order (so the result
    does not depend on which thread ran which chunk)."""
    totals = []
    for g in range(groups):
        total = partials[0][g].copy()
        for p in partials[1:]:
            total += p[g]
        totals.append(total)
    return totals


def conv2d_nhwc(x, w, b, stride, padding, groups=1, gy=None, need_y=True):
    """Convolution of a channels-last batch, chunk by chunk: ``y = im2col(x) @ W.T + b``.

    x (N, H, W, C), w (OC, C/groups, KH, KW), b (OC,) or None -> y (N, OH, OW, OC).
    With ``gy`` (N, OH, OW, OC) it also returns the weight gradient ``gW = im2col(x).T @ gy``
    from the same column matrices (what conv2d's weight gradient and the backward of a transposed
    convolution need). Returns ``(y, gW)``; ``y`` is None unless ``need_y``, ``gW`` None
    without ``gy``.
    """
    xp = backend.get_array_module(x)
    N, H, W, C = x.shape
    OC, Cg, KH, KW = w.shape
    OCg = OC // groups
    kernel = (KH, KW)
    OH, OW = (conv2d_output_size(n, k, s, p) for n, k, s, p in zip((H, W), kernel, stride, padding))
    R = OH * OW                                                    # rows (output pixels) per image
    y = xp.empty((N, OH, OW, OC), dtype=x.dtype) if need_y else None
    y2 = y.reshape(N * R, OC) if need_y else None
    w_t = [_weight_matrix(w[g * OCg:(g + 1) * OCg]).T for g in range(groups)]   # (K, OCg)
    gy2 = None if gy is None else gy.reshape(N * R, OC)
    per_image = 0 if _is_pointwise(kernel, stride, padding) else R * KH * KW * Cg * x.itemsize
    step, n_chunks, workers = _chunking(xp, N, per_image)

    def chunk(i):
        n0, n1 = i * step, min(N, (i + 1) * step)
        rows = slice(n0 * R, n1 * R)
        partial = []
        for g in range(groups):
            cols = _columns(x, n0, n1, g, groups, kernel, stride, padding, R)
            out_channels = slice(g * OCg, (g + 1) * OCg)
            if need_y and groups == 1:
                xp.matmul(cols, w_t[0], out=y2[rows])
            elif need_y:
                y2[rows, out_channels] = xp.matmul(cols, w_t[g])
            if gy is not None:
                # (K, rows) @ (rows, OCg): measured faster than gy.T @ cols for these narrow shapes
                partial.append(xp.matmul(cols.T, gy2[rows, out_channels]))
        if need_y and b is not None:
            y2[rows] += b                                          # while the chunk is in the cache
        return partial

    partials = _parallel.run(chunk, n_chunks, workers)
    gw = None
    if gy is not None:
        if N == 0:
            gw = xp.zeros(w.shape, dtype=x.dtype)
        else:
            gw = xp.concatenate([t.T.reshape(OCg, KH, KW, Cg)
                                 for t in _sum_in_order(partials, groups)])
            gw = xp.ascontiguousarray(gw.transpose(0, 3, 1, 2))
    return y, gw


def conv2d_input_grad_nhwc(gy, w, input_hw, stride, padding, groups=1, x=None):
    """Input gradient of a convolution, which is the forward of a transposed convolution:
    gy (N, OH, OW, OC), w (OC, C/groups, KH, KW) -> gx (N, H, W, C), ``(H, W) = input_hw``.

    As a convolution (see :func:`_input_grad_as_convolution`): ``gx = im2col(gy, padding
    KH-1-pH) @ W_flipped``, and when the input ``x`` is passed the same columns give the weight
    gradient too, ``gW_flipped = im2col(gy).T @ x``. Otherwise ``gx = col2im(gy @ W)``, and ``gW``
    (when ``x`` is passed) comes from the columns of x. Returns ``(gx, gW)``, gW None without x.
    """
    xp = backend.get_array_module(gy)
    N, OH, OW, OC = gy.shape
    _, Cg, KH, KW = w.shape
    OCg = OC // groups
    H, W = input_hw
    C = Cg * groups
    kernel = (KH, KW)
    gx = xp.empty((N, H, W, C), dtype=gy.dtype)
    gx2 = gx.reshape(N * H * W, C)
    w_groups = [w[g * OCg:(g + 1) * OCg] for g in range(groups)]
    gy2 = gy.reshape(N * OH * OW, OC)

    if _is_pointwise(kernel, stride, padding):                     # gx = gy @ W: one GEMM
        for g, wg in enumerate(w_groups):
            if groups == 1:
                xp.matmul(gy2, _weight_matrix(wg), out=gx2)
            else:
                gx2[:, g * Cg:(g + 1) * Cg] = xp.matmul(gy2[:, g * OCg:(g + 1) * OCg],
                                                        _weight_matrix(wg))
    elif _input_grad_as_convolution(kernel, stride, padding, (H, W), (OH, OW), Cg, OCg,
                                    x is not None):
        w_flip = [_flipped_weight_matrix(wg) for wg in w_groups]   # (KH*KW*OCg, Cg)
        x2 = None if x is None else x.reshape(N * H * W, C)
        full = _full_padding(kernel, padding)
        R = H * W                                                  # rows: input pixels
        step, n_chunks, workers = _chunking(xp, N, R * KH * KW * OCg * gy.itemsize)

        def chunk(i):
            n0, n1 = i * step, min(N, (i + 1) * step)
            rows = slice(n0 * R, n1 * R)
            partial = []
            for g in range(groups):
                cols = _columns(gy, n0, n1, g, groups, kernel, (1, 1), full, R)
                in_channels = slice(g * Cg, (g + 1) * Cg)
                if groups == 1:
                    xp.matmul(cols, w_flip[0], out=gx2[rows])
                else:
                    gx2[rows, in_channels] = xp.matmul(cols, w_flip[g])
                if x2 is not None:
                    partial.append(xp.matmul(cols.T, x2[rows, in_channels]))
            return partial

        partials = _parallel.run(chunk, n_chunks, workers)
        if x is None:
            return gx, None
        if N == 0:
            return gx, xp.zeros(w.shape, dtype=gy.dtype)
        gw = xp.concatenate([_unflip(t, (OCg, Cg, KH, KW))
                             for t in _sum_in_order(partials, groups)])
        return gx, xp.ascontiguousarray(gw)
    else:                                                          # gx = col2im(gy @ W)
        w_mat = [_weight_matrix(wg) for wg in w_groups]            # (OCg, KH*KW*Cg)
        R, K = OH * OW, KH * KW * Cg
        step, n_chunks, workers = _chunking(xp, N, R * K * gy.itemsize)

        def chunk(i):
            n0, n1 = i * step, min(N, (i + 1) * step)
            rows = slice(n0 * R, n1 * R)
            for g in range(groups):
                gcols = _workspace.get(xp, ((n1 - n0) * R, K), gy.dtype)
                xp.matmul(gy2[rows, g * OCg:(g + 1) * OCg], w_mat[g], out=gcols)
                if groups == 1:
                    kernels.col2im(gcols, (n1 - n0, H, W, Cg), kernel, stride, padding,
                                   out=gx[n0:n1])
                else:
                    gx[n0:n1, :, :, g * Cg:(g + 1) * Cg] = kernels.col2im(
                        gcols, (n1 - n0, H, W, Cg), kernel, stride, padding)

        _parallel.run(chunk, n_chunks, workers)
    gw = None
    if x is not None:
        _, gw = conv2d_nhwc(x, w, None, stride, padding, groups, gy=gy, need_y=False)
    return gx, gw


def _use_direct(xp, x_shape, w_shape, stride, groups):
    """Point 8 of the module docstring: a one-channel conv at stride 1, on the CPU."""
    return xp is np and groups == 1 and stride == (1, 1) and w_shape[1] == 1 and x_shape[3] == 1


def _direct_split(n_images, bytes_per_image):
    """``(images per chunk, chunks, workers)`` for the direct kernels: one chunk per worker."""
    workers = _parallel.workers(np) if n_images * bytes_per_image >= parallel_min_bytes else 1
    step = max(1, -(-n_images // workers))
    chunks = -(-n_images // step) if n_images else 0
    return step, chunks, workers


def conv2d_direct_nhwc(x, w, b, padding):
    """Forward of a one-channel conv (see :func:`_use_direct`): x (N, H, W, 1) -> y (N, OH, OW,
    OC), chunks of the batch on the worker threads."""
    N, H, W, _ = x.shape
    OC, _, KH, KW = w.shape
    OH, OW = H + 2 * padding[0] - KH + 1, W + 2 * padding[1] - KW + 1
    y = np.empty((N, OH, OW, OC), dtype=x.dtype)
    step, n_chunks, workers = _direct_split(N, OH * OW * OC * x.itemsize)

    def chunk(i):
        n0, n1 = i * step, min(N, (i + 1) * step)
        direct_conv.conv2d_direct_numba(x[n0:n1], w, b, padding, out=y[n0:n1])

    _parallel.run(chunk, n_chunks, workers)
    return y


def conv2d_direct_weight_grad_nhwc(x, gy, kernel, padding):
    """Weight gradient of a one-channel conv: x (N, H, W, 1), gy (N, OH, OW, OC) -> gW (OC, 1,
    KH, KW), the chunks' partial sums added in chunk order."""
    N, OH, OW, OC = gy.shape
    step, n_chunks, workers = _direct_split(N, OH * OW * OC * gy.itemsize)
    if n_chunks == 0:
        return np.zeros((OC, 1) + tuple(kernel), dtype=gy.dtype)

    def chunk(i):
        n0, n1 = i * step, min(N, (i + 1) * step)
        return direct_conv.conv2d_direct_weight_grad_numba(x[n0:n1], gy[n0:n1], kernel, padding)

    partials = _parallel.run(chunk, n_chunks, workers)
    gw = partials[0]
    for p in partials[1:]:
        gw += p
    return gw


def _bias_grad(xp, gy):
    """Sum of the channels-last ``gy`` over everything but the channels (point 9)."""
    gy2 = gy.reshape(-1, gy.shape[-1])
    return xp.matmul(xp.ones(gy2.shape[0], dtype=gy2.dtype), gy2)


# ---------------------------------------------------------------------------------------------
# Memory prediction
# ---------------------------------------------------------------------------------------------

def _buffer_bytes(n, per_image, chunked):
    """Bytes of all the column buffers a pass with ``per_image`` bytes of columns per image
    uses: one chunk's worth per worker thread that gets a chunk."""
    if per_image <= 0 or n == 0:
        return 0
    if not chunked:
        return n * per_image
    step, _, workers = _chunking(np, n, per_image)
    return workers * step * per_image


def _forward_bytes(n, out_hw, kernel, stride, padding, cin_g, itemsize, chunked):
    """Buffers of conv2d_nhwc: the columns of its input."""
    if _is_pointwise(kernel, stride, padding):
        return 0
    per_image = out_hw[0] * out_hw[1] * kernel[0] * kernel[1] * cin_g * itemsize
    return _buffer_bytes(n, per_image, chunked)


def _input_grad_bytes(n, in_hw, out_hw, kernel, stride, padding, cin_g, cout_g, itemsize,
                      chunked, with_weight_grad):
    """Buffers of conv2d_input_grad_nhwc for the conv ``in_hw, cin -> out_hw, cout``."""
    KH, KW = kernel
    if _is_pointwise(kernel, stride, padding):
        return 0
    if _input_grad_as_convolution(kernel, stride, padding, in_hw, out_hw, cin_g, cout_g,
                                  with_weight_grad):
        return _buffer_bytes(n, in_hw[0] * in_hw[1] * KH * KW * cout_g * itemsize, chunked)
    return _buffer_bytes(n, out_hw[0] * out_hw[1] * KH * KW * cin_g * itemsize, chunked)


def conv2d_column_bytes(input_shape, weight_shape, stride=1, padding=0, groups=1,
                        dtype=np.float32, chunked=True, backward=True):
    """Bytes of the column buffers ``conv2d`` builds for this layer (the largest pass).

    ``input_shape`` (N, C, H, W), ``weight_shape`` (C_out, C_in/groups, kH, kW). With
    ``chunked=True`` (what conv2d does) the batch is cut into chunks, one buffer per worker
    thread (see ``chunk_bytes``, ``max_column_bytes`` and ``num_threads``); ``chunked=False``
    gives the size for the whole batch at once -- for the forward pass the textbook column
    matrix, ``N*OH*OW x kH*kW*C_in/groups`` numbers. ``backward=True`` includes the buffers of
    the backward pass (the columns of ``gy`` at stride 1, else ``gy @ W``). 1x1 convolutions
    with stride 1 and no padding need none (0). The buffers are kept for reuse between calls and
    shared by all layers, so the largest layer's count is what stays held.

    Example: VGG-16's conv1_2 at 224x224, batch 32: ``chunked=False`` gives 3.7 GB; chunked,
    one image per chunk and thread, 116 MB per thread (231 MB with two worker threads).
    """
    N, C, H, W = input_shape
    OC, Cg, KH, KW = weight_shape
    stride, padding = _pair(stride, "stride", "conv2d"), _pair(padding, "padding", "conv2d")
    kernel = (KH, KW)
    out_hw = tuple(conv2d_output_size(n, k, s, p) for n, k, s, p in
                   zip((H, W), kernel, stride, padding))
    itemsize = np.dtype(dtype).itemsize
    if _use_direct(np, (N, H, W, C), weight_shape, stride, groups):
        # no columns forward or for gW (point 8); the input gradient, if needed, has its own
        return _input_grad_bytes(N, (H, W), out_hw, kernel, stride, padding, Cg, OC, itemsize,
                                 chunked, False) if backward else 0
    sizes = [_forward_bytes(N, out_hw, kernel, stride, padding, Cg, itemsize, chunked)]
    if backward:
        sizes.append(_input_grad_bytes(N, (H, W), out_hw, kernel, stride, padding, Cg,
                                       OC // groups, itemsize, chunked, True))
    return max(sizes)


def conv_transpose2d_column_bytes(input_shape, weight_shape, stride=1, padding=0,
                                  output_padding=0, groups=1, dtype=np.float32, chunked=True,
                                  backward=True):
    """Bytes of the column buffers ``conv_transpose2d`` builds for this layer (see
    :func:`conv2d_column_bytes`); ``weight_shape`` is (C_in, C_out/groups, kH, kW)."""
    N, C, H, W = input_shape
    Cin, OCg, KH, KW = weight_shape
    stride = _pair(stride, "stride", "conv_transpose2d")
    padding = _pair(padding, "padding", "conv_transpose2d")
    output_padding = _pair(output_padding, "output_padding", "conv_transpose2d")
    kernel = (KH, KW)
    out_hw = tuple(conv_transpose2d_output_size(n, k, s, p, o) for n, k, s, p, o in
                   zip((H, W), kernel, stride, padding, output_padding))
    itemsize = np.dtype(dtype).itemsize
    # it runs the conv2d that maps its output (out_hw, OCg per group) back to its input (H, W,
    # Cin/groups per group): forward = that conv's input gradient, backward = its forward
    sizes = [_input_grad_bytes(N, out_hw, (H, W), kernel, stride, padding, OCg, Cin // groups,
                               itemsize, chunked, False)]
    if backward:
        sizes.append(_forward_bytes(N, (H, W), kernel, stride, padding, OCg, itemsize, chunked))
    return max(sizes)


# ---------------------------------------------------------------------------------------------
# The ops
# ---------------------------------------------------------------------------------------------

def _to_nhwc(xp, a):
    """The NCHW-shaped ``a`` as a C-contiguous NHWC array: free when ``a`` is channels-last in
    memory (what conv2d returns), one copy otherwise."""
    return xp.ascontiguousarray(a.transpose(0, 2, 3, 1))


class Conv2d(Function):
    """2-D convolution (cross-correlation, as in PyTorch) as im2col + GEMM on channels-last
    memory; :func:`conv2d_nhwc` and :func:`conv2d_input_grad_nhwc` do the work. See
    :func:`conv2d`."""

    def __init__(self, stride, padding, groups):
        self.stride, self.padding, self.groups = stride, padding, groups

    def forward(self, x, w, b=None):
        xp = backend.get_array_module(x)
        self.x = _to_nhwc(xp, x)                 # saved for backward (a view, or one copy)
        self.w, self.has_bias = w, b is not None
        self.direct = _use_direct(xp, self.x.shape, w.shape, self.stride, self.groups)
        if self.direct:
            y = conv2d_direct_nhwc(self.x, w, b, self.padding)
        else:
            y, _ = conv2d_nhwc(self.x, w, b, self.stride, self.padding, self.groups)
        return y.transpose(0, 3, 1, 2)           # NCHW-shaped view of channels-last memory

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        gy = _to_nhwc(xp, gy)
        # a frozen weight gets no gW, an input that needs no gradient (the data, or the output
        # of a frozen backbone) no gx: only the products someone uses are computed
        need_x, need_w = self.needs_input_grad[:2]
        gx = gw = None
        if need_w and self.direct:
            gw = conv2d_direct_weight_grad_nhwc(self.x, gy, self.w.shape[2:], self.padding)
            need_w = False
        if need_x:   # gx, and gW from the same columns where it can
            gx, gw_ = conv2d_input_grad_nhwc(gy, self.w, self.x.shape[1:3], self.stride,
                                             self.padding, self.groups,
                                             x=self.x if need_w else None)
            gx, gw = gx.transpose(0, 3, 1, 2), gw if gw_ is None else gw_
        elif need_w:
            _, gw = conv2d_nhwc(self.x, self.w, None, self.stride, self.padding, self.groups,
                                gy=gy, need_y=False)
        if not self.has_bias:
            return gx, gw
        gb = _bias_grad(xp, gy) if self.inputs[2].requires_grad else None
        return gx, gw, gb


class ConvTranspose2d(Function):
    """Transposed convolution. It is the input gradient of the conv2d that maps its output back
    to its input: forward is that conv's input gradient (col2im, or a flipped-kernel convolution
    at stride 1), and backward is that conv's forward (gx) and weight gradient (gW), both from
    one set of column matrices. See :func:`conv_transpose2d`."""

    def __init__(self, stride, padding, output_size, groups):
        self.stride, self.padding, self.groups = stride, padding, groups
        self.output_size = output_size

    def forward(self, x, w, b=None):
        xp = backend.get_array_module(x)
        self.x = _to_nhwc(xp, x)
        self.w, self.has_bias = w, b is not None
        y, _ = conv2d_input_grad_nhwc(self.x, w, self.output_size, self.stride, self.padding,
                                      self.groups)
        if b is not None:
            y += b
        return y.transpose(0, 3, 1, 2)

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        gy = _to_nhwc(xp, gy)
        need_x, need_w = self.inputs[0].requires_grad, self.inputs[1].requires_grad
        # the conv2d from y back to x has input gy and output gradient x
        gx, gw = conv2d_nhwc(gy, self.w, None, self.stride, self.padding, self.groups,
                             gy=self.x if need_w else None, need_y=need_x)
        if gx is not None:
            gx = gx.transpose(0, 3, 1, 2)
        if not self.has_bias:
            return gx, gw
        gb = _bias_grad(xp, gy) if self.inputs[2].requires_grad else None
        return gx, gw, gb


def _check_dilation(op, dilation):
    if dilation not in (1, (1, 1), [1, 1]):
        raise NotImplementedError(f"{op}: dilation={dilation!r} is not supported; only 1")


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (PyTorch's ``F.conv2d``): ``(N, C, H, W) -> (N, OC, OH, OW)``.

    ``weight`` (OC, C/groups, kH, kW), ``bias`` (OC,) or None. ``stride`` and ``padding`` are ints
    or (rows, columns) pairs; ``padding`` may also be ``'valid'`` (0) or ``'same'`` (output as
    large as the input; stride 1 only; an even kernel gets the extra row/column at the end, as in
    PyTorch). Zero padding. Output size along each axis::

        OH = floor((H + 2*padding - kH) / stride) + 1

    ``groups`` splits the channels into that many independent convolutions (AlexNet's two GPUs:
    ``groups=2``); C and OC must both be divisible by it. ``dilation`` must be 1 (it is there so
    that PyTorch's positional order ``stride, padding, dilation, groups`` carries over).

    Like PyTorch it computes the cross-correlation ``y[n, oc, i, j] = b[oc] + sum over c, kh, kw of
    w[oc, c, kh, kw] * x_padded[n, c, i*sH + kh, j*sW + kw]``. The result's memory is channels-last
    (see the module docstring); its shape is NCHW.
    """
    x, weight = as_tensor(x), as_tensor(weight)
    bias = None if bias is None else as_tensor(bias)
    _check_dilation("conv2d", dilation)
    stride, padding, extra = _conv2d_geometry(x, weight, bias, stride, padding, groups)
    if extra != (0, 0):  # 'same' with an even kernel: PyTorch pads the extra row/column last
        from minicnn.ops.shape import pad
        x = pad(x, (0, extra[1], 0, extra[0]))
    fn = Conv2d(stride, padding, int(groups))
    return fn(x, weight) if bias is None else fn(x, weight, bias)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed convolution (PyTorch's ``F.conv_transpose2d``): ``(N, C, H, W) ->
    (N, OC, OH, OW)``, the U-Net up-convolution.

    ``weight`` (C, OC/groups, kH, kW) -- note the order: input channels first, as in PyTorch --
    and ``bias`` (OC,) or None. Output size along each axis::

        OH = (H - 1)*stride - 2*padding + kH + output_padding

    (``output_padding`` < stride adds rows/columns at the end to pick among the input sizes a
    strided conv2d maps to the same H.) ``dilation`` must be 1.

    It is the adjoint of ``conv2d``: ``conv_transpose2d(gy, w)`` is the gradient with respect to
    its input of ``conv2d(x, w)`` for the upstream gradient ``gy`` (same stride, padding, groups).
    So its forward is conv2d's input gradient -- ``col2im(x @ W)``, each input pixel spreading a
    weighted copy of the kernel over the output -- and its backward uses im2col: the input
    gradient is ``conv2d(gy, w)`` and the weight gradient is conv2d's weight gradient with the
    roles of input and output swapped.
    """
    x, weight = as_tensor(x), as_tensor(weight)
    bias = None if bias is None else as_tensor(bias)
    _check_dilation("conv_transpose2d", dilation)
    stride, padding, out = _conv_transpose2d_geometry(x, weight, bias, stride, padding,
                                                      output_padding, groups)
    fn = ConvTranspose2d(stride, padding, out, int(groups))
    return fn(x, weight) if bias is None else fn(x, weight, bias)
