"""Softmax, log-softmax and the losses: cross-entropy (class indices) and mean squared error.

``cross_entropy`` is one fused op rather than ``-log_softmax(x)[target]``: the log-sum-exp is
computed after subtracting the row maximum (so ``exp`` never overflows), and its gradient has the
famous simple form ``softmax(x) - onehot(target)``.
"""
import numpy as np

from minicnn import backend
from minicnn.autograd import Function, Tensor, as_tensor


class Softmax(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        xp = backend.get_array_module(x)
        if x.size == 0:  # NOTE: the max of an empty axis does not exist; nothing to normalise
            self.y = x.copy()
            return self.y
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))
        self.y = e / e.sum(axis=self.axis, keepdims=True)
        return self.y

    def backward(self, gy):
        y = self.y
        return y * (gy - (gy * y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        xp = backend.get_array_module(x)
        if x.size == 0:
            self.y = x.copy()
            return self.y
        shifted = x - x.max(axis=self.axis, keepdims=True)
        self.y = shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))
        return self.y

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        return gy - xp.exp(self.y) * gy.sum(axis=self.axis, keepdims=True)


class CrossEntropy(Function):
    """Cross-entropy of logits ``(N, C)`` or ``(N, C, d1, ...)`` against class indices ``(N,)`` or
    ``(N, d1, ...)``, or against class probabilities of the logits' shape.

    Every case is ``loss_i = -sum_c A_ic log p_ic`` with ``p = softmax(z_i)`` and a row of
    target weights ``A_i``; its gradient is ``p_ic sum_c A_ic - A_ic`` (for a plain class index,
    ``A_i`` is one-hot: ``softmax - onehot``). PyTorch's options shape ``A``:

    * ``weight`` (C,) scales class c: ``A_ic = w_t`` at the target (indices) or ``w_c q_ic``;
    * ``label_smoothing`` e mixes the target with the uniform distribution: ``(1 - e) onehot +
      e / C`` (times ``w_c``);
    * ``ignore_index``: such rows contribute nothing.

    ``reduction='mean'`` divides by the summed weight of the counted targets (their number
    without ``weight``), PyTorch's rule; for probability targets by the number of rows.
    """

    def __init__(self, reduction="mean", ignore_index=-100, weight=None, label_smoothing=0.0):
        self.reduction, self.ignore_index = reduction, ignore_index
        self.weight, self.smoothing = weight, label_smoothing

    def forward(self, logits, target):
        xp = backend.get_array_module(logits)
        # move the class axis last and flatten: rows are samples (or pixels), columns classes
        c = logits.shape[1]
        self.logits_shape, self.target_shape = logits.shape, target.shape
        z = xp.moveaxis(logits, 1, -1).reshape(-1, c)
        z = z - z.max(axis=1, keepdims=True) if z.size else z
        e = xp.exp(z)
        sum_e = e.sum(axis=1)
        self.probs = e / sum_e[:, None]
        self.soft = target.dtype.kind == "f"
        if not self.soft and self.weight is None and not self.smoothing:
            return self._forward_indices(xp, z, sum_e, target)   # the common case, no A
        log_p = z - xp.log(sum_e)[:, None]
        w = self.weight
        if self.soft:
            q = xp.moveaxis(target, 1, -1).reshape(-1, c)
            self.a_scale = (1 - self.smoothing) * (w if w is not None else 1)
            a = self.a_scale * q + (self.smoothing / c) * (w if w is not None else 1)
            self.log_p, self.keep = log_p, None
            count = len(q)
        else:
            t = target.reshape(-1)
            keep = t != self.ignore_index
            t = xp.where(keep, t, 0)
            rows = xp.arange(len(t))
            w_t = w[t] if w is not None else xp.ones(len(t), logits.dtype)
            a = xp.broadcast_to((self.smoothing / c) * (w if w is not None else
                                                       logits.dtype.type(1)), (len(t), c))
            a = a.astype(logits.dtype)          # a writable copy
            a[rows, t] += (1 - self.smoothing) * w_t
            a *= keep[:, None]
            count = (w_t * keep).sum()
        self.a = a.astype(logits.dtype, copy=False)
        losses = -(self.a * log_p).sum(axis=1)
        return self._reduce(losses, count, logits.dtype)

    def _forward_indices(self, xp, z, sum_e, target):
        t = target.reshape(-1)
        self.keep = t != self.ignore_index
        t = xp.where(self.keep, t, 0)
        rows = xp.arange(len(t))
        losses = (xp.log(sum_e) - z[rows, t]) * self.keep
        self.t, self.rows, self.a = t, rows, None
        return self._reduce(losses, self.keep.sum(), z.dtype)

    def _reduce(self, losses, count, dtype):
        # NOTE: PyTorch gives NaN (0 / 0) when every target is ignored; minicnn gives 0
        self.count = float(count) if self.reduction == "mean" and count else 1.0
        if self.reduction == "none":
            return losses.reshape(self.logits_shape[:1] + self.logits_shape[2:])
        total = losses.sum()
        return (total / dtype.type(self.count)).astype(dtype) if self.reduction == "mean" \
            else total

    def _row_grad(self, gy):
        """The upstream gradient of each row's loss, (rows,)."""
        if self.reduction == "none":
            return gy.reshape(-1)
        return gy / gy.dtype.type(self.count)

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        g_rows = self._row_grad(gy)
        if self.a is None:   # plain class indices: softmax - onehot
            g = self.probs.copy()
            g[self.rows, self.t] -= 1
            g *= (g_rows * self.keep)[:, None] if g_rows.ndim else \
                g_rows * self.keep[:, None]
        else:
            g = self.probs * self.a.sum(axis=1, keepdims=True) - self.a
            g *= g_rows[:, None] if g_rows.ndim else g_rows
        shape = self.logits_shape
        g = xp.moveaxis(g.reshape(shape[0], *shape[2:], shape[1]), -1, 1)
        g = g.astype(self.probs.dtype, copy=False)
        if not self.soft or not self.needs_input_grad[1]:
            return g, None
        gq = -self.a_scale * self.log_p   # d loss / d q
        gq = gq * (g_rows[:, None] if g_rows.ndim else g_rows)
        gq = xp.moveaxis(gq.reshape(shape[0], *shape[2:], shape[1]), -1, 1)
        return g, gq.astype(self.probs.dtype, copy=False)


