"""The convolution engine: how ``minicnn/ops/conv.py``'s im2col + GEMM runs fast on a CPU.

The op says WHAT is computed (``y = im2col(x) @ W.T + b``; backward ``gW = gy.T @ cols``,
``gx = col2im(gy @ W)``). This module says HOW, behind four calls on channels-last arrays
(``x`` (N, H, W, C), ``w`` (OC, C/groups, KH, KW), ``gy`` (N, OH, OW, OC)), each with an
optional last argument ``dilation`` (a pair, default ``(1, 1)``):

    forward(x, w, b, stride, padding, groups)                      -> y
    backward(x, w, gy, stride, padding, groups, need_x, need_w)    -> (gx, gW)
    transpose_forward(x, w, b, output_hw, stride, padding, groups) -> y
    transpose_backward(x, w, gy, stride, padding, groups, need_x, need_w) -> (gx, gW)

plus :func:`bias_grad`. On the reference lane (``MINICNN_KERNELS=reference``,
``mc.reference_kernels()``) each call is the lecture's version, written out in the first section
below: NumPy im2col and one GEMM forward, two GEMMs and NumPy col2im backward, the whole batch at
once, no buffers, no threads, no special cases. Otherwise it is the fast version; what makes it
fast (measured on a 2-core machine; ``benchmarks/bench_conv.py``):

1. Channels last in memory. The GEMM's output ``(N*OH*OW, OC)`` is an NHWC image. ``conv2d``
   returns it as an NCHW-*shaped* view (``y.transpose(0, 3, 1, 2)``, no copy), so shapes are
   PyTorch's while the memory stays channels-last. The next conv asks for
   ``x.transpose(0, 2, 3, 1)``, which is then contiguous already (no copy), and NumPy's
   element-wise ops (ReLU, batch norm) keep the layout of their input. In that layout a window
   row is ``KW*C`` consecutive numbers, so im2col copies runs instead of single numbers.
2. Chunks that stay in the cache, 3. chunks in parallel on our own worker threads, each with a
   single-threaded GEMM: ``minicnn/engine/parallel.py`` says why and what it measured.
4. Reused buffers (``minicnn/engine/workspace.py``): a chunk's columns go into its thread's
   workspace buffer, reused from call to call. Nothing that outlives a call points into it:
   backward recomputes columns from the saved input instead of keeping them (keeping them would
   cost ``KH*KW`` times the input's memory per layer).
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
   ``kernels/direct_conv.py`` computes it directly, one shifted image per kernel tap,
   forward and weight gradient (2-3 times faster on C1). Such a layer's input is usually the
   data, which needs no gradient; when it does, the input gradient takes the usual path.
9. The bias gradient, a sum over all pixels per channel, is one matrix-vector product
   (``ones @ gy``): NumPy's ``sum(axis=0)`` over a (N*OH*OW, OC) array with few channels is ten
   times slower.
10. Dilated kernels (taps ``dilation`` apart, DeepLab's atrous convolution) take the im2col
   paths with gaps in the windows: forward and gW by ``conv2d_nhwc``, gx at stride 1 as the
   convolution of point 5 (its "full" padding is ``dilation*(KH-1) - padding``) or else by
   col2im, chosen by the same byte estimate, whose runs are then ``C`` numbers per tap instead
   of ``KW*C`` per kernel row (the numba twins for gapped windows are kernels of their own, see
   ``kernels/im2col.py``). They never take the direct kernels of point 8 (written for dense
   kernels); a 1x1 kernel has no gaps and stays pointwise (point 6). The dense paths are the
   same code with dilation 1, branched off at the top (``dilation != (1, 1)``), so a dense
   convolution does exactly what it did before dilation existed.
11. 3x3 stride-1 layers with enough channels take Winograd's algorithm (``engine/winograd.py``,
   2.25 times fewer multiplications), all three passes; ``MINICNN_CONV_ALGORITHM`` forces one.

Memory: ``minicnn/engine/memory.py`` predicts the column buffers of a layer. Together they stay
below ``parallel.max_column_bytes`` unless the columns of a single image are larger.
"""
import numpy as np

