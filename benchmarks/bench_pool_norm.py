"""Pooling and batch norm, forward + backward, minicnn vs PyTorch in the same process.

    python benchmarks/bench_pool_norm.py          # prints the table, writes results/pool_norm.md
    python benchmarks/bench_pool_norm.py --quick  # fewer repeats

What it measures (float32, batch 128, medians; numba and PyTorch with 2 threads):

Options: ``--quick`` (fewer rounds), ``--threads N`` (default 2).

- max pooling and average pooling, forward + backward, at LeNet-5's sizes (2x2 stride 2 on
  6x28x28 and 16x10x10) and at a VGG-style 64x32x32 map (2x2 stride 2, and ResNet's 3x3
  stride 2 padding 1);
- batch norm in training mode followed by ReLU, forward + backward (gradients for the input,
  gamma and beta), at the three ResNet-20 sizes (16x32x32, 32x16x16, 64x8x8) and summed over
  ResNet-20's 19 batch-norm layers (7, 6 and 6 of each size).

minicnn's side runs the public function (argument checks, graph recording) and then the
recorded op's ``backward`` directly, as inside a network: ``Tensor.backward`` on a LEAF input would
add a copy of the input gradient into ``x.grad`` that no intermediate activation pays (PyTorch's
leaf accumulation takes the gradient without a copy).

Each case runs in both memory layouts: NCHW and channels-last (NHWC memory, which is what the
minicnn convolution hands on; PyTorch's ``channels_last`` memory format). Rounds alternate
minicnn and PyTorch, so a busy machine slows both alike; the load average is printed.
"""
import argparse
import os
import pathlib
import platform
import statistics
import sys
import time

import numba
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import minicnn as mc  # noqa: E402
from minicnn.ops.activation import relu  # noqa: E402
from minicnn.ops.normalization import batch_norm  # noqa: E402
from minicnn.ops.pooling import avg_pool2d, max_pool2d  # noqa: E402
from results_io import write_results  # noqa: E402  (benchmarks/ is on sys.path)

BATCH = 128
RESNET20_BN = [((BATCH, 16, 32, 32), 7), ((BATCH, 32, 16, 16), 6), ((BATCH, 64, 8, 8), 6)]


