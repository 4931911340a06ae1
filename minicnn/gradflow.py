"""Gradient flow: measurements of why residual paths keep gradients alive where plain nets lose
them (He, Zhang, Ren, Sun 2016, "Deep residual learning for image recognition", CVPR,
https://arxiv.org/abs/1512.03385, Fig. 6 and 7).

    import minicnn as mc
    snapshot = mc.gradflow.record(model, images, labels)   # one forward + backward, measured
    runs = mc.gradflow.sweep(images, labels, depths=(20, 56, 110), norm=False, init="normal")
    spectra = mc.gradflow.jacobian_spectra(depths=(1, 2, 4, 8))

These are the measuring tools. The experiments that run them on a data set and draw the
pictures (the depth sweep, He et al.'s degradation experiment, ``minicnn gradflow``) live in
:mod:`minicnn.experiments.gradflow`; the committed results of a full run, with the commands and
the numbers, are in ``experiments/gradflow/``.

What a "layer" is here: every ``Conv2d`` and ``Linear`` of the model, in the order forward runs
them (a CIFAR ResNet-20 has 19 convs and the fc: 20 layers; the zero-padding shortcuts have no
weights and are not layers). For nets with ``model.blocks()`` (the CIFAR ResNets) each layer
also carries its block number: 0 for the stem conv, 1..3n for the residual (or plain) blocks,
3n + 1 for the fc. Per layer and per measured step the recorder keeps:

- ``weight_grad_norm``: ||dL/dW||, the L2 (Frobenius) norm of the weight gradient; also
  ``weight_grad_mean_abs`` and ``weight_grad_max_abs`` (the forum bar chart of mean/max |grad|);
- ``output_grad_norm``: ||dL/dy||, the norm of the gradient that flows back into the layer's
  output y (a tensor hook on y): what is left of the loss's signal at that depth;
- ``response_std``: the standard deviation of the layer's response, as in He et al.'s Fig. 7:
  the output of the batch norm right after the layer when there is one (after BN, before the
  nonlinearity), else the layer's own output.

Norms are computed in float64 from the float32 gradients, so a tiny norm (1e-30) is not lost to
underflow in the square; a gradient whose every element IS exactly 0 in float32 has norm 0.0,
and the summaries count such layers.
"""
import csv
import itertools
import json
import pathlib

import numpy as np

import minicnn.nn as nn
from minicnn import backend
from minicnn.autograd import Tensor, is_grad_enabled, no_grad
from minicnn.data.loader import DataLoader
from minicnn.models.resnet_cifar import ACTIVATIONS as ACTIVATION_LAYERS
from minicnn.models.resnet_cifar import cifar_resnet, conv3x3, init_conv_
from minicnn.nn import functional as F
from minicnn.random import manual_seed
from minicnn.serialization import atomic_write

__all__ = ["GradFlowRecorder", "record", "summarize", "build_twins", "sweep", "config_name",
           "summary_rows", "StackBlock", "block_stack", "numerical_jacobian",
           "backward_jacobian", "jacobian_spectra", "fixed_batch", "save_json", "save_csv",
           "snapshot_rows", "INITS", "ACTIVATIONS", "LAYER_FIELDS"]

#: the ``--init`` names of the command line -> the ``init=`` of ``mc.models.cifar_resnet``
INITS = {"he": "kaiming_fan_out", "he_fan_in": "kaiming_fan_in", "xavier": "xavier",
         "normal": "normal"}
ACTIVATIONS = ("relu", "tanh", "sigmoid")
#: the numbers kept per layer (see the module docstring)
LAYER_FIELDS = ("weight_grad_norm", "weight_grad_mean_abs", "weight_grad_max_abs",
                "output_grad_norm", "response_std")
_LAYER_TYPES = (nn.Conv2d, nn.Linear)


def _norm(array):
    """The L2 norm of ``array`` in float64 (no underflow of tiny squares), as a Python float."""
    xp = backend.get_array_module(array)
    flat = array.astype(xp.float64).ravel()
    return float(xp.sqrt(xp.dot(flat, flat)))


def _std(array):
    xp = backend.get_array_module(array)
    return float(xp.std(array.astype(xp.float64)))


# ---- the recorder ---------------------------------------------------------------------------