from minicnn import backend
from minicnn.engine import winograd
from minicnn.engine.parallel import chunking, parallel, split_evenly
from minicnn.engine.workspace import workspace
from minicnn.kernels import direct_conv
from minicnn.kernels import im2col as kernels
from minicnn.kernels.geometry import conv_output_size


# ---------------------------------------------------------------------------------------------
# The interface the ops call
# ---------------------------------------------------------------------------------------------

def forward(x, w, b, stride, padding, groups, dilation=(1, 1)):
    """``y (N, OH, OW, OC) = im2col(x) @ W.T + b`` of a channels-last ``x`` (N, H, W, C)."""
    if backend.reference_lane():
        return reference_forward(x, w, b, stride, padding, groups, dilation)
    if dilation != (1, 1):                                         # point 10
        y, _ = conv2d_nhwc(x, w, b, stride, padding, groups, dilation=dilation)
        return y
    if m := winograd.tile_size(x, w.shape, stride, padding, groups):   # point 11
        return winograd.forward(x, w, b, padding, m)
    if use_direct(backend.get_array_module(x), x.shape, w.shape, stride, groups):
        return conv2d_direct_nhwc(x, w, b, padding)
    y, _ = conv2d_nhwc(x, w, b, stride, padding, groups)
    return y


def backward(x, w, gy, stride, padding, groups, need_x, need_w, dilation=(1, 1)):
    """``(gx, gW)`` of a convolution: ``gx = col2im(gy @ W)`` (N, H, W, C) when ``need_x``,
    ``gW = gy.T @ im2col(x)`` when ``need_w``; None for the one not needed."""
    if backend.reference_lane():
        gx = reference_input_grad(gy, w, x.shape[1:3], stride, padding, groups, dilation) \
            if need_x else None
        gw = reference_weight_grad(x, gy, w.shape, stride, padding, groups, dilation) \
            if need_w else None
        return gx, gw
    if dilation != (1, 1):                                         # point 10
        if need_x:   # gx, and gW from the same columns where it can
            return conv2d_input_grad_nhwc(gy, w, x.shape[1:3], stride, padding, groups,
                                          x=x if need_w else None, dilation=dilation)
        gw = conv2d_nhwc(x, w, None, stride, padding, groups, gy=gy, need_y=False,
                         dilation=dilation)[1] if need_w else None
        return None, gw
    if m := winograd.tile_size(x, w.shape, stride, padding, groups):   # point 11
        return winograd.backward(x, w, gy, padding, need_x, need_w, m)
    gx = gw = None
    if need_w and use_direct(backend.get_array_module(x), x.shape, w.shape, stride, groups):
        gw = conv2d_direct_weight_grad_nhwc(x, gy, w.shape[2:], padding)
        need_w = False
    if need_x:   # gx, and gW from the same columns where it can
        gx, gw_ = conv2d_input_grad_nhwc(gy, w, x.shape[1:3], stride, padding, groups,
                                         x=x if need_w else None)
        gw = gw if gw_ is None else gw_
    elif need_w:
        _, gw = conv2d_nhwc(x, w, None, stride, padding, groups, gy=gy, need_y=False)
    return gx, gw


def transpose_forward(x, w, b, output_hw, stride, padding, groups, dilation=(1, 1)):
    """Transposed convolution of a channels-last ``x``: the input gradient of the conv2d that
    maps its output (``output_hw``) back to its input, ``col2im(x @ W) + b``."""
    if backend.reference_lane():
        y = reference_input_grad(x, w, output_hw, stride, padding, groups, dilation)
    else:
        y, _ = conv2d_input_grad_nhwc(x, w, output_hw, stride, padding, groups,
                                      dilation=dilation)
    if b is not None:
        y += b
    return y


def transpose_backward(x, w, gy, stride, padding, groups, need_x, need_w, dilation=(1, 1)):
    """``(gx, gW)`` of a transposed convolution: that conv2d's forward of ``gy`` (gx) and its
    weight gradient with ``gy`` as input and ``x`` as output gradient (gW)."""
    if backend.reference_lane():
        gx = reference_forward(gy, w, None, stride, padding, groups, dilation) if need_x \
            else None
        gw = reference_weight_grad(gy, x, w.shape, stride, padding, groups, dilation) \
            if need_w else None
        return gx, gw
    return conv2d_nhwc(gy, w, None, stride, padding, groups, gy=x if need_w else None,
                       need_y=need_x, dilation=dilation)