def layout(array, channels_last):
    """``array`` (NCHW) with channels-last memory when asked (an NCHW-shaped view)."""
    if not channels_last:
        return np.ascontiguousarray(array)
    return np.ascontiguousarray(array.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def paired_medians(ours, theirs, rounds, warmup=10):
    """Median seconds of ``ours()`` and ``theirs()``, timed in alternating rounds after
    ``warmup`` untimed ones (the first calls pay for fresh pages and caches)."""
    for _ in range(warmup):
        ours()
        if theirs:
            theirs()
    t_ours, t_theirs = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        ours()
        t_ours.append(time.perf_counter() - start)
        if theirs:
            start = time.perf_counter()
            theirs()
            t_theirs.append(time.perf_counter() - start)
    return statistics.median(t_ours), (statistics.median(t_theirs) if theirs else None)


def pool_case(torch, kind, shape, kernel, stride, padding, channels_last, rounds):
    rng = np.random.default_rng(0)
    x_np = layout(rng.standard_normal(shape, dtype=np.float32), channels_last)
    op = max_pool2d if kind == "max" else avg_pool2d
    x = mc.Tensor(x_np, requires_grad=True)
    gy_np = layout(rng.standard_normal(op(mc.Tensor(x_np), kernel, stride, padding).shape,
                                       dtype=np.float32), channels_last)

    def ours():
        op(x, kernel, stride, padding).creator.backward(gy_np)

    theirs = None
    if torch is not None:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        tx = torch.from_numpy(np.ascontiguousarray(x_np)).contiguous(memory_format=fmt)
        tx.requires_grad_()
        tgy = torch.from_numpy(np.ascontiguousarray(gy_np)).contiguous(memory_format=fmt)
        top = torch.nn.functional.max_pool2d if kind == "max" else \
            torch.nn.functional.avg_pool2d

        def theirs():
            tx.grad = None
            top(tx, kernel, stride, padding).backward(tgy)
    return paired_medians(ours, theirs, rounds)


def bn_relu_case(torch, shape, channels_last, rounds):
    rng = np.random.default_rng(0)
    c = shape[1]
    x_np = layout(rng.standard_normal(shape, dtype=np.float32), channels_last)
    gy_np = layout(rng.standard_normal(shape, dtype=np.float32), channels_last)
    x = mc.Tensor(x_np, requires_grad=True)
    w = mc.Tensor(np.ones(c, np.float32), requires_grad=True)
    b = mc.Tensor(np.zeros(c, np.float32), requires_grad=True)
    rm, rv = np.zeros(c, np.float32), np.ones(c, np.float32)

    def ours():
        y = relu(batch_norm(x, rm, rv, w, b, training=True))
        g = y.creator.backward(gy_np)            # ReLU's backward
        y.creator.inputs[0].creator.backward(g)  # batch norm's: gx, gamma, beta

    theirs = None
    if torch is not None:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        bn = torch.nn.BatchNorm2d(c)
        tx = torch.from_numpy(np.ascontiguousarray(x_np)).contiguous(memory_format=fmt)
        tx.requires_grad_()
        tgy = torch.from_numpy(np.ascontiguousarray(gy_np)).contiguous(memory_format=fmt)

        def theirs():
            tx.grad = None
            bn.zero_grad()
            torch.relu(bn(tx)).backward(tgy)
    return paired_medians(ours, theirs, rounds)


def fmt_ms(seconds):
    return "n/a" if seconds is None else f"{seconds * 1e3:.2f}"


def ratio(ours, theirs):
    return "n/a" if not theirs else f"{ours / theirs:.2f}x"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--threads", type=int, default=2,
                        help="threads for numba and PyTorch alike (default 2)")
    args = parser.parse_args()
    rounds = 5 if args.quick else 15
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    load_before = os.getloadavg()[0]

    rows = []
    pool_cases = [("LeNet pool1 2x2/2", (BATCH, 6, 28, 28), 2, 2, 0),
                  ("LeNet pool2 2x2/2", (BATCH, 16, 10, 10), 2, 2, 0),
                  ("VGG-style 2x2/2", (BATCH, 64, 32, 32), 2, 2, 0),
                  ("ResNet-style 3x3/2 pad 1", (BATCH, 64, 32, 32), 3, 2, 1)]
    for kind in ("max", "avg"):
        for name, shape, k, s, p in pool_cases:
            if kind == "avg" and k == 3:
                continue
            for cl in (False, True):
                ours, theirs = pool_case(torch, kind, shape, k, s, p, cl, rounds)
                rows.append((f"{kind}-pool {name} {shape[1:]}", "NHWC" if cl else "NCHW",
                             ours, theirs))
    for cl in (False, True):
        total_ours = total_theirs = 0.0
        for shape, count in RESNET20_BN:
            ours, theirs = bn_relu_case(torch, shape, cl, rounds)
            rows.append((f"BN+ReLU train {shape[1:]} (one layer)", "NHWC" if cl else "NCHW",
                         ours, theirs))
            total_ours += count * ours
            total_theirs = total_theirs + count * theirs if theirs else None
        rows.append(("BN+ReLU train, ResNet-20's 19 layers", "NHWC" if cl else "NCHW",
                     total_ours, total_theirs))

    lines = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"numpy {np.__version__}" + (f", torch {torch.__version__}" if torch else
                                          ", torch not installed") +
             f"; {args.threads} thread(s) for numba and PyTorch" +
             f"; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after.",
             f"Forward + backward, float32, batch {BATCH}, median of {rounds} alternating rounds "
             "(ms).", "",
             "| case | layout | minicnn | PyTorch | minicnn / PyTorch |",
             "| --- | --- | --- | --- | --- |"]
    for name, lay, ours, theirs in rows:
        lines.append(f"| {name} | {lay} | {fmt_ms(ours)} | {fmt_ms(theirs)} | "
                     f"{ratio(ours, theirs)} |")
    write_results("pool_norm", "\n".join(lines))


if __name__ == "__main__":
    main()
