"""The ``minicnn`` command line.

    minicnn demo          LeNet-5 learns Fashion-MNIST: the first thing to run
    minicnn train         train a model of the zoo on a data set, with checkpoints and plots
    minicnn summary       a model's layers, output shapes, parameters, multiply-adds, im2col bytes
    minicnn gradcheck     check every gradient of a model numerically (float64 central differences)
    minicnn bench         a model's training-step throughput and where the time goes, op by op
    minicnn gradflow      per-layer gradient norms of plain vs residual nets, degradation curves
    minicnn finetune      transfer learning: pre-train on five Fashion-MNIST classes, learn the
                          other five from few labels (scratch, frozen features, fine-tuning)
    minicnn info          version, backend, device, BLAS and numba status
"""
import argparse
import os
import platform
import sys


def _blas_description():
    """Which BLAS NumPy uses (its GEMM does the heavy lifting on the CPU)."""
    import numpy as np
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception as exc:  # older NumPy without mode="dicts"
        return f"unknown ({type(exc).__name__})"


def _numba_description():
    try:
        import numba
    except Exception as exc:
        return f"not importable ({type(exc).__name__}: {exc}); the NumPy kernels are used"
    if os.environ.get("NUMBA_DISABLE_JIT") == "1":
        return f"{numba.__version__}, JIT disabled by NUMBA_DISABLE_JIT=1 (kernels run as Python)"
    return f"{numba.__version__}, {numba.config.NUMBA_NUM_THREADS} threads"


def info_lines():
    """The facts ``minicnn info`` prints, as (label, value) pairs."""
    import numpy as np

    import minicnn
    from minicnn import backend, cuda

    try:
        device = backend.default_device()
    except Exception as exc:  # e.g. MINICNN_DEVICE=cuda without a GPU: say so, don't crash
        device = f"error: {exc}"
    gpu = "available" if cuda.is_available() else f"not available ({cuda.why_unavailable()})"
    return [
        ("minicnn", f"{minicnn.__version__} ({os.path.dirname(minicnn.__file__)})"),
        ("python", f"{platform.python_version()} on {platform.system()} {platform.machine()}"),
        ("numpy", np.__version__),
        ("BLAS", _blas_description()),
        ("numba", _numba_description()),
        ("CUDA GPU", gpu),
        ("MINICNN_DEVICE", os.environ.get("MINICNN_DEVICE", "(unset: auto)")),
        ("device", device),
        ("default dtype", "float32"),
        ("CPU cores", str(os.cpu_count())),
    ]


def cmd_info(args):
    lines = info_lines()
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        print(f"{label:<{width}}  {value}")
    return 0


# ---- data sets the command line knows -------------------------------------------------------

# per-channel mean and std of the training images (computed once from the full training sets)
_NORMALIZE = {"fashion-mnist": ((0.2860,), (0.3530,)), "mnist": ((0.1307,), (0.3081,)),
              "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))}
DATASETS = tuple(_NORMALIZE)


def load_data(name, subset="auto", augment=False, root=None, log=print):
    """(train, test, in_channels, image_size) for a data set of the command line.

    ``subset``: 'auto' (Fashion-MNIST only: the full set when installed, else the bundled
    subset), 'full' or 'bundled'. ``augment`` adds random crops and flips to the training split
    (CIFAR-10; for the 28x28 grey sets a 2-pixel random crop only).
    """
    import minicnn.data as D
    from minicnn.data import transforms as T

    if name not in _NORMALIZE:
        raise ValueError(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}")
    mean, std = _NORMALIZE[name]
    normalize = T.Normalize(mean, std)
    size = 32 if name == "cifar10" else 28
    if augment:
        crop = T.RandomCrop(size, padding=4 if name == "cifar10" else 2)
        flips = [T.RandomHorizontalFlip()] if name == "cifar10" else []
        train_tf = T.Compose([crop, *flips, normalize])
    else:
        train_tf = normalize
    if name == "fashion-mnist":
        if subset == "auto":
            train, test = D.load_fashion_mnist(root, train_transform=train_tf,
                                               test_transform=normalize, verbose=False)
        else:
            use_subset = subset == "bundled"
            train = D.FashionMNIST(root, train=True, transform=train_tf, subset=use_subset)
            test = D.FashionMNIST(root if not use_subset else None, train=False,
                                  transform=normalize, subset=use_subset)
        if log:
            log(D.fashion_mnist_message(train, test, prefer_full=subset != "bundled"))
    else:
        if subset == "bundled":
            raise ValueError(f"only Fashion-MNIST ships a bundled subset, not {name}")
        cls = D.MNIST if name == "mnist" else D.CIFAR10
        train = cls(root, train=True, transform=train_tf)
        test = cls(root, train=False, transform=normalize)
        if log:
            log(f"{name}: {len(train):,} training / {len(test):,} test images")
    return train, test, len(mean), size


def train_model(model_name="lenet5", data="fashion-mnist", epochs=5, batch_size=128, lr=None,
                optimizer="adam", momentum=0.9, weight_decay=0.0, schedule="cosine",
                augment=False, device="auto", out="runs/train", seed=0, subset="auto",
                resume=False, progress=None, root=None, model_kwargs=None, log=print):
    """Train a model of the zoo; write checkpoint, final weights, history JSON and curves PNG
    into ``out``. Returns ``(model, history, test_accuracy)``. The engine of ``minicnn train``
    and ``minicnn demo``."""
    import pathlib

    import minicnn as mc
    from minicnn import backend
    from minicnn.checkpoint import save_weights
    from minicnn.plots import plot_history
    from minicnn.training import evaluate, fit, save_history

    device = backend.normalize_device(device)
    mc.manual_seed(seed)
    train, test, channels, size = load_data(data, subset, augment, root, log)
    kwargs = {"num_classes": len(getattr(train, "classes", range(10))), "in_channels": channels}
    if model_name == "lenet5":
        kwargs["input_size"] = size
    kwargs.update(model_kwargs or {})
    model = mc.models.get_model(model_name, **kwargs).to(device)
    if lr is None:
        lr = 1e-3 if optimizer == "adam" else 0.05
    if optimizer == "adam":
        opt = mc.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = mc.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                           weight_decay=weight_decay)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}: use 'sgd' or 'adam'")
    scheduler = mc.optim.CosineAnnealingLR(opt, epochs) if schedule == "cosine" else None
    train_loader = mc.data.DataLoader(train, batch_size=batch_size, shuffle=True, device=device)
    test_loader = mc.data.DataLoader(test, batch_size=1000, device=device)

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_params = sum(p.size for p in model.parameters())
    if log:
        log(f"{model_name}: {n_params:,} parameters on {device}; {optimizer} lr {lr:g}, "
            f"batch {batch_size}, {epochs} epochs; writing to {out}/")
    history = fit(model, opt, train_loader, epochs, val_loader=test_loader, scheduler=scheduler,
                  checkpoint_path=out / "checkpoint.npz", resume=resume, progress=progress,
                  log=log)
    save_weights(out / "weights.npz", model)
    save_history(history, out / "history.json")
    plot_history(history, out / "curves.png", title=f"{model_name} on {data}")
    _, test_accuracy = evaluate(model, test_loader)
    if log:
        log(f"test accuracy {100 * test_accuracy:.2f}%  ({len(test):,} test images)")
    return model, history, test_accuracy


