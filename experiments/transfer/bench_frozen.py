"""How much faster is a training step when parts of the network are frozen?

    MINICNN_NUM_THREADS=1 .venv/bin/python experiments/transfer/bench_frozen.py

1. One training step (forward, backward, Adam) of ResNet-20 on a batch of 128 Fashion-MNIST-sized
   images (1 x 28 x 28), three ways: everything trainable; everything frozen but the deepest
   stage (layer3) and the head; everything frozen but the head (the linear probe).
2. The backward of one fully connected layer 4096 -> 4096 on 128 rows whose input needs no
   gradient (the first trainable layer after a frozen backbone): with ``needs_input_grad`` it
   computes only gW; the input gradient gx, which nobody uses, is the product skipped. Measured
   against the same layer with ``requires_grad=True`` on the input (both products: what every
   backward computed before ``needs_input_grad``).
3. The backward of one 3x3 conv 64 -> 64 at 14 x 14, batch 128, whose weight is frozen but whose
   input needs a gradient (a frozen layer between trainable ones): gx only, vs gx and gW.

The variants run interleaved, round after round, and the medians are reported, so that a
machine shared with other jobs slows all of them alike. Results go to ``bench_frozen.json``
next to this file.
"""
import json
import os
import pathlib
import platform
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import minicnn as mc  # noqa: E402
import minicnn.nn.functional as F  # noqa: E402
from minicnn import transfer  # noqa: E402
from minicnn.serialization import atomic_write  # noqa: E402


def resnet_variant(which):
    mc.manual_seed(0)
    model = mc.models.resnet20(in_channels=1)
    if which == "layer3 + head":
        transfer.freeze(model)
        transfer.unfreeze(model, "layer3", "head")
    elif which == "head only":
        transfer.freeze(model)
        transfer.unfreeze(model, "head")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = mc.optim.Adam(params, lr=1e-3)
    rng = np.random.default_rng(0)
    x = mc.Tensor(rng.standard_normal((128, 1, 28, 28)).astype(np.float32))
    y = mc.Tensor(rng.integers(0, 10, 128))

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step, transfer.report(model).trainable


def linear_variant(input_needs_grad):
    rng = np.random.default_rng(0)
    x = mc.Tensor(rng.standard_normal((128, 4096)).astype(np.float32),
                  requires_grad=input_needs_grad)
    w = mc.Tensor((rng.standard_normal((4096, 4096)) / 64).astype(np.float32),
                  requires_grad=True)
    b = mc.Tensor(np.zeros(4096, np.float32), requires_grad=True)

    def step():
        F.linear(x, w, b).sum().backward()
    return step


def conv_variant(weight_trainable):
    rng = np.random.default_rng(0)
    x = mc.Tensor(rng.standard_normal((128, 64, 14, 14)).astype(np.float32), requires_grad=True)
    w = mc.Tensor((rng.standard_normal((64, 64, 3, 3)) / 24).astype(np.float32),
                  requires_grad=weight_trainable)

    def step():
        x.grad = None
        F.conv2d(x, w, padding=1).sum().backward()
    return step


def median_ms(variants, rounds, repeats):
    """Run each variant ``repeats`` times per round, interleaved over ``rounds`` rounds; the
    median milliseconds per call of each."""
    times = {name: [] for name in variants}
    for fn in variants.values():   # warm-up (numba compilation, buffers)
        fn()
        fn()
    for _ in range(rounds):
        for name, fn in variants.items():
            for _ in range(repeats):
                started = time.perf_counter()
                fn()
                times[name].append(1000 * (time.perf_counter() - started))
    return {name: float(np.median(t)) for name, t in times.items()}


def main():
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                          f"MINICNN_NUM_THREADS={os.environ.get('MINICNN_NUM_THREADS', 'unset')}",
               "command": "MINICNN_NUM_THREADS=1 .venv/bin/python "
                          "experiments/transfer/bench_frozen.py"}
    results["load_average_at_start"] = [round(v, 2) for v in os.getloadavg()]
    resnet, trainable = {}, {}
    for which in ("all trainable", "layer3 + head", "head only"):
        resnet[which], trainable[which] = resnet_variant(which)
    ms = median_ms(resnet, rounds=5, repeats=3)
    results["resnet20_step_ms"] = {k: {"ms": round(v, 1), "trainable": trainable[k]}
                                   for k, v in ms.items()}
    for k, v in ms.items():
        print(f"ResNet-20 step, batch 128, {k:<14} {v:7.1f} ms  "
              f"({trainable[k]:,} trainable parameters)", flush=True)

    ms = median_ms({"gW only (input needs no grad)": linear_variant(False),
                    "gW and gx": linear_variant(True)}, rounds=5, repeats=4)
    results["linear_4096_backward_ms"] = {k: round(v, 2) for k, v in ms.items()}
    for k, v in ms.items():
        print(f"Linear 4096->4096 x 128, forward+backward, {k:<30} {v:7.2f} ms", flush=True)

    ms = median_ms({"gx only (frozen weight)": conv_variant(False),
                    "gx and gW": conv_variant(True)}, rounds=5, repeats=3)
    results["conv_64x64_14x14_backward_ms"] = {k: round(v, 2) for k, v in ms.items()}
    for k, v in ms.items():
        print(f"Conv 3x3 64->64 14x14 x 128, forward+backward, {k:<24} {v:7.2f} ms", flush=True)

    # other jobs on the machine slow every variant; the ratios are what to read
    results["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    with atomic_write(pathlib.Path(__file__).with_name("bench_frozen.json"), "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