def bias_grad(gy):
    """Sum of the channels-last ``gy`` over everything but the channels (point 9)."""
    gy2 = gy.reshape(-1, gy.shape[-1])
    if backend.reference_lane():
        return gy2.sum(axis=0)
    xp = backend.get_array_module(gy)
    return xp.matmul(xp.ones(gy2.shape[0], dtype=gy2.dtype), gy2)


# ---------------------------------------------------------------------------------------------
# The reference lane: the lecture's version, whole batch, one GEMM per group
# ---------------------------------------------------------------------------------------------

def _output_hw(input_hw, kernel, stride, padding, dilation=(1, 1)):
    return tuple(conv_output_size(n, k, s, p, d) for n, k, s, p, d in
                 zip(input_hw, kernel, stride, padding, dilation))


def reference_forward(x, w, b, stride, padding, groups, dilation=(1, 1)):
    """``y = im2col(x) @ W.T + b``: (N, H, W, C) -> (N, OH, OW, OC)."""
    xp = backend.get_array_module(x)
    N, H, W, C = x.shape
    OC, Cg, KH, KW = w.shape
    OCg = OC // groups
    OH, OW = _output_hw((H, W), (KH, KW), stride, padding, dilation)
    y = xp.empty((N * OH * OW, OC), dtype=x.dtype)
    for g in range(groups):
        cols = kernels.im2col_reference(x[..., g * Cg:(g + 1) * Cg], (KH, KW), stride, padding,
                                        dilation)
        y[:, g * OCg:(g + 1) * OCg] = cols @ weight_matrix(w[g * OCg:(g + 1) * OCg]).T
    if b is not None:
        y += b
    return y.reshape(N, OH, OW, OC)


def reference_weight_grad(x, gy, w_shape, stride, padding, groups, dilation=(1, 1)):
    """``gW = gy.T @ im2col(x)``, in the weight's (OC, C/groups, KH, KW) order."""
    xp = backend.get_array_module(x)
    OC, Cg, KH, KW = w_shape
    OCg = OC // groups
    gy2 = gy.reshape(-1, OC)
    parts = []
    for g in range(groups):
        cols = kernels.im2col_reference(x[..., g * Cg:(g + 1) * Cg], (KH, KW), stride, padding,
                                        dilation)
        gw = gy2[:, g * OCg:(g + 1) * OCg].T @ cols                     # (OCg, KH*KW*Cg)
        parts.append(gw.reshape(OCg, KH, KW, Cg).transpose(0, 3, 1, 2))
    return xp.ascontiguousarray(xp.concatenate(parts))


def reference_input_grad(gy, w, input_hw, stride, padding, groups, dilation=(1, 1)):
    """``gx = col2im(gy @ W)``: (N, OH, OW, OC) -> (N, H, W, C), ``(H, W) = input_hw``."""
    xp = backend.get_array_module(gy)
    N, OC = gy.shape[0], gy.shape[3]
    _, Cg, KH, KW = w.shape
    OCg = OC // groups
    gy2 = gy.reshape(-1, OC)
    gx = xp.empty((N, *input_hw, Cg * groups), dtype=gy.dtype)
    for g in range(groups):
        gcols = gy2[:, g * OCg:(g + 1) * OCg] @ weight_matrix(w[g * OCg:(g + 1) * OCg])
        gx[..., g * Cg:(g + 1) * Cg] = kernels.col2im_reference(
            gcols, (N, *input_hw, Cg), (KH, KW), stride, padding, dilation)
    return gx


# ---------------------------------------------------------------------------------------------
# Weight matrices and the choice of path
# ---------------------------------------------------------------------------------------------

def weight_matrix(w):
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


def is_pointwise(kernel, stride, padding):
    """A 1x1 kernel at stride 1 without padding: the input is its own column matrix (point 6)."""
    return kernel == (1, 1) and stride == (1, 1) and padding == (0, 0)