class MSELoss(Function):
    def __init__(self, reduction="mean"):
        self.reduction = reduction

    def forward(self, a, b):
        self.diff = a - b
        sq = self.diff * self.diff
        if self.reduction == "none":
            return sq
        return sq.mean() if self.reduction == "mean" else sq.sum()

    def backward(self, gy):
        scale = 2 / self.diff.size if self.reduction == "mean" else 2
        ga = (gy * scale) * self.diff
        return ga, -ga


# ---- functions ------------------------------------------------------------------------------

_REDUCTIONS = ("mean", "sum", "none")


def _cast(x, dtype):
    x = as_tensor(x)
    return x if dtype is None or np.dtype(dtype) == x.dtype else x.to(dtype=dtype)


def softmax(x, axis=-1, dtype=None):
    """``exp(x) / sum(exp(x))`` along ``axis`` (computed after subtracting the maximum).
    ``dtype``: cast the input first (PyTorch's ``dtype=``, e.g. float64 for more precision)."""
    x = _cast(x, dtype)
    return Softmax(_check_axis(axis, x.ndim, "softmax"))(x)


def log_softmax(x, axis=-1, dtype=None):
    """``log(softmax(x))`` along ``axis``, without ever taking the log of a tiny number."""
    x = _cast(x, dtype)
    return LogSoftmax(_check_axis(axis, x.ndim, "log_softmax"))(x)


