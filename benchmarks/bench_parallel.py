"""How the convolution engine hands out its chunks, and how big a chunk should be.

    python benchmarks/bench_parallel.py                 # writes benchmarks/results/parallel_ab.md
    python benchmarks/bench_parallel.py --rounds 3 --repeats 25

Two ways to run a pass's chunks on ``num_threads`` threads (``minicnn/engine/parallel.py``):

- ``map`` (what the engine did before): every chunk is a future of a thread pool with
  ``num_threads`` threads (``pool.map``) while the calling thread waits;
- ``counter`` (what it does now): the caller and ``num_threads - 1`` pool threads each take the
  next chunk number from a shared counter until none are left.

For each, the column-chunk target ``chunk_bytes`` is set to 0.5, 1, 2 and 4 MB, and one 3x3
layer of each of ResNet-20's three stages (batch 128, padding 1, im2col forced so that the
chunking is the same in every pass) runs forward and backward (gx and gW). Every (strategy,
chunk size) runs in a process of its own; the rounds alternate the order. A cell is the median
over rounds of each process's best of ``--repeats`` calls, in ms, forward + backward.
"""
import argparse
import concurrent.futures
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

from results_io import write_results

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAYERS = [(32, 16), (16, 32), (8, 64)]            # (size, channels) of ResNet-20's stages
CHUNK_MB = [0.5, 1, 2, 4]


def map_run(self, task, n_tasks, workers):
    """The previous dispatcher: a future per chunk on a pool of ``num_threads`` threads."""
    from minicnn import threads
    if workers <= 1 or n_tasks <= 1:
        return [task(i) for i in range(n_tasks)]
    if getattr(self, "map_pool", None) is None:
        self.map_pool = concurrent.futures.ThreadPoolExecutor(workers)
    set_blas_threads, get_blas_threads = threads.blas
    saved = get_blas_threads()
    set_blas_threads(1)
    try:
        return list(self.map_pool.map(task, range(n_tasks)))
    finally:
        set_blas_threads(saved)


def child(strategy, chunk_mb, repeats):
    import numpy as np
    from minicnn.engine import conv, parallel
    from minicnn.engine.winograd import conv_algorithm
    if strategy == "map":
        parallel.Parallel.run = map_run
    parallel.chunk_bytes = int(chunk_mb * 2 ** 20)
    rng = np.random.default_rng(0)

    def best(function):
        function()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
        return min(times) * 1e3

    out = []
    with conv_algorithm("im2col"):
        for size, c in LAYERS:
            x = rng.random((128, size, size, c), dtype=np.float32)
            w = rng.random((c, c, 3, 3), dtype=np.float32)
            gy = rng.random((128, size, size, c), dtype=np.float32)
            out.append([best(lambda: conv.forward(x, w, None, (1, 1), (1, 1), 1)),
                        best(lambda: conv.backward(x, w, gy, (1, 1), (1, 1), 1, True, True))])
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], float(args.child[1]), args.repeats)))
        return
    cases = [(s, mb) for s in ("map", "counter") for mb in CHUNK_MB]
    results = {case: [] for case in cases}
    for round_ in range(args.rounds):
        for case in (cases if round_ % 2 == 0 else cases[::-1]):
            out = subprocess.run([sys.executable, __file__, "--child", case[0], str(case[1]),
                                  "--repeats", str(args.repeats)],
                                 capture_output=True, text=True, check=True, cwd=ROOT)
            results[case].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"round {round_ + 1} {case}: {results[case][-1]}", file=sys.stderr, flush=True)
    from bench_training import processor
    lines = [f"Processor: {processor()}, {os.cpu_count()} cores. {args.rounds} alternating rounds, "
             f"each (strategy, chunk size) in its own process; ms, forward + backward (gx and "
             f"gW), median over rounds of the best of {args.repeats} calls; batch 128, 3x3, "
             f"padding 1, im2col.", "",
             "| dispatcher | chunk_bytes | " + " | ".join(f"{c}->{c} at {s}x{s}"
                                                      for s, c in LAYERS) + " | sum |",
             "| --- | --- |" + " --- |" * (len(LAYERS) + 1)]
    for strategy, mb in cases:
        runs = results[(strategy, mb)]
        cells, total = [], 0.0
        for i in range(len(LAYERS)):
            fwd = statistics.median(r[i][0] for r in runs)
            bwd = statistics.median(r[i][1] for r in runs)
            cells.append(f"{fwd:.2f} + {bwd:.2f}")
            total += fwd + bwd
        lines.append(f"| {strategy} | {mb:g} MB | " + " | ".join(cells) + f" | {total:.1f} |")
    write_results("parallel_ab", "\n".join(lines))


if __name__ == "__main__":
    main()
