"""Transfer learning: reuse a trained network for a new task.

The lecture's recipe: a network trained on a large data set has learned features (edges,
textures, parts) that help on a new task with few labels. Either

- use it as a FIXED FEATURE EXTRACTOR: freeze every weight, put a new linear classifier on its
  features and train only that; or
- FINE-TUNE it: replace the head, then train some or all of the pre-trained layers too, with a
  smaller learning rate than the new head (their weights are already good; a large step would
  destroy what they learned before the head has settled).

The tools, on any model of the zoo (``mc.models``)::

    from minicnn import transfer
    model = mc.models.cifar_resnet(8, in_channels=1, pretrained=True)   # ResNet-8
    transfer.replace_head(model, num_classes=5)      # a fresh Linear where fc was
    transfer.freeze(model)                           # everything ...
    transfer.unfreeze(model, "layer3", "head")       # ... but the deepest stage and the head
    print(transfer.report(model))                    # trainable vs frozen, per stage
    opt = mc.optim.Adam(transfer.param_groups(model, lr=1e-3, backbone_lr=1e-4))

    features = transfer.FeatureExtractor(model, "avgpool", flatten=True)   # N x 64

Names: a "stage" is a named group of modules (:func:`stages`): for the ResNets ``stem``,
``layer1`` ... ``layer4``, ``head``; for VGG and LeNet-5 ``stage1``, ``stage2``, ... (the conv
layers up to and including each pooling layer), ``classifier`` (the hidden linear layers) and
``head``; for other models each top-level child, plus ``head`` (the last Linear layer). Any
module path (``layer2.0.conv1``, ``features.3``) works as well.

Frozen parameters (``requires_grad=False``) receive no gradient work: when a frozen prefix's
inputs need no gradient no graph is recorded for it at all, a conv or linear layer whose weight
is frozen skips the weight-gradient product, and the first trainable layer after a frozen part
skips its input-gradient product (``Function.needs_input_grad``). Batch norm layers inside a
frozen part are kept in evaluation mode (running statistics used, not updated), so their
statistics stay those of the pre-training data even while the rest of the model trains.

``minicnn finetune`` runs the lecture's experiment (:func:`run_experiment`): pre-train on five
classes of Fashion-MNIST, then learn the other five from 10, 100 or 1000 labels per class four
ways (from scratch, frozen features + linear classifier, fine-tuning the deepest stage,
fine-tuning everything with a smaller backbone learning rate).
"""
import json
import math
import os
import time
from collections import OrderedDict

import numpy as np

import minicnn.nn as nn
from minicnn.serialization import atomic_write

__all__ = ["stages", "head_name", "freeze", "unfreeze", "frozen_modules", "replace_head",
           "FeatureExtractor", "param_groups", "report", "TransferReport", "run_experiment",
           "register"]


# ---- names: stages and the head -----------------------------------------------------------------

def head_name(model):
    """The module path of the classifier head: the last ``nn.Linear`` in registration order
    (``fc`` for the ResNets and GoogLeNet, ``classifier.6`` for VGG, ``classifier.4`` for LeNet-5,
    ``classifier`` for DenseNet)."""
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer, so it has no "
                         "classifier head to find")
    return linears[-1]


def _split_at_pools(prefix, sequential):
    """``{stage1: [...], stage2: [...]}``: the children of ``sequential`` cut after each pooling
    layer (VGG's and LeNet-5's ``features``)."""
    result, current = OrderedDict(), []
    for name, module in sequential.named_children():
        current.append(f"{prefix}.{name}")
        if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            result[f"stage{len(result) + 1}"] = current
            current = []
    if current:
        result[f"stage{len(result) + 1}"] = current
    return result


