"""End-to-end training throughput and peak memory, minicnn vs PyTorch CPU on the same machine.

    python benchmarks/bench_training.py                 # both models, both frameworks
    python benchmarks/bench_training.py --steps 10      # quicker

One training step = forward, cross-entropy, backward, SGD with momentum, on random data (the
data pipeline is not timed). Each (framework, model) pair runs in its own process so that the
peak resident memory (ru_maxrss) belongs to it alone; throughput is the median over steps after
warm-up. Models:

- LeNet-5 (ReLU, max pooling), batch 128, 1x28x28;
- VGG-11 in its CIFAR form (the VGG-11 convolution stack with batch norm, 32x32 inputs, one
  512 -> 10 classifier), batch 64, 3x32x32;
- ResNet-20 (He et al. 2016, CIFAR, option A shortcuts), batch 128, 3x32x32; PyTorch's twin is
  written out below, layer for layer.

Writes benchmarks/results/training.md (atomically).
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
VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
MODELS = {"lenet5": (128, (1, 28, 28)), "vgg11-cifar": (64, (3, 32, 32)),
          "resnet20": (128, (3, 32, 32))}


def vgg11_cifar(nn):
    """The same VGG-11 from either ``minicnn.nn`` or ``torch.nn``: the APIs are the same."""
    layers, c = [], 3
    for v in VGG11:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
            c = v
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512, 10))


def build_minicnn(name):
    import minicnn.nn as nn
    from minicnn.models import lenet5
    if name == "lenet5":
        return lenet5(activation="relu", pool="max")
    if name == "resnet20":
        from minicnn.models.resnet_cifar import resnet20
        return resnet20()
    return vgg11_cifar(nn)


def torch_resnet20():
    """CIFAR ResNet-20 in PyTorch: 3x3 conv 16, three stages of three basic blocks (16, 32, 64
    channels), option A shortcuts (subsample + zero-pad channels), global average pool, fc."""
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
    if name == "resnet20":
        return torch_resnet20()
    if name == "lenet5":
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
                             nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
                             nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                             nn.Linear(84, 10))
    return vgg11_cifar(nn)


def run_one(framework, name, steps, warmup):
    """Time `steps` training steps in this process; returns a dict (printed as JSON)."""
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

        def step():
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    else:
        import torch
        torch.set_num_threads(os.cpu_count() or 1)
        torch.manual_seed(0)
        model = build_torch(name)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)

        def step():
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"images_per_s": batch / statistics.median(times), "peak_mb": peak_mb}


def measure(framework, name, steps, warmup):
    cmd = [sys.executable, __file__, "--child", framework, name, "--steps", str(steps),
           "--warmup", str(warmup)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        return None, out.stderr.strip().splitlines()[-1] if out.stderr else "failed"
    return json.loads(out.stdout.strip().splitlines()[-1]), None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("FRAMEWORK", "MODEL"))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(*args.child, args.steps, args.warmup)))
        return
    rows = []
    for name in args.models:
        ours, err = measure("minicnn", name, args.steps, args.warmup)
        theirs, terr = measure("torch", name, args.steps, args.warmup)
        rows.append((name, ours, theirs, err or terr))
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    lines = [f"Machine: {platform.machine()}, {os.cpu_count()} cores; torch {torch_version}. "
             f"Training step on random data, median of {args.steps} steps after "
             f"{args.warmup} warm-up steps; peak = max resident memory of the process.", "",
             "| model (batch) | minicnn img/s | PyTorch img/s | minicnn / PyTorch speed | "
             "minicnn peak MB | PyTorch peak MB |", "| --- | --- | --- | --- | --- | --- |"]
    for name, ours, theirs, err in rows:
        batch = MODELS[name][0]
        if ours is None:
            lines.append(f"| {name} ({batch}) | failed: {err} | | | | |")
            continue
        t_ips = f"{theirs['images_per_s']:,.0f}" if theirs else "n/a"
        ratio = f"{ours['images_per_s'] / theirs['images_per_s']:.2f}x" if theirs else "n/a"
        t_mb = f"{theirs['peak_mb']:,.0f}" if theirs else "n/a"
        lines.append(f"| {name} ({batch}) | {ours['images_per_s']:,.0f} | {t_ips} | {ratio} | "
                     f"{ours['peak_mb']:,.0f} | {t_mb} |")
    write_results("training", "\n".join(lines))


if __name__ == "__main__":
    main()
