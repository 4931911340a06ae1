"""The gradient-flow experiments and ``minicnn gradflow``: plain vs residual nets measured with
the tools of :mod:`minicnn.gradflow` (He, Zhang, Ren, Sun 2016, "Deep residual learning for image
recognition", https://arxiv.org/abs/1512.03385, Fig. 6 and 7).

    from minicnn.experiments import gradflow as experiment
    runs, spectra = experiment.run_gradflow(depths=(20, 56, 110), out="runs/gradflow")
    result = experiment.degradation(depths=(20, 56), epochs=10)     # He et al. Fig. 6

    minicnn gradflow --depths 20 56 110 --bn --act relu --init he --out DIR
    minicnn gradflow --degradation --depths 20 56 --epochs 10 --out DIR

:func:`run_gradflow` is the depth sweep at initialisation for each configuration (batch norm,
activation, init) on one fixed batch, then the Jacobian spectra of small stacks, with its data
files and pictures; :func:`degradation` trains plain and residual nets with one recipe and
records their gradient flow on the way. The committed results of a full run, with the commands
and the numbers, are in the repository's ``experiments/gradflow/``.
"""
import argparse
import pathlib
import time

import numpy as np

from minicnn.data.dataset import Subset
from minicnn.data.loader import DataLoader
from minicnn.data.presets import load_data
from minicnn.experiments.gradflow_plots import (plot_degradation, plot_grad_bars,
                                                plot_grad_norms, plot_jacobian_spectra)
from minicnn.gradflow import (ACTIVATIONS, INITS, LAYER_FIELDS, GradFlowRecorder, config_name,
                              fixed_batch, jacobian_spectra, save_csv, save_json, snapshot_rows,
                              summary_rows, sweep)
from minicnn.models.resnet_cifar import cifar_resnet
from minicnn.optim import SGD, CosineAnnealingLR
from minicnn.random import manual_seed
from minicnn.training import evaluate, fit

__all__ = ["degradation", "run_gradflow", "register"]


# ---- data --------------------------------------------------------------------------------------

def _datasets(data, root=None, log=print):
    """(train, test, in_channels) of a data set of :func:`minicnn.data.load_data`, normalised
    (the full set when installed, else the bundled subset)."""
    train, test, channels, _ = load_data(data, "auto", False, root, log)
    return train, test, channels


# ---- the degradation experiment (He et al. 2016, Fig. 6) --------------------------------------

def _pick(train, test, train_size, val_size, test_size, seed):
    """``(train, validation, test)`` parts drawn with ``seed``: the validation images from the
    training images NOT trained on (None when none are left), the test images from the test
    set. NOTE: drawn in this order so that the training and test images are the ones of the
    runs made before the validation part existed (the committed results)."""
    rng = np.random.default_rng(seed)
    train_size, test_size = min(train_size, len(train)), min(test_size, len(test))
    train_idx = np.sort(rng.choice(len(train), train_size, replace=False))
    test_idx = np.sort(rng.choice(len(test), test_size, replace=False))
    rest = np.setdiff1d(np.arange(len(train)), train_idx)
    val_idx = np.sort(rng.choice(rest, min(val_size, len(rest)), replace=False))
    return (Subset(train, train_idx), Subset(train, val_idx) if len(val_idx) else None,
            Subset(test, test_idx))


