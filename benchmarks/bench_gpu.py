"""The GPU path: minicnn (CuPy + the hand-written CUDA kernels) vs PyTorch CUDA, same process.

    python benchmarks/bench_gpu.py            # needs a CUDA GPU with CuPy; torch with CUDA for
    python benchmarks/bench_gpu.py --quick    # the comparison (minicnn alone without it)

Writes benchmarks/results/gpu.md (atomically) and, with ``--json PATH``, the raw numbers.
``benchmarks/gpu_all.sh`` runs it on a lent GPU machine together with ``pytest -m gpu``.

What it measures (float32, medians of alternating rounds, every round ends with a device
synchronisation of both frameworks, so a round's time is the GPU work, not the launch):

- the kernels alone: im2col of a batch vs ``torch.nn.functional.unfold`` (PyTorch's im2col, NCHW)
  and col2im vs ``fold``;
- per op, forward + backward of the public function on a leaf input (both frameworks then also
  pay the leaf's gradient accumulation): the three 3x3 convolutions of ResNet-20 and one of VGG,
  max and average pooling (2x2 stride 2 and ResNet's 3x3 stride 2 padding 1), batch norm + ReLU;
  PyTorch runs cuDNN with ``torch.backends.cudnn.benchmark`` off (its default) and TF32 switched
  off for matmuls and convolutions, so both sides compute in true float32 (CuPy's default);
- end-to-end training steps (forward, cross-entropy, backward, SGD with momentum, random data in
  GPU memory) of LeNet-5 (batch 128), ResNet-20 (batch 128) and the CIFAR VGG-11 (batch 64),
  the same models as benchmarks/bench_training.py, in images per second.

The ratio column is minicnn's time over PyTorch's (above 1: minicnn is slower).
"""
import argparse
import json
import pathlib
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import minicnn as mc  # noqa: E402
import minicnn.nn.functional as F  # noqa: E402
from minicnn.kernels import im2col as im2col_kernels  # noqa: E402
from results_io import write_results  # noqa: E402  (benchmarks/ is on sys.path)

BATCH = 128
CONVS = [  # (name, channels in, channels out, size, stride)
    ("ResNet-20 stage 1 conv 3x3 16->16", 16, 16, 32, 1),
    ("ResNet-20 stage 2 conv 3x3 32->32", 32, 32, 16, 1),
    ("ResNet-20 stage 3 conv 3x3 64->64", 64, 64, 8, 1),
    ("ResNet-20 down conv 3x3/2 16->32", 16, 32, 32, 2),
    ("VGG conv 3x3 64->128 at 32x32", 64, 128, 32, 1),
]
POOLS = [  # (name, op, kernel, stride, padding, channels, size)
    ("max-pool 2x2/2 (64, 32, 32)", "max", 2, 2, 0, 64, 32),
    ("max-pool 3x3/2 pad 1 (64, 32, 32)", "max", 3, 2, 1, 64, 32),
    ("avg-pool 2x2/2 (64, 32, 32)", "avg", 2, 2, 0, 64, 32),
]
BNS = [(16, 32), (32, 16), (64, 8)]


