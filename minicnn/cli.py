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

The command line only parses arguments and calls the library: ``train`` and ``demo`` call
:func:`minicnn.training.train_model`, ``bench`` :func:`minicnn.training.time_training_steps`,
``gradcheck`` :func:`minicnn.gradcheck_model`, ``summary`` :func:`minicnn.summary`; the
experiments register their own commands (:mod:`minicnn.experiments.gradflow`,
:mod:`minicnn.experiments.finetune`). How a command ends (exit statuses, clean messages, Ctrl-C)
lives in :mod:`minicnn.cli_errors`; arguments are checked here, before any data is loaded.
"""
import argparse
import os
import platform
import sys

import numpy as np

import minicnn
from minicnn import backend, cuda, threads
from minicnn.cli_errors import debug_requested, run_command
from minicnn.data.presets import DATASETS
from minicnn.experiments import finetune as finetune_experiment
from minicnn.experiments import gradflow as gradflow_experiment
from minicnn.experiments import landscape as landscape_experiment
from minicnn.experiments import residual as residual_experiment
from minicnn.gradcheck import gradcheck_model
from minicnn.models import MODELS, default_input_shape, get_model
from minicnn.random import manual_seed
from minicnn.run_settings import EXTEND_SCHEDULE
from minicnn.summary import summary
from minicnn.training import NotAClassifier, time_training_steps, train_model


def _number(kind, minimum, strict):
    """An argparse type: a ``kind`` (int or float) > ``minimum`` (>= when not ``strict``),
    refused while parsing, before any data is loaded."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            noun = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if value != value or value in (float("inf"), float("-inf")) or value < minimum or \
                (strict and value == minimum):
            raise argparse.ArgumentTypeError(
                f"{text} is not {'>' if strict else '>='} {minimum}")
        return value
    parse.__name__ = kind.__name__   # argparse names the type in its messages
    return parse


positive_int = _number(int, 0, strict=True)
positive_float = _number(float, 0.0, strict=True)
non_negative_float = _number(float, 0.0, strict=False)


def fraction_argument(text):
    """``--val-fraction``: a number in [0, 1), checked while parsing."""
    value = non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{text} is not < 1 (the fraction of the training "
                                         "images held out for validation)")
    return value


VAL_FRACTION_HELP = ("fraction of the training images held out for validation (default 0.1; "
                     "always the same images); the test set is evaluated once, at the end. "
                     "0: no validation")