def cmd_train(args):
    train_model(args.model, args.data, args.epochs, args.batch_size, args.lr, args.optimizer,
                args.momentum, args.weight_decay, args.schedule, args.augment, args.device,
                args.out, args.seed, args.subset, args.resume,
                progress=False if args.no_progress else None, root=args.root)
    return 0


def cmd_demo(args):
    print("minicnn demo: LeNet-5 (LeCun et al. 1998, ReLU and max pooling) learns to tell "
          "T-shirts from trainers in Fashion-MNIST.")
    train_model("lenet5", "fashion-mnist", epochs=args.epochs, batch_size=128, lr=3e-3,
                optimizer="adam", out=args.out, seed=args.seed,
                subset="bundled" if args.subset else "auto",
                progress=False if args.no_progress else None,
                model_kwargs={"activation": "relu", "pool": "max"})
    print(f"training curves: {args.out}/curves.png; weights: {args.out}/weights.npz")
    return 0


def cmd_summary(args):
    import minicnn as mc
    from minicnn.models import default_input_shape, get_model

    shape = tuple(args.input) if args.input else default_input_shape(args.model)
    kwargs = {}
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    model = get_model(args.model, **kwargs)
    mc.summary(model, (args.batch_size, *shape), depth=args.depth)
    return 0


def _model_and_shape(args):
    from minicnn.models import default_input_shape, get_model
    kwargs = {} if getattr(args, "num_classes", None) is None else \
        {"num_classes": args.num_classes}
    shape = tuple(args.input) if args.input else default_input_shape(args.model)
    return get_model(args.model, **kwargs), shape


def cmd_gradcheck(args):
    import numpy as np

    import minicnn as mc
    from minicnn.gradcheck import gradcheck_model

    mc.manual_seed(args.seed)
    model, shape = _model_and_shape(args)
    x = np.random.default_rng(args.seed).standard_normal((args.batch_size, *shape))
    print(f"gradcheck {args.model}: input {(args.batch_size, *shape)}, float64, "
          f"{args.directions} random direction(s) per parameter")
    rows = gradcheck_model(model, x, n_directions=args.directions, seed=args.seed)
    width = max(len(r["name"]) for r in rows)
    print(f"{'parameter':<{width}}  {'backward':>13}  {'numerical':>13}  {'rel. error':>10}")
    for r in rows:
        rel = r["error"] / max(abs(r["numerical"]), 1e-30)
        print(f"{r['name']:<{width}}  {r['backward']:>13.6g}  {r['numerical']:>13.6g}  "
              f"{rel:>10.1e}{'' if r['ok'] else '  FAILED'}")
    failed = sum(not r["ok"] for r in rows)
    print(f"{len(rows) - failed} of {len(rows)} checks passed")
    return 1 if failed else 0


