"""``summary(model, input_shape)``: what each layer of a network outputs, owns and costs.

A torchinfo-style table -- layer, output shape, parameters, multiply-adds -- with two columns no
other summary has: the bytes of the im2col column buffers each convolution needs for the given
batch, as minicnn allocates them and as the textbook's whole-batch column matrix would, and the
peak over all layers (the buffers are shared and reused by all layers, so the largest one is what
stays held). For LeNet-5 (``summary(lenet5(), (1, 1, 28, 28))``)::

    Layer (type)                Output shape     Params  Mult-adds   im2col  whole batch
    ====================================================================================
    LeNet5                      [1, 10]              --         --       --           --
      features (Sequential)     [1, 16, 5, 5]        --         --       --           --
        features.0 (Conv2d)     [1, 6, 28, 28]      156    117,600  78.4 kB      78.4 kB
        features.1 (Tanh)       [1, 6, 28, 28]       --         --       --           --
        ...
    Total mult-adds: 416,520 (416.520 K)
    Peak im2col buffers (minicnn, batch cut into chunks): 78.4 kB at features.0

A container whose calls are listed below it shows only its own numbers ("--" for none), one
folded by ``depth`` shows its sub-tree's: every column adds up to the totals.

How it works: one forward pass with hooks on every module (``register_forward_hook``), in
evaluation mode and under ``no_grad`` (nothing is recorded for backward), on a batch of ONE
zero image, in which the convolutions do not compute: each checks its input as the op would and
returns zeros of its output shape (``shape_only=False`` computes them; VGG-16 at 224x224 then
takes 0.7-1 s on a 2-core CPU, U-Net at 572x572 9 s). Multiply-adds grow linearly with the
batch, so they are multiplied by the requested batch; shapes get the requested batch as their
first axis; column bytes are computed for the requested batch from the recorded input shapes by
the predictor (:func:`minicnn.engine.memory.conv2d_column_bytes`), since the buffers do NOT grow
linearly (the batch is cut into chunks).

Multiply-adds (MACs) convention: those of the convolution and linear layers, one per weight
per output position -- ``Conv2d``: ``N*OH*OW * C_out * (C_in/groups)*kH*kW``; ``ConvTranspose2d``:
``N*H*W * C_in * (C_out/groups)*kH*kW`` (per INPUT position); ``Linear``: ``rows * in * out``.
A dilated kernel (``dilation``) multiplies the same kH*kW weights per position, over a larger
window: it changes the output size (so the MACs) and the column bytes, not the formula.
Biases, pooling, batch norm, activations, additions and concatenations count 0. This is the
convention behind torchvision's published GFLOPS (which are really giga-multiply-adds: AlexNet
0.714, VGG-16 15.47, ResNet-50 4.089 at 224x224). Register a counter for another layer type in
``MAC_COUNTERS``.

The last column names the algorithm each convolution's forward pass runs on the input's device
(its backward takes the same one): ``winograd F(2x2,3x3)`` / ``winograd F(4x4,3x3)``
(``minicnn/engine/winograd.py``: 3x3 stride-1 layers, chosen per layer, or forced by
``MINICNN_CONV_ALGORITHM``), ``direct`` (one input channel), ``1x1 GEMM`` (no im2col at all),
``im2col``, ``im2col (reference)`` on the reference lane, ``col2im`` for a transposed convolution.
A Winograd layer's buffer columns show the im2col path's bytes, which bound its tile buffers
unless it widens the channels (``_chunking`` in ``minicnn/engine/winograd.py``).
"""
import dataclasses
import sys

import numpy as np

from minicnn import autograd, backend
from minicnn.autograd import Tensor
import minicnn.nn as nn
from minicnn.engine import conv as engine
from minicnn.engine import winograd
from minicnn.kernels.geometry import conv_output_size
from minicnn.ops.conv import conv2d_geometry, conv_transpose2d_geometry

__all__ = ["summary", "ModelSummary", "LayerRow", "MAC_COUNTERS", "SHAPE_RULES"]


# ---------------------------------------------------------------------------------------------
# Multiply-adds per layer type
# ---------------------------------------------------------------------------------------------

def _numel(shape):
    return int(np.prod(shape, dtype=np.int64))