def device_argument(text):
    """``--device``: cpu, cuda or auto, checked now (cuda without a GPU is bad usage)."""
    try:
        return backend.normalize_device(text)
    except (ValueError, RuntimeError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _threading_lines():
    """What minicnn's CPU thread policy set (minicnn.threads, BLAS through threadpoolctl)."""
    policy = threads.describe()
    return [("BLAS", "; ".join(policy["blas"]) or "none found by threadpoolctl"),
            ("threads", f"{policy['threads']} (minicnn's pool), numba {policy['numba_threads']}, "
                        f"OMP_WAIT_POLICY={policy['OMP_WAIT_POLICY']}"),
            ("malloc", policy["malloc_tuning"])]


def _numba_description():
    try:
        # NOTE: imported here so that `minicnn info` can report a numba that fails to import
        # (the kernels then fall back to NumPy) instead of crashing before it prints anything
        import numba
    except Exception as exc:
        return f"not importable ({type(exc).__name__}: {exc}); the NumPy kernels are used"
    if os.environ.get("NUMBA_DISABLE_JIT") == "1":
        return f"{numba.__version__}, JIT disabled by NUMBA_DISABLE_JIT=1 (kernels run as Python)"
    return f"{numba.__version__}, {numba.config.NUMBA_NUM_THREADS} threads"


def info_lines():
    """The facts ``minicnn info`` prints, as (label, value) pairs."""
    try:
        device = backend.default_device()
    except Exception as exc:  # e.g. MINICNN_DEVICE=cuda without a GPU: say so, don't crash
        device = f"error: {exc}"
    gpu = "available" if cuda.is_available() else f"not available ({cuda.why_unavailable()})"
    return [
        ("minicnn", f"{minicnn.__version__} ({os.path.dirname(minicnn.__file__)})"),
        ("python", f"{platform.python_version()} on {platform.system()} {platform.machine()}"),
        ("numpy", np.__version__),
        *_threading_lines(),
        ("numba", _numba_description()),
        ("kernels", f"{backend.kernel_lane()} (MINICNN_KERNELS=fast|reference)"),
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


def _command_line(args):
    return " ".join(["minicnn", *args.argv])


def cmd_train(args):
    train_model(args.model, args.data, args.epochs, args.batch_size, args.lr, args.optimizer,
                args.momentum, args.weight_decay, args.schedule, args.augment, args.device,
                args.out, args.seed, args.subset, args.resume,
                progress=False if args.no_progress else None, root=args.root,
                extend_schedule=args.extend_schedule, command=_command_line(args),
                val_fraction=args.val_fraction)
    return 0


def cmd_demo(args):
    print("minicnn demo: LeNet-5 (LeCun et al. 1998, ReLU and max pooling) learns to tell "
          "T-shirts from trainers in Fashion-MNIST.")
    train_model("lenet5", "fashion-mnist", epochs=args.epochs, batch_size=128, lr=3e-3,
                optimizer="adam", out=args.out, seed=args.seed,
                subset="bundled" if args.subset else "auto", resume=args.resume,
                progress=False if args.no_progress else None,
                model_kwargs={"activation": "relu", "pool": "max"},
                command=_command_line(args), val_fraction=args.val_fraction)
    print(f"training curves: {args.out}/curves.png; weights: {args.out}/weights.npz")
    return 0


def _model_and_shape(args):
    """The model of ``args.model`` (with ``--num-classes``) and its input shape (``--input``,
    else the one it is made for)."""
    kwargs = {} if args.num_classes is None else {"num_classes": args.num_classes}
    shape = tuple(args.input) if args.input else default_input_shape(args.model)
    return get_model(args.model, **kwargs), shape


def cmd_summary(args):
    model, shape = _model_and_shape(args)
    summary(model, (args.batch_size, *shape), depth=args.depth)
    return 0


def cmd_gradcheck(args):
    manual_seed(args.seed)
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
    manual_seed(args.seed)
    model, shape = _model_and_shape(args)
    try:
        _, median, prof = time_training_steps(model, (args.batch_size, *shape), args.steps,
                                              args.seed)
    except NotAClassifier:
        print(f"bench: {args.model} does not output class scores (N, classes): only classifiers "
              "are benchmarked", file=sys.stderr)
        return 2
    print(f"{args.model}: batch {args.batch_size} x {shape}, {args.steps} training steps "
          f"(forward, cross-entropy, backward, SGD)")
    print(f"median step {median * 1e3:.1f} ms = {args.batch_size / median:.1f} images/s")
    print("\none step, op by op:")
    print(prof.table(top=args.top))
    print("(for a side-by-side with PyTorch: python benchmarks/bench_training.py)")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="minicnn", description="minicnn: modern CNNs from scratch, for teaching.")
    parser.add_argument("--version", action="version", version=f"minicnn {minicnn.__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (also MINICNN_DEBUG=1; --debug "
                             "may stand anywhere on the line)")
    sub = parser.add_subparsers(dest="command", metavar="command")
    info = sub.add_parser("info", help="print version, backend, device, BLAS and numba status")
    info.set_defaults(func=cmd_info)

    demo = sub.add_parser("demo", help="train LeNet-5 on Fashion-MNIST (full set when "
                                       "installed, the bundled subset otherwise)")
    demo.add_argument("--epochs", type=positive_int, default=5)
    demo.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--subset", action="store_true",
                      help="use the bundled subset even when the full set is installed")
    demo.add_argument("--val-fraction", type=fraction_argument, default=0.1,
                      help=VAL_FRACTION_HELP)
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.add_argument("--resume", action="store_true",
                      help="continue from OUT/checkpoint.npz when it exists")
    demo.set_defaults(func=cmd_demo)

    summary_command = sub.add_parser(
        "summary", help="layers, output shapes, parameters, multiply-adds and im2col buffer "
                        "bytes of a model")
    summary_command.add_argument("model", choices=sorted(MODELS))
    summary_command.add_argument("--input", type=int, nargs=3, metavar=("C", "H", "W"),
                                 help="input shape (default: the one the model is made for)")
    summary_command.add_argument("--batch-size", type=int, default=1,
                                 help="batch for the multiply-adds and im2col bytes (default 1)")
    summary_command.add_argument("--depth", type=int, default=3,
                                 help="container levels to expand")
    summary_command.add_argument("--num-classes", type=int, default=None)
    summary_command.set_defaults(func=cmd_summary)

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

    gradflow_experiment.register(sub)
    finetune_experiment.register(sub)
    landscape_experiment.register(sub)
    residual_experiment.register(sub)

    train = sub.add_parser("train", help="train a model on a data set")
    classifiers = sorted(name for name in MODELS if name != "unet")
    train.add_argument("--model", default="lenet5", choices=classifiers)
    train.add_argument("--data", default="fashion-mnist", choices=DATASETS)
    train.add_argument("--epochs", type=positive_int, default=5)
    train.add_argument("--batch-size", type=positive_int, default=128)
    train.add_argument("--lr", type=positive_float, default=None,
                       help="learning rate (default 1e-3 for adam, 0.05 for sgd)")
    train.add_argument("--optimizer", default="adam", choices=("adam", "sgd"))
    train.add_argument("--momentum", type=non_negative_float, default=0.9, help="SGD momentum")
    train.add_argument("--weight-decay", type=non_negative_float, default=0.0)
    train.add_argument("--schedule", default="cosine", choices=("cosine", "constant"))
    train.add_argument("--augment", action="store_true", help="random crops (and flips for "
                                                              "CIFAR-10)")
    train.add_argument("--device", default="auto", type=device_argument,
                       help="cpu, cuda or auto (default)")
    train.add_argument("--out", default="runs/train", help="output folder (default runs/train)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--subset", default="auto", choices=("auto", "full", "bundled"),
                       help="Fashion-MNIST: the full set, the bundled subset, or auto (default)")
    train.add_argument("--val-fraction", type=fraction_argument, default=0.1,
                       help=VAL_FRACTION_HELP)
    train.add_argument("--root", default=None, help="folder holding the data set files")
    train.add_argument("--resume", action="store_true",
                       help="continue from OUT/checkpoint.npz when it exists; refused when a "
                            "setting differs from the checkpoint's")
    train.add_argument("--extend-schedule", choices=EXTEND_SCHEDULE, default=None,
                       help="with --resume and more --epochs than the checkpoint's: stretch "
                            "(the cosine recomputed over all epochs) or restart (a new cosine "
                            "over the epochs added)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_train)
    return parser


def main(argv=None):
    """Run the command of ``argv`` (``sys.argv[1:]`` by default); returns the exit status
    (:mod:`minicnn.cli_errors`: 0 done, 1 error, 2 bad usage, 130 Ctrl-C)."""
    debug, argv = debug_requested(sys.argv[1:] if argv is None else list(argv))
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    args.argv = argv
    return run_command(args.func, args, args.command, argv, debug)


if __name__ == "__main__":
    sys.exit(main())
