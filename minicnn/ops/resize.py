"""Resizing feature maps: ``interpolate`` (nearest, bilinear) and ``center_crop``.

Both interpolation modes are linear maps that act on rows and columns separately: an output
pixel ``(i, j)`` reads input rows chosen by ``i`` only and input columns chosen by ``j`` only. So
for every channel plane::

    y = A_h @ x @ A_w.T            A_h: (OH, H),  A_w: (OW, W)

with small interpolation matrices -- row ``i`` of ``A_h`` holds the weights with which output row
``i`` mixes input rows (one 1 for nearest, two weights summing to 1 for bilinear). The backward
pass is then just the transposed products, ``gx = A_h.T @ gy @ A_w``: every gradient is scattered
to the (up to four) input pixels it came from, with no ``np.add.at``.

Index rules are PyTorch's:

* nearest: input index ``min(floor(i * scale), H - 1)``, ``scale = H / OH`` (or ``1 / scale_factor``
  when a ``scale_factor`` was given), computed in float32 like PyTorch;
* bilinear, ``align_corners=False``: source position ``max(scale * (i + 0.5) - 0.5, 0)`` (pixel
  centres aligned); ``align_corners=True``: ``i * (H - 1) / (OH - 1)`` (corner pixels aligned).
  The position's floor and the next row (clamped to the last) get weights ``1 - frac`` and
  ``frac``.
"""
import math

import numpy as np

from minicnn import backend
from minicnn.autograd import Function, Tensor
from minicnn.ops.checks import check_images

MODES = ("nearest", "bilinear")


def _scale_for(in_size, out_size, scale_factor, dtype):
    """PyTorch's ``compute_scales_value``: ``1 / scale_factor`` when one was given, else
    ``in / out``; in ``dtype`` (float32 for float32 maps, as PyTorch's opmath)."""
    if scale_factor is not None and scale_factor > 0:
        return dtype.type(1.0 / scale_factor)
    return dtype.type(in_size) / dtype.type(out_size)


def nearest_indices(in_size, out_size, scale_factor=None):
    """For each output index, the input index nearest mode copies (PyTorch's ``nearest_idx``)."""
    if out_size == in_size:
        return np.arange(out_size)
    if out_size == 2 * in_size:
        return np.arange(out_size) >> 1
    scale = _scale_for(in_size, out_size, scale_factor, np.dtype(np.float32))
    index = np.floor(np.arange(out_size, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(index, in_size - 1)


def interpolation_matrix(in_size, out_size, mode, align_corners=False, scale_factor=None,
                         dtype=np.float32):
    """The (out_size, in_size) matrix ``A`` of one axis: ``y = A @ x`` along that axis."""
    dtype = np.dtype(dtype)
    rows = np.arange(out_size)
    a = np.zeros((out_size, in_size), dtype=dtype)
    if mode == "nearest":
        a[rows, nearest_indices(in_size, out_size, scale_factor)] = 1
        return a
    if out_size == in_size:  # PyTorch copies the input exactly in this case
        a[rows, rows] = 1
        return a
    if align_corners:
        scale = dtype.type(in_size - 1) / dtype.type(out_size - 1) if out_size > 1 else \
            dtype.type(0)
        source = scale * rows.astype(dtype)
    else:
        scale = _scale_for(in_size, out_size, scale_factor, dtype)
        source = np.maximum(scale * (rows.astype(dtype) + dtype.type(0.5)) - dtype.type(0.5), 0)
    first = np.minimum(np.floor(source).astype(np.int64), in_size - 1)
    frac = np.clip(source - first.astype(dtype), 0, 1).astype(dtype)
    second = np.minimum(first + 1, in_size - 1)
    a[rows, first] = 1 - frac
    a[rows, second] += frac  # the same element as ``first`` on the last row: weights add up
    return a


class Interpolate2d(Function):
    """``y = A_h @ x @ A_w.T`` on the last two axes; ``gx = A_h.T @ gy @ A_w``.

    For nearest mode the forward pass copies with an index instead (the same result; also exact
    for inf and NaN, which a product with a 0 weight would turn into NaN)."""

    def __init__(self, a_h, a_w, nearest=None):
        self.a_h, self.a_w, self.nearest = a_h, a_w, nearest

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.a_h = xp.asarray(self.a_h, dtype=x.dtype)
        self.a_w = xp.asarray(self.a_w, dtype=x.dtype)
        if self.nearest is not None:
            rows, cols = (xp.asarray(i) for i in self.nearest)
            return x[..., rows[:, None], cols[None, :]]
        return self.a_h @ (x @ self.a_w.T)

    def backward(self, gy):
        return self.a_h.T @ (gy @ self.a_w)


def _pair_of(value, name, kind):
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"interpolate: {name} must be a {kind} or a pair, got {value!r}")
        return tuple(value)
    return value, value


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None):
    """Resize the two spatial axes of ``x`` (N, C, H, W) -> (N, C, OH, OW).

    Give exactly one of ``size`` (int or pair: the output size) and ``scale_factor`` (number or
    pair: ``OH = floor(H * scale_factor)``). ``mode``: ``'nearest'`` or ``'bilinear'``;
    ``align_corners`` (bilinear only, default False) aligns the corner pixels of input and
    output instead of their pixel grids. As in PyTorch, a given ``scale_factor`` is also used to
    map output to input positions (``1 / scale_factor``) unless ``recompute_scale_factor=True``.
    """
    if mode not in MODES:
        raise ValueError(f"interpolate: unknown mode {mode!r}; minicnn supports "
                         f"{', '.join(repr(m) for m in MODES)}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError("interpolate: align_corners can only be set with the interpolating "
                         "mode 'bilinear', not with 'nearest'")
    check_images("interpolate", x)
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give exactly one of size and scale_factor (got " +
                         ("both" if size is not None else "neither") + ")")
    in_size = tuple(x.shape[2:])
    if size is not None:
        out_size = tuple(int(s) for s in _pair_of(size, "size", "int"))
        scales = (None, None)
    else:
        scales = tuple(float(s) for s in _pair_of(scale_factor, "scale_factor", "number"))
        if min(scales) <= 0:
            raise ValueError(f"interpolate: scale_factor must be positive, got {scale_factor!r}")
        out_size = tuple(int(math.floor(n * s)) for n, s in zip(in_size, scales))
        if recompute_scale_factor:
            scales = (None, None)
    if min(out_size) <= 0 or min(in_size) <= 0:
        raise ValueError(f"interpolate: input spatial size {in_size} and output size {out_size} "
                         "must both be positive (the output would be empty)")
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
    corners = bool(align_corners)
    a_h, a_w = (interpolation_matrix(n, o, mode, corners, s, dtype)
                for n, o, s in zip(in_size, out_size, scales))
    nearest = None
    if mode == "nearest":
        nearest = tuple(nearest_indices(n, o, s) for n, o, s in zip(in_size, out_size, scales))
    return Interpolate2d(a_h, a_w, nearest)(x)


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
    h, w = _pair_of(size, "size", "int")
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
