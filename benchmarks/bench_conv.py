"""Convolution forward + backward (dx and dW), minicnn vs PyTorch in the same process.

    python benchmarks/bench_conv.py            # prints a table, writes benchmarks/results/conv.md
    python benchmarks/bench_conv.py --quick    # fewer repeats
    python benchmarks/bench_conv.py --profile  # also: where minicnn's time goes (ResNet-20)

What it measures (float32, medians; PyTorch with 2 threads, ``torch.set_num_threads``):

- LeNet-5's two convolutions at batch 128 on 28x28 inputs (1->6 5x5 padding 2; 6->16 5x5 on 14x14);
- ResNet-20's 19 convolutions at batch 128 on 32x32 inputs (3->16, 6x 16->16, 16->32 stride 2,
  5x 32->32, 32->64 stride 2, 5x 64->64; all 3x3 padding 1, no bias), summed;
- one VGG layer, 64->64 3x3 padding 1 at 56x56, batch 16.

Each case is one forward and the backward of the input and the weight (and the bias where the net
has one). minicnn runs the public ``conv2d`` (argument checks, graph recording) and then the
recorded op's ``backward`` directly, as inside a network (``Tensor.backward`` on a leaf would add
a copy into ``x.grad`` that no inner activation pays). minicnn's inputs are channels-last in memory,
as its own convolutions hand them on; PyTorch runs in both memory formats and the ratio is taken
against the FASTER of the two. GFLOP/s counts 3 GEMM-sized passes (forward, dx, dW):
``3 * 2 * N*OH*OW * OC * C/groups*kH*kW``.

NOTE: minicnn (OpenBLAS threads) and PyTorch (OpenMP threads) are timed in separate blocks with a
pause between them. Both thread pools spin for a while after each call; interleaving single calls
of the two made either side up to 10x slower on a 2-core machine, which measures the fight, not
the convolution.
"""
import argparse
import collections
import os
import pathlib
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import minicnn as mc  # noqa: E402
from minicnn.kernels import im2col as im2col_kernels  # noqa: E402
from minicnn.engine import parallel  # noqa: E402
from minicnn.ops import conv as conv_ops  # noqa: E402
from minicnn.ops.conv import conv2d  # noqa: E402
from results_io import write_results  # noqa: E402  (benchmarks/ is on sys.path)

# (name, batch, C, H, W, OC, kernel, stride, padding, bias)
LENET = [("LeNet-5 conv1 1->6 5x5 p2", 128, 1, 28, 28, 6, 5, 1, 2, True),
         ("LeNet-5 conv2 6->16 5x5", 128, 6, 14, 14, 16, 5, 1, 0, True)]
RESNET20 = ([("3->16", 128, 3, 32, 32, 16, 3, 1, 1, False)] +
            [("16->16", 128, 16, 32, 32, 16, 3, 1, 1, False)] * 6 +
            [("16->32 s2", 128, 16, 32, 32, 32, 3, 2, 1, False)] +
            [("32->32", 128, 32, 16, 16, 32, 3, 1, 1, False)] * 5 +
            [("32->64 s2", 128, 32, 16, 16, 64, 3, 2, 1, False)] +
            [("64->64", 128, 64, 8, 8, 64, 3, 1, 1, False)] * 5)
VGG = [("VGG 64->64 3x3 p1 56x56", 16, 64, 56, 56, 64, 3, 1, 1, True)]


def flops(layer):
    _, n, c, h, w, oc, k, s, p, _ = layer
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    return 3 * 2 * n * oh * ow * oc * c * k * k