class GradFlowRecorder:
    """Measure every ``every``-th forward + backward of ``model`` (see the module docstring).

        recorder = GradFlowRecorder(model, every=50)
        with recorder:                        # attaches the hooks; removes them afterwards
            mc.fit(model, opt, loader, epochs=3)
        recorder.snapshots                    # [{'step': 0, 'name': [...], ...}, ...]

    A pass counts when it runs with gradients on (``mc.no_grad()`` evaluations do not count);
    passes 0, every, 2 * every, ... are measured. Each snapshot is plain data: ``step``, ``loss``
    (None unless :func:`record` filled it in), and one list per column, one entry per layer in
    forward order: ``name``, ``type``, ``block`` and the :data:`LAYER_FIELDS`. A snapshot's
    gradient columns fill in during the backward that follows its forward.
    """

    def __init__(self, model, every=1):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"GradFlowRecorder: every must be a positive integer, got {every!r}")
        self.model, self.every = model, every
        self.names = {id(m): name for name, m in model.named_modules()}
        self.layers = [m for m in model.modules() if isinstance(m, _LAYER_TYPES)]
        if not self.layers:
            raise ValueError(f"GradFlowRecorder: {type(model).__name__} has no Conv2d or Linear "
                             "layer to record")
        blocks = model.blocks() if callable(getattr(model, "blocks", None)) else None
        self.n_blocks = None if blocks is None else len(blocks)
        self.block_of = {} if blocks is None else {
            id(m): i + 1 for i, block in enumerate(blocks) for m in block.modules()}
        self._rows = []           # rows of the snapshots: one list of per-layer dicts each
        self._steps = []
        self._losses = []
        self._passes = 0          # forward passes with gradients on, seen so far
        self._current = None      # {id(layer): row} of the pass being measured, or None
        self._last_output = None  # (tensor, row): the latest layer output, for a BN after it
        self._handles = []

    # attaching and detaching
    def attach(self):
        if self._handles:
            return self
        self._handles.append(self.model.register_forward_pre_hook(self._start_pass))
        for layer in self.layers:
            self._handles.append(layer.register_forward_hook(self._layer_output))
            if layer.weight.requires_grad:  # a frozen layer's weight columns stay None
                self._handles.append(layer.weight.register_hook(self._weight_grad_hook(layer)))
        for m in self.model.modules():
            if isinstance(m, nn.BatchNorm2d):
                self._handles.append(m.register_forward_hook(self._norm_output))
        return self

    def detach(self):
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._current = self._last_output = None

    def __enter__(self):
        return self.attach()

    def __exit__(self, *exc):
        self.detach()

    # the hooks
    def _start_pass(self, module, args):
        self._current = self._last_output = None
        if not is_grad_enabled():
            return
        if self._passes % self.every == 0:
            self._current = {}
            self._rows.append([])
            self._steps.append(self._passes)
            self._losses.append(None)
        self._passes += 1

    def _layer_output(self, layer, args, output):
        current = self._current
        if current is None or not isinstance(output, Tensor) or not output.requires_grad:
            return
        rows = self._rows[-1]
        if self.n_blocks is None:
            block = None
        elif id(layer) in self.block_of:
            block = self.block_of[id(layer)]
        else:  # before the first block: the stem (0); after a block has run: the head
            block = 0 if not any(r["block"] for r in rows) else self.n_blocks + 1
        row = {"name": self.names[id(layer)], "type": type(layer).__name__, "block": block,
               **{field: None for field in LAYER_FIELDS}}
        row["response_std"] = _std(output.data)
        rows.append(row)
        current.setdefault(id(layer), row)  # a layer called twice: its weight row is the first
        self._last_output = (output, row)

        def output_grad(grad):
            row["output_grad_norm"] = _norm(grad)
        output.register_hook(output_grad)

    def _norm_output(self, bn, args, output):
        last = self._last_output
        if self._current is not None and last is not None and args and args[0] is last[0]:
            last[1]["response_std"] = _std(output.data)  # after BN, before the nonlinearity

    def _weight_grad_hook(self, layer):
        def hook(grad):  # runs at the end of backward with this backward's weight gradient
            row = None if self._current is None else self._current.get(id(layer))
            if row is not None:
                xp = backend.get_array_module(grad)
                magnitude = xp.abs(grad)
                row["weight_grad_norm"] = _norm(grad)
                row["weight_grad_mean_abs"] = float(magnitude.mean(dtype=xp.float64))
                row["weight_grad_max_abs"] = float(magnitude.max())
        return hook

    @property
    def snapshots(self):
        """The measured steps so far, each as columns (see the class docstring)."""
        return [_columns(step, loss, rows)
                for step, loss, rows in zip(self._steps, self._losses, self._rows)]

    def save(self, path):
        """Write the snapshots to ``path`` (atomically): a ``.csv`` path gets a row per layer
        per snapshot (see :func:`snapshot_rows`), any other a JSON list of the snapshots."""
        if pathlib.Path(path).suffix.lower() == ".csv":
            return save_csv([row for s in self.snapshots for row in snapshot_rows(s)], path)
        return save_json(self.snapshots, path)


