"""Resizing feature maps: ``interpolate`` (nearest, nearest-exact, (bi/tri)linear, bicubic, area)
and ``center_crop``.

Every interpolation mode is a linear map that acts on each spatial axis separately: an output
pixel ``(i, j)`` reads input rows chosen by ``i`` only and input columns chosen by ``j`` only. So
for every channel plane::

    y = A_h @ x @ A_w.T            A_h: (OH, H),  A_w: (OW, W)

with small interpolation matrices -- row ``i`` of ``A_h`` holds the weights with which output row
``i`` mixes input rows: one 1 for the nearest modes, two weights summing to 1 for (bi)linear, four
for bicubic, ``1 / window`` over a window for area. A (N, C, L) signal has only ``A_w``, a
(N, C, D, H, W) volume also an ``A_d``. The backward pass is just the transposed products,
``gx = A_h.T @ gy @ A_w``: every gradient is scattered to the input pixels it came from, with no
``np.add.at``.

Index rules are PyTorch's, with ``scale = in / out``, or ``1 / scale_factor`` when a
``scale_factor`` was given (and ``recompute_scale_factor`` is not True), computed in float32 for
float32 maps like PyTorch:

* nearest: input index ``min(floor(i * scale), in - 1)``;
* nearest-exact: ``min(floor(i * scale + scale / 2), in - 1)``, the pixel centre's nearest;
* (bi/tri)linear, ``align_corners=False``: source position ``max(scale * (i + 0.5) - 0.5, 0)``
  (pixel centres aligned); ``align_corners=True``: ``i * (in - 1) / (out - 1)`` (corner pixels
  aligned, ``scale_factor`` only sets the size). The position's floor and the next index (clamped
  to the last) get weights ``1 - t`` and ``t``;
* bicubic: the same source position, not clamped at 0; the four indices ``floor - 1 ... floor +
  2`` (clamped to the border) get Keys' cubic convolution weights with ``A = -0.75``;
* area: adaptive average pooling: output ``i`` averages inputs ``floor(i * in / out)`` up to
  ``ceil((i + 1) * in / out)``.
"""
import math

import numpy as np

from minicnn import backend
from minicnn.autograd import Function, Tensor, as_tensor

MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")
#: the modes that resize a fixed number of spatial axes (the others take 1, 2 or 3)
SPATIAL_AXES = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}
NEAREST = ("nearest", "nearest-exact")
CUBIC_A = -0.75  # PyTorch's (and OpenCV's) choice for Keys' cubic convolution


def _scale_for(in_size, out_size, scale_factor, dtype):
    """PyTorch's ``compute_scales_value``: ``1 / scale_factor`` when one was given, else
    ``in / out``; in ``dtype`` (float32 for float32 maps, as PyTorch's opmath)."""
    if scale_factor is not None and scale_factor > 0:
        return dtype.type(1.0 / scale_factor)
    return dtype.type(in_size) / dtype.type(out_size)


def nearest_indices(in_size, out_size, scale_factor=None, exact=False):
    """For each output index, the input index nearest mode copies (PyTorch's ``nearest_idx``);
    ``exact``: nearest-exact's, the input pixel whose centre is nearest the output's centre."""
    if out_size == in_size and not exact:
        # NOTE: PyTorch's rule copies straight even when a scale_factor such as 1.25 would map
        # index 2 of 3 to floor(2 * 0.8) = 1 (its 1-D and 3-D forward kernels skip this rule
        # and disagree with its own backward; minicnn follows the rule, both ways)
        return np.arange(out_size)
    f32 = np.float32
    scale = _scale_for(in_size, out_size, scale_factor, np.dtype(f32))
    rows = np.arange(out_size, dtype=f32)
    if exact:  # NOTE: PyTorch's order of float32 operations, to the last bit
        index = np.floor(np.maximum(scale * (rows + f32(0.5)) - f32(0.5), f32(0)) + f32(0.5))
    else:
        index = np.floor(rows * scale)
    return np.minimum(index.astype(np.int64), in_size - 1)


def _cubic_weights(t):
    """Keys' cubic convolution weights of the four taps ``floor - 1 ... floor + 2`` at the
    fractional position ``t`` (in [0, 1]); they sum to 1."""
    a = t.dtype.type(CUBIC_A)

    def near(d):  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):   # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    one = t.dtype.type(1)
    return [far(t + one), near(t), near(one - t), far(one - t + one)]