def _conv2d_macs(layer, input, output):
    """Every output number is a dot product of C_in/groups * kH * kW weights."""
    kh, kw = layer.kernel_size
    return _numel(output.shape) * (layer.in_channels // layer.groups) * kh * kw


def _conv_transpose2d_macs(layer, input, output):
    """Every INPUT number is multiplied by C_out/groups * kH * kW weights (and scattered)."""
    kh, kw = layer.kernel_size
    return _numel(input.shape) * (layer.out_channels // layer.groups) * kh * kw


def _linear_macs(layer, input, output):
    """Every output number is a dot product of in_features weights."""
    return _numel(output.shape) * layer.in_features


#: ``layer type -> counter(layer, input, output)`` giving the multiply-adds of one call (its
#: first positional input and its output are Tensors). Subclasses use their base's counter.
MAC_COUNTERS = {
    nn.Conv2d: _conv2d_macs,
    nn.ConvTranspose2d: _conv_transpose2d_macs,
    nn.Linear: _linear_macs,
}


def _mac_counter(module):
    for cls in type(module).__mro__:
        if cls in MAC_COUNTERS:
            return MAC_COUNTERS[cls]
    return None


def _conv2d_algorithm(layer, input, device):
    """The engine's path for ``layer(input)`` (see the module doc), decided as the engine does."""
    if backend.reference_lane():
        return "im2col (reference)"
    batch = input.reshape((1,) + input.shape) if input.ndim == 3 else input   # one image
    stride, padding, _ = conv2d_geometry(batch, layer.weight, layer.bias, layer.stride,
                                         layer.padding, layer.groups, layer.dilation)
    w_shape, on_cpu = layer.weight.shape, device == "cpu"
    m = winograd.choose(on_cpu, w_shape, stride, padding, layer.groups, layer.dilation)
    if m:
        return winograd.algorithm_name(m)
    if engine.use_direct(np if on_cpu else None, (1, 1, 1, batch.shape[1]), w_shape, stride,
                         layer.groups, layer.dilation):
        return "direct"
    if engine.is_pointwise(tuple(w_shape[2:]), stride, padding):
        return "1x1 GEMM"
    return "im2col"


# ---------------------------------------------------------------------------------------------
# Shape-only convolutions
# ---------------------------------------------------------------------------------------------

def _conv2d_output_shape(layer, input):
    """What ``layer(input)`` would return, after conv2d's own argument checks."""
    batch = input.reshape((1,) + input.shape) if input.ndim == 3 else input   # one image
    stride, padding, extra = conv2d_geometry(batch, layer.weight, layer.bias, layer.stride,
                                             layer.padding, layer.groups, layer.dilation)
    H, W = input.shape[-2:]
    (KH, KW), (dH, dW) = layer.kernel_size, layer.dilation
    return input.shape[:-3] + (layer.out_channels,
                               conv_output_size(H + extra[0], KH, stride[0], padding[0], dH),
                               conv_output_size(W + extra[1], KW, stride[1], padding[1], dW))


def _conv_transpose2d_output_shape(layer, input, output_size=None):
    """What ``layer(input, output_size)`` would return, after conv_transpose2d's checks."""
    batch = input.reshape((1,) + input.shape) if input.ndim == 3 else input   # one image
    output_padding = layer._output_padding(input.shape, output_size)
    _, _, out = conv_transpose2d_geometry(batch, layer.weight, layer.bias, layer.stride,
                                          layer.padding, output_padding, layer.groups,
                                          layer.dilation)
    return input.shape[:-3] + (layer.out_channels,) + tuple(out)


#: ``layer type -> rule(layer, *forward_args)`` giving the output shape: with
#: ``shape_only=True`` these layers return zeros of that shape instead of computing (they do
#: nearly all the work of a CNN; the cheap layers after them still run).
SHAPE_RULES = {
    nn.Conv2d: _conv2d_output_shape,
    nn.ConvTranspose2d: _conv_transpose2d_output_shape,
}


def _shape_only_forward(module, rule):
    def forward(input, *args, **kwargs):
        input = autograd.as_tensor(input)
        shape = rule(module, input, *args, **kwargs)
        xp = backend.get_array_module(input.data)
        return Tensor(xp.zeros(shape, dtype=input.dtype))
    return forward


# ---------------------------------------------------------------------------------------------
# The result
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class LayerRow:
    """One call of one module during the forward pass (plain data: ``dataclasses.asdict(row)``).

    Every number is for the whole batch and covers the module AND what it called (a container's
    ``params`` are those of its sub-tree, its ``macs`` their sum, its ``column_bytes`` their
    maximum); the ``self_*`` fields cover the module alone.
    """
    name: str                       # PyTorch's dotted name ('' for the model itself)
    type: str                       # class name
    depth: int                      # 0 the model, 1 what it calls, ...
    input_shape: tuple              # shape of the first positional input
    output_shape: object            # a shape tuple, or a list of them for several outputs
    params: int                     # parameters of the sub-tree (0 on a repeated call)
    trainable_params: int
    macs: int                       # multiply-adds of the call, sub-calls included
    column_bytes: int               # largest column buffer minicnn allocates (chunked)
    unchunked_column_bytes: int     # the same passes on the whole batch at once
    self_params: int = 0
    self_macs: int = 0
    leaf: bool = True               # called no other module
    repeated: bool = False          # ran before in this pass (shared): params counted there
    algorithm: str = ""             # a convolution's: 'winograd F(2x2,3x3)', 'im2col', ...


def _format_count(value):
    return f"{value:,}" if value else "--"


def _format_bytes(value):
    if not value:
        return "--"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value} B"


def _format_shape(shape):
    if shape is None:
        return "--"
    if isinstance(shape, list):
        return ", ".join(_format_shape(s) for s in shape)
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _short(value):
    """``15.470 G``, ``416.520 K``."""
    for suffix, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= size:
            return f"{value / size:.3f} {suffix}"
    return f"{value:,}"


def _scaled(value):
    """``15,470,314,496 (15.470 G)``."""
    return f"{value:,}" + (f" ({_short(value)})" if value >= 1e3 else "")


class ModelSummary:
    """What :func:`summary` returns. ``str()`` is the table, ``repr()`` a one-line digest.

    Attributes: ``rows`` (every module call in call order, :class:`LayerRow`), ``visible_rows``
    (those ``depth`` levels deep or less: the table), ``total_params``, ``trainable_params``,
    ``non_trainable_params``, ``total_macs`` (whole batch), ``macs_per_image``,
    ``peak_column_bytes`` and ``peak_unchunked_column_bytes`` (and ``peak_column_layer``, the
    name of the layer that needs them), ``not_run`` (``[(name, params)]`` of modules with
    parameters that the pass did not call), ``input_shape``, ``output_shape``, ``batch_size``,
    ``dtype``, ``depth``.
    """

    def __init__(self, model_name, rows, input_shape, dtype, depth, total_params,
                 trainable_params):
        self.model_name, self.rows = model_name, rows
        self.input_shape, self.batch_size = tuple(input_shape), int(input_shape[0])
        self.dtype, self.depth = np.dtype(dtype), depth
        self.total_params, self.trainable_params = total_params, trainable_params
        self.non_trainable_params = total_params - trainable_params
        root = rows[0]
        self.output_shape = root.output_shape
        self.total_macs = root.macs
        self.macs_per_image = root.macs // self.batch_size if self.batch_size else 0
        self.peak_column_bytes = root.column_bytes
        self.peak_unchunked_column_bytes = root.unchunked_column_bytes
        self.not_run = []           # [(name, params)] of modules the pass did not call
        peaks = [r for r in rows if r.leaf and r.column_bytes == root.column_bytes]
        self.peak_column_layer = peaks[0].name if peaks and root.column_bytes else None

    @property
    def visible_rows(self):
        return [row for row in self.rows if row.depth <= self.depth]

    def _cells(self, row):
        """The values a row shows: its own where its callees are shown below it (so that every
        number appears once and the columns add up to the totals), its sub-tree's where they
        are hidden by the depth limit."""
        expanded = not row.leaf and row.depth < self.depth
        params = row.self_params if expanded else row.params
        macs = row.self_macs if expanded else row.macs
        columns = (0, 0) if expanded else (row.column_bytes, row.unchunked_column_bytes)
        label = row.name or self.model_name
        if row.name:
            label = f"{row.name} ({row.type})"
        # a module called again (shared) had its parameters counted at its first call
        shown = "(recursive)" if row.repeated and row._shared_params else _format_count(params)
        return ["  " * row.depth + label, _format_shape(row.output_shape), shown,
                _format_count(macs), _format_bytes(columns[0]), _format_bytes(columns[1]),
                row.algorithm]

    def __str__(self):
        header = ["Layer (type)", "Output shape", "Params", "Mult-adds", "im2col",
                  "whole batch", "Algorithm"]
        body = [self._cells(row) for row in self.visible_rows]
        widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]

        def render(line):
            return "  ".join(cell.ljust(w) if i < 2 or i == 6 else cell.rjust(w)
                             for i, (cell, w) in enumerate(zip(line, widths))).rstrip()

        rule = "=" * len(render(header))
        n = self.batch_size
        itemsize = self.dtype.itemsize
        lines = [rule, render(header), rule] + [render(line) for line in body] + [rule]
        lines += [
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.non_trainable_params:,}",
            f"Total mult-adds: {_scaled(self.total_macs)}"
            + (f", per image {_scaled(self.macs_per_image)}" if n > 1 else ""),
            rule,
            f"Input: {_format_shape(self.input_shape)} {self.dtype} "
            f"({_format_bytes(_numel(self.input_shape) * itemsize)})",
            f"Params size: {_format_bytes(self.total_params * itemsize)}",
        ]
        if self.peak_column_bytes or self.peak_unchunked_column_bytes:
            lines += [
                f"Peak im2col buffers (minicnn, batch cut into chunks): "
                f"{_format_bytes(self.peak_column_bytes)}"
                + (f" at {self.peak_column_layer}" if self.peak_column_layer else ""),
                f"Peak im2col buffers (whole batch at once, the textbook way): "
                f"{_format_bytes(self.peak_unchunked_column_bytes)}",
            ]
        if self.not_run:
            lines.append("Not run by this forward pass (their parameters are in the totals): " +
                         ", ".join(f"{name} ({count:,})" for name, count in self.not_run))
        lines.append(rule)
        return "\n".join(lines)

    def __repr__(self):
        return (f"<ModelSummary of {self.model_name} on {_format_shape(self.input_shape)}: "
                f"{self.total_params:,} params, {_short(self.total_macs)} mult-adds, "
                f"peak im2col {_format_bytes(self.peak_column_bytes)}>")