def _columns(step, loss, rows):
    snapshot = {"step": step, "loss": loss}
    for key in ("name", "type", "block") + LAYER_FIELDS:
        snapshot[key] = [row[key] for row in rows]
    return snapshot


def record(model, images, labels, loss_fn=F.cross_entropy):
    """One forward and backward of ``model`` on a batch, measured: a snapshot (see
    :class:`GradFlowRecorder`) with the loss filled in. The model's gradients are zeroed first
    and hold this batch's gradients afterwards; the model's mode (train/eval) is used as it is."""
    images = images if isinstance(images, Tensor) else Tensor(images)
    labels = labels if isinstance(labels, Tensor) else Tensor(labels)
    recorder = GradFlowRecorder(model)
    with recorder:
        model.zero_grad()
        loss = loss_fn(model(images), labels)
        loss.backward()
    recorder._losses[-1] = loss.item()
    return recorder.snapshots[-1]


def summarize(snapshot, field="weight_grad_norm"):
    """How evenly the gradient reaches the layers, from one snapshot's ``field`` (per layer).

    - ``spread``: log10(max / min) over the layers whose norm is not exactly 0: orders of
      magnitude between the best- and the worst-fed layer (None if fewer than one such layer);
    - ``first_over_median``: the first layer's norm over the median layer's (None when the
      median is 0): far below 1 means the gradient dies on its way down to the input;
    - ``zero_layers``: how many layers got a gradient that is exactly 0 in every element, and
      ``any_zero``.
    """
    values = np.array([np.nan if v is None else v for v in snapshot[field]], dtype=np.float64)
    values = values[~np.isnan(values)]
    nonzero = values[values > 0]
    median = float(np.median(values)) if values.size else 0.0
    return {
        "spread": float(np.log10(nonzero.max() / nonzero.min())) if nonzero.size else None,
        "first_over_median": float(values[0] / median) if median > 0 else None,
        "zero_layers": int((values == 0).sum()),
        "any_zero": bool((values == 0).any()),
        "layers": int(values.size),
    }


# ---- saving ----------------------------------------------------------------------------------

def save_json(data, path, indent=1):
    """Write plain data (dicts, lists, numbers) as JSON, atomically; returns ``path``.
    ``indent=None`` writes it compactly (large per-layer records)."""
    with atomic_write(path, mode="w") as f:
        json.dump(data, f, indent=indent, allow_nan=False)
    return path


def save_csv(rows, path, columns=None):
    """Write a list of flat dicts as CSV (one row each), atomically; returns ``path``."""
    columns = columns or (list(rows[0]) if rows else [])
    with atomic_write(path, mode="w") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def snapshot_rows(snapshot, **extra):
    """One flat dict per layer of a snapshot (for :func:`save_csv`), ``extra`` columns first."""
    keys = ("name", "type", "block") + LAYER_FIELDS
    return [{**extra, "step": snapshot["step"], "index": i,
             **{key: snapshot[key][i] for key in keys}} for i in range(len(snapshot["name"]))]


# ---- data --------------------------------------------------------------------------------------

def fixed_batch(dataset, size=32, seed=0):
    """``size`` images of ``dataset`` picked with ``seed`` (the same every time): (images,
    labels) Tensors."""
    indices = np.random.default_rng(seed).choice(len(dataset), size=size, replace=False)
    images, labels = DataLoader(dataset).fetch(np.sort(indices))
    return Tensor(images), Tensor(labels)


# ---- the depth sweep ---------------------------------------------------------------------------