def use_direct(xp, x_shape, w_shape, stride, groups, dilation=(1, 1)):
    """Point 8: a one-channel dense conv at stride 1, on the CPU (``x_shape`` channels-last)."""
    return (xp is np and groups == 1 and stride == (1, 1) and dilation == (1, 1)
            and w_shape[1] == 1 and x_shape[3] == 1)


def input_grad_as_convolution(kernel, stride, padding, in_hw, out_hw, cin_g, cout_g,
                              with_weight_grad, dilation=(1, 1)):
    """Take the input gradient as the convolution im2col(gy) @ W_flipped (point 5) instead of
    col2im(gy @ W)?

    Possible at stride 1 with padding < kernel. Worth it when it costs less, estimated per image
    in numbers written or read: the convolution copies ``in_hw * kH*kW * C_out`` numbers (im2col
    of gy) and reads them once per GEMM (one for gx, one more for gW); col2im writes ``gy @ W``
    (``out_hw * kH*kW * C_in``) and adds it back run by run, and the weight gradient then needs
    im2col(x) of that size too. A copied or added run (one kernel row of a window, ``kW*C``
    numbers) has a fixed cost of about 8 numbers' worth in both im2col and col2im (measured on
    LeNet-5's and ResNet-20's layers); it makes the convolution the slow choice when C_out is
    much larger than C_in, and col2im the slow one for few channels out.

    A dilated kernel (point 10) is possible while ``padding`` < its span ``dilation*(k-1) + 1``;
    with column dilation > 1 a run is one tap (``C`` numbers), ``KH*KW`` runs per window.
    """
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if stride != (1, 1) or padding[0] >= span[0] or padding[1] >= span[1]:
        return False
    KH, KW = kernel
    runs, taps = (KH, KW) if dilation[1] == 1 else (KH * KW, 1)   # runs per window, taps per run
    n_in, n_out = in_hw[0] * in_hw[1], out_hw[0] * out_hw[1]
    gemms = 2 if with_weight_grad else 1
    as_convolution = n_in * runs * (taps * cout_g + 8) + gemms * n_in * KH * KW * cout_g
    with_col2im = n_out * KH * KW * cin_g + n_out * runs * (taps * cin_g + 8)
    if with_weight_grad:
        with_col2im += n_out * runs * (taps * cin_g + 8) + n_out * KH * KW * cin_g
    return as_convolution <= with_col2im


# ---------------------------------------------------------------------------------------------
# The fast primitives: chunks of channels-last arrays (any array module)
# ---------------------------------------------------------------------------------------------

def _columns(a, n0, n1, g, groups, kernel, stride, padding, rows_per_image, dilation=(1, 1)):
    """``im2col`` of images ``n0:n1`` of the channels-last ``a``, channels of group ``g``, in
    this thread's workspace buffer (use it before asking for the next one). A 1x1 kernel with
    stride 1 and no padding gives the input itself: it is its own column matrix."""
    xp = backend.get_array_module(a)
    Cg = a.shape[3] // groups
    part = a[n0:n1] if groups == 1 else a[n0:n1, :, :, g * Cg:(g + 1) * Cg]
    part = xp.ascontiguousarray(part)
    if is_pointwise(kernel, stride, padding):
        return part.reshape(-1, Cg)
    buffer = workspace.get(xp, ((n1 - n0) * rows_per_image, kernel[0] * kernel[1] * Cg),
                           a.dtype)
    return kernels.im2col(part, kernel, stride, padding, dilation, out=buffer)


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