def stages(model):
    """An ordered dict ``stage name -> [module paths]`` from the input to the output, ending
    in ``head``; see the module docstring."""
    head = head_name(model)
    children = [name for name, _ in model.named_children()]
    if {"layer1", "layer2", "layer3"} <= set(children):            # ResNet, CIFAR ResNet
        result = OrderedDict(stem=[c for c in children if c in ("conv1", "bn1")])
        for c in children:
            if c.startswith("layer"):
                result[c] = [c]
    elif "features" in children and isinstance(model.features, nn.Sequential) and \
            "classifier" in children and isinstance(model.classifier, nn.Sequential):
        result = _split_at_pools("features", model.features)        # VGG, LeNet-5, AlexNet
        hidden = [f"classifier.{n}" for n, _ in model.classifier.named_children()
                  if f"classifier.{n}" != head]
        if hidden:
            result["classifier"] = hidden
    else:                                                           # anything else
        result = OrderedDict((c, [c]) for c in children if c != head)
    result["head"] = [head]
    return result


def _resolve(model, names):
    """Module paths for stage names and module paths; an unknown name is an error that lists
    the stages."""
    table = stages(model)
    paths = []
    for name in names:
        if name in table:
            paths.extend(table[name])
            continue
        try:
            model.get_submodule(name)
        except AttributeError:
            raise ValueError(f"{type(model).__name__} has no stage or module named {name!r}; "
                             f"its stages are {', '.join(table)} (any module path such as "
                             f"{next(iter(table.values()))[0]!r} works too)") from None
        paths.append(name)
    return paths


# ---- freezing -----------------------------------------------------------------------------------

def _keep_eval(module, args):
    """Forward pre-hook of a frozen batch norm: always use (and never update) the running
    statistics, whatever ``model.train()`` said."""
    object.__setattr__(module, "training", False)


def _sync_batch_norm(model):
    """A batch norm whose parameters are all frozen runs in evaluation mode (a pre-hook keeps it
    there); one with a trainable parameter follows the model's mode again."""
    for module in model.modules():
        if not isinstance(module, nn.BatchNorm2d):
            continue
        params = list(module.parameters(recurse=False))
        frozen = bool(params) and not any(p.requires_grad for p in params)
        handle = module.__dict__.get("_frozen_bn_hook")
        if frozen and handle is None:
            object.__setattr__(module, "_frozen_bn_hook",
                               module.register_forward_pre_hook(_keep_eval))
        elif not frozen and handle is not None:
            handle.remove()
            del module.__dict__["_frozen_bn_hook"]
            object.__setattr__(module, "training", model.training)


def _set_requires_grad(model, names, flag):
    paths = _resolve(model, names) if names else [""]
    for path in paths:
        model.get_submodule(path).requires_grad_(flag)
    _sync_batch_norm(model)
    return model


def freeze(model, *names):
    """Freeze the parameters of the named stages or modules (all of them when no name is
    given): ``requires_grad=False``, so they get no gradient and no update, and their batch
    norm layers stay in evaluation mode. Returns ``model``."""
    return _set_requires_grad(model, names, False)


def unfreeze(model, *names):
    """Make the named stages or modules (all when none is given) trainable again. Returns
    ``model``."""
    return _set_requires_grad(model, names, True)


def frozen_modules(model):
    """The paths of the modules that have parameters, all of them frozen."""
    result = []
    for name, module in model.named_modules():
        params = list(module.parameters(recurse=False))
        if params and not any(p.requires_grad for p in params):
            result.append(name)
    return result


# ---- a new head ---------------------------------------------------------------------------------

def replace_head(model, num_classes, name=None):
    """Replace the classifier head (the last ``nn.Linear``, or the module ``name``) by a new
    ``nn.Linear(in_features, num_classes)`` with PyTorch's default initialisation, on the
    model's device and dtype, under the same name (so the state_dict keys stay ``fc.weight``,
    ``classifier.6.weight``...). The new head is trainable. Returns it."""
    name = head_name(model) if name is None else name
    old = model.get_submodule(name)
    if not isinstance(old, nn.Linear):
        raise TypeError(f"replace_head: {name!r} is a {type(old).__name__}, not an nn.Linear")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"replace_head: num_classes must be a positive int, got "
                         f"{num_classes!r}")
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    new.to(device=old.weight.device, dtype=old.weight.dtype)
    parent_name, _, child = name.rpartition(".")
    model.get_submodule(parent_name).add_module(child, new)  # same slot, same key order
    return new


# ---- feature extraction -------------------------------------------------------------------------