def build_twins(depth, norm=True, activation="relu", init="he", in_channels=1, num_classes=10,
                seed=0):
    """(plain, residual) CIFAR nets of ``depth`` with identical weights: both are built after
    ``mc.manual_seed(seed)``, and the twins have the same parameters in the same order."""
    if init not in INITS:
        raise ValueError(f"gradflow: init must be one of {sorted(INITS)}, got {init!r}")
    twins = []
    for plain in (True, False):
        manual_seed(seed)
        twins.append(cifar_resnet(depth, num_classes, in_channels, plain=plain, norm=norm,
                                  activation=activation, init=INITS[init]))
    return tuple(twins)


def config_name(norm, activation, init):
    """``'bn-relu-he'``, ``'nobn-relu-normal'``...: names files and runs of one configuration."""
    return f"{'bn' if norm else 'nobn'}-{activation}-{init}"


def sweep(images, labels, depths=(20, 56, 110), norm=True, activation="relu", init="he",
          seed=0, log=print):
    """Record the plain and the residual twin of each depth at initialisation on one batch.

    Same seed, same weights, same batch; the models are in training mode (batch norm uses the
    batch's statistics, as in the first training step). Returns one dict per (depth, net):
    ``depth``, ``net`` ('plain' or 'residual'), ``norm``, ``activation``, ``init``, ``loss``,
    ``record`` (the snapshot of :func:`record`), ``summary`` (:func:`summarize` of the weight
    gradient norms) and ``output_summary`` (the same of the output gradient norms).
    """
    runs = []
    in_channels = images.shape[1]
    for depth in depths:
        for net, model in zip(("plain", "residual"),
                              build_twins(depth, norm, activation, init, in_channels, seed=seed)):
            snapshot = record(model, images, labels)
            run = {"depth": depth, "net": net, "norm": norm, "activation": activation,
                   "init": init, "loss": snapshot["loss"], "record": snapshot,
                   "summary": summarize(snapshot),
                   "output_summary": summarize(snapshot, "output_grad_norm")}
            runs.append(run)
            if log:
                log(_summary_line(run))
    return runs


def _summary_line(run):
    s, o = run["summary"], run["output_summary"]
    name = f"{'plain' if run['net'] == 'plain' else 'resnet'}-{run['depth']}"

    def number(value, width, spec):
        return f"{'-':>{width}}" if value is None else f"{value:{width}{spec}}"
    return (f"  {config_name(run['norm'], run['activation'], run['init']):<18} {name:>10}: "
            f"loss {run['loss']:9.4g}  dL/dW spread {number(s['spread'], 4, '.1f')} decades, "
            f"first/median {number(s['first_over_median'], 7, '.2g')}, zero layers "
            f"{s['zero_layers']:>3}/{s['layers']}  |  dL/dy spread "
            f"{number(o['spread'], 4, '.1f')} decades")


def summary_rows(runs):
    """One flat dict per run (for :func:`save_csv`): the configuration and both summaries."""
    rows = []
    for run in runs:
        row = {key: run[key] for key in ("norm", "activation", "init", "depth", "net", "loss")}
        row.update(run["summary"])
        row.update({f"output_{k}": v for k, v in run["output_summary"].items() if k != "layers"})
        rows.append(row)
    return rows


# ---- Jacobians: why the shortcut helps (y = x + F(x) gives dy/dx = I + dF/dx) ------------------

class StackBlock(nn.Module):
    """``y = x + F(x)`` (``residual=True``) or ``y = F(x)`` (its plain twin), with
    ``F(x) = conv2(act(conv1(x)))``: two 3x3 convs, ``channels`` in and out, no bias, no BN.

    The smallest block that shows the point: dy/dx = I + dF/dx for the residual block, so a
    stack of them multiplies matrices close to I when F is small, while the plain stack
    multiplies the dF/dx alone and their product shrinks (or grows) geometrically with depth.
    """

    def __init__(self, channels, residual=True, activation="relu"):
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.act = ACTIVATION_LAYERS[activation]()
        self.conv2 = conv3x3(channels, channels)
        self.residual = residual

    def branch(self, x):
        """F(x)."""
        return self.conv2(self.act(self.conv1(x)))  # N x C x H x W

    def forward(self, x):
        return x + self.branch(x) if self.residual else self.branch(x)


