"""Softmax, log-softmax and the losses: cross-entropy (class indices) and mean squared error.

``cross_entropy`` is one fused op rather than ``-log_softmax(x)[target]``: the log-sum-exp is
computed after subtracting the row maximum (so ``exp`` never overflows), and its gradient has the
famous simple form ``softmax(x) - onehot(target)``.
"""
from minicnn import backend
from minicnn.autograd import Function, Tensor, as_tensor


class Softmax(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        xp = backend.get_array_module(x)
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
        shifted = x - x.max(axis=self.axis, keepdims=True)
        self.y = shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))
        return self.y

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        return gy - xp.exp(self.y) * gy.sum(axis=self.axis, keepdims=True)


class CrossEntropy(Function):
    """Cross-entropy of logits ``(N, C)`` or ``(N, C, d1, ...)`` against class indices ``(N,)`` or
    ``(N, d1, ...)``. Targets equal to ``ignore_index`` contribute nothing (and are not counted in
    the mean)."""

    def __init__(self, reduction="mean", ignore_index=-100):
        self.reduction, self.ignore_index = reduction, ignore_index

    def forward(self, logits, target):
        xp = backend.get_array_module(logits)
        # move the class axis last and flatten: rows are samples (or pixels), columns classes
        c = logits.shape[1]
        z = xp.moveaxis(logits, 1, -1).reshape(-1, c)
        t = target.reshape(-1)
        self.keep = t != self.ignore_index
        t = xp.where(self.keep, t, 0)
        z = z - z.max(axis=1, keepdims=True)
        e = xp.exp(z)
        sum_e = e.sum(axis=1)
        rows = xp.arange(len(t))
        losses = (xp.log(sum_e) - z[rows, t]) * self.keep
        self.probs, self.t, self.rows = e / sum_e[:, None], t, rows
        self.logits_shape = logits.shape
        self.count = max(int(self.keep.sum()), 1) if self.reduction == "mean" else 1
        if self.reduction == "none":
            return losses.reshape(target.shape)
        total = losses.sum()
        return total / self.count if self.reduction == "mean" else total

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        g = self.probs.copy()
        g[self.rows, self.t] -= 1
        if self.reduction == "none":
            g *= (gy.reshape(-1) * self.keep)[:, None]
        else:
            g *= (gy / self.count) * self.keep[:, None]
        shape = self.logits_shape
        g = g.reshape(shape[0], *shape[2:], shape[1])
        return xp.moveaxis(g, -1, 1).astype(self.probs.dtype, copy=False), None


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


def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x))`` along ``axis`` (computed after subtracting the maximum)."""
    return Softmax(axis)(x)


def log_softmax(x, axis=-1):
    """``log(softmax(x))`` along ``axis``, without ever taking the log of a tiny number."""
    return LogSoftmax(axis)(x)


def cross_entropy(logits, target, reduction="mean", ignore_index=-100):
    """Cross-entropy between logits and integer class targets, PyTorch's ``F.cross_entropy``.

    Shapes: logits ``(N, C)`` with target ``(N,)``, or per pixel logits ``(N, C, H, W)`` with
    target ``(N, H, W)``. ``reduction``: ``'mean'`` (over the non-ignored targets), ``'sum'`` or
    ``'none'``.
    """
    logits = as_tensor(logits)
    target_data = target.data if isinstance(target, Tensor) else target
    xp = logits.xp
    target_data = xp.asarray(target_data)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, "
                         f"got {reduction!r}")
    if logits.ndim < 2:
        raise ValueError(f"cross_entropy: logits must be (N, C) or (N, C, ...), got shape "
                         f"{tuple(logits.shape)}")
    if target_data.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: targets must be integer class indices, got dtype "
                        f"{target_data.dtype} (for one-hot or soft targets, use "
                        "-(target * log_softmax(logits, 1)).sum(1).mean())")
    expected = (logits.shape[0],) + tuple(logits.shape[2:])
    if tuple(target_data.shape) != expected:
        raise ValueError(f"cross_entropy: logits of shape {tuple(logits.shape)} need targets of "
                         f"shape {expected}, got {tuple(target_data.shape)}")
    c = logits.shape[1]
    valid = target_data[target_data != ignore_index]
    if valid.size and (int(valid.min()) < 0 or int(valid.max()) >= c):
        raise IndexError(f"cross_entropy: targets must lie in [0, {c - 1}] for {c} classes, "
                         f"got values from {int(valid.min())} to {int(valid.max())}")
    return CrossEntropy(reduction, ignore_index)(logits, Tensor._wrap(target_data, False))


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