# ---------------------------------------------------------------------------------------------
# The pass
# ---------------------------------------------------------------------------------------------

def _shapes(value, batch):
    """The shape(s) of a module's output, with the batch axis set to ``batch``."""
    if isinstance(value, Tensor) or hasattr(value, "shape"):
        shape = tuple(int(s) for s in value.shape)
        return (batch,) + shape[1:] if shape and shape[0] == 1 else shape
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        shapes = [_shapes(v, batch) for v in value if v is not None]
        return shapes[0] if len(shapes) == 1 else shapes
    return None


def _check_input_shape(input_shape):
    try:
        shape = tuple(input_shape)
        ok = len(shape) >= 1 and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                                     and s >= 1 for s in shape)
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"summary: input_shape must be a tuple of positive ints with the batch "
                         f"first, such as (1, 3, 224, 224); got {input_shape!r}")
    return tuple(int(s) for s in shape)


def _not_run(model, seen):
    """``[(name, params)]`` of the outermost modules with parameters that the pass did not call
    (GoogLeNet's auxiliary heads in evaluation mode)."""
    skipped = []
    for name, module in model.named_modules():
        if id(module) in seen or any(name.startswith(s + ".") for s, _ in skipped):
            continue
        count = sum(p.size for p in module.parameters())
        if count:
            skipped.append((name, count))
    return skipped


