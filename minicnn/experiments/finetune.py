"""The lecture's transfer experiment and ``minicnn finetune``, with the tools of
:mod:`minicnn.transfer`.

    from minicnn.experiments import finetune
    records = finetune.run_experiment(out="runs/finetune", labels=(10, 100, 1000))
    print(finetune.results_table(records, config))

    minicnn finetune --out runs/finetune                 # LeNet-5 (default)
    minicnn finetune --model resnet8 --out runs/finetune-resnet8

Pre-train a network on five classes of Fashion-MNIST, then learn the other five from 10, 100
or 1000 labels per class four ways (:data:`METHODS`): from scratch, frozen features + a linear
classifier, fine-tuning the deepest stage, fine-tuning everything with a smaller backbone
learning rate. The committed results, with the commands and the reading, are in the
repository's ``experiments/transfer/``.
"""
import json
import math
import os
import time

import numpy as np

import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn import weights
from minicnn.autograd import Tensor, no_grad
from minicnn.data.dataset import ArrayDataset
from minicnn.data.loader import DataLoader
from minicnn.data.mnist import FashionMNIST
from minicnn.data.presets import NORMALIZE
from minicnn.models import cifar_resnet, lenet5
from minicnn.optim import Adam
from minicnn.random import manual_seed
from minicnn.serialization import atomic_write
from minicnn.training import evaluate
from minicnn.transfer import (FeatureExtractor, deepest_stage, feature_layer, freeze, head_name,
                              param_groups, report, unfreeze)

__all__ = ["METHODS", "METHOD_LABELS", "run_experiment", "steps_for", "results_table",
           "plot_results", "register"]


# ---- the experiment's data and networks --------------------------------------------------------

METHODS = ("scratch", "linear", "deepest", "full")
METHOD_LABELS = {
    "scratch": "from scratch",
    "linear": "frozen conv features + linear classifier",
    "deepest": "fine-tune the deepest stage + head",
    "full": "fine-tune everything (backbone lr / 10)",
}


def _fashion_mnist(subset):
    """(train images, train labels, test images, test labels, source) as normalised float32
    arrays, normalised as :func:`minicnn.data.load_data` does."""
    (mean,), (std,) = NORMALIZE["fashion-mnist"]
    use = {"full": False, "bundled": True, "auto": "auto"}[subset]
    train = FashionMNIST(train=True, subset=use)
    test = FashionMNIST(train.folder if not train.is_subset else None, train=False,
                          subset=train.is_subset)

    def arrays(ds):
        x = ds.data.astype(np.float32)[:, None] / 255.0
        return (x - mean) / std, ds.targets.astype(np.int64)

    return arrays(train) + arrays(test) + (train.source,)


def _select(labels, classes):
    """Indices of the samples of ``classes`` and their labels renumbered 0, 1, ..."""
    idx = np.flatnonzero(np.isin(labels, classes))
    remap = {c: i for i, c in enumerate(classes)}
    return idx, np.array([remap[int(c)] for c in labels[idx]], dtype=np.int64)


def _few_labels(labels, per_class, seed):
    """``per_class`` random indices of each class (labels already renumbered 0..k-1)."""
    rng = np.random.default_rng([seed, per_class])
    smallest = min(int((labels == c).sum()) for c in np.unique(labels))
    if per_class > smallest:
        raise ValueError(f"run_experiment: {per_class} labels per class asked, but a target "
                         f"class has only {smallest} training images here (the bundled subset "
                         "has 600 per class; the full set 6,000)")
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
             for c in np.unique(labels)]
    return np.sort(np.concatenate(picks))


def _held_out(n, picks, size, seed=0):
    """``size`` indices of ``range(n)`` in none of ``picks`` (drawn with ``seed``; fewer when
    fewer are left): validation images that no method of the experiment trains on."""
    rest = np.setdiff1d(np.arange(n), np.concatenate(list(picks)))
    return np.sort(np.random.default_rng(seed).choice(rest, min(size, len(rest)),
                                                      replace=False))