def cmd_bench(args):
    import statistics
    import time

    import numpy as np

    import minicnn as mc
    import minicnn.nn.functional as F

    mc.manual_seed(args.seed)
    model, shape = _model_and_shape(args)
    rng = np.random.default_rng(args.seed)
    x = mc.Tensor(rng.standard_normal((args.batch_size, *shape)).astype(np.float32))
    model.train()

    def logits():  # GoogLeNet with aux heads returns a tuple, the main logits first
        out = model(x)
        return out[0] if isinstance(out, tuple) else out

    out = logits()
    if out.ndim != 2:
        print(f"bench: {args.model} does not output class scores (N, classes): only classifiers "
              "are benchmarked", file=sys.stderr)
        return 2
    target = mc.Tensor(rng.integers(0, out.shape[1], args.batch_size))
    optimizer = mc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        loss = F.cross_entropy(logits(), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up: numba compilation, workspaces
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(f"{args.model}: batch {args.batch_size} x {shape}, {args.steps} training steps "
          f"(forward, cross-entropy, backward, SGD)")
    print(f"median step {median * 1e3:.1f} ms = {args.batch_size / median:.1f} images/s")
    with mc.profile() as prof:
        step()
    print("\none step, op by op:")
    print(prof.table(top=args.top))
    print("(for a side-by-side with PyTorch: python benchmarks/bench_training.py)")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="minicnn", description="minicnn: modern CNNs from scratch, for teaching.")
    import minicnn
    parser.add_argument("--version", action="version", version=f"minicnn {minicnn.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command")
    info = sub.add_parser("info", help="print version, backend, device, BLAS and numba status")
    info.set_defaults(func=cmd_info)

    demo = sub.add_parser("demo", help="train LeNet-5 on Fashion-MNIST (full set when "
                                       "installed, the bundled subset otherwise)")
    demo.add_argument("--epochs", type=int, default=5)
    demo.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--subset", action="store_true",
                      help="use the bundled subset even when the full set is installed")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.set_defaults(func=cmd_demo)

    from minicnn.models import MODELS
    summary = sub.add_parser("summary", help="layers, output shapes, parameters, multiply-adds "
                                             "and im2col buffer bytes of a model")
    summary.add_argument("model", choices=sorted(MODELS))
    summary.add_argument("--input", type=int, nargs=3, metavar=("C", "H", "W"),
                         help="input shape (default: the one the model is made for)")
    summary.add_argument("--batch-size", type=int, default=1,
                         help="batch for the multiply-adds and im2col bytes (default 1)")
    summary.add_argument("--depth", type=int, default=3, help="container levels to expand")
    summary.add_argument("--num-classes", type=int, default=None)
    summary.set_defaults(func=cmd_summary)

    for name, func, helptext in (
            ("gradcheck", cmd_gradcheck, "check every gradient of a model numerically"),
            ("bench", cmd_bench, "time a model's training step and show where the time goes")):
        command = sub.add_parser(name, help=helptext)
        command.add_argument("model", choices=sorted(MODELS))
        command.add_argument("--input", type=int, nargs=3, metavar=("C", "H", "W"),
                             help="input shape (default: the one the model is made for)")
        command.add_argument("--batch-size", type=int, default=2 if name == "gradcheck" else 32)
        command.add_argument("--num-classes", type=int, default=None)
        command.add_argument("--seed", type=int, default=0)
        if name == "gradcheck":
            command.add_argument("--directions", type=int, default=2,
                                 help="random directions per parameter (default 2)")
        else:
            command.add_argument("--steps", type=int, default=5)
            command.add_argument("--top", type=int, default=12, help="rows of the op table")
        command.set_defaults(func=func)

    from minicnn import gradflow, transfer
    gradflow.register(sub)
    transfer.register(sub)

    train = sub.add_parser("train", help="train a model on a data set")
    classifiers = sorted(name for name in MODELS if name != "unet")
    train.add_argument("--model", default="lenet5", choices=classifiers)
    train.add_argument("--data", default="fashion-mnist", choices=DATASETS)
    train.add_argument("--epochs", type=int, default=5)
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--lr", type=float, default=None,
                       help="learning rate (default 1e-3 for adam, 0.05 for sgd)")
    train.add_argument("--optimizer", default="adam", choices=("adam", "sgd"))
    train.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    train.add_argument("--weight-decay", type=float, default=0.0)
    train.add_argument("--schedule", default="cosine", choices=("cosine", "constant"))
    train.add_argument("--augment", action="store_true", help="random crops (and flips for "
                                                              "CIFAR-10)")
    train.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    train.add_argument("--out", default="runs/train", help="output folder (default runs/train)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--subset", default="auto", choices=("auto", "full", "bundled"),
                       help="Fashion-MNIST: the full set, the bundled subset, or auto (default)")
    train.add_argument("--root", default=None, help="folder holding the data set files")
    train.add_argument("--resume", action="store_true",
                       help="continue from OUT/checkpoint.npz when it exists")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_train)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