def conv2d_nhwc(x, w, b, stride, padding, groups=1, gy=None, need_y=True, dilation=(1, 1)):
    """Convolution of a channels-last batch, chunk by chunk: ``y = im2col(x) @ W.T + b``.

    x (N, H, W, C), w (OC, C/groups, KH, KW), b (OC,) or None -> y (N, OH, OW, OC).
    With ``gy`` (N, OH, OW, OC) it also returns the weight gradient ``gW = im2col(x).T @ gy``
    from the same column matrices (what conv2d's weight gradient and the backward of a transposed
    convolution need). Returns ``(y, gW)``; ``y`` is None unless ``need_y``, ``gW`` None
    without ``gy``. ``dilation`` spreads the kernel's taps (point 10).
    """
    xp = backend.get_array_module(x)
    N, H, W, C = x.shape
    OC, Cg, KH, KW = w.shape
    OCg = OC // groups
    kernel = (KH, KW)
    OH, OW = _output_hw((H, W), kernel, stride, padding, dilation)
    R = OH * OW                                                    # rows (output pixels) per image
    y = xp.empty((N, OH, OW, OC), dtype=x.dtype) if need_y else None
    y2 = y.reshape(N * R, OC) if need_y else None
    w_t = [weight_matrix(w[g * OCg:(g + 1) * OCg]).T for g in range(groups)]    # (K, OCg)
    gy2 = None if gy is None else gy.reshape(N * R, OC)
    per_image = 0 if is_pointwise(kernel, stride, padding) else R * KH * KW * Cg * x.itemsize
    step, n_chunks, workers = chunking(xp, N, per_image)

    def chunk(i):
        n0, n1 = i * step, min(N, (i + 1) * step)
        rows = slice(n0 * R, n1 * R)
        partial = []
        for g in range(groups):
            cols = _columns(x, n0, n1, g, groups, kernel, stride, padding, R, dilation)
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

    partials = parallel.run(chunk, n_chunks, workers)
    gw = None
    if gy is not None:
        if N == 0:
            gw = xp.zeros(w.shape, dtype=x.dtype)
        else:
            gw = xp.concatenate([t.T.reshape(OCg, KH, KW, Cg)
                                 for t in _sum_in_order(partials, groups)])
            gw = xp.ascontiguousarray(gw.transpose(0, 3, 1, 2))
    return y, gw