def _train(model, optimizer, x, y, steps, batch_size, seed):
    """``steps`` optimiser steps on batches drawn from (x, y) by a seeded shuffle; returns the
    seconds per step."""
    rng = np.random.default_rng(seed)
    batch_size = min(batch_size, len(x))
    order, position = rng.permutation(len(x)), 0
    model.train()
    started = time.perf_counter()
    for _ in range(steps):
        if position + batch_size > len(order):
            order, position = rng.permutation(len(x)), 0
        batch = order[position:position + batch_size]
        position += batch_size
        loss = F.cross_entropy(model(Tensor(x[batch])), Tensor(y[batch]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - started) / max(steps, 1)


def _accuracy(model, x, y, batch_size=1000):
    return evaluate(model, DataLoader(ArrayDataset(x, y), batch_size=batch_size))[1]


def _build(model, num_classes):
    """The experiment's network: ``"lenet5"`` (ReLU and max pooling, as ``minicnn demo``) or
    ``"resnetN"``, the CIFAR ResNet of depth N = 6n + 2 (``resnet8``, ``resnet20``), one input
    channel."""
    if model == "lenet5":
        return lenet5(num_classes, activation="relu", pool="max")
    if model.startswith("resnet") and model[len("resnet"):].isdigit():
        return cifar_resnet(int(model[len("resnet"):]), num_classes=num_classes, in_channels=1)
    raise ValueError(f"run_experiment: model must be 'lenet5' or 'resnetN' (N = 6n + 2, e.g. "
                     f"resnet8), got {model!r}")


def _method_model(method, name, pretrained_state, num_classes, lr, backbone_lr, linear_lr):
    """The model and optimiser of one of the four ways."""
    model = _build(name, num_classes)
    if method == "scratch":
        return model, Adam(model.parameters(), lr=lr)
    # everything but the (new, randomly initialised) head comes from the pre-trained net
    weights.load(model, pretrained_state, exclude=(head_name(model) + ".",))
    if method == "linear":
        # the frozen network up to its feature layer, and a new linear classifier on top
        extractor = FeatureExtractor(freeze(model), feature_layer(model), flatten=True)
        with no_grad():
            width = extractor.eval()(Tensor(np.zeros((1, 1, 28, 28), np.float32))).shape[1]
        classifier = nn.Sequential(extractor, nn.Linear(width, num_classes))
        return classifier, Adam(classifier[1].parameters(), lr=linear_lr)
    if method == "deepest":
        freeze(model)
        unfreeze(model, deepest_stage(model), "head")
    elif method != "full":
        raise ValueError(f"unknown method {method!r}; use one of {METHODS}")
    groups = param_groups(model, lr=lr, backbone_lr=backbone_lr if method == "full" else lr)
    return model, Adam(groups, lr=lr)


def steps_for(per_class, num_classes, batch_size, min_steps=100, epochs=5):
    """Training steps for ``per_class`` labels per class: ``epochs`` passes over the data, at
    least ``min_steps`` (10 labels per class: 50 images, one batch, so 100 steps = 100 epochs)."""
    n = per_class * num_classes
    return max(min_steps, epochs * math.ceil(n / min(batch_size, n)))


def run_experiment(out="runs/finetune", labels=(10, 100, 1000), seeds=(0, 1, 2), model="lenet5",
                   source_classes=(0, 1, 2, 3, 4), pretrain_epochs=2, pretrained=None,
                   lr=2e-3, backbone_lr=2e-4, linear_lr=2e-2, batch_size=64, min_steps=100,
                   epochs=5, subset="auto", methods=METHODS, log=print, val_size=1000):
    """The lecture's transfer experiment on Fashion-MNIST, offline. Writes into ``out``:
    ``pretrained.npz`` (unless ``pretrained`` names a weights file to reuse), ``results.json``
    (one record per run), ``table.md`` and ``accuracy_vs_labels.png``. Returns the records.

    1. Pre-train ``model`` (``"lenet5"``, or ``"resnet8"`` and other CIFAR ResNets with one
       input channel) on the ``source_classes`` (30,000 training images for five classes) for
       ``pretrain_epochs``, Adam 1e-3, batch 128.
    2. For each number of labels per class in ``labels`` and each seed: draw that many training
       images of each of the other classes, and train the four ``methods`` on exactly those
       images for the same number of steps (:func:`steps_for`) with Adam: ``scratch`` (the
       whole net, ``lr``); ``linear`` (the pre-trained net frozen up to :func:`feature_layer`,
       a new linear classifier on its features, ``linear_lr``: a linear classifier on fixed
       features is a convex problem that takes, and needs, larger steps); ``deepest``
       (:func:`deepest_stage` and a new head, ``lr``); ``full`` (a new head with ``lr``, every
       pre-trained layer with ``backbone_lr``). Validation accuracy on ``val_size``
       target-class training images that are in none of the label draws (what to choose a
       method or a learning rate on), and test accuracy on all test images of the target
       classes (5,000), measured once at the end of each run.
    """
    os.makedirs(out, exist_ok=True)
    x_train, y_train, x_test, y_test, source = _fashion_mnist(subset)
    target_classes = tuple(c for c in range(10) if c not in source_classes)
    src_idx, src_y = _select(y_train, list(source_classes))
    tgt_idx, tgt_y = _select(y_train, list(target_classes))
    test_idx, test_y = _select(y_test, list(target_classes))
    x_src, x_tgt, x_tst = x_train[src_idx], x_train[tgt_idx], x_test[test_idx]
    # every draw of labels first, so that the validation images are in none of them
    picks = {(k, seed): _few_labels(tgt_y, k, seed) for k in labels for seed in seeds}
    val_idx = _held_out(len(tgt_y), picks.values(), val_size)
    x_val, val_y = x_tgt[val_idx], tgt_y[val_idx]
    log(f"Fashion-MNIST ({source}); source classes {list(source_classes)} "
        f"({len(src_idx):,} images), target classes {list(target_classes)} "
        f"({len(tgt_idx):,} training images to draw labels from, {len(val_idx):,} of them "
        f"held out for validation, {len(test_idx):,} test)")

    started = time.perf_counter()
    if pretrained is None:
        manual_seed(0)
        net = _build(model, len(source_classes))
        opt = Adam(net.parameters(), lr=1e-3)
        steps = pretrain_epochs * math.ceil(len(src_idx) / 128)
        seconds = _train(net, opt, x_src, src_y, steps, 128, seed=0)
        src_test_idx, src_test_y = _select(y_test, list(source_classes))
        acc = _accuracy(net, x_test[src_test_idx], src_test_y)
        pretrained = os.path.join(out, "pretrained.npz")
        weights.save(pretrained, net)
        log(f"pre-trained {model} on the source classes: {steps} steps "
            f"({1000 * seconds:.0f} ms each), source test accuracy {100 * acc:.2f}%")
        pretrain_info = {"steps": steps, "source_test_accuracy": acc, "ms_per_step":
                         1000 * seconds}
    else:
        pretrain_info = {"file": os.fspath(pretrained)}
        log(f"using the pre-trained weights in {pretrained}")
    pretrained_state = weights.read(pretrained)

    records = []
    for per_class in labels:
        steps = steps_for(per_class, len(target_classes), batch_size, min_steps, epochs)
        for seed in seeds:
            pick = picks[(per_class, seed)]
            for method in methods:
                manual_seed(1000 + seed)   # the same fresh head (and scratch net) per seed
                net, opt = _method_model(method, model, pretrained_state,
                                         len(target_classes), lr, backbone_lr, linear_lr)
                rep = report(net)
                seconds = _train(net, opt, x_tgt[pick], tgt_y[pick], steps, batch_size,
                                 seed=seed)
                val_acc = _accuracy(net, x_val, val_y) if len(val_idx) else None
                acc = _accuracy(net, x_tst, test_y)
                records.append({"labels_per_class": per_class, "seed": seed, "method": method,
                                "val_accuracy": val_acc, "test_accuracy": acc, "steps": steps,
                                "ms_per_step": 1000 * seconds,
                                "trainable": rep.trainable, "frozen": rep.frozen})
                val_text = "-" if val_acc is None else f"{100 * val_acc:.2f}%"
                log(f"{per_class:>5} labels/class  seed {seed}  {method:<8} validation "
                    f"{val_text}  test {100 * acc:.2f}%  ({steps} steps, "
                    f"{1000 * seconds:.0f} ms/step, {rep.trainable:,} trainable)")
    minutes = (time.perf_counter() - started) / 60
    config = {"model": model, "source_classes": list(source_classes),
              "target_classes": list(target_classes), "labels": list(labels),
              "seeds": list(seeds), "pretrain_epochs": pretrain_epochs, "lr": lr,
              "backbone_lr": backbone_lr, "linear_lr": linear_lr, "batch_size": batch_size,
              "min_steps": min_steps, "val_images": int(len(val_idx)),
              "epochs": epochs, "data": source, "pretrain": pretrain_info,
              "minutes": round(minutes, 1)}
    with atomic_write(os.path.join(out, "results.json"), "w") as f:
        json.dump({"config": config, "records": records}, f, indent=2)
    table = results_table(records, config)
    with atomic_write(os.path.join(out, "table.md"), "w") as f:
        f.write(table)
    plot_results(records, os.path.join(out, "accuracy_vs_labels.png"), config)
    log(table)
    log(f"{minutes:.1f} minutes; results in {out}/ (results.json, table.md, "
        "accuracy_vs_labels.png)")
    return records


def _summaries(records):
    """``{(method, labels): (mean, min, max, n)}`` of test accuracy over seeds."""
    groups = {}
    for r in records:
        groups.setdefault((r["method"], r["labels_per_class"]), []).append(r["test_accuracy"])
    return {key: (float(np.mean(v)), min(v), max(v), len(v)) for key, v in groups.items()}


def results_table(records, config):
    """A Markdown table: one row per method, one column per number of labels per class, test
    accuracy as mean (min-max over seeds)."""
    summary = _summaries(records)
    labels = sorted({r["labels_per_class"] for r in records})
    methods = [m for m in METHODS if any(r["method"] == m for r in records)]
    trainable = {r["method"]: r["trainable"] for r in records}
    lines = [f"Test accuracy (%) on the {len(config['target_classes'])} target classes "
             f"{config['target_classes']} after pre-training {config['model']} on "
             f"{config['source_classes']}; mean (min-max) over seeds {config['seeds']}.", "",
             "| method | trainable parameters | " +
             " | ".join(f"{k} labels/class" for k in labels) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in labels) + " |"]
    for m in methods:
        cells = []
        for k in labels:
            mean, lo, hi, n = summary[(m, k)]
            cells.append(f"{100 * mean:.1f} ({100 * lo:.1f}-{100 * hi:.1f})" if n > 1
                         else f"{100 * mean:.1f}")
        lines.append(f"| {METHOD_LABELS[m]} | {trainable[m]:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_results(records, path, config=None):
    """Accuracy vs labels per class (log scale), one line per method (mean over seeds, the band
    from the lowest to the highest seed). Saved atomically; returns the Figure."""
    # NOTE: matplotlib is imported here, not at the top: it takes 0.4-0.7 s, and the command
    # line imports this module to register `minicnn finetune`
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    summary = _summaries(records)
    labels = sorted({r["labels_per_class"] for r in records})
    figure = Figure(figsize=(6, 4), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    for m in METHODS:
        if (m, labels[0]) not in summary:
            continue
        mean = [100 * summary[(m, k)][0] for k in labels]
        lo = [100 * summary[(m, k)][1] for k in labels]
        hi = [100 * summary[(m, k)][2] for k in labels]
        ax.plot(labels, mean, marker="o", label=METHOD_LABELS[m])
        ax.fill_between(labels, lo, hi, alpha=0.15)
    ax.set_xscale("log")
    ax.set_xticks(labels)
    ax.set_xticklabels([str(k) for k in labels])
    ax.set_xlabel("labels per class (target task)")
    ax.set_ylabel("test accuracy (%)")
    if config is not None:
        ax.set_title(f"Fashion-MNIST {config['source_classes']} -> {config['target_classes']}, "
                     f"{config['model']}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    with atomic_write(path) as f:
        figure.savefig(f, format="png", dpi=120)
    return figure


# ---- the command line ---------------------------------------------------------------------------

def _cmd_finetune(args):
    run_experiment(out=args.out, labels=tuple(args.labels), seeds=tuple(range(args.seeds)),
                   model=args.model, source_classes=tuple(args.source_classes),
                   pretrain_epochs=args.pretrain_epochs, pretrained=args.pretrained,
                   lr=args.lr, backbone_lr=args.backbone_lr, linear_lr=args.linear_lr,
                   batch_size=args.batch_size,
                   min_steps=args.min_steps, epochs=args.epochs, subset=args.subset,
                   methods=tuple(args.methods), val_size=args.val_size)
    return 0


def register(subparsers):
    """Add ``minicnn finetune`` (the transfer experiment) to the command line's subparsers."""
    p = subparsers.add_parser(
        "finetune", help="transfer learning on Fashion-MNIST: pre-train on five classes, learn "
                         "the other five from few labels four ways (scratch, frozen features, "
                         "deepest stage, everything)")
    p.add_argument("--out", default="runs/finetune", help="output folder (default "
                                                          "runs/finetune)")
    p.add_argument("--labels", type=int, nargs="+", default=[10, 100, 1000],
                   help="labels per target class (default 10 100 1000)")
    p.add_argument("--seeds", type=int, default=3, help="label draws per setting (default 3)")
    p.add_argument("--model", default="lenet5",
                   help="lenet5 (default) or resnetN, a CIFAR ResNet of depth N = 6n + 2 "
                        "(resnet8, resnet20)")
    p.add_argument("--source-classes", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                   help="classes to pre-train on; the others are the target task")
    p.add_argument("--pretrain-epochs", type=int, default=2)
    p.add_argument("--pretrained", default=None,
                   help="reuse this weights file (e.g. OUT/pretrained.npz) instead of "
                        "pre-training")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam lr of new layers (default 2e-3)")
    p.add_argument("--backbone-lr", type=float, default=2e-4,
                   help="Adam lr of the pre-trained layers when fine-tuning everything")
    p.add_argument("--linear-lr", type=float, default=2e-2,
                   help="Adam lr of the linear classifier on frozen features (default 2e-2)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--min-steps", type=int, default=100)
    p.add_argument("--epochs", type=int, default=5, help="passes over the labelled images "
                                                        "(at least --min-steps steps)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--val-size", type=int, default=1000,
                   help="target-class training images in no label draw, held out for "
                        "validation (default 1000)")
    p.add_argument("--subset", default="auto", choices=("auto", "full", "bundled"),
                   help="Fashion-MNIST: the full set, the bundled subset, or auto (default)")
    p.set_defaults(func=_cmd_finetune)
    return p