def paired(ours, theirs, sync, rounds, warmup=3):
    """Median seconds of ``ours()`` and ``theirs()`` (``theirs`` may be None), alternating, each
    call followed by ``sync()``."""
    for _ in range(warmup):
        ours()
        if theirs:
            theirs()
        sync()
    a, b = [], []
    for _ in range(rounds):
        for fn, times in ((ours, a), (theirs, b)):
            if fn is None:
                continue
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
    return statistics.median(a), (statistics.median(b) if b else None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and steps")
    parser.add_argument("--json", type=pathlib.Path, help="also write the raw numbers here")
    parser.add_argument("--name", default="gpu", help="results/<name>.md (default gpu)")
    args = parser.parse_args(argv)
    if not mc.cuda.is_available():
        print(f"bench_gpu: no usable CUDA GPU: {mc.cuda.why_unavailable()}", file=sys.stderr)
        return 2
    import cupy
    try:
        import torch
        has_torch = torch.cuda.is_available()
        why_no_torch = "" if has_torch else "torch has no CUDA device"
    except Exception as exc:  # no torch at all
        torch, has_torch, why_no_torch = None, False, f"torch not importable: {exc}"
    if has_torch:
        # float32 as written (no TF32 tensor cores), like CuPy's default matmul
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    def sync():
        cupy.cuda.Device().synchronize()
        if has_torch:
            torch.cuda.synchronize()

    rounds = 5 if args.quick else 20
    rng = np.random.default_rng(0)
    rows = []  # (section, case, minicnn ms, torch ms)

    def record(section, case, ours, theirs):
        rows.append((section, case, ours * 1e3, None if theirs is None else theirs * 1e3))
        t = "" if theirs is None else f" torch {theirs * 1e3:8.3f} ms  ratio {ours / theirs:.2f}"
        print(f"{section:<8} {case:<42} minicnn {ours * 1e3:8.3f} ms{t}", flush=True)

    # ---- the kernels alone: im2col / col2im vs unfold / fold ---------------------------------
    for name, cin, _, size, stride in CONVS:
        x = rng.standard_normal((BATCH, size, size, cin), dtype=np.float32)
        xg = cupy.asarray(x)
        k, s, p = (3, 3), (stride, stride), (1, 1)
        cols = im2col_kernels.im2col(xg, k, s, p)
        tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).cuda() if has_torch else None
        tcols = torch.nn.functional.unfold(tx, 3, padding=1, stride=stride) if has_torch \
            else None
        ours, theirs = paired(lambda: im2col_kernels.im2col(xg, k, s, p, out=cols),
                              (lambda: torch.nn.functional.unfold(tx, 3, padding=1,
                                                                  stride=stride))
                              if has_torch else None, sync, rounds)
        record("kernel", f"im2col {cin}x{size}x{size} k3/{stride}", ours, theirs)
        image = cupy.empty_like(xg)
        ours, theirs = paired(
            lambda: im2col_kernels.col2im(cols, xg.shape, k, s, p, out=image),
            (lambda: torch.nn.functional.fold(tcols, (size, size), 3, padding=1, stride=stride))
            if has_torch else None, sync, rounds)
        record("kernel", f"col2im {cin}x{size}x{size} k3/{stride}", ours, theirs)

    # ---- ops, forward + backward -------------------------------------------------------------
    def op_case(label, make_ours, make_theirs, x_np, gy_shape):
        gy_np = rng.standard_normal(gy_shape, dtype=np.float32)
        x = mc.Tensor(x_np, requires_grad=True, device="cuda")
        gy = cupy.asarray(gy_np)

        def ours():
            x.grad = None
            make_ours(x).backward(gy)
        theirs = None
        if has_torch:
            tx = torch.from_numpy(x_np).cuda().requires_grad_()
            tgy = torch.from_numpy(gy_np).cuda()

            def run_theirs():
                tx.grad = None
                make_theirs(tx).backward(tgy)
            theirs = run_theirs
        record("op", label, *paired(ours, theirs, sync, rounds))

    for name, cin, cout, size, stride in CONVS:
        w_np = (rng.standard_normal((cout, cin, 3, 3)) * 0.1).astype(np.float32)
        w = mc.Tensor(w_np, requires_grad=True, device="cuda")
        tw = torch.from_numpy(w_np).cuda().requires_grad_() if has_torch else None
        out = (size + 2 - 3) // stride + 1
        op_case(name, lambda x, w=w, s=stride: F.conv2d(x, w, stride=s, padding=1),
                lambda x, w=tw, s=stride: torch.nn.functional.conv2d(x, w, stride=s, padding=1),
                rng.standard_normal((BATCH, cin, size, size), dtype=np.float32),
                (BATCH, cout, out, out))
    for name, kind, k, s, p, c, size in POOLS:
        out = (size + 2 * p - k) // s + 1
        ours_fn = F.max_pool2d if kind == "max" else F.avg_pool2d
        theirs_fn = (torch.nn.functional.max_pool2d if kind == "max" else
                     torch.nn.functional.avg_pool2d) if has_torch else None
        op_case(name, lambda x, f=ours_fn, k=k, s=s, p=p: f(x, k, s, p),
                lambda x, f=theirs_fn, k=k, s=s, p=p: f(x, k, s, p),
                rng.standard_normal((BATCH, c, size, size), dtype=np.float32),
                (BATCH, c, out, out))
    for c, size in BNS:
        g = mc.Tensor(np.ones(c, np.float32), requires_grad=True, device="cuda")
        b = mc.Tensor(np.zeros(c, np.float32), requires_grad=True, device="cuda")
        rm, rv = cupy.zeros(c, np.float32), cupy.ones(c, np.float32)
        tg = torch.ones(c, device="cuda", requires_grad=True) if has_torch else None
        tb = torch.zeros(c, device="cuda", requires_grad=True) if has_torch else None
        trm = torch.zeros(c, device="cuda") if has_torch else None
        trv = torch.ones(c, device="cuda") if has_torch else None
        op_case(f"BN+ReLU train ({c}, {size}, {size})",
                lambda x, g=g, b=b, rm=rm, rv=rv: F.relu(F.batch_norm(x, rm, rv, g, b, True)),
                lambda x, g=tg, b=tb, rm=trm, rv=trv: torch.relu(
                    torch.nn.functional.batch_norm(x, rm, rv, g, b, True)),
                rng.standard_normal((BATCH, c, size, size), dtype=np.float32),
                (BATCH, c, size, size))

    # ---- end-to-end training -----------------------------------------------------------------
    import bench_training
    steps = 5 if args.quick else 20
    throughput = []
    for name, (batch, shape) in bench_training.MODELS.items():
        x_np = rng.random((batch, *shape), dtype=np.float32)
        y_np = rng.integers(0, 10, batch)
        mc.manual_seed(0)
        model = bench_training.build_minicnn(name).to("cuda")
        opt = mc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x, y = mc.Tensor(x_np, device="cuda"), mc.Tensor(y_np, device="cuda")

        def ours(model=model, opt=opt, x=x, y=y):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        theirs = None
        if has_torch:
            torch.manual_seed(0)
            tmodel = bench_training.build_torch(name).cuda()
            topt = torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9)
            tx, ty = torch.from_numpy(x_np).cuda(), torch.from_numpy(y_np).cuda()

            def theirs(tmodel=tmodel, topt=topt, tx=tx, ty=ty):
                loss = torch.nn.functional.cross_entropy(tmodel(tx), ty)
                topt.zero_grad()
                loss.backward()
                topt.step()
        a, b = paired(ours, theirs, sync, steps, warmup=3)
        record("train", f"{name} step, batch {batch}", a, b)
        throughput.append((name, batch, batch / a, None if b is None else batch / b))

    # ---- the table ---------------------------------------------------------------------------
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    gpu = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    versions = f"cupy {cupy.__version__}, CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}"
    if torch is not None:
        versions += f", torch {torch.__version__}"
    lines = [f"Machine: {gpu}, {platform.machine()}; {versions}."
             + ("" if has_torch else f" No PyTorch comparison: {why_no_torch}."),
             f"float32, batch {BATCH} unless noted, median of {rounds} alternating rounds "
             f"({steps} steps for training), each synchronised (ms). Ratio = minicnn / PyTorch.",
             "", "| section | case | minicnn (ms) | PyTorch CUDA (ms) | minicnn / PyTorch |",
             "| --- | --- | --- | --- | --- |"]
    for section, case, ours, theirs in rows:
        t = "-" if theirs is None else f"{theirs:.3f}"
        r = "-" if theirs is None else f"{ours / theirs:.2f}x"
        lines.append(f"| {section} | {case} | {ours:.3f} | {t} | {r} |")
    lines += ["", "| model | batch | minicnn (images/s) | PyTorch CUDA (images/s) | "
              "PyTorch / minicnn |", "| --- | --- | --- | --- | --- |"]
    for name, batch, ours, theirs in throughput:
        t = "-" if theirs is None else f"{theirs:.0f}"
        r = "-" if theirs is None else f"{theirs / ours:.2f}x"
        lines.append(f"| {name} | {batch} | {ours:.0f} | {t} | {r} |")
    write_results(args.name, "\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"gpu": gpu, "versions": versions, "rows": rows,
                                         "throughput": throughput}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