def _area_matrix(in_size, out_size, dtype):
    """Adaptive average pooling along one axis: row ``i`` is ``1 / len`` over its window."""
    a = np.zeros((out_size, in_size), dtype=dtype)
    for i in range(out_size):
        start = (i * in_size) // out_size
        end = -((-(i + 1) * in_size) // out_size)  # ceil, in integers
        a[i, start:end] = dtype.type(1) / dtype.type(end - start)
    return a


def interpolation_matrix(in_size, out_size, mode, align_corners=False, scale_factor=None,
                         dtype=np.float32):
    """The (out_size, in_size) matrix ``A`` of one axis: ``y = A @ x`` along that axis."""
    dtype = np.dtype(dtype)
    rows = np.arange(out_size)
    a = np.zeros((out_size, in_size), dtype=dtype)
    if mode in NEAREST:
        a[rows, nearest_indices(in_size, out_size, scale_factor, mode == "nearest-exact")] = 1
        return a
    if mode == "area":
        return _area_matrix(in_size, out_size, dtype)
    if out_size == in_size:  # PyTorch copies the input exactly in this case
        a[rows, rows] = 1
        return a
    if align_corners:
        scale = dtype.type(in_size - 1) / dtype.type(out_size - 1) if out_size > 1 else \
            dtype.type(0)
        source = scale * rows.astype(dtype)
    else:
        scale = _scale_for(in_size, out_size, scale_factor, dtype)
        source = scale * (rows.astype(dtype) + dtype.type(0.5)) - dtype.type(0.5)
        if mode != "bicubic":  # NOTE: bicubic keeps a negative position (its taps are clamped)
            source = np.maximum(source, 0)
    first = np.minimum(np.floor(source).astype(np.int64), in_size - 1)
    t = np.clip(source - first.astype(dtype), 0, 1).astype(dtype)
    if mode == "bicubic":
        for offset, weight in zip((-1, 0, 1, 2), _cubic_weights(t)):
            # taps beyond the border read the border pixel: their weights add up there
            np.add.at(a, (rows, np.clip(first + offset, 0, in_size - 1)), weight)
        return a
    a[rows, first] = 1 - t
    a[rows, np.minimum(first + 1, in_size - 1)] += t  # the same element on the last row: adds
    return a


def _along(x, a, axis):
    """``A`` applied along ``axis`` (negative, counted from the end) of ``x``."""
    if axis == -1:
        return x @ a.T
    if axis == -2:
        return a @ x
    xp = backend.get_array_module(x)
    return xp.moveaxis(xp.moveaxis(x, axis, -1) @ a.T, -1, axis)


class Interpolate(Function):
    """``y = A_h @ x @ A_w.T`` on the spatial axes (one matrix per axis); ``gx = A_h.T @ gy @
    A_w``.

    For the nearest modes the forward pass copies with an index instead (the same result; also
    exact for inf and NaN, which a product with a 0 weight would turn into NaN)."""

    def __init__(self, matrices, nearest=None):
        self.matrices, self.nearest = matrices, nearest

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.matrices = [xp.asarray(a, dtype=x.dtype) for a in self.matrices]
        if self.nearest is not None:
            mesh = tuple(xp.asarray(i) for i in np.ix_(*self.nearest))
            return x[(Ellipsis,) + mesh]
        for axis, a in self._last_axis_first():
            x = _along(x, a, axis)
        return x

    def backward(self, gy):
        for axis, a in self._last_axis_first():
            gy = _along(gy, a.T, axis)
        return gy

    def _last_axis_first(self):
        """``(axis, A)`` pairs, the last (contiguous) axis first: ``A_h @ (x @ A_w.T)``."""
        return reversed(list(zip(range(-len(self.matrices), 0), self.matrices)))


def _per_axis(value, name, axes, kind):
    """``value`` (one, or one per spatial axis) as a tuple of ``axes`` values."""
    if isinstance(value, (tuple, list)):
        if len(value) != axes:
            raise ValueError(f"interpolate: {name} {tuple(value)} must give one {kind} per "
                             f"spatial axis of the input ({axes})")
        return tuple(value)
    return (value,) * axes


def _check_mode(x, mode, align_corners, antialias):
    if mode not in MODES:
        raise ValueError(f"interpolate: unknown mode {mode!r}; minicnn supports "
                         f"{', '.join(repr(m) for m in MODES)}")
    if align_corners is not None and mode not in SPATIAL_AXES:
        raise ValueError(f"interpolate: align_corners can only be set with the interpolating "
                         f"modes 'linear', 'bilinear', 'bicubic' and 'trilinear', not {mode!r}")
    if antialias:
        raise ValueError("interpolate: antialias=True is not supported by minicnn")
    if x.ndim not in (3, 4, 5):
        raise ValueError(f"interpolate: expected a 3-D (N, C, L), 4-D (N, C, H, W) or 5-D "
                         f"(N, C, D, H, W) input, got a {x.ndim}-D input of shape "
                         f"{tuple(x.shape)}")
    axes = SPATIAL_AXES.get(mode, x.ndim - 2)
    if x.ndim - 2 != axes:
        names = {1: "3-D (N, C, L)", 2: "4-D (N, C, H, W)", 3: "5-D (N, C, D, H, W)"}
        hint = (" (as in PyTorch a 3-D input is a batch of signals (N, C, L): add the batch "
                "axis of one image with x[None])") if x.ndim == 3 else ""
        raise ValueError(f"interpolate: mode {mode!r} needs a {names[axes]} input, got a "
                         f"{x.ndim}-D input of shape {tuple(x.shape)}{hint}")


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize the spatial axes of ``x``: (N, C, H, W) -> (N, C, OH, OW), and likewise (N, C, L)
    and (N, C, D, H, W). As in PyTorch a 3-D input is a batch of 1-D signals, not one image.

    Give exactly one of ``size`` (int or one per axis: the output size) and ``scale_factor``
    (number or one per axis: ``OH = floor(H * scale_factor)``). ``mode``: ``'nearest'``,
    ``'nearest-exact'``, ``'area'`` (any 1-3 spatial axes), ``'linear'`` (3-D input),
    ``'bilinear'``, ``'bicubic'`` (4-D) or ``'trilinear'`` (5-D). ``align_corners`` (the
    interpolating modes only, default False) aligns the corner pixels of input and output instead
    of their pixel grids. As in PyTorch, a given ``scale_factor`` is also used to map output to
    input positions (``1 / scale_factor``) unless ``recompute_scale_factor=True``.
    """
    x = as_tensor(x)
    _check_mode(x, mode, align_corners, antialias)
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give exactly one of size and scale_factor (got " +
                         ("both" if size is not None else "neither") + ")")
    in_size, axes = tuple(x.shape[2:]), x.ndim - 2
    if size is not None:
        if recompute_scale_factor:
            raise ValueError("interpolate: recompute_scale_factor is not meaningful with an "
                             "explicit size")
        out_size = _per_axis(size, "size", axes, "int")
        if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                   for s in out_size):
            raise TypeError(f"interpolate: size must be an int or a tuple of ints, got {size!r}")
        out_size, scales = tuple(int(s) for s in out_size), (None,) * axes
    else:
        scales = tuple(float(s) for s in _per_axis(scale_factor, "scale_factor", axes, "number"))
        if not all(0 < s < math.inf for s in scales):
            raise ValueError(f"interpolate: scale_factor must be positive and finite, got "
                             f"{scale_factor!r}")
        out_size = tuple(int(math.floor(n * s)) for n, s in zip(in_size, scales))
        if recompute_scale_factor:
            scales = (None,) * axes
    if min(out_size) <= 0 or min(in_size) <= 0:
        raise ValueError(f"interpolate: input spatial size {in_size} and output size {out_size} "
                         "must both be positive (the output would be empty)")
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
    corners = bool(align_corners)
    matrices = [interpolation_matrix(n, o, mode, corners, s, dtype)
                for n, o, s in zip(in_size, out_size, scales)]
    nearest = None
    if mode in NEAREST:
        nearest = [nearest_indices(n, o, s, mode == "nearest-exact")
                   for n, o, s in zip(in_size, out_size, scales)]
    return Interpolate(matrices, nearest)(x)


def center_crop(x, size):
    """Cut the central ``size`` (int or (h, w)) window out of the last two axes of ``x``.

    U-Net's crop-and-concat uses it to bring an encoder map to the decoder map's size. The window
    starts at ``top = round((H - h) / 2)``, ``left = round((W - w) / 2)`` with Python's ``round``
    (halves to even), exactly as torchvision's ``center_crop``: an odd surplus leaves the extra
    row at the bottom when ``(H - h) // 2`` is even, at the top when it is odd. Gradients flow
    back into the window (zeros elsewhere).
    """
    if x.ndim < 2:
        raise ValueError(f"center_crop: expected an input with at least 2 axes (..., H, W), got "
                         f"shape {tuple(x.shape)}")
    if isinstance(size, (tuple, list)) and len(size) != 2:
        raise ValueError(f"center_crop: size must be an int or a pair, got {size!r}")
    h, w = size if isinstance(size, (tuple, list)) else (size, size)
    big_h, big_w = x.shape[-2:]
    if h > big_h or w > big_w:
        raise ValueError(f"center_crop: cannot crop {h}x{w} out of a {big_h}x{big_w} input: the "
                         "crop is larger than the input (crop the larger map to the smaller one)")
    if h <= 0 or w <= 0:
        raise ValueError(f"center_crop: the crop size must be positive, got {(h, w)}")
    top, left = int(round((big_h - h) / 2.0)), int(round((big_w - w) / 2.0))
    if not isinstance(x, Tensor):
        x = Tensor(x)
    return x[..., top:top + h, left:left + w]
