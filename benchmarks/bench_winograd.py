"""Winograd vs im2col vs PyTorch on ResNet-20's three 3x3 stride-1 layer shapes, and the accuracy.

    python benchmarks/bench_winograd.py             # timings -> benchmarks/results/winograd.md
    python benchmarks/bench_winograd.py --quick     # fewer rounds and repeats
    python benchmarks/bench_winograd.py --accuracy  # only the float32 error table
    python benchmarks/bench_winograd.py --passes    # each pass alone, one thread, CPU time
                                                    # -> benchmarks/results/winograd_passes.md

Timings: one layer (no bias, padding 1, batch 128) -- 16->16 at 32x32, 32->32 at 16x16, 64->64 at
8x8 -- forward alone and forward + backward (input and weight gradients), float32, medians of
``--repeats`` calls. minicnn runs the public ``conv2d`` on channels-last memory (as its own layers
hand activations on) and the recorded op's backward, once per algorithm (``im2col``,
``winograd2`` = F(2x2, 3x3), ``winograd4`` = F(4x4, 3x3), forced with
``minicnn.engine.winograd.conv_algorithm``); PyTorch (``--threads``, default 2) in NCHW and
channels-last, the faster of the two reported. Each framework runs in its OWN process (their
thread pools fight when they share one: ``/work/shared/PERF_NOTES.md``), ``--rounds`` rounds,
the order alternating; the table shows the median over rounds and the min-max.

Passes (``--passes``, what ``minicnn.engine.winograd.MIN_CHANNELS`` was chosen from): the engine's
forward, input gradient, weight gradient and both gradients together, per algorithm, over a sweep
of channel counts (batch 32), on ONE thread (``MINICNN_NUM_THREADS``-style: the engine's worker
pool and BLAS limited to one), timed in CPU seconds of that thread (``time.thread_time``), the
minimum of ``--repeats``: on a machine shared with other jobs that is far steadier than wall
time, though caches shared with the other jobs still move it.

Accuracy: ``max |y32 - y64| / max |y64|`` for the forward pass and both gradients, float32
against float64 direct convolution (PyTorch's, of the same float32 numbers), random normal data
and He-scaled weights, 3 to 512 channels; the bound tests/test_winograd.py states comes from it.
"""
import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

# (name, batch, channels, size)
LAYERS = [("16->16 32x32", 128, 16, 32), ("32->32 16x16", 128, 32, 16), ("64->64 8x8", 128, 64, 8)]
ALGORITHMS = ("im2col", "winograd2", "winograd4")