def conv2d_input_grad_nhwc(gy, w, input_hw, stride, padding, groups=1, x=None,
                           dilation=(1, 1)):
    """Input gradient of a convolution, which is the forward of a transposed convolution:
    gy (N, OH, OW, OC), w (OC, C/groups, KH, KW) -> gx (N, H, W, C), ``(H, W) = input_hw``.

    As a convolution (see :func:`input_grad_as_convolution`): ``gx = im2col(gy, padding
    dH*(KH-1)-pH) @ W_flipped``, and when the input ``x`` is passed the same columns give the weight
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

    if is_pointwise(kernel, stride, padding):                      # gx = gy @ W: one GEMM
        for g, wg in enumerate(w_groups):
            if groups == 1:
                xp.matmul(gy2, weight_matrix(wg), out=gx2)
            else:
                gx2[:, g * Cg:(g + 1) * Cg] = xp.matmul(gy2[:, g * OCg:(g + 1) * OCg],
                                                        weight_matrix(wg))
    elif input_grad_as_convolution(kernel, stride, padding, (H, W), (OH, OW), Cg, OCg,
                                   x is not None, dilation):
        return _input_grad_flipped(gy, w_groups, gx, x, padding, dilation)
    else:                                                          # gx = col2im(gy @ W)
        w_mat = [weight_matrix(wg) for wg in w_groups]             # (OCg, KH*KW*Cg)
        R, K = OH * OW, KH * KW * Cg
        step, n_chunks, workers = chunking(xp, N, R * K * gy.itemsize)

        def chunk(i):
            n0, n1 = i * step, min(N, (i + 1) * step)
            rows = slice(n0 * R, n1 * R)
            for g in range(groups):
                gcols = workspace.get(xp, ((n1 - n0) * R, K), gy.dtype)
                xp.matmul(gy2[rows, g * OCg:(g + 1) * OCg], w_mat[g], out=gcols)
                if groups == 1:
                    kernels.col2im(gcols, (n1 - n0, H, W, Cg), kernel, stride, padding,
                                   dilation, out=gx[n0:n1])
                else:
                    gx[n0:n1, :, :, g * Cg:(g + 1) * Cg] = kernels.col2im(
                        gcols, (n1 - n0, H, W, Cg), kernel, stride, padding, dilation)

        parallel.run(chunk, n_chunks, workers)
    gw = None
    if x is not None:
        _, gw = conv2d_nhwc(x, w, None, stride, padding, groups, gy=gy, need_y=False,
                            dilation=dilation)
    return gx, gw


def _input_grad_flipped(gy, w_groups, gx, x, padding, dilation=(1, 1)):
    """Point 5: ``gx = im2col(gy) @ W_flipped`` at stride 1, chunk by chunk, and (when ``x`` is
    given) ``gW_flipped = im2col(gy).T @ x`` from the same columns. Returns ``(gx, gW)``. A
    dilated kernel's flipped twin has the same gaps; its "full" padding is ``span - 1 -
    padding``."""
    xp = backend.get_array_module(gy)
    N, H, W, C = gx.shape
    OCg, Cg, KH, KW = w_groups[0].shape
    groups = len(w_groups)
    gx2 = gx.reshape(N * H * W, C)
    w_flip = [_flipped_weight_matrix(wg) for wg in w_groups]       # (KH*KW*OCg, Cg)
    x2 = None if x is None else x.reshape(N * H * W, C)
    full = (dilation[0] * (KH - 1) - padding[0],                   # the "full" padding
            dilation[1] * (KW - 1) - padding[1])
    R = H * W                                                      # rows: input pixels
    step, n_chunks, workers = chunking(xp, N, R * KH * KW * OCg * gy.itemsize)

    def chunk(i):
        n0, n1 = i * step, min(N, (i + 1) * step)
        rows = slice(n0 * R, n1 * R)
        partial = []
        for g in range(groups):
            cols = _columns(gy, n0, n1, g, groups, (KH, KW), (1, 1), full, R, dilation)
            in_channels = slice(g * Cg, (g + 1) * Cg)
            if groups == 1:
                xp.matmul(cols, w_flip[0], out=gx2[rows])
            else:
                gx2[rows, in_channels] = xp.matmul(cols, w_flip[g])
            if x2 is not None:
                partial.append(xp.matmul(cols.T, x2[rows, in_channels]))
        return partial

    partials = parallel.run(chunk, n_chunks, workers)
    if x is None:
        return gx, None
    if N == 0:
        return gx, xp.zeros((OCg * groups, Cg, KH, KW), dtype=gy.dtype)
    gw = xp.concatenate([_unflip(t, (OCg, Cg, KH, KW)) for t in _sum_in_order(partials, groups)])
    return gx, xp.ascontiguousarray(gw)


# ---------------------------------------------------------------------------------------------
# The direct convolution of a one-channel layer (point 8)
# ---------------------------------------------------------------------------------------------

def conv2d_direct_nhwc(x, w, b, padding):
    """Forward of a one-channel conv (see :func:`use_direct`): x (N, H, W, 1) -> y (N, OH, OW,
    OC), chunks of the batch on the worker threads."""
    N, H, W, _ = x.shape
    OC, _, KH, KW = w.shape
    OH, OW = _output_hw((H, W), (KH, KW), (1, 1), padding)
    y = np.empty((N, OH, OW, OC), dtype=x.dtype)
    step, n_chunks, workers = split_evenly(N, OH * OW * OC * x.itemsize)

    def chunk(i):
        n0, n1 = i * step, min(N, (i + 1) * step)
        direct_conv.conv2d_direct_numba(x[n0:n1], w, b, padding, out=y[n0:n1])

    parallel.run(chunk, n_chunks, workers)
    return y


def conv2d_direct_weight_grad_nhwc(x, gy, kernel, padding):
    """Weight gradient of a one-channel conv: x (N, H, W, 1), gy (N, OH, OW, OC) -> gW (OC, 1,
    KH, KW), the chunks' partial sums added in chunk order."""
    N, OH, OW, OC = gy.shape
    step, n_chunks, workers = split_evenly(N, OH * OW * OC * gy.itemsize)
    if n_chunks == 0:
        return np.zeros((OC, 1) + tuple(kernel), dtype=gy.dtype)

    def chunk(i):
        n0, n1 = i * step, min(N, (i + 1) * step)
        return direct_conv.conv2d_direct_weight_grad_numba(x[n0:n1], gy[n0:n1], kernel, padding)

    partials = parallel.run(chunk, n_chunks, workers)
    gw = partials[0]
    for p in partials[1:]:
        gw += p
    return gw