def degradation(depths=(20, 56), epochs=10, train_size=5000, test_size=1000, batch_size=64,
                lr=0.1, momentum=0.9, weight_decay=1e-4, data="fashion-mnist", seed=0,
                record_every=50, out=None, root=None, log=print, val_size=None):
    """Train the plain and the residual CIFAR net of each depth with one recipe and budget.

    The recipe (the same for every net): ``train_size`` training images picked with ``seed``
    (no augmentation), SGD with momentum and weight decay, ``lr`` with a cosine schedule over
    ``epochs``, batch norm, He init, batches of ``batch_size`` in a seeded order; the
    validation error after every epoch on ``val_size`` (default: as many as ``test_size``)
    other training images, held out; the test error on ``test_size`` test images once, at the
    end. The gradient flow is recorded every ``record_every`` steps on the way. With ``out``,
    ``degradation.json`` is rewritten after each net (a stopped run keeps what it finished) and
    the curves are drawn at the end.

    Returns ``{"recipe": {...}, "runs": {"plain-20": {"history": ..., "final": ...,
    "gradflow": [snapshots]}, ...}}``: ``history`` per epoch (its ``val_*`` on the validation
    images), ``final`` the training, validation and test errors at the end.
    """
    train, test, channels = _datasets(data, root, log)
    train, val, test = _pick(train, test, train_size, test_size if val_size is None else val_size,
                             test_size, seed)
    train_size, test_size, val_size = len(train), len(test), len(val) if val is not None else 0
    recipe = {"data": data, "train_images": train_size, "val_images": val_size,
              "validation": "held out of the training images not trained on",
              "test_images": test_size,
              "epochs": epochs, "batch_size": batch_size, "optimizer": "SGD", "lr": lr,
              "momentum": momentum, "weight_decay": weight_decay, "schedule": "cosine",
              "norm": "batch norm", "init": "he (kaiming_fan_out)", "activation": "relu",
              "seed": seed, "depths": list(depths), "record_every": record_every}
    result = {"recipe": recipe, "runs": {}}
    for plain in (True, False):
        for depth in depths:
            label = f"{'plain' if plain else 'resnet'}-{depth}"
            manual_seed(seed)
            model = cifar_resnet(depth, num_classes=10, in_channels=channels, plain=plain)
            opt = SGD(model.parameters(), lr=lr, momentum=momentum,
                               weight_decay=weight_decay)
            scheduler = CosineAnnealingLR(opt, epochs)
            train_loader = DataLoader(train, batch_size=batch_size, shuffle=True, seed=seed)
            train_eval_loader = DataLoader(train, batch_size=500)
            val_loader = DataLoader(val, batch_size=500) if val is not None else None
            if log:
                log(f"degradation: {label}, {epochs} epochs of {train_size} images")
            started = time.perf_counter()
            with GradFlowRecorder(model, every=record_every) as recorder:
                history = fit(model, opt, train_loader, epochs, val_loader=val_loader,
                                 scheduler=scheduler, progress=False,
                                 log=(lambda line, label=label: log(f"  {label} {line}"))
                                 if log else None)
            train_loss, train_acc = evaluate(model, train_eval_loader)
            # the test images: once, at the end of each run (nothing is chosen from them)
            test_loss, test_acc = evaluate(model, DataLoader(test, batch_size=500))
            final = {"train_loss": train_loss, "train_error": 1 - train_acc,
                     "val_loss": history["val_loss"][-1],
                     "val_error": (1 - history["val_acc"][-1] if val is not None else None),
                     "test_loss": test_loss, "test_error": 1 - test_acc,
                     "seconds": time.perf_counter() - started}
            result["runs"][label] = {"history": history, "final": final,
                                     "gradflow": recorder.snapshots}
            if log:
                val_error = ("-" if val is None else f"{100 * final['val_error']:.2f}%")
                log(f"  {label}: train error (eval mode) {100 * final['train_error']:.2f}%, "
                    f"validation error {val_error}, test error "
                    f"{100 * final['test_error']:.2f}%, {final['seconds']:.0f} s")
            if out is not None:
                save_json(result, pathlib.Path(out) / "degradation.json", indent=None)
    if out is not None:
        plot_degradation(result, pathlib.Path(out) / "degradation.png")
    return result


# ---- everything at once: what `minicnn gradflow` runs ----------------------------------------

def run_gradflow(configs=((True, "relu", "he"),), depths=(20, 56, 110), data="fashion-mnist",
                 root=None, batch_size=32, seed=0, jacobian=True, out="runs/gradflow",
                 log=print):
    """The sweep for each ``(norm, activation, init)`` of ``configs`` on one fixed batch of
    ``batch_size`` training images of ``data``, then (``jacobian=True``) the Jacobian spectra of
    small stacks (ReLU and tanh, He and N(0, 0.01^2) init: see :func:`jacobian_spectra`); writes
    data and pictures into ``out`` and returns ``(runs, spectra)``.

    Files: ``sweep.json`` (every run with its per-layer record), ``sweep_summary.csv`` (a row
    per run), ``sweep_layers.csv`` (a row per layer per run), per configuration
    ``grad_norms_<config>.png`` and ``grad_bars_<config>.png`` (the deepest depth), and
    ``jacobian.json`` / ``jacobian_spectra.png``.
    """
    out = pathlib.Path(out)
    train, _, _ = _datasets(data, root, log)
    images, labels = fixed_batch(train, batch_size, seed)
    batch = {"data": data, "images": batch_size, "seed": seed, "split": "train"}
    runs = []
    for norm, activation, init in configs:
        name = config_name(norm, activation, init)
        if log:
            log(f"{name}: plain vs residual at depths {', '.join(map(str, depths))}")
        config_runs = sweep(images, labels, depths, norm, activation, init, seed, log)
        runs += config_runs
        title = (f"{'BN' if norm else 'no BN'}, {activation}, init {init}: {data}, "
                 f"{batch_size} images, at initialisation")
        plot_grad_norms(config_runs, out / f"grad_norms_{name}.png", title=title)
        deepest = max(depths)
        plot_grad_bars({f"{'plain' if r['net'] == 'plain' else 'ResNet'}-{deepest}": r["record"]
                        for r in config_runs if r["depth"] == deepest},
                       out / f"grad_bars_{name}.png", title=title)
    save_json({"batch": batch, "layer_fields": list(LAYER_FIELDS), "runs": runs},
              out / "sweep.json", indent=None)
    save_csv(summary_rows(runs), out / "sweep_summary.csv")
    layer_rows = [row for run in runs for row in snapshot_rows(
        run["record"], **{k: run[k] for k in ("norm", "activation", "init", "depth", "net")})]
    save_csv(layer_rows, out / "sweep_layers.csv")
    spectra = None
    if jacobian:
        spectra = jacobian_spectra(activations=("relu", "tanh"), seed=seed)
        save_json({"input_shape": [1, 4, 4, 4], "blocks": "y = x + conv(act(conv(x))) "
                   "(residual) or y = conv(act(conv(x))) (plain), 4 channels, no BN",
                   "spectra": spectra}, out / "jacobian.json", indent=None)
        plot_jacobian_spectra(spectra, out / "jacobian_spectra.png",
                              title="singular values of d output / d input (finite "
                                    "differences, float64)")
        if log:
            for s in spectra:
                log(f"  jacobian {s['init']:>6} {s['activation']:>4} {s['net']:>8} "
                    f"{s['depth']:>2} blocks: singular values {s['min']:.2g} .. {s['max']:.2g},"
                    f" median {s['median']:.3g}")
    if log:
        log(f"wrote {out}/sweep.json, sweep_summary.csv, sweep_layers.csv and the pictures")
    return runs, spectra