def channels_last(array):
    return np.ascontiguousarray(array.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def minicnn_step(layer, rng):
    """A closure running one forward + backward of ``layer`` with minicnn."""
    _, n, c, h, w, oc, k, s, p, bias = layer
    x = mc.Tensor(channels_last(rng.standard_normal((n, c, h, w), dtype=np.float32)),
                  requires_grad=True)
    wt = mc.Tensor(rng.standard_normal((oc, c, k, k), dtype=np.float32) * 0.1, requires_grad=True)
    b = mc.Tensor(np.zeros(oc, np.float32), requires_grad=True) if bias else None
    y = conv2d(x, wt, b, s, p)
    gy = channels_last(rng.standard_normal(y.shape, dtype=np.float32))

    def step():
        conv2d(x, wt, b, s, p).creator.backward(gy)
    return step


def torch_step(torch, layer, rng, memory_format):
    _, n, c, h, w, oc, k, s, p, bias = layer
    conv = torch.nn.Conv2d(c, oc, k, s, p, bias=bias).to(memory_format=memory_format)
    x = torch.from_numpy(rng.standard_normal((n, c, h, w), dtype=np.float32))
    x = x.contiguous(memory_format=memory_format).requires_grad_()
    gy = torch.from_numpy(rng.standard_normal(conv(x).shape, dtype=np.float32))
    gy = gy.contiguous(memory_format=memory_format)

    def step():
        x.grad = None
        conv.zero_grad(set_to_none=True)
        conv(x).backward(gy)
    return step


def time_block(steps, repeats, warmup=3):
    """Median seconds of running all ``steps`` once (and of each step), over ``repeats`` rounds."""
    for _ in range(warmup):
        for step in steps:
            step()
    totals, each = [], [[] for _ in steps]
    for _ in range(repeats):
        start = time.perf_counter()
        for i, step in enumerate(steps):
            t = time.perf_counter()
            step()
            each[i].append(time.perf_counter() - t)
        totals.append(time.perf_counter() - start)
    return statistics.median(totals), [statistics.median(e) for e in each]


def settle():
    time.sleep(0.5)  # let the other library's spinning threads go to sleep


def run_case(torch, layers, repeats):
    rng = np.random.default_rng(0)
    ours, ours_each = time_block([minicnn_step(layer, rng) for layer in layers], repeats)
    theirs = {}
    if torch is not None:
        for name, fmt in (("NCHW", torch.contiguous_format), ("NHWC", torch.channels_last)):
            settle()
            theirs[name] = time_block([torch_step(torch, layer, rng, fmt) for layer in layers],
                                      repeats)
        settle()
    return ours, ours_each, theirs


class Profile:
    """Wall time spent in im2col, col2im, GEMMs and layout copies while enabled."""

    def __init__(self):
        self.seconds = collections.defaultdict(float)
        self.saved = []

    def _wrap(self, owner, name, label):
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - start
        self.saved.append((owner, name, original))
        setattr(owner, name, timed)

    def __enter__(self):
        self._wrap(im2col_kernels, "im2col", "im2col")
        self._wrap(im2col_kernels, "col2im", "col2im")
        self._wrap(np, "matmul", "GEMM")
        self._wrap(conv_ops, "to_channels_last", "NCHW<->NHWC copies")
        return self

    def __exit__(self, *exc):
        for owner, name, original in reversed(self.saved):
            setattr(owner, name, original)


def profile_resnet20(repeats):
    """Seconds per pass over ResNet-20's convs (wall), and the thread-seconds spent in each part
    (summed over the worker threads, so the parts can add up to more than the wall time)."""
    rng = np.random.default_rng(0)
    steps = [minicnn_step(layer, rng) for layer in RESNET20]
    for step in steps:
        step()
    with Profile() as prof:
        start = time.perf_counter()
        for _ in range(repeats):
            for step in steps:
                step()
        total = (time.perf_counter() - start) / repeats
    parts = {k: v / repeats for k, v in prof.seconds.items()}
    return total, parts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--profile", action="store_true",
                        help="also break minicnn's ResNet-20 time into im2col/col2im/GEMM/copies")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch threads (default 2)")
    args = parser.parse_args()
    repeats = 5 if args.quick else 15
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    load_before = os.getloadavg()[0]

    rows = []
    for title, layers in (("LeNet-5 conv1 1->6 5x5 p2, batch 128, 28x28", LENET[:1]),
                          ("LeNet-5 conv2 6->16 5x5, batch 128, 14x14", LENET[1:]),
                          ("ResNet-20, 19 conv layers summed, batch 128, 32x32", RESNET20),
                          ("VGG 64->64 3x3 p1, batch 16, 56x56", VGG)):
        ours, ours_each, theirs = run_case(torch, layers, repeats)
        gflop = sum(flops(layer) for layer in layers) / 1e9
        rows.append((title, ours, theirs.get("NCHW", (None,))[0], theirs.get("NHWC", (None,))[0],
                     gflop))
        if layers is RESNET20:
            resnet_detail = (ours_each, {k: v[1] for k, v in theirs.items()})

    def ms(t):
        return "n/a" if t is None else f"{t * 1e3:.1f}"

    lines = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"numpy {np.__version__}" + (f", torch {torch.__version__} ({args.threads} threads)"
                                          if torch else ", torch not installed") +
             f"; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after.",
             f"Conv forward + backward (dx, dW), float32, median of {repeats} (ms). "
             "Ratio = minicnn / the faster PyTorch layout.", "",
             "| case | minicnn | PyTorch NCHW | PyTorch channels_last | minicnn / PyTorch | "
             "minicnn GFLOP/s | PyTorch GFLOP/s |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for title, ours, nchw, nhwc, gflop in rows:
        best = min(t for t in (nchw, nhwc) if t is not None) if torch else None
        lines.append(f"| {title} | {ms(ours)} | {ms(nchw)} | {ms(nhwc)} | "
                     f"{'n/a' if best is None else f'{ours / best:.2f}x'} | {gflop / ours:.0f} | "
                     f"{'n/a' if best is None else f'{gflop / best:.0f}'} |")

    ours_each, theirs_each = resnet_detail
    lines += ["", "ResNet-20 per layer (ms; median of each layer's own times):", "",
              "| layer | minicnn | PyTorch NCHW | PyTorch channels_last |",
              "| --- | --- | --- | --- |"]
    groups = collections.OrderedDict()
    for i, layer in enumerate(RESNET20):
        groups.setdefault(layer[0], []).append(i)
    for name, idx in groups.items():
        def cell(values):
            if values is None:
                return "n/a"
            return f"{statistics.mean(values[i] for i in idx) * 1e3:.2f}"
        label = f"{name} (x{len(idx)}, mean)" if len(idx) > 1 else name
        lines.append(f"| {label} | {cell(ours_each)} | {cell(theirs_each.get('NCHW'))} | "
                     f"{cell(theirs_each.get('NHWC'))} |")

    if args.profile:
        total, parts = profile_resnet20(repeats)
        workers = parallel.parallel.workers(np)
        parts["other (Python, bias, sums, waiting)"] = workers * total - sum(parts.values())
        lines += ["", f"Where minicnn's ResNet-20 time goes: {total * 1e3:.0f} ms per pass over "
                  f"the 19 layers (wall, timers on), chunks on {workers} worker thread(s). The "
                  "parts are thread-milliseconds summed over the threads; share = part / "
                  f"({workers} x wall time):", "",
                  "| part | thread-ms | share |", "| --- | --- | --- |"]
        for name, seconds in sorted(parts.items(), key=lambda kv: -kv[1]):
            lines.append(f"| {name} | {seconds * 1e3:.1f} | {seconds / (workers * total):.0%} |")

    write_results("conv", "\n".join(lines))


if __name__ == "__main__":
    main()
