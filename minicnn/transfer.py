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

These are the tools. The lecture's experiment that uses them (pre-train on five classes of
Fashion-MNIST, then learn the other five from 10, 100 or 1000 labels per class four ways: from
scratch, frozen features + linear classifier, fine-tuning the deepest stage, fine-tuning
everything with a smaller backbone learning rate) is :mod:`minicnn.experiments.finetune`, the
command ``minicnn finetune``.
"""
from collections import OrderedDict

import minicnn.nn as nn

__all__ = ["stages", "head_name", "freeze", "unfreeze", "frozen_modules", "replace_head",
           "FeatureExtractor", "param_groups", "report", "TransferReport", "deepest_stage",
           "feature_layer"]


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
                    trainable += p.numel()
                else:
                    frozen += p.numel()
        rows.append((stage, trainable, frozen))
    rest = [p for p in model.parameters() if id(p) not in seen]
    if rest:
        rows.append(("other", sum(p.numel() for p in rest if p.requires_grad),
                     sum(p.numel() for p in rest if not p.requires_grad)))
    return TransferReport(rows)


# ---- where a transfer cuts a model --------------------------------------------------------------

def deepest_stage(model):
    """The stage that "fine-tune the deepest stage" trains besides the head: the last stage
    before the head (``layer3`` of a CIFAR ResNet; ``classifier``, C5 and F6, of LeNet-5)."""
    names = [name for name in stages(model) if name != "head"]
    return names[-1]


def feature_layer(model):
    """Where a frozen feature extractor ends (:mod:`minicnn.experiments.finetune` cuts there):
    the output of the convolutional part (``features``, S4 of LeNet-5: 16 x 5 x 5 = 400
    numbers) or of the global average pool (``avgpool`` of a ResNet: 64 numbers)."""
    names = dict(model.named_children())
    for name in ("avgpool", "features"):
        if name in names:
            return name
    raise ValueError(f"{type(model).__name__}: no 'avgpool' or 'features' to cut after")