# ---- the command line: minicnn gradflow --------------------------------------------------------

def register(subparsers):
    """Add the ``gradflow`` subcommand to an argparse ``subparsers`` (minicnn/cli.py calls this)."""
    p = subparsers.add_parser(
        "gradflow", help="gradient flow in plain vs residual nets: depth sweep, Jacobian "
                         "spectra, the degradation experiment (He et al. 2016)",
        description="Plain vs residual CIFAR nets: per-layer gradient norms at initialisation "
                    "for each depth (the sweep) and the Jacobian spectra of small stacks, or "
                    "with --degradation the training curves of He et al. 2016, Fig. 6. Writes "
                    "JSON/CSV data and PNG pictures into --out.")
    p.add_argument("--depths", type=int, nargs="+", default=None,
                   help="depths 6n+2 (default: 20 56 110; with --degradation 20 56)")
    p.add_argument("--bn", action=argparse.BooleanOptionalAction, default=True,
                   help="batch norm after every conv (default); --no-bn: none, convs get a bias")
    p.add_argument("--act", nargs="+", default=["relu"], choices=ACTIVATIONS,
                   help="activation(s); several give a run per activation (default relu)")
    p.add_argument("--init", nargs="+", default=["he"], choices=sorted(INITS),
                   help="initialisation(s) of the convs: he (kaiming normal, fan_out), "
                        "he_fan_in, xavier, normal (N(0, 0.01^2)); default he")
    p.add_argument("--grid", action="store_true",
                   help="every configuration of the issue: BN on and off x relu/tanh/sigmoid x "
                        "he/xavier/normal (overrides --bn, --act, --init)")
    p.add_argument("--data", default="fashion-mnist", choices=("fashion-mnist", "mnist",
                                                                "cifar10"))
    p.add_argument("--root", default=None, help="folder holding the data set files")
    p.add_argument("--batch-size", type=int, default=None,
                   help="images per measured batch (default 32); with --degradation the "
                        "training batch (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-jacobian", action="store_true",
                   help="skip the Jacobian spectra of the small plain/residual stacks")
    p.add_argument("--out", default="runs/gradflow", help="output folder (default runs/gradflow)")
    d = p.add_argument_group("the degradation experiment (--degradation)")
    d.add_argument("--degradation", action="store_true",
                   help="train plain and residual nets of --depths with one recipe instead")
    d.add_argument("--epochs", type=int, default=10)
    d.add_argument("--train-size", type=int, default=5000, help="training images used")
    d.add_argument("--test-size", type=int, default=1000,
                   help="test images, evaluated once at the end of each run")
    d.add_argument("--val-size", type=int, default=None,
                   help="validation images, held out of the training images not trained on, "
                        "evaluated every epoch (default: as many as --test-size)")
    d.add_argument("--lr", type=float, default=0.1)
    d.add_argument("--weight-decay", type=float, default=1e-4)
    d.add_argument("--record-every", type=int, default=50,
                   help="record the gradient flow every this many steps")
    p.set_defaults(func=_cmd_gradflow)
    return p


def _cmd_gradflow(args):
    out = pathlib.Path(args.out)
    if args.degradation:
        result = degradation(tuple(args.depths or (20, 56)), args.epochs, args.train_size,
                             args.test_size, args.batch_size or 64, args.lr,
                             weight_decay=args.weight_decay, data=args.data, seed=args.seed,
                             record_every=args.record_every, out=out, root=args.root,
                             val_size=args.val_size)
        print(f"wrote {out}/degradation.json and {out}/degradation.png")
        for label, run in result["runs"].items():
            f = run["final"]
            print(f"{label:>11}: train error {100 * f['train_error']:6.2f}%  test error "
                  f"{100 * f['test_error']:6.2f}%")
        return 0
    if args.grid:
        configs = [(norm, act, init) for norm in (True, False) for act in ACTIVATIONS
                   for init in ("he", "xavier", "normal")]
    else:
        configs = [(args.bn, act, init) for act in args.act for init in args.init]
    run_gradflow(configs, tuple(args.depths or (20, 56, 110)), data=args.data, root=args.root,
                 batch_size=args.batch_size or 32, seed=args.seed,
                 jacobian=not args.no_jacobian, out=out)
    return 0
