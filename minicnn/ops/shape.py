"""Ops that move elements without computing: reshape, transpose, indexing, cat, stack, split, pad,
squeeze/unsqueeze and clone.

Their backward passes move the gradient back to where each element came from. Indexing is the
interesting one: an element picked twice (``x[[0, 0]]``) receives the sum of both gradients, a
scatter-add.
"""
import numpy as np

from minicnn import backend
from minicnn.autograd import Function, Tensor, as_tensor


class Reshape(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.in_shape)


class Clone(Function):
    """A copy with its own memory (``Tensor.clone``); the gradient passes unchanged."""

    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        return gy


class Transpose(Function):
    """Permute the axes: output axis ``i`` is input axis ``axes[i]``."""

    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        return gy.transpose(np.argsort(self.axes))


def _is_basic_index(key):
    """True when ``key`` holds only ints, slices, None and Ellipsis (no element is picked twice)."""
    parts = key if isinstance(key, tuple) else (key,)
    return all(isinstance(k, (int, np.integer, slice)) or k is None or k is Ellipsis
               for k in parts)


def _axis_order(a):
    """The axes of ``a`` from the largest stride to the smallest: (0, 1, 2, 3) for a C-ordered
    NCHW array, (0, 2, 3, 1) for the channels-last arrays the conv engine returns."""
    return tuple(sorted(range(a.ndim), key=lambda axis: -abs(a.strides[axis])))


def _zeros_in_layout(xp, shape, axis_order, dtype):
    """Zeros of ``shape`` laid out in memory in ``axis_order`` (see :func:`_axis_order`).

    NOTE: a gradient in another memory layout than the tensors it meets later (in the gradient
    sum of a tensor used twice, in an element-wise backward) forces NumPy into strided passes
    several times slower than contiguous ones; so gradients keep their input's layout."""
    inverse = np.argsort(axis_order)
    return xp.zeros([shape[axis] for axis in axis_order], dtype=dtype).transpose(inverse)


class GetItem(Function):
    def __init__(self, key):
        self.key = key

    def forward(self, x):
        self.in_shape, self.in_dtype = x.shape, x.dtype
        self.in_axis_order = _axis_order(x)
        return x[self.key]

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        gx = _zeros_in_layout(xp, self.in_shape, self.in_axis_order, gy.dtype)
        if _is_basic_index(self.key):
            gx[self.key] = gy
        else:  # advanced indexing may pick an element several times: sum, don't overwrite
            backend.scatter_add(xp, gx, self.key, gy)
        return gx


