"""Training throughput and peak memory, minicnn vs PyTorch CPU, on the same machine.

    python benchmarks/bench_training.py                      # the four models, 3 rounds
    python benchmarks/bench_training.py --rounds 5 --steps 20
    python benchmarks/bench_training.py --models resnet20    # one model

One training step = forward, cross-entropy, backward, SGD with momentum 0.9, on random data (the
data pipeline is not timed). Every (framework, model) measurement runs in a process of its own,
so that one framework's threads never steal the other's cores and the peak resident memory
(ru_maxrss) belongs to it alone. The rounds alternate the order (minicnn first, then PyTorch
first, ...), so drift in the machine's speed falls on both. A process's throughput is the median
over its steps after warm-up; the table gives the median over rounds, the min-max, and the ratio
minicnn / PyTorch of each round.

The four models (the same architecture in both frameworks, written out below):

- LeNet-5 with ReLU and max pooling, batch 128, 1x28x28;
- ResNet-20 (He et al. 2016, CIFAR form, option A shortcuts), batch 128, 3x32x32;
- plain-20, ResNet-20 without its shortcuts, batch 128, 3x32x32;
- VGG-small: conv64-conv64-pool-conv128-conv128-pool-fc, 3x3 convs with ReLU, no batch norm,
  batch 64, 3x32x32.

GFLOP/s: the multiply-adds of a training step counted from ``mc.summary`` (forward, the weight
gradient, and the input gradient of every conv and linear layer but the first, whose input needs
no gradient; 2 FLOPs per multiply-add), divided by the step's time, against the machine's sgemm
peak measured here (NumPy's BLAS, float32, 2048^3, best of 5). The count is direct
convolution's: Winograd's layers do fewer multiplications, so minicnn may pass 100%. Writes
``benchmarks/results/training.md`` (atomically).
"""
import argparse
import json
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import time
from results_io import write_results  # noqa: E402  (benchmarks/ is on sys.path)

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODELS = {"lenet5": (128, (1, 28, 28)), "resnet20": (128, (3, 32, 32)),
          "plain20": (128, (3, 32, 32)), "vgg-small": (64, (3, 32, 32))}
LABELS = {"lenet5": "LeNet-5, ReLU + max-pool", "resnet20": "ResNet-20, option A",
          "plain20": "plain-20", "vgg-small": "VGG-small, no BN"}


def vgg_small(nn):
    """conv64-conv64-pool-conv128-conv128-pool-fc from either ``minicnn.nn`` or ``torch.nn``."""
    layers, c = [], 3
    for v in (64, 64, "M", 128, 128, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = v
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(128 * 8 * 8, 10))


def lenet5_relu_max(nn):
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


def build_minicnn(name):
    import minicnn.nn as nn
    from minicnn.models.resnet_cifar import resnet20
    if name == "lenet5":
        return lenet5_relu_max(nn)
    if name in ("resnet20", "plain20"):
        return resnet20(plain=name == "plain20")
    return vgg_small(nn)


def torch_resnet20(plain=False):
    """CIFAR ResNet-20 in PyTorch: 3x3 conv 16, three stages of three basic blocks (16, 32, 64
    channels), option A shortcuts (subsample + zero-pad channels), global average pool, fc;
    ``plain=True`` drops the shortcuts."""
    import torch
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.stride, self.extra = stride, cout - cin

        def forward(self, x):
            out = torch.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            if plain:
                return torch.relu(out)
            shortcut = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
            if self.extra:
                shortcut = nn.functional.pad(shortcut, (0, 0, 0, 0, 0, self.extra))
            return torch.relu(out + shortcut)

    layers, cin = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()], 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(3):
            layers.append(Block(cin, cout, stride if i == 0 else 1))
            cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def build_torch(name):
    import torch.nn as nn
    if name in ("resnet20", "plain20"):
        return torch_resnet20(plain=name == "plain20")
    if name == "lenet5":
        return lenet5_relu_max(nn)
    return vgg_small(nn)


def training_gflop_per_image(name):
    """GFLOP of one image's training step in the conv and linear layers (see the docstring)."""
    import minicnn as mc
    rows = [r for r in mc.summary(build_minicnn(name), (1, *MODELS[name][1]),
                                 print_table=False).rows
            if r.leaf and r.macs]
    macs = 3 * sum(r.macs for r in rows) - rows[0].macs  # forward, dW, dX (not the first dX)
    return 2 * macs / 1e9