class _Stop(Exception):
    """Raised by the hook on the last wanted layer: the rest of the forward pass is not run."""

    def __init__(self, output):
        super().__init__()
        self.output = output


class FeatureExtractor(nn.Module):
    """``model`` truncated after the module ``layer``: ``FeatureExtractor(model, "avgpool")(x)``
    returns what ``avgpool`` returns, and the layers after it are never run.

    It works on any model, whatever its ``forward`` does (residual additions, concatenations):
    a forward hook on ``layer`` catches its output and stops the pass. ``flatten=True`` returns
    ``(N, features)``. The model is a child module, so ``parameters()``, :func:`freeze` and
    ``state_dict()`` see its weights (under ``model.``).
    """

    def __init__(self, model, layer, flatten=False):
        super().__init__()
        self.model, self.layer, self.flatten = model, layer, flatten
        model.get_submodule(layer)  # an unknown name fails here, not at the first call

    def forward(self, x):
        def stop(module, args, output):
            raise _Stop(output)

        with self.model.get_submodule(self.layer).register_forward_hook(stop):
            try:
                self.model(x)
            except _Stop as caught:
                out = caught.output
            else:
                raise RuntimeError(f"FeatureExtractor: the forward pass of "
                                   f"{type(self.model).__name__} never ran {self.layer!r}")
        return out.flatten(1) if self.flatten else out

    def extra_repr(self):
        return f"layer={self.layer!r}, flatten={self.flatten}"


# ---- optimiser groups and the report ------------------------------------------------------------

def param_groups(model, lr, backbone_lr, head=None):
    """Two parameter groups for an optimiser: the trainable backbone parameters with
    ``backbone_lr`` and the trainable head parameters (``head``: a module path or stage name,
    default the head) with ``lr``. Frozen parameters are left out; an empty group is dropped.

        opt = mc.optim.SGD(transfer.param_groups(model, lr=0.01, backbone_lr=0.001),
                           lr=0.01, momentum=0.9)
    """
    head_paths = _resolve(model, [head if head is not None else "head"])
    head_ids = {id(p) for path in head_paths for p in model.get_submodule(path).parameters()}
    backbone = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    head_params = [p for p in model.parameters() if p.requires_grad and id(p) in head_ids]
    groups = [{"params": backbone, "lr": backbone_lr, "name": "backbone"},
              {"params": head_params, "lr": lr, "name": "head"}]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError("param_groups: every parameter is frozen; unfreeze something first")
    return groups


class TransferReport:
    """Trainable vs frozen parameters per stage: ``rows`` of ``(stage, trainable, frozen)``
    and the totals ``trainable`` and ``frozen``. ``str()`` prints the table."""

    def __init__(self, rows):
        self.rows = rows
        self.trainable = sum(r[1] for r in rows)
        self.frozen = sum(r[2] for r in rows)

    def __str__(self):
        width = max(len("stage"), *(len(r[0]) for r in self.rows))
        lines = [f"{'stage':<{width}}  {'trainable':>10}  {'frozen':>10}"]
        for stage, trainable, frozen in self.rows:
            state = "frozen" if trainable == 0 and frozen else \
                ("trainable" if frozen == 0 else "partly")
            lines.append(f"{stage:<{width}}  {trainable:>10,}  {frozen:>10,}  {state}")
        total = self.trainable + self.frozen
        share = 100 * self.trainable / total if total else 0.0
        lines.append(f"{'total':<{width}}  {self.trainable:>10,}  {self.frozen:>10,}  "
                     f"({share:.1f}% trainable)")
        return "\n".join(lines)

    __repr__ = __str__


def report(model):
    """A :class:`TransferReport` of ``model``: per stage, how many parameters train and how many
    are frozen (parameters outside every stage are listed as ``other``)."""
    rows, seen = [], set()
    for stage, paths in stages(model).items():
        trainable = frozen = 0
        for path in paths:
            for p in model.get_submodule(path).parameters():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                if p.requires_grad:
                    trainable += p.size
                else:
                    frozen += p.size
        rows.append((stage, trainable, frozen))
    rest = [p for p in model.parameters() if id(p) not in seen]
    if rest:
        rows.append(("other", sum(p.size for p in rest if p.requires_grad),
                     sum(p.size for p in rest if not p.requires_grad)))
    return TransferReport(rows)