class Cat(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        return backend.get_array_module(xs[0]).concatenate(xs, axis=self.axis)

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        return tuple(xp.split(gy, np.cumsum(self.sizes)[:-1], axis=self.axis))


class Stack(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        return backend.get_array_module(xs[0]).stack(xs, axis=self.axis)

    def backward(self, gy):
        n = gy.shape[self.axis]
        return tuple(gy.take(i, axis=self.axis) for i in range(n))


class Split(Function):
    """Split along ``axis`` into pieces of the given sizes (several outputs)."""

    def __init__(self, sizes, axis):
        self.sizes, self.axis = list(sizes), axis

    def forward(self, x):
        xp = backend.get_array_module(x)
        pieces = xp.split(x, np.cumsum(self.sizes)[:-1], axis=self.axis)
        self.output_shapes = [p.shape for p in pieces]
        return tuple(pieces)

    def backward(self, *gys):
        return backend.get_array_module(gys[0]).concatenate(gys, axis=self.axis)


class Pad(Function):
    """Constant padding; ``widths`` holds one (before, after) pair per axis. A negative width
    crops instead (PyTorch's rule), so the copied block is ``x[crop]`` placed at ``y[place]``."""

    def __init__(self, widths, value=0.0):
        self.widths, self.value = widths, value

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.in_shape, self.in_axis_order = x.shape, _axis_order(x)
        shape = tuple(n + b + a for n, (b, a) in zip(x.shape, self.widths))
        # NOTE: ``xp.pad`` returns a C-ordered array whatever the input's layout; the conv engine
        # works channels-last, so a C-ordered result would make every element-wise op after it
        # (and its backward) mix layouts, which costs NumPy a strided pass several times slower
        # than a contiguous one. ``empty_like`` with order 'K' keeps the input's axis order.
        y = xp.empty_like(x, shape=shape)
        y.fill(self.value)
        self.place, self.crop = _place_and_crop(x.shape, self.widths)
        y[self.place] = x[self.crop]
        return y

    def backward(self, gy):
        if all(b >= 0 and a >= 0 for b, a in self.widths):
            return gy[self.place]  # nothing was cropped: a view of gy, no copy
        gx = _zeros_in_layout(backend.get_array_module(gy), self.in_shape, self.in_axis_order,
                              gy.dtype)
        gx[self.crop] = gy[self.place]  # the cropped elements reached no output: gradient 0
        return gx


def _place_and_crop(in_shape, widths):
    """Where the input block lands in the output (``place``) and which part of the input it is
    (``crop``): a positive width moves it, a negative one cuts that many elements off."""
    place = tuple(slice(max(b, 0), max(b, 0) + n + min(b, 0) + min(a, 0))
                  for n, (b, a) in zip(in_shape, widths))
    crop = tuple(slice(max(-b, 0), n - max(-a, 0)) for n, (b, a) in zip(in_shape, widths))
    return place, crop


def copy_pad_index(size, before, after, mode):
    """For ``reflect``, ``replicate`` and ``circular`` padding of one axis of length ``size``:
    the input index each of the ``size + before + after`` output elements copies.

    ``reflect`` mirrors about the edge element (``2 1 | 0 1 2 3 | 2 1``), ``replicate`` repeats it
    (``0 0 | 0 1 2 3 | 3 3``); a negative width crops AFTER padding (PyTorch's index rule).
    ``circular`` wraps around (``2 3 | 0 1 2 3 | 0 1``), and PyTorch crops FIRST and then wraps
    what is left: ``(2, -1)`` on ``0 1 2 3 4`` gives ``2 3 | 0 1 2 3``."""
    out = np.arange(size + before + after)
    if mode == "circular":
        kept = size + min(before, 0) + min(after, 0)
        return max(-before, 0) + (out - max(before, 0)) % max(kept, 1)  # (nothing left: empty)
    position = out - before  # in the input's coordinates; outside [0, size) in the borders
    if mode == "replicate":
        return np.clip(position, 0, size - 1)
    position = np.abs(position)  # reflect: mirror the left border about 0 ...
    return np.where(position > size - 1, 2 * (size - 1) - position, position)  # ... the right


class CopyPad(Function):
    """``reflect``, ``replicate`` and ``circular`` padding: every output element is a copy of
    one input element, named per padded axis by :func:`copy_pad_index`, so the forward pass is
    one gather ``x[..., i_h[:, None], i_w[None, :]]``.

    Backward: each input element receives the sum of the gradients of all its copies. Along each
    padded axis the interior (copied straight, ``before`` elements in) is one slice; only the few
    border positions are scatter-added, one axis after the other (the axes are independent)."""

    def __init__(self, indices, widths):
        self.indices, self.widths = indices, widths  # per padded (last) axis

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.in_shape, self.in_axis_order = x.shape, _axis_order(x)
        lead = x.ndim - len(self.indices)
        mesh = tuple(xp.asarray(i) for i in np.ix_(*self.indices))
        y = xp.empty_like(x, shape=x.shape[:lead] + tuple(len(i) for i in self.indices))
        y[...] = x[(slice(None),) * lead + mesh]  # keeps x's memory layout, as Pad does
        return y

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        lead = gy.ndim - len(self.indices)
        g = gy
        for k, (index, (before, after)) in enumerate(zip(self.indices, self.widths)):
            axis = lead + k
            at = (slice(None),) * axis
            shape = g.shape[:axis] + (self.in_shape[axis],) + g.shape[axis + 1:]
            folded = _zeros_in_layout(xp, shape, self.in_axis_order, gy.dtype)
            first = min(max(before, 0), len(index))                # the interior: outputs
            last = max(first, len(index) - max(after, 0))         # [first, last), straight copies
            if last > first:
                source = int(index[first])
                folded[at + (slice(source, source + last - first),)] = \
                    g[at + (slice(first, last),)]
            border = np.r_[0:first, last:len(index)]
            if border.size:
                backend.scatter_add(xp, folded, at + (xp.asarray(index[border]),),
                                    g[at + (xp.asarray(border),)])
            g = folded
        return g


# ---- functions ------------------------------------------------------------------------------

def as_pair(value, name, op):
    """``value`` as a pair of ints (an int ``k`` becomes ``(k, k)``), for kernel sizes, strides
    and paddings; anything else is a TypeError naming ``op`` and ``name``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and \
            all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
        return int(value[0]), int(value[1])
    raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")


def _normalize_axis(axis, ndim, name):
    # NOTE: as in PyTorch a 0-d tensor answers to dim 0 and -1
    if not isinstance(axis, (int, np.integer)) or not -max(ndim, 1) <= axis < max(ndim, 1):
        raise IndexError(f"{name}: dim {axis!r} is out of range for a tensor with {ndim} axes "
                         f"(valid: {-max(ndim, 1)} to {max(ndim, 1) - 1})")
    return int(axis) % ndim if ndim else 0


def _dim(dim, axis, name, default=None):
    """PyTorch's ``dim`` or NumPy's ``axis`` keyword (the same thing, one at a time)."""
    if axis is None:
        return default if dim is None else dim
    if dim is not None:
        raise TypeError(f"{name}: give dim or axis (the same thing), not both")
    return axis


def reshape(x, *shape):
    """``x`` with a new shape of the same number of elements (one axis may be -1)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    x = as_tensor(x)
    n = x.data.size
    known = int(np.prod([s for s in shape if s != -1]))
    if -1 in shape and known == 0:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {tuple(x.shape)} into "
                         f"{shape}: with a 0 beside it, the -1 could be any size")
    if shape.count(-1) > 1 or (-1 not in shape and known != n) or (-1 in shape and n % known):
        raise ValueError(f"reshape: cannot reshape a tensor of shape {tuple(x.shape)} "
                         f"({n} elements) into {shape}")
    return Reshape(shape)(x)


def permute(x, *axes):
    """Reorder the axes: output axis ``i`` is input axis ``axes[i]``."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    x = as_tensor(x)
    if sorted(a % x.ndim for a in axes) != list(range(x.ndim)):
        raise ValueError(f"permute: {axes} is not a permutation of the {x.ndim} axes of a "
                         f"tensor of shape {tuple(x.shape)}")
    return Transpose(tuple(a % x.ndim for a in axes))(x)


def transpose(x, *axes):
    """PyTorch's rule for two axes (``transpose(0, 1)`` swaps them); NumPy's for none (reverse
    all) or a full permutation."""
    x = as_tensor(x)
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    if len(axes) == 0:
        return permute(x, *reversed(range(x.ndim)))
    if len(axes) == 2 and x.ndim == 0:  # torch: transpose(0, 0) / (-1, 0) of a 0-d tensor
        [_normalize_axis(a, 0, "transpose") for a in axes]
        return Transpose(())(x)
    if len(axes) == 2:
        order = list(range(x.ndim))
        i, j = (_normalize_axis(a, x.ndim, "transpose") for a in axes)
        order[i], order[j] = order[j], order[i]
        return permute(x, *order)
    return permute(x, *axes)


def flatten(x, start_dim=0, end_dim=-1):
    """Merge axes ``start_dim..end_dim`` into one (``Tensor.flatten`` and ``torch.flatten``)."""
    x = as_tensor(x)
    s = _normalize_axis(start_dim, x.ndim, "flatten")
    e = _normalize_axis(end_dim, x.ndim, "flatten")
    if x.ndim == 0:
        return reshape(x, 1)    # torch: a 0-d tensor flattens to shape (1,)
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for a "
                         f"tensor of shape {tuple(x.shape)}")
    # the merged size written out, not -1: an empty batch (0, C, H, W) flattens too
    merged = int(np.prod(x.shape[s:e + 1]))
    return reshape(x, *x.shape[:s], merged, *x.shape[e + 1:])


def squeeze(x, dim=None, *, axis=None):
    """Drop axes of length 1: all of them, or ``dim`` (an int or a tuple) where its length is 1
    (an axis of another length is left alone, as in PyTorch)."""
    x = as_tensor(x)
    dim = _dim(dim, axis, "squeeze")
    if dim is None:
        dims = [i for i, n in enumerate(x.shape) if n == 1]
    else:
        dims = [_normalize_axis(d, x.ndim, "squeeze")
                for d in (dim if isinstance(dim, (tuple, list)) else (dim,))]
        dims = [d for d in dims if x.ndim and x.shape[d] == 1]
    return reshape(x, *[n for i, n in enumerate(x.shape) if i not in dims])


def unsqueeze(x, dim=None, *, axis=None):
    """Insert an axis of length 1 at ``dim`` (``-1``: at the end; range ``-ndim-1..ndim``)."""
    x = as_tensor(x)
    dim = _normalize_axis(_dim(dim, axis, "unsqueeze"), x.ndim + 1, "unsqueeze")
    return reshape(x, *x.shape[:dim], 1, *x.shape[dim:])


def clone(x):
    """A copy of ``x`` in its own memory, through which gradients flow (``Tensor.clone``)."""
    return Clone()(as_tensor(x))


def getitem(x, key):
    if isinstance(key, Tensor):
        key = key.data
    elif isinstance(key, tuple):
        key = tuple(k.data if isinstance(k, Tensor) else k for k in key)
    return GetItem(key)(x)


def cat(tensors, dim=None, *, axis=None):
    """Join tensors along an existing axis ``dim`` (or ``axis``); all other axes must agree
    (``torch.cat``)."""
    axis = _dim(dim, axis, "cat", default=0)
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    first = tensors[0]
    axis = _normalize_axis(axis, first.ndim, "cat")
    for i, t in enumerate(tensors[1:], 1):
        if t.ndim != first.ndim or any(a != b for k, (a, b) in enumerate(zip(t.shape, first.shape))
                                       if k != axis):
            raise ValueError(f"cat: tensor {i} has shape {tuple(t.shape)} but tensor 0 has "
                             f"{tuple(first.shape)}; they may differ only along axis {axis}")
    return Cat(axis)(*tensors)


def stack(tensors, dim=None, *, axis=None):
    """Join same-shaped tensors along a new axis ``dim`` (``torch.stack``)."""
    axis = _dim(dim, axis, "stack", default=0)
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    for i, t in enumerate(tensors[1:], 1):
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: tensor {i} has shape {tuple(t.shape)} but tensor 0 has "
                             f"{tuple(tensors[0].shape)}; all must be equal")
    return Stack(_normalize_axis(axis, tensors[0].ndim + 1, "stack"))(*tensors)


def split(x, split_size_or_sections, dim=None, *, axis=None):
    """``torch.split``: pieces of ``split_size`` (the last may be smaller) or of the given sizes,
    along ``dim``."""
    axis = _dim(dim, axis, "split", default=0)
    x = as_tensor(x)
    axis = _normalize_axis(axis, x.ndim, "split")
    n = x.shape[axis]
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = int(split_size_or_sections)
        if size <= 0:
            raise ValueError(f"split: split_size must be positive, got {size}")
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n or any(s < 0 for s in sizes):
            raise ValueError(f"split: sizes {sizes} do not add up to {n}, the length of axis "
                             f"{axis}")
    out = Split(sizes, axis)(x)
    return out if isinstance(out, tuple) else (out,)


PAD_MODES = ("constant", "reflect", "replicate", "circular")


def pad(x, pad, mode="constant", value=0.0):
    """``F.pad`` with PyTorch's convention: ``pad`` lists (before, after) pairs starting from the
    LAST axis: ``(left, right)`` pads width, ``(left, right, top, bottom)`` width and height. A
    negative width crops.

    ``mode``: ``'constant'`` fills with ``value`` (any axes); ``'reflect'`` mirrors about the edge
    element (each width below the axis length), ``'replicate'`` repeats the edge element,
    ``'circular'`` wraps around (each width at most the axis length). These three pad the last
    1, 2 or 3 axes of an input with one or two more axes ((C, W) or (N, C, W) for 1 axis, ...).
    """
    x = as_tensor(x)
    if mode not in PAD_MODES:
        raise ValueError(f"pad: unknown mode {mode!r}; choose one of "
                         f"{', '.join(repr(m) for m in PAD_MODES)}")
    if not isinstance(pad, (tuple, list)) or not all(
            isinstance(p, (int, np.integer)) and not isinstance(p, bool) for p in pad):
        raise TypeError(f"pad: pad must be a tuple of ints, got {pad!r}")
    pad = [int(p) for p in pad]
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: expected an even number of widths, at most 2 per axis of a "
                         f"{x.ndim}-axis tensor, got {tuple(pad)}")
    widths = [(0, 0)] * x.ndim
    for k in range(len(pad) // 2):
        widths[x.ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    for n, (b, a) in zip(x.shape, widths):
        if n + b + a < 0 or (mode == "constant" and min(n + b, n + a) < 0):
            raise ValueError(f"pad: widths {tuple(pad)} crop more than the {n} elements of an "
                             f"axis of the input of shape {tuple(x.shape)}")
    if mode == "constant":
        return Pad(tuple(widths), value)(x)
    if value:
        raise ValueError(f"pad: mode {mode!r} copies input elements and takes no value "
                         f"(got value={value!r}); value is for mode 'constant'")
    axes = len(pad) // 2
    return CopyPad(*_copy_pad_indices(x.shape, widths[x.ndim - axes:], mode))(x)


def _copy_pad_indices(shape, widths, mode):
    """PyTorch's checks for the copying modes, then the index map of each padded axis."""
    axes, ndim = len(widths), len(shape)
    if axes > 3 or ndim not in (axes + 1, axes + 2):
        raise ValueError(f"pad: mode {mode!r} pads the last 1, 2 or 3 axes of an input with 1 or "
                         f"2 more (batch, channel) axes: {2 * axes} widths need a {axes + 1}-D or "
                         f"{axes + 2}-D input, got shape {tuple(shape)}")
    sizes = shape[ndim - axes:]
    if mode != "circular" and 0 in shape[1 if ndim == axes + 2 else 0:]:
        raise ValueError(f"pad: mode {mode!r} needs a non-empty input (only the batch axis may be "
                         f"0), got shape {tuple(shape)}")
    # NOTE: PyTorch lets reflect/replicate crop one padded axis to nothing, not all of them
    if mode != "circular" and all(n + b + a < 1 for n, (b, a) in zip(sizes, widths)):
        raise ValueError(f"pad: widths {tuple(w for p in reversed(widths) for w in p)} leave "
                         f"nothing of the padded axes of the input of shape {tuple(shape)}")
    for n, (b, a) in zip(sizes, widths):
        kept = n + min(b, 0) + min(a, 0)
        if mode == "reflect" and max(b, a) >= n:
            raise ValueError(f"pad: reflect padding must be smaller than the axis it pads: "
                             f"widths ({b}, {a}) on an axis of {n} in shape {tuple(shape)}")
        if mode == "circular" and max(b, a) > max(kept, 0):
            # (PyTorch checks only ``width <= n`` and then reads memory it never wrote)
            raise ValueError(f"pad: circular padding ({b}, {a}) wraps around more than once: "
                             f"at most {max(kept, 0)} for an axis of {n}"
                             + (" after cropping" if kept < n else ""))
    indices = tuple(copy_pad_index(n, b, a, mode) for n, (b, a) in zip(sizes, widths))
    return indices, tuple(widths)