def _check_axis(axis, ndim, op):
    if not isinstance(axis, (int, np.integer)) or not -max(ndim, 1) <= axis < max(ndim, 1):
        raise IndexError(f"{op}: dim {axis!r} is out of range for a tensor with {ndim} axes")
    return int(axis) % ndim if ndim else None   # a 0-d tensor: softmax of one number is 1


def cross_entropy(logits, target, reduction="mean", ignore_index=-100, weight=None,
                  label_smoothing=0.0):
    """Cross-entropy between logits and targets, PyTorch's ``F.cross_entropy``.

    Shapes: logits ``(N, C)`` with target ``(N,)``, or per pixel logits ``(N, C, H, W)`` with
    target ``(N, H, W)``: integer class indices. A floating-point target of the logits' shape
    holds class probabilities instead (soft labels; its gradient is computed too).
    ``reduction``: ``'mean'``, ``'sum'`` or ``'none'``. ``weight`` (C,): a weight per class;
    the mean is then divided by the summed weights of the targets (PyTorch's rule).
    ``label_smoothing`` in [0, 1]: the target becomes ``(1 - e) target + e / C``. Targets equal
    to ``ignore_index`` (class indices only) count nowhere.
    """
    logits = as_tensor(logits)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, "
                         f"got {reduction!r}")
    if logits.ndim < 2:
        raise ValueError(f"cross_entropy: logits must be (N, C) or (N, C, ...), got shape "
                         f"{tuple(logits.shape)}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must lie in [0, 1], got "
                         f"{label_smoothing}")
    c = logits.shape[1]
    if weight is not None:
        weight = _class_weights(weight, logits)
        if weight.shape != (c,):
            raise ValueError(f"cross_entropy: weight must have one entry per class, shape "
                             f"({c},), got {tuple(weight.shape)}")
    xp = logits.xp
    if isinstance(target, Tensor) and target.dtype.kind == "f":
        if tuple(target.shape) != tuple(logits.shape):
            raise ValueError(f"cross_entropy: class-probability targets must have the logits' "
                             f"shape {tuple(logits.shape)}, got {tuple(target.shape)}")
        return CrossEntropy(reduction, ignore_index, weight, label_smoothing)(
            logits, target.to(dtype=logits.dtype))
    target_data = xp.asarray(target.data if isinstance(target, Tensor) else target)
    if target_data.dtype.kind == "f":
        return cross_entropy(logits, Tensor(target_data, device=logits.device), reduction,
                             ignore_index, weight, label_smoothing)
    if target_data.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: targets must be integer class indices or float class "
                        f"probabilities, got dtype {target_data.dtype}")
    expected = (logits.shape[0],) + tuple(logits.shape[2:])
    if tuple(target_data.shape) != expected:
        raise ValueError(f"cross_entropy: logits of shape {tuple(logits.shape)} need targets of "
                         f"shape {expected} (class indices) or {tuple(logits.shape)} (class "
                         f"probabilities), got {tuple(target_data.shape)}")
    valid = target_data[target_data != ignore_index]
    if valid.size and (int(valid.min()) < 0 or int(valid.max()) >= c):
        raise IndexError(f"cross_entropy: targets must lie in [0, {c - 1}] for {c} classes, "
                         f"got values from {int(valid.min())} to {int(valid.max())}")
    return CrossEntropy(reduction, ignore_index, weight, label_smoothing)(
        logits, Tensor._wrap(target_data, False))


def _class_weights(value, like):
    """``value`` (Tensor, array, list) as an array of ``like``'s dtype on ``like``'s device."""
    array = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
    return backend.to_device(array.astype(like.dtype, copy=False), like.device)


def mse_loss(input, target, reduction="mean"):
    """Mean squared error ``mean((input - target) ** 2)``; the shapes must be equal."""
    input, target = as_tensor(input), as_tensor(target, like=input)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"mse_loss: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input has shape {tuple(input.shape)} but target has "
                         f"{tuple(target.shape)}; they must be equal (reshape one of them: "
                         "broadcasting here is almost always a bug)")
    return MSELoss(reduction)(input, target)
