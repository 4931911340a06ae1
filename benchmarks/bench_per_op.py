"""Where a training step's time goes, op by op, in minicnn and in PyTorch.

    python benchmarks/bench_per_op.py                  # the four models of bench_training.py
    python benchmarks/bench_per_op.py --models lenet5 --steps 20

Each (framework, model) runs in a process of its own: a few warm-up steps, then ``--steps``
training steps (forward, cross-entropy, backward, SGD with momentum) under the framework's own
profiler -- ``mc.profile`` (wall time inside every op's forward and backward) and
``torch.profiler`` (self CPU time of every aten op; it also counts the optimizer's ops). The ops
are grouped into the same categories on both sides; "outside ops" is the step's wall time under
the profiler minus the time inside ops (autograd bookkeeping, the optimizer for minicnn, Python).
Both profilers add their own cost, so the absolute times are a little above bench_training's;
the table is for WHERE the time goes, bench_training for how fast a step is.

Writes ``benchmarks/results/per_op.md`` (atomically).
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import bench_training
from results_io import write_results

ROOT = pathlib.Path(__file__).resolve().parents[1]
CATEGORIES = ("convolution", "batch norm", "ReLU", "pooling", "linear", "add", "loss",
              "other ops", "outside ops")
#: minicnn Function name -> category (batch norm includes its fused ReLU, AddReLU the sum)
MINICNN = {"Conv2d": "convolution", "BatchNorm": "batch norm", "ReLU": "ReLU",
           "AddReLU": "add", "MaxPool2d": "pooling", "Linear": "linear", "Add": "add",
           "CrossEntropy": "loss"}
#: aten op -> category (prefix match, first hit)
TORCH = [("aten::convolution_backward", "convolution"), ("aten::mkldnn_convolution",
                                                          "convolution"),
         ("aten::_slow_conv2d", "convolution"), ("aten::native_batch_norm", "batch norm"),
         ("aten::clamp_min", "ReLU"), ("aten::threshold_backward", "ReLU"),
         ("aten::relu", "ReLU"), ("aten::max_pool2d", "pooling"), ("aten::addmm", "linear"),
         ("aten::mm", "linear"), ("aten::add", "add"), ("aten::nll_loss", "loss"),
         ("aten::_log_softmax", "loss")]


def child(framework, name, steps, warmup):
    """ms per step in each category, for one framework and model."""
    step = bench_training.make_step(framework, name)
    for _ in range(warmup):
        step()
    ms = dict.fromkeys(CATEGORIES, 0.0)
    if framework == "minicnn":
        import minicnn as mc
        with mc.profile() as prof:
            start = time.perf_counter()
            for _ in range(steps):
                step()
            wall = time.perf_counter() - start
        for op, _, _, seconds in prof.rows():
            ms[MINICNN.get(op, "other ops")] += seconds * 1e3 / steps
        ms["outside ops"] = (wall - prof.total()) * 1e3 / steps
    else:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            for _ in range(steps):
                step()
            wall = time.perf_counter() - start
        inside = 0.0
        for event in prof.key_averages():
            if not event.key.startswith("aten::"):
                continue
            us = event.self_cpu_time_total
            inside += us
            category = "other ops" if event.key.endswith("_") else next(  # in place: SGD, grads
                (c for prefix, c in TORCH if event.key.startswith(prefix)), "other ops")
            ms[category] += us / 1e3 / steps
        ms["outside ops"] = max(0.0, wall * 1e3 / steps - inside / 1e3 / steps)
    return ms


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(bench_training.MODELS),
                        choices=list(bench_training.MODELS))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        steps = args.steps * (10 if args.child[1] == "lenet5" else 1)
        print(json.dumps(child(*args.child, steps, args.warmup)))
        return
    lines = [f"Processor: {bench_training.processor()}, {os.cpu_count()} cores. ms per training "
             f"step under each framework's profiler ({args.steps} steps, LeNet-5 "
             f"{10 * args.steps}; each framework and model in its own process). PyTorch: "
             f"self CPU time of the aten ops (its NCHW default layout, 2 threads); minicnn: "
             f"wall time inside its ops. minicnn's batch norm includes the ReLU fused into it, "
             f"its 'add' the ReLU fused into the residual sum.", ""]
    for name in args.models:
        result = {}
        for framework in ("minicnn", "torch"):
            out = subprocess.run([sys.executable, __file__, "--child", framework, name,
                                  "--steps", str(args.steps), "--warmup", str(args.warmup)],
                                 capture_output=True, text=True, check=True, cwd=ROOT)
            result[framework] = json.loads(out.stdout.strip().splitlines()[-1])
        lines += [f"**{bench_training.LABELS[name]}**", "",
                  "| category | minicnn ms | PyTorch ms | time, minicnn / PyTorch |",
                  "| --- | --- | --- | --- |"]
        for category in CATEGORIES + ("step",):
            if category == "step":
                a, b = (sum(result[f].values()) for f in ("minicnn", "torch"))
            else:
                a, b = result["minicnn"][category], result["torch"][category]
            if a < 0.005 and b < 0.005:
                continue
            ratio = f"{a / b:.2f}" if a >= 0.005 and b >= 0.005 else "-"
            if category == "ReLU" and a < 0.005:
                ratio = "- (minicnn: fused into batch norm and add)"
            lines.append(f"| {category} | {a:.2f} | {b:.2f} | {ratio} |")
        lines.append("")
        print("\n".join(lines[-14:]), file=sys.stderr, flush=True)
    write_results("per_op", "\n".join(lines))


if __name__ == "__main__":
    main()