def summary(model, input_shape, depth=3, dtype=None, device=None, shape_only=True,
            print_table=True, file=None):
    """Summarise ``model`` for an input of ``input_shape`` (batch first: ``(N, C, H, W)``).

    Runs one forward pass on a batch of one zero image (evaluation mode, ``no_grad``; the
    model's mode is restored afterwards) and returns a :class:`ModelSummary`: a row per module
    call with its output shape, parameters, multiply-adds and -- for convolutions -- the bytes
    of its im2col column buffers for batch ``N`` (forward and backward, the largest pass, from
    ``layer.column_bytes``), both as minicnn allocates them (chunked, one buffer per worker
    thread: ``column_bytes``) and for the whole batch at once (``unchunked_column_bytes``);
    totals; and the peak column bytes over all layers.

    Multiply-adds are those of the Conv2d, ConvTranspose2d and Linear layers (biases, pooling,
    normalisation and activations count 0), the convention of torchvision's published GFLOPS;
    they scale linearly with the batch. Parameters of modules that the forward pass does not
    run (GoogLeNet's auxiliary heads in evaluation mode) are in the totals, not in the rows.

    ``shape_only=True``: the convolutions are not computed; each checks its input as the op
    does and returns zeros of its output shape (see ``SHAPE_RULES``), which makes the pass
    nearly free (U-Net at 572x572: 0.3 s instead of 7-9 s). ``False`` runs them for real.
    ``depth``: rows nested deeper are folded into their parent's row (as in torchinfo).
    ``dtype``/``device``: of the input; by default those of the model's parameters.
    ``print_table``: print the table to ``file`` (default ``sys.stdout``).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"summary: expected an nn.Module, got {type(model).__name__}")
    shape = _check_input_shape(input_shape)
    batch = shape[0]
    params = list(model.parameters())
    if dtype is None:
        dtype = params[0].dtype if params else np.float32
    if device is None:
        device = params[0].device if params else "cpu"
    dtype = np.dtype(dtype)

    names = {id(module): name for name, module in model.named_modules()}
    rows, stack, seen = [], [], set()

    def before(module, args):
        first = args[0] if args else None
        in_shape = _shapes(first, batch) if hasattr(first, "shape") else None
        own = [p for p in module._parameters.values() if p is not None]
        repeated = id(module) in seen
        seen.add(id(module))
        row = LayerRow(name=names.get(id(module), "?"), type=type(module).__name__,
                       depth=len(stack), input_shape=in_shape, output_shape=None, params=0,
                       trainable_params=0, macs=0, column_bytes=0, unchunked_column_bytes=0,
                       self_params=0 if repeated else sum(p.size for p in own),
                       repeated=repeated)
        row._children = []           # the calls it makes (not a field: rows stay flat data)
        sub = list(module.parameters())
        row._shared_params = sum(p.size for p in sub)
        if not repeated:  # parameters are counted once, at a module's first call
            row.params = row._shared_params
            row.trainable_params = sum(p.size for p in sub if p.requires_grad)
        if stack:
            stack[-1]._children.append(row)
            stack[-1].leaf = False
        rows.append(row)
        stack.append(row)

    def after(module, args, output):
        row = stack.pop()
        row.output_shape = _shapes(output, batch)
        counter = _mac_counter(module)
        first = args[0] if args else None
        if counter is not None and isinstance(first, Tensor):
            row.self_macs = int(counter(module, first, output)) * batch
        if isinstance(module, nn.ConvTranspose2d):
            row.algorithm = "col2im"
        elif isinstance(module, nn.Conv2d) and isinstance(first, Tensor):
            row.algorithm = _conv2d_algorithm(module, first, device)
        if hasattr(module, "column_bytes") and row.input_shape is not None:
            row.column_bytes = int(module.column_bytes(row.input_shape, chunked=True))
            row.unchunked_column_bytes = int(module.column_bytes(row.input_shape, chunked=False))
        calls = row._children
        row.macs = row.self_macs + sum(c.macs for c in calls)
        row.column_bytes = max([row.column_bytes] + [c.column_bytes for c in calls])
        row.unchunked_column_bytes = max([row.unchunked_column_bytes] +
                                         [c.unchunked_column_bytes for c in calls])

    modes = {module: module.training for module in model.modules()}
    handles, replaced = [], []
    for module in model.modules():
        handles.append(module.register_forward_pre_hook(before))
        handles.append(module.register_forward_hook(after))
        rule = SHAPE_RULES.get(type(module))  # exact type: a subclass may compute differently
        if shape_only and rule is not None:
            replaced.append((module, module.__dict__.get("forward")))
            module.forward = _shape_only_forward(module, rule)
    x = Tensor(np.zeros((1,) + shape[1:], dtype=dtype), device=device)
    try:
        model.eval()
        with autograd.no_grad():
            model(x)
    except Exception as error:
        where = (f" in {stack[-1].name or 'the model'} ({stack[-1].type}), whose input had "
                 f"shape {_format_shape(stack[-1].input_shape)}") if stack else ""
        raise RuntimeError(f"summary: the forward pass of {type(model).__name__} on an input "
                           f"of shape {_format_shape(shape)} failed{where}: "
                           f"{error}") from error
    finally:
        for handle in handles:
            handle.remove()
        for module, own_forward in replaced:  # back to the class's forward (or its own one)
            del module.forward
            if own_forward is not None:
                module.forward = own_forward
        for module, mode in modes.items():
            module.training = mode

    result = ModelSummary(type(model).__name__, rows, shape, dtype, depth,
                          sum(p.size for p in params),
                          sum(p.size for p in params if p.requires_grad))
    result.not_run = _not_run(model, seen)
    if print_table:
        print(result, file=file if file is not None else sys.stdout)
    return result