def make_step(framework, name):
    """One training step of model ``name`` in ``framework`` ("minicnn" or "torch") on a fixed
    random batch, as a function of no arguments (also used by bench_per_op and bench_step_ab)."""
    import numpy as np
    batch, shape = MODELS[name]
    rng = np.random.default_rng(0)
    x_np = rng.random((batch, *shape), dtype=np.float32)
    y_np = rng.integers(0, 10, batch)
    if framework == "minicnn":
        import minicnn as mc
        import minicnn.nn.functional as F
        mc.manual_seed(0)
        model = build_minicnn(name)
        opt = mc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x, y = mc.Tensor(x_np), mc.Tensor(y_np)
        loss_fn = F.cross_entropy
    else:
        import torch
        torch.set_num_threads(os.cpu_count() or 1)
        torch.manual_seed(0)
        model = build_torch(name)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
        loss_fn = torch.nn.functional.cross_entropy

    def step():
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def run_one(framework, name, steps, warmup):
    """Time `steps` training steps in this process; returns a dict (printed as JSON)."""
    batch = MODELS[name][0]
    step = make_step(framework, name)
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"images_per_s": batch / statistics.median(times), "peak_mb": peak_mb}


def sgemm_peak():
    """GFLOP/s of NumPy's float32 matrix product at 2048^3 (best of 5): the machine's ceiling."""
    import numpy as np
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(5))
    return {"gflops": 2 * 2048 ** 3 / best / 1e9}


def _timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def child(*args):
    """Run ``bench_training.py --child ARGS`` in a fresh process; its JSON result or None."""
    out = subprocess.run([sys.executable, __file__, "--child", *map(str, args)],
                         capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        print(out.stderr.strip().splitlines()[-1] if out.stderr else "failed", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def processor():
    """The model name and, on x86 Linux, the family/model numbers and AVX-512 (which the name
    does not always carry: a cloud "AMD EPYC" may be any generation)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    name = fields.get("model name", platform.machine())
    if "cpu family" in fields:
        name += f" (family {fields['cpu family']}, model {fields.get('model', '?')}"
        name += ", AVX-512)" if "avx512f" in fields.get("flags", "").split() else ", no AVX-512)"
    return name


def _span(values, fmt):
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}-{fmt(max(values))})"


def table(results, peak, rounds, steps, warmup):
    """The markdown of the results: ``results[name][framework]`` is a list of per-round dicts."""
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    import numpy as np
    lines = [f"Processor: {processor()}, {os.cpu_count()} cores; NumPy {np.__version__}, torch "
             f"{torch_version}. sgemm peak (NumPy float32, 2048^3): {peak:,.0f} GFLOP/s.",
             f"{rounds} alternating rounds, each framework and model in its own process; in "
             f"each, the median of {steps} training steps after {warmup} warm-up steps. "
             "img/s: median over rounds (min-max); GFLOP/s and % of the sgemm peak at the "
             "median; peak MB: the largest resident memory over rounds.", "",
             "| model (batch) | minicnn img/s | PyTorch img/s | minicnn / PyTorch, per round | "
             "GFLOP/s minicnn / PyTorch (% of peak) | peak MB minicnn / PyTorch |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, by_framework in results.items():
        ours, theirs = by_framework["minicnn"], by_framework["torch"]
        label = f"{LABELS[name]} ({MODELS[name][0]})"
        if not ours or not theirs:
            lines.append(f"| {label} | {'failed' if not ours else ''} | "
                         f"{'failed' if not theirs else ''} | | | |")
            continue
        ips_ours = [r["images_per_s"] for r in ours]
        ips_theirs = [r["images_per_s"] for r in theirs]
        ratios = [a / b for a, b in zip(ips_ours, ips_theirs)]
        gflop = training_gflop_per_image(name)
        g_ours, g_theirs = (gflop * statistics.median(v) for v in (ips_ours, ips_theirs))
        lines.append(
            f"| {label} | {_span(ips_ours, '{:,.0f}'.format)} | "
            f"{_span(ips_theirs, '{:,.0f}'.format)} | "
            f"{_span(ratios, '{:.2f}x'.format)} | "
            f"{g_ours:.0f} / {g_theirs:.0f} ({100 * g_ours / peak:.0f}% / "
            f"{100 * g_theirs / peak:.0f}%) | "
            f"{max(r['peak_mb'] for r in ours):,.0f} / {max(r['peak_mb'] for r in theirs):,.0f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child == ["peak"]:
            print(json.dumps(sgemm_peak()))
        else:
            print(json.dumps(run_one(*args.child[:2], args.steps, args.warmup)))
        return
    peak = child("peak")["gflops"]
    results = {name: {"minicnn": [], "torch": []} for name in args.models}
    for round_ in range(args.rounds):
        order = ("minicnn", "torch") if round_ % 2 == 0 else ("torch", "minicnn")
        for name in args.models:
            for framework in order:
                result = child(framework, name, "--steps", args.steps, "--warmup", args.warmup)
                if result is not None:
                    results[name][framework].append(result)
                print(f"round {round_ + 1}/{args.rounds} {framework} {name}: {result}",
                      file=sys.stderr, flush=True)
    write_results("training", table(results, peak, args.rounds, args.steps, args.warmup))


if __name__ == "__main__":
    main()
