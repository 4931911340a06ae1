"""prange or serial? The numbers behind the numba threading policy in ``kernels/__init__.py``.

    python benchmarks/bench_threading.py                  # kernels alone, then training steps
    python benchmarks/bench_threading.py --rounds 3 --steps 15

The pooling, batch-norm and ReLU twins run over the whole batch in the calling thread, with
``prange`` (numba's OpenMP team, one task per image or row chunk). This compares each with the
same kernel compiled serially (``parallel=False``, ``nogil=True``):

1. alone, at LeNet-5's and ResNet-20's sizes (batch 128, channels-last activations as the
   convolution leaves them), median of 30 calls;
2. inside a training step (LeNet-5 and ResNet-20, batch 128), each variant in its own process,
   the two processes alternating ``--rounds`` times; median step time.

Prints a table; writes nothing.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

#: (module, numba kernels in it that use prange)
PRANGE_KERNELS = (
    ("minicnn.kernels.pooling", ("max_pool2d_forward_numba", "max_pool2d_backward_numba",
                                 "avg_pool2d_forward_numba", "avg_pool2d_backward_numba")),
    ("minicnn.kernels.normalization", ("_sum_and_sumsq", "_sum_and_dot", "_normalize",
                                       "_combine")),
    ("minicnn.kernels.elementwise", ("_relu_forward_parallel", "_relu_backward_parallel")),
)


def make_serial():
    """Replace every prange kernel by the same function compiled with ``parallel=False``."""
    import importlib

    import numba
    for module_name, names in PRANGE_KERNELS:
        module = importlib.import_module(module_name)
        for name in names:
            kernel = getattr(module, name)
            options = {k: v for k, v in kernel.targetoptions.items()
                       if k in ("fastmath", "boundscheck", "error_model")}
            setattr(module, name, numba.njit(parallel=False, nogil=True, cache=False,
                                             **options)(kernel.py_func))


def time_calls(fn, repeat=30):
    fn()
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def kernels_alone():
    """``{case: ms}`` for the pooling, batch-norm and ReLU entry points at the nets' sizes."""
    import numpy as np

    from minicnn.kernels import elementwise as E
    from minicnn.kernels import normalization as B
    from minicnn.kernels import pooling as P
    rng = np.random.default_rng(0)
    out = {}

    def nhwc(n, c, h, w):  # an NCHW-shaped view of channels-last memory, as conv returns
        return rng.standard_normal((n, h, w, c), dtype=np.float32).transpose(0, 3, 1, 2)

    for label, x in (("LeNet pool 128x6x28x28", nhwc(128, 6, 28, 28)),
                     ("LeNet pool 128x16x10x10", nhwc(128, 16, 10, 10))):
        y, idx = P.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (x.shape[2] // 2,) * 2, True)
        gy = nhwc(*y.shape)
        out[f"max_pool fwd {label}"] = time_calls(lambda: P.max_pool2d_forward(
            x, (2, 2), (2, 2), (0, 0), y.shape[2:], True))
        out[f"max_pool bwd {label}"] = time_calls(lambda: P.max_pool2d_backward(
            gy, idx, x.shape, (2, 2), (2, 2), (0, 0), True))
    for c, hw in ((16, 32), (32, 16), (64, 8)):
        x = nhwc(128, c, hw, hw)
        x3, last = B.as_acb(x)
        g3 = B.like_acb(nhwc(128, c, hw, hw), last)
        mean, k = np.zeros(c), np.ones(c, np.float32)
        buf = np.empty_like(x3)
        label = f"ResNet BN 128x{c}x{hw}x{hw}"
        out[f"bn fwd {label}"] = time_calls(lambda: (B.channel_sums(x3),
                                                     B.normalize(x3, mean, k, k, buf)))
        out[f"bn bwd {label}"] = time_calls(lambda: (B.grad_sums(g3, x3, mean),
                                                     B.combine(g3, x3, mean, k, k, k, buf)))
        out[f"relu fwd+bwd {label}"] = time_calls(lambda: E.relu_backward(x, E.relu_forward(x)))
    return out


def training_step_ms(model_name, steps):
    """Median training-step time (ms) of ``model_name`` at batch 128, random data."""
    import numpy as np

    import minicnn as mc
    import minicnn.nn.functional as F
    from minicnn.models import lenet5
    from minicnn.models.resnet_cifar import resnet20
    mc.manual_seed(0)
    model, shape = ((lenet5(activation="relu", pool="max"), (1, 28, 28)) if model_name == "lenet5"
                    else (resnet20(), (3, 32, 32)))
    rng = np.random.default_rng(0)
    x = mc.Tensor(rng.random((128, *shape), dtype=np.float32))
    y = mc.Tensor(rng.integers(0, 10, 128))
    opt = mc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time_calls(step, repeat=steps)


def child(variant, what, steps):
    if variant == "serial":
        make_serial()
    result = kernels_alone() if what == "kernels" else {what: training_step_ms(what, steps)}
    print(json.dumps(result))


def run_child(variant, what, steps):
    out = subprocess.run([sys.executable, __file__, "--child", variant, what, "--steps",
                          str(steps)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "WHAT"))
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.steps)
        return
    times = {}
    for _ in range(args.rounds):
        for what in ("kernels", "lenet5", "resnet20"):
            for variant in ("prange", "serial"):
                for case, ms in run_child(variant, what, args.steps).items():
                    times.setdefault(case, {}).setdefault(variant, []).append(ms)
    print(f"| case | prange ms | serial ms | serial / prange |\n| --- | --- | --- | --- |")
    for case, by_variant in times.items():
        p, s = (statistics.median(by_variant[v]) for v in ("prange", "serial"))
        print(f"| {case} | {p:.2f} | {s:.2f} | {s / p:.2f} |")


if __name__ == "__main__":
    main()