def block_stack(depth, channels=4, residual=True, activation="relu", init="he", seed=0):
    """``depth`` :class:`StackBlock` s in a ``Sequential``, in float64, weights drawn after
    ``mc.manual_seed(seed)`` (so the plain and residual stacks share them): ``init`` 'he'
    (kaiming normal, fan_in, the activation's gain: F keeps the scale of its input), 'xavier'
    or 'normal' (N(0, 0.01^2): a small F)."""
    schemes = {"he": "kaiming_fan_in", "xavier": "xavier", "normal": "normal"}
    if init not in schemes:
        raise ValueError(f"block_stack: init must be he, xavier or normal, got {init!r}")
    manual_seed(seed)
    stack = nn.Sequential(*[StackBlock(channels, residual, activation) for _ in range(depth)])
    for m in stack.modules():
        if isinstance(m, nn.Conv2d):
            init_conv_(m, schemes[init], activation)
    return stack.to(np.float64)


def _float64_tensor(x):
    """``x`` (a Tensor or an array) as a float64 Tensor: finite differences need float64."""
    return Tensor(x.data if isinstance(x, Tensor) else np.asarray(x, np.float64),
                  dtype=np.float64)


def numerical_jacobian(fn, x, eps=1e-6):
    """d fn(x) / dx by central differences in float64, one input element at a time (the
    element-wise steps of :func:`minicnn.gradcheck`): an array (fn(x).numel(), x.numel()) whose column
    j is (fn(x + eps e_j) - fn(x - eps e_j)) / (2 eps)."""
    x = _float64_tensor(x)
    xp = x.xp
    with no_grad():
        columns = []
        for e_j in xp.eye(x.numel()):  # the unit vectors, flat
            step = eps * e_j.reshape(x.shape)
            plus, minus = fn(Tensor(x.data + step)).data, fn(Tensor(x.data - step)).data
            columns.append(((plus - minus) / (2 * eps)).ravel())
    return backend.to_numpy(xp.stack(columns, axis=1))


def backward_jacobian(fn, x):
    """The same Jacobian from ``backward``: row k is the gradient of output element k."""
    x = _float64_tensor(x).requires_grad_()
    rows = []
    for e_k in x.xp.eye(fn(x).numel()):  # the unit vectors of the output, flat
        x.grad = None
        y = fn(x)
        y.backward(e_k.reshape(y.shape))
        rows.append(backend.to_numpy(x.grad).ravel())
    return np.stack(rows)


def jacobian_spectra(depths=(1, 2, 4, 8, 16), inits=("he", "normal"), activations=("relu",),
                     channels=4, size=4, seed=0, eps=1e-6):
    """Singular values of d output / d input (finite differences, float64) of plain and
    residual stacks of each depth, for each init and activation, on one random input of shape
    (1, channels, size, size).

    NOTE: a central difference cannot resolve a slope below about (float64 rounding of the
    output) / eps ~ 1e-10 * |output|: singular values under that floor are zeros (ReLU's dead
    units) or noise. Sigmoid's outputs sit near 0.5, a constant part that the next conv carries
    on, so after a few plain blocks the change an eps step makes drowns in the rounding of that
    constant; ``run_gradflow`` shows ReLU and tanh (sigmoid(x) = (1 + tanh(x / 2)) / 2 behaves
    like a tanh with a quarter of the slope).

    Returns a list of dicts: ``net``, ``init``, ``activation``, ``depth``, ``singular_values``
    (largest first), ``max``, ``min``, ``median`` and ``mean_abs_log10`` (the mean |log10 s|:
    0 when every singular value is 1, i.e. how far the stack is from preserving every
    direction).
    """
    x = np.random.default_rng(seed).standard_normal((1, channels, size, size))
    spectra = []
    for init, activation, net, depth in itertools.product(inits, activations,
                                                          ("plain", "residual"), depths):
        stack = block_stack(depth, channels, net == "residual", activation, init, seed)
        s = np.linalg.svd(numerical_jacobian(stack, x, eps), compute_uv=False)
        positive = s[s > 0]
        spectra.append({"net": net, "init": init, "activation": activation, "depth": depth,
                        "singular_values": s.tolist(), "max": float(s.max()),
                        "min": float(s.min()), "median": float(np.median(s)),
                        "mean_abs_log10": float(np.abs(np.log10(positive)).mean())
                        if positive.size else None})
    return spectra