def median_ms(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


# ---- the workers (each in its own process) ------------------------------------------------

def minicnn_worker(repeats):
    import minicnn as mc
    from minicnn.engine.winograd import conv_algorithm
    from minicnn.ops.conv import conv2d
    rng = np.random.default_rng(0)
    out = {}
    for name, n, c, size in LAYERS:
        x = mc.Tensor(np.ascontiguousarray(rng.standard_normal((n, size, size, c),
                                                               dtype=np.float32))
                      .transpose(0, 3, 1, 2), requires_grad=True)
        w = mc.Tensor(rng.standard_normal((c, c, 3, 3), dtype=np.float32) * 0.1,
                      requires_grad=True)
        gy = np.ascontiguousarray(rng.standard_normal((n, size, size, c), dtype=np.float32)) \
            .transpose(0, 3, 1, 2)
        for algorithm in ALGORITHMS:
            with conv_algorithm(algorithm):
                out[f"{name}|{algorithm}|forward"] = median_ms(lambda: conv2d(x, w, None, 1, 1),
                                                               repeats)
                out[f"{name}|{algorithm}|forward+backward"] = median_ms(
                    lambda: conv2d(x, w, None, 1, 1).creator.backward(gy), repeats)
    return out


def torch_worker(repeats, threads):
    import torch
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    out = {}
    for name, n, c, size in LAYERS:
        for label, fmt in (("NCHW", torch.contiguous_format), ("NHWC", torch.channels_last)):
            conv = torch.nn.Conv2d(c, c, 3, 1, 1, bias=False).to(memory_format=fmt)
            x = torch.from_numpy(rng.standard_normal((n, c, size, size), dtype=np.float32))
            x = x.contiguous(memory_format=fmt).requires_grad_()
            gy = torch.from_numpy(rng.standard_normal((n, c, size, size), dtype=np.float32))
            gy = gy.contiguous(memory_format=fmt)

            def forward():
                with torch.no_grad():
                    conv(x)

            def step():
                x.grad = None
                conv.zero_grad(set_to_none=True)
                conv(x).backward(gy)
            out[f"{name}|torch {label}|forward"] = median_ms(forward, repeats)
            out[f"{name}|torch {label}|forward+backward"] = median_ms(step, repeats)
    return out


def run_worker(which, repeats, threads):
    command = [sys.executable, __file__, "--worker", which, "--repeats", str(repeats),
               "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- accuracy -----------------------------------------------------------------------------

ACCURACY_SHAPES = [(3, 32, 4), (16, 32, 8), (32, 16, 16), (64, 8, 32), (256, 8, 8), (512, 4, 8)]


def accuracy_table():
    import torch
    from minicnn.engine import conv as engine
    from minicnn.engine.winograd import conv_algorithm
    import minicnn as mc
    rng = np.random.default_rng(0)
    lines = ["| channels, size, batch | algorithm | forward | input gradient | weight gradient |",
             "| --- | --- | --- | --- | --- |"]
    worst = {}
    for c, size, n in ACCURACY_SHAPES:
        x = rng.standard_normal((n, size, size, c)).astype(np.float32)
        w = (rng.standard_normal((c, c, 3, 3)) * np.sqrt(2 / (9 * c))).astype(np.float32)
        gy = rng.standard_normal((n, size, size, c)).astype(np.float32)
        xt = torch.tensor(x.astype(np.float64).transpose(0, 3, 1, 2), requires_grad=True)
        wt = torch.tensor(w.astype(np.float64), requires_grad=True)
        yt = torch.nn.functional.conv2d(xt, wt, padding=1)
        yt.backward(torch.tensor(gy.astype(np.float64).transpose(0, 3, 1, 2)))
        exact = (yt.detach().numpy().transpose(0, 2, 3, 1), xt.grad.numpy().transpose(0, 2, 3, 1),
                 wt.grad.numpy())
        for algorithm in ALGORITHMS:
            with mc.reference_kernels(False), conv_algorithm(algorithm):
                y = engine.forward(x, w, None, (1, 1), (1, 1), 1)
                gx, gw = engine.backward(x, w, gy, (1, 1), (1, 1), 1, True, True)
            errors = [np.abs(a - e).max() / np.abs(e).max() for a, e in zip((y, gx, gw), exact)]
            worst[algorithm] = max([worst.get(algorithm, 0.0)] + errors)
            lines.append(f"| {c}, {size}x{size}, {n} | {algorithm} | " +
                         " | ".join(f"{e:.1e}" for e in errors) + " |")
    lines.append("")
    lines.append("Worst over all shapes and passes: " +
                 ", ".join(f"{a} {e:.1e}" for a, e in worst.items()) + ".")
    return "\n".join(lines)


# ---- each pass alone, one thread, CPU time ------------------------------------------------

PASS_SHAPES = [(4, 32), (8, 32), (16, 32), (32, 16), (64, 8), (128, 8), (64, 28)]


def passes_table(repeats):
    import threadpoolctl
    import minicnn as mc
    from minicnn.engine import conv as engine
    from minicnn.engine import parallel
    from minicnn.engine.winograd import conv_algorithm
    parallel.num_threads = 1
    threadpoolctl.threadpool_limits(1)
    rng = np.random.default_rng(0)

    def cpu_ms(fn):
        fn()
        times = []
        for _ in range(repeats):
            start = time.thread_time()
            fn()
            times.append(time.thread_time() - start)
        return 1e3 * min(times)

    lines = ["| C->C, size | algorithm | forward | input grad | weight grad | both grads |",
             "| --- | --- | --- | --- | --- | --- |"]
    for c, size in PASS_SHAPES:
        x = rng.standard_normal((32, size, size, c)).astype(np.float32)
        w = (rng.standard_normal((c, c, 3, 3)) * 0.1).astype(np.float32)
        gy = rng.standard_normal((32, size, size, c)).astype(np.float32)
        one = ((1, 1), (1, 1), 1)
        for algorithm in ALGORITHMS:
            with mc.reference_kernels(False), conv_algorithm(algorithm):
                ms = [cpu_ms(lambda: engine.forward(x, w, None, *one)),
                      cpu_ms(lambda: engine.backward(x, w, gy, *one, True, False)),
                      cpu_ms(lambda: engine.backward(x, w, gy, *one, False, True)),
                      cpu_ms(lambda: engine.backward(x, w, gy, *one, True, True))]
            lines.append(f"| {c}->{c}, {size}x{size} | {algorithm} | " +
                         " | ".join(f"{v:.2f}" for v in ms) + " |")
    return "\n".join(lines)


# ---- the driver ---------------------------------------------------------------------------

def processor():
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown processor"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, 5 repeats")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="PyTorch threads (default 2)")
    parser.add_argument("--accuracy", action="store_true", help="only the accuracy table")
    parser.add_argument("--passes", action="store_true",
                        help="only the per-pass table (one thread, CPU time, batch 32)")
    parser.add_argument("--worker", choices=("minicnn", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "minicnn":
        print(json.dumps(minicnn_worker(args.repeats)))
        return
    if args.worker == "torch":
        print(json.dumps(torch_worker(args.repeats, args.threads)))
        return
    if args.accuracy:
        print(accuracy_table())
        return
    if args.passes:
        from results_io import write_results
        head = (f"ms of CPU time, one thread, batch 32, min of {args.repeats}; load average "
                f"{os.getloadavg()[0]:.1f}\n")
        write_results("winograd_passes", head + "\n" + passes_table(args.repeats))
        return
    rounds, repeats = (2, 5) if args.quick else (args.rounds, args.repeats)
    load_before = os.getloadavg()[0]
    results = {}
    for r in range(rounds):
        order = ("minicnn", "torch") if r % 2 == 0 else ("torch", "minicnn")
        for which in order:
            for key, ms in run_worker(which, repeats, args.threads).items():
                results.setdefault(key, []).append(ms)
            time.sleep(1)
    load_after = os.getloadavg()[0]

    def cell(values):
        return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"

    lines = [f"# Winograd vs im2col vs PyTorch: one 3x3 stride-1 layer, batch 128, float32", "",
             f"Processor: {processor()}, {os.cpu_count()} logical cores; PyTorch with "
             f"{args.threads} threads. Load average {load_before:.1f} before, {load_after:.1f} "
             f"after the run. {rounds} rounds (each framework in its own process, alternating "
             f"order), {repeats} calls each; ms, median over rounds (min-max).", "",
             "| layer | pass | im2col | F(2x2,3x3) | F(4x4,3x3) | PyTorch (faster layout) | "
             "F(2x2) vs im2col | F(2x2) vs PyTorch |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, *_ in LAYERS:
        for step in ("forward", "forward+backward"):
            get = {a: results[f"{name}|{a}|{step}"] for a in ALGORITHMS}
            layouts = {f: results[f"{name}|torch {f}|{step}"] for f in ("NCHW", "NHWC")}
            best = min(layouts, key=lambda f: statistics.median(layouts[f]))
            torch_ms = layouts[best]
            f2 = statistics.median(get["winograd2"])
            lines.append(f"| {name} | {step} | {cell(get['im2col'])} | {cell(get['winograd2'])} | "
                         f"{cell(get['winograd4'])} | {cell(torch_ms)} {best} | "
                         f"{statistics.median(get['im2col']) / f2:.2f}x | "
                         f"{statistics.median(torch_ms) / f2:.2f}x |")
    lines += ["", "(ratios > 1: Winograd F(2x2, 3x3) faster.)", "",
              "## Accuracy: max |float32 - float64 direct| / max |float64 direct|", "",
              accuracy_table()]
    from results_io import write_results
    path = write_results("winograd", "\n".join(lines))
    print(f"written to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