# ---- the experiment -----------------------------------------------------------------------------

METHODS = ("scratch", "linear", "deepest", "full")
METHOD_LABELS = {
    "scratch": "from scratch",
    "linear": "frozen conv features + linear classifier",
    "deepest": "fine-tune the deepest stage + head",
    "full": "fine-tune everything (backbone lr / 10)",
}


def _fashion_mnist(subset):
    """(train images, train labels, test images, test labels) as normalised float32 arrays."""
    import minicnn.data as D
    from minicnn.cli import _NORMALIZE

    (mean,), (std,) = _NORMALIZE["fashion-mnist"]
    use = {"full": False, "bundled": True, "auto": "auto"}[subset]
    train = D.FashionMNIST(train=True, subset=use)
    test = D.FashionMNIST(train.folder if not train.is_subset else None, train=False,
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


def _train(model, optimizer, x, y, steps, batch_size, seed):
    """``steps`` optimiser steps on batches drawn from (x, y) by a seeded shuffle; returns the
    seconds per step."""
    import minicnn as mc
    import minicnn.nn.functional as F

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
        loss = F.cross_entropy(model(mc.Tensor(x[batch])), mc.Tensor(y[batch]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - started) / max(steps, 1)


def _accuracy(model, x, y, batch_size=1000):
    from minicnn.data import ArrayDataset, DataLoader
    from minicnn.training import evaluate

    return evaluate(model, DataLoader(ArrayDataset(x, y), batch_size=batch_size))[1]


def _build(model, num_classes):
    """The experiment's network: ``"lenet5"`` (ReLU and max pooling, as ``minicnn demo``) or
    ``"resnetN"``, the CIFAR ResNet of depth N = 6n + 2 (``resnet8``, ``resnet20``), one input
    channel."""
    from minicnn.models import cifar_resnet, lenet5

    if model == "lenet5":
        return lenet5(num_classes, activation="relu", pool="max")
    if model.startswith("resnet") and model[len("resnet"):].isdigit():
        return cifar_resnet(int(model[len("resnet"):]), num_classes=num_classes, in_channels=1)
    raise ValueError(f"run_experiment: model must be 'lenet5' or 'resnetN' (N = 6n + 2, e.g. "
                     f"resnet8), got {model!r}")


def deepest_stage(model):
    """The stage that "fine-tune the deepest stage" trains besides the head: the last stage
    before the head (``layer3`` of a CIFAR ResNet; ``classifier``, C5 and F6, of LeNet-5)."""
    names = [name for name in stages(model) if name != "head"]
    return names[-1]


def feature_layer(model):
    """Where the experiment's frozen feature extractor ends: the output of the convolutional
    part (``features``, S4 of LeNet-5: 16 x 5 x 5 = 400 numbers) or of the global average pool
    (``avgpool`` of a ResNet: 64 numbers)."""
    names = dict(model.named_children())
    for name in ("avgpool", "features"):
        if name in names:
            return name
    raise ValueError(f"{type(model).__name__}: no 'avgpool' or 'features' to cut after")


def _method_model(method, name, pretrained_state, num_classes, lr, backbone_lr, linear_lr):
    """The model and optimiser of one of the four ways."""
    import minicnn as mc
    from minicnn import weights

    model = _build(name, num_classes)
    if method == "scratch":
        return model, mc.optim.Adam(model.parameters(), lr=lr)
    # everything but the (new, randomly initialised) head comes from the pre-trained net
    weights.load(model, pretrained_state, exclude=(head_name(model) + ".",))
    if method == "linear":
        # the frozen network up to its feature layer, and a new linear classifier on top
        extractor = FeatureExtractor(freeze(model), feature_layer(model), flatten=True)
        with mc.no_grad():
            width = extractor.eval()(mc.Tensor(np.zeros((1, 1, 28, 28), np.float32))).shape[1]
        classifier = nn.Sequential(extractor, nn.Linear(width, num_classes))
        return classifier, mc.optim.Adam(classifier[1].parameters(), lr=linear_lr)
    if method == "deepest":
        freeze(model)
        unfreeze(model, deepest_stage(model), "head")
    elif method != "full":
        raise ValueError(f"unknown method {method!r}; use one of {METHODS}")
    groups = param_groups(model, lr=lr, backbone_lr=backbone_lr if method == "full" else lr)
    return model, mc.optim.Adam(groups, lr=lr)


def steps_for(per_class, num_classes, batch_size, min_steps=100, epochs=5):
    """Training steps for ``per_class`` labels per class: ``epochs`` passes over the data, at
    least ``min_steps`` (10 labels per class: 50 images, one batch, so 100 steps = 100 epochs)."""
    n = per_class * num_classes
    return max(min_steps, epochs * math.ceil(n / min(batch_size, n)))


def run_experiment(out="runs/finetune", labels=(10, 100, 1000), seeds=(0, 1, 2), model="lenet5",
                   source_classes=(0, 1, 2, 3, 4), pretrain_epochs=2, pretrained=None,
                   lr=2e-3, backbone_lr=2e-4, linear_lr=2e-2, batch_size=64, min_steps=100,
                   epochs=5, subset="auto", methods=METHODS, log=print):
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
       pre-trained layer with ``backbone_lr``). Test accuracy on all test images of the target
       classes (5,000).
    """
    import minicnn as mc
    from minicnn import weights

    os.makedirs(out, exist_ok=True)
    x_train, y_train, x_test, y_test, source = _fashion_mnist(subset)
    target_classes = tuple(c for c in range(10) if c not in source_classes)
    src_idx, src_y = _select(y_train, list(source_classes))
    tgt_idx, tgt_y = _select(y_train, list(target_classes))
    test_idx, test_y = _select(y_test, list(target_classes))
    x_src, x_tgt, x_tst = x_train[src_idx], x_train[tgt_idx], x_test[test_idx]
    log(f"Fashion-MNIST ({source}); source classes {list(source_classes)} "
        f"({len(src_idx):,} images), target classes {list(target_classes)} "
        f"({len(tgt_idx):,} training images to draw labels from, {len(test_idx):,} test)")

    started = time.perf_counter()
    if pretrained is None:
        mc.manual_seed(0)
        net = _build(model, len(source_classes))
        opt = mc.optim.Adam(net.parameters(), lr=1e-3)
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
            pick = _few_labels(tgt_y, per_class, seed)
            for method in methods:
                mc.manual_seed(1000 + seed)   # the same fresh head (and scratch net) per seed
                net, opt = _method_model(method, model, pretrained_state,
                                         len(target_classes), lr, backbone_lr, linear_lr)
                rep = report(net)
                seconds = _train(net, opt, x_tgt[pick], tgt_y[pick], steps, batch_size,
                                 seed=seed)
                acc = _accuracy(net, x_tst, test_y)
                records.append({"labels_per_class": per_class, "seed": seed, "method": method,
                                "test_accuracy": acc, "steps": steps,
                                "ms_per_step": 1000 * seconds,
                                "trainable": rep.trainable, "frozen": rep.frozen})
                log(f"{per_class:>5} labels/class  seed {seed}  {method:<8} "
                    f"{100 * acc:6.2f}%  ({steps} steps, {1000 * seconds:.0f} ms/step, "
                    f"{rep.trainable:,} trainable)")
    minutes = (time.perf_counter() - started) / 60
    config = {"model": model, "source_classes": list(source_classes),
              "target_classes": list(target_classes), "labels": list(labels),
              "seeds": list(seeds), "pretrain_epochs": pretrain_epochs, "lr": lr,
              "backbone_lr": backbone_lr, "linear_lr": linear_lr, "batch_size": batch_size,
              "min_steps": min_steps,
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
                   methods=tuple(args.methods))
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
    p.add_argument("--subset", default="auto", choices=("auto", "full", "bundled"),
                   help="Fashion-MNIST: the full set, the bundled subset, or auto (default)")
    p.set_defaults(func=_cmd_finetune)
    return p
