"""Autograd overhead and a small training step, minicnn vs PyTorch on the same machine.

    python benchmarks/bench_autograd.py            # prints a table, writes benchmarks/results/autograd.md

What it measures (medians over repeats, float32, this process's threads):
- the fixed cost of one op: forward + backward of ``(a * b + a).sum()`` on 8-element tensors,
  where the arithmetic is nothing and the Python bookkeeping everything;
- the fixed cost of each op LeNet-5 runs (conv2d, relu, max_pool2d, flatten, linear,
  cross_entropy): forward + backward of ``op(...).sum()`` on one tiny image (1x1x8x8, 2 filters),
  where the arithmetic is nothing and the argument checks, the dispatch, the allocation and the
  graph bookkeeping are everything;
- one training step of an MLP (784-256-10, batch 128, SGD momentum): forward, backward, update,
  where the GEMMs dominate.
Results are ratios to PyTorch; PyTorch is skipped (with a note) when it is not installed.
"""
import os
import pathlib
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import minicnn as mc  # noqa: E402
import minicnn.nn as nn  # noqa: E402
import minicnn.nn.functional as F  # noqa: E402
from results_io import write_results  # noqa: E402  (benchmarks/ is on sys.path)


def median_time(fn, repeats=5, number=1, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


def bench_op_overhead_minicnn():
    a = mc.Tensor(np.random.rand(8).astype(np.float32), requires_grad=True)
    b = mc.Tensor(np.random.rand(8).astype(np.float32), requires_grad=True)

    def step():
        (a * b + a).sum().backward()
    return median_time(step, number=2000)


def bench_op_overhead_torch(torch):
    a = torch.rand(8, requires_grad=True)
    b = torch.rand(8, requires_grad=True)

    def step():
        (a * b + a).sum().backward()
    return median_time(step, number=2000)


def lenet_ops(lib, functional, tensor):
    """``{name: step}``: forward + backward of each LeNet-5 op on tiny inputs, for either
    framework (``lib`` is minicnn or torch; their functional APIs agree)."""
    rng = np.random.default_rng(0)

    def leaf(*shape):
        return tensor(rng.random(shape, dtype=np.float32), requires_grad=True)

    x, w, b = leaf(1, 1, 8, 8), leaf(2, 1, 3, 3), leaf(2)
    v, fc_w, fc_b = leaf(1, 16), leaf(10, 16), leaf(10)
    labels = tensor(np.array([3]))
    ops = {
        "conv2d 1->2 3x3": lambda: functional.conv2d(x, w, b, padding=1),
        "relu": lambda: functional.relu(x),
        "max_pool2d 2x2": lambda: functional.max_pool2d(x, 2),
        "flatten": lambda: lib.flatten(x, 1),
        "linear 16->10": lambda: functional.linear(v, fc_w, fc_b),
        "cross_entropy": lambda: functional.cross_entropy(v, labels),
    }
    return {name: (lambda op=op: op().sum().backward()) for name, op in ops.items()}


def bench_mlp_minicnn(batch=128):
    mc.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = mc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = mc.Tensor(np.random.rand(batch, 784).astype(np.float32))
    y = mc.Tensor(np.random.randint(0, 10, batch))

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return median_time(step, number=20)


def bench_mlp_torch(torch, batch=128):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, 784)
    y = torch.randint(0, 10, (batch,))

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return median_time(step, number=20)


def main():
    try:
        import torch
        torch.set_num_threads(os.cpu_count() or 1)
    except ImportError:
        torch = None
    rows = [("one tiny op, forward+backward (us)", bench_op_overhead_minicnn() / 3 * 1e6,
             bench_op_overhead_torch(torch) / 3 * 1e6 if torch else None),
            ("MLP 784-256-10 train step, batch 128 (ms)", bench_mlp_minicnn() * 1e3,
             bench_mlp_torch(torch) * 1e3 if torch else None)]
    ours = lenet_ops(mc, F, lambda a, requires_grad=False: mc.Tensor(a, requires_grad=requires_grad))
    theirs = (lenet_ops(torch, torch.nn.functional,
                        lambda a, requires_grad=False: torch.tensor(a, requires_grad=requires_grad))
              if torch else {})
    for name, step in ours.items():
        rows.append((f"{name} on one tiny image, forward+backward (us)",
                     median_time(step, number=500) * 1e6,
                     median_time(theirs[name], number=500) * 1e6 if torch else None))
    lines = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"numpy {np.__version__}" + (f", torch {torch.__version__}" if torch else
                                          ", torch not installed"),
             "", "| measurement | minicnn | PyTorch | minicnn / PyTorch |",
             "| --- | --- | --- | --- |"]
    for name, ours, theirs in rows:
        ratio = f"{ours / theirs:.2f}x" if theirs else "n/a"
        theirs_s = f"{theirs:.1f}" if theirs else "n/a"
        lines.append(f"| {name} | {ours:.1f} | {theirs_s} | {ratio} |")
    write_results("autograd", "\n".join(lines))


if __name__ == "__main__":
    main()
