"""One change, on and off, in alternating training steps of ONE process: what it is worth.

    python benchmarks/bench_step_ab.py                        # every change, the three models
    python benchmarks/bench_step_ab.py --changes fusion --models plain20 --steps 30

``bench_training.py`` compares minicnn with PyTorch across processes; on a shared machine its
rounds drift by 10-20%, more than most single changes are worth. Here one process builds the
model once and alternates steps with the change on (A) and off (B): ABBA ABBA ..., so a drift
of the machine falls on both alike. The table gives each variant's median step time and the
median and quartiles of the paired ratios B/A of neighbouring steps (> 1: the change helps).

The changes (each "off" is the code that ran before it, kept here for the comparison):

- ``fusion``: batch norm + ReLU as one op (``nn.norm_relu``) and a residual sum + ReLU as one
  op (``nn.residual_act``), against the modules one after the other;
- ``dispatch``: the engine's chunks taken from a shared counter by the caller and the pool
  (``minicnn/engine/parallel.py``), against a future per chunk on the pool
  (``bench_parallel.map_run``);
- ``chunk``: the engine's column chunks of ``chunk_bytes`` = 2 MB (this machine's L2 per
  core), against 4 MB.

Writes ``benchmarks/results/step_ab.md`` (atomically).
"""
import argparse
import os
import statistics
import time


import bench_parallel
import bench_training
from results_io import write_results

CHANGES = ("fusion", "dispatch", "chunk")


def switch(change):
    """``set(on)`` for ``change``: True puts the library's code in place, False the old one."""
    import minicnn.nn as nn
    from minicnn.engine import parallel
    fused = (nn.norm_relu, nn.residual_act)
    unfused = (lambda norm, act, x: act(norm(x)), lambda act, out, x: act(out + x))
    new_run = parallel.Parallel.run

    def set_(on):
        if change == "fusion":
            nn.norm_relu, nn.residual_act = fused if on else unfused
        elif change == "dispatch":
            parallel.Parallel.run = new_run if on else bench_parallel.map_run
        else:
            parallel.chunk_bytes = 2 * 2 ** 20 if on else 4 * 2 ** 20
    return set_


def measure(model_name, change, steps):
    """Step times (s) with the change on and off, alternating ABBA."""
    step = bench_training.make_step("minicnn", model_name)
    set_ = switch(change)

    times = {True: [], False: []}
    for on in (True, False):          # warm-up: compile and fill the buffers in both variants
        set_(on)
        step()
        step()
    for i in range(steps):
        for on in ((True, False) if i % 2 == 0 else (False, True)):
            set_(on)
            start = time.perf_counter()
            step()
            times[on].append(time.perf_counter() - start)
    set_(True)
    return times[True], times[False]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", nargs="+", default=list(CHANGES), choices=CHANGES)
    parser.add_argument("--models", nargs="+", default=["resnet20", "plain20", "lenet5"],
                        choices=list(bench_training.MODELS))
    parser.add_argument("--steps", type=int, default=20,
                        help="pairs of steps (LeNet-5 runs 10 times as many)")
    args = parser.parse_args()
    lines = [f"Processor: {bench_training.processor()}, {os.cpu_count()} cores. One process; for "
             f"each (change, model) a fresh model, alternating steps with the change on (A) "
             f"and off (B), ABBA; "
             f"{args.steps} pairs (LeNet-5: {10 * args.steps}). Paired ratio: B/A of "
             f"neighbouring steps, median (quartiles); > 1 means the change is faster.", "",
             "| change | model | A: on, ms | B: off, ms | paired B/A |",
             "| --- | --- | --- | --- | --- |"]
    for change in args.changes:
        for name in args.models:
            if change == "fusion" and name not in ("resnet20", "plain20"):
                continue                                  # nothing to fuse in LeNet-5
            steps = args.steps * (10 if name == "lenet5" else 1)
            on, off = measure(name, change, steps)
            ratios = [b / a for a, b in zip(on, off)]
            q1, q2, q3 = statistics.quantiles(ratios, n=4)
            lines.append(f"| {change} | {name} | {statistics.median(on) * 1e3:.1f} | "
                         f"{statistics.median(off) * 1e3:.1f} | {q2:.3f} ({q1:.3f}-{q3:.3f}) |")
            print(lines[-1], flush=True)
    write_results("step_ab", "\n".join(lines))


if __name__ == "__main__":
    main()
