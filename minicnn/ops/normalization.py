"""Normalisation: batch norm and local response norm (AlexNet's LRN).

Batch norm (Ioffe & Szegedy, 2015, https://arxiv.org/abs/1502.03167) normalises every channel
with the mean and variance of that channel over the batch and the spatial positions, then scales
and shifts it with learned ``weight`` (gamma) and ``bias`` (beta)::

    xhat = (x - mean) / sqrt(var + eps),     y = gamma * xhat + beta.

Its backward pass has a compact closed form (``m`` values per channel, ``gy`` the upstream
gradient)::

    gbeta  = sum(gy),          ggamma = sum(gy * xhat),
    gx     = gamma / sqrt(var + eps) * (gy - mean(gy) - xhat * mean(gy * xhat)),

the last two terms being what flows back through the batch mean and variance. Two passes over
memory each way (one for the per-channel sums, one element-wise), done by the numba kernels in
``minicnn.kernels.normalization`` (by their NumPy references on the reference lane,
``MINICNN_KERNELS=reference``). In evaluation mode the running statistics are constants and
batch norm is just a per-channel affine map.
"""
import numpy as np

from minicnn import backend
from minicnn.autograd import Function, Tensor
from minicnn.kernels import normalization as kernels
from minicnn.ops.shape import reshape


def _array(value):
    return value.data if isinstance(value, Tensor) else value


# ---------------------------------------------------------------------------------------------
# Batch norm
# ---------------------------------------------------------------------------------------------

class BatchNorm(Function):
    """Batch norm over axis 1 of an (N, C, ...) input; inputs ``x`` and, when present, ``weight``
    and ``bias``. In training it normalises with the batch statistics and updates the running
    statistics in place (PyTorch's rule); otherwise it uses the running statistics."""

    def __init__(self, running_mean, running_var, training, momentum, eps, has_weight,
                 has_bias, relu=False):
        self.running_mean, self.running_var = running_mean, running_var
        self.training, self.momentum, self.eps = training, momentum, eps
        self.has_weight, self.has_bias = has_weight, has_bias
        self.relu = relu  # relu(batch_norm(x)) in one op (see batch_norm_relu)

    def forward(self, x, *affine):
        xp = backend.get_array_module(x)
        weight = affine[0] if self.has_weight else None
        bias = affine[-1] if self.has_bias else None
        c = x.shape[1]
        count = x.shape[0] * int(np.prod(x.shape[2:]))  # values per channel
        x3, self.channels_last = kernels.as_acb(x)
        if self.training and count == 0:
            # NOTE: an empty batch (N = 0) has no statistics. As PyTorch: the output is empty,
            # the running statistics stay as they are, gamma and beta get zero gradients
            mean, var = xp.zeros(c), xp.ones(c)
        elif self.training:
            total, total_sq = kernels.channel_sums(x3)
            mean = total / count
            var = xp.maximum(total_sq / count - mean * mean, 0.0)  # biased, for normalising
            self._update_running_stats(mean, var, count)
        else:
            mean = self.running_mean.astype(np.float64)
            var = self.running_var.astype(np.float64)
        invstd = 1.0 / xp.sqrt(var + self.eps)
        scale = invstd if weight is None else invstd * weight
        shift = xp.zeros(c) if bias is None else bias
        self.x3, self.count, self.invstd = x3, count, invstd
        self.mean, self.scale = mean.astype(x.dtype), scale
        # the map in x's dtype: what the forward computes, and the fused ReLU's mask recomputes
        self.scale_x, self.shift_x = scale.astype(x.dtype), shift.astype(x.dtype)
        out3, y = kernels.empty_acb(x.shape, x.dtype, self.channels_last, xp)
        if self.relu:
            kernels.normalize_relu(x3, self.mean, self.scale_x, self.shift_x, out3)
        else:
            kernels.normalize(x3, self.mean, self.scale_x, self.shift_x, out3)
        return y

    def _update_running_stats(self, mean, var, count):
        m = self.momentum
        if self.running_mean is not None:
            self.running_mean[...] = (1 - m) * self.running_mean + m * mean
        if self.running_var is not None:  # PyTorch keeps the UNBIASED variance here
            self.running_var[...] = (1 - m) * self.running_var + m * var * (count / (count - 1))

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        x3, dtype = self.x3, gy.dtype
        gy3 = kernels.like_acb(gy, self.channels_last)
        relu = (self.scale_x, self.shift_x)  # with the fused ReLU: gy counts where it passed
        if self.relu:
            total, dot = kernels.masked_grad_sums(gy3, x3, self.mean, *relu)
        else:
            total, dot = kernels.grad_sums(gy3, x3, self.mean)  # sum(gy), sum(gy * (x - mean))
        grads = []
        if self.inputs[0].requires_grad:
            if self.training:  # gx = k * (gy - mean(gy) - xhat * mean(gy * xhat)), k = gamma/std
                k, count = self.scale, max(self.count, 1)  # (the sums are 0 when it is 0)
                a, b, d = k, -k * self.invstd ** 2 * dot / count, -k * total / count
            else:  # the statistics are constants: gx = gamma/std * gy
                a, b, d = self.scale, xp.zeros_like(self.scale), xp.zeros_like(self.scale)
            out3, gx = kernels.empty_acb(gy.shape, dtype, self.channels_last, xp)
            coefs = (a.astype(dtype), b.astype(dtype), d.astype(dtype), out3)
            if self.relu:
                kernels.masked_combine(gy3, x3, self.mean, *relu, *coefs)
            else:
                kernels.combine(gy3, x3, self.mean, *coefs)
            grads.append(gx)
        else:
            grads.append(None)
        if self.has_weight:
            grads.append((dot * self.invstd).astype(self.inputs[1].dtype))
        if self.has_bias:
            grads.append(total.astype(self.inputs[-1].dtype))
        return tuple(grads)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalisation of ``x`` (N, C), (N, C, L) or (N, C, H, W) over every axis but C.

    ``training=True``: normalise with the batch mean and (biased) variance, and update
    ``running_mean`` / ``running_var`` IN PLACE, ``r = (1 - momentum) * r + momentum * batch``,
    the variance there being the unbiased one (as PyTorch does); either may be None.
    ``training=False``: normalise with the running statistics. ``weight`` (gamma) and ``bias``
    (beta), shape (C,), scale and shift the result. Output: ``x``'s shape, dtype and layout.
    """
    if x.ndim == 1 and x.shape[0] == 0:
        # PyTorch takes an empty 1-D input too (no channel axis: running stats of shape (0,))
        return reshape(batch_norm(reshape(x, 0, 0), running_mean, running_var, weight, bias,
                                  training, momentum, eps), 0)
    return _batch_norm("batch_norm", x, running_mean, running_var, weight, bias, training,
                       momentum, eps)


def batch_norm_relu(x, running_mean, running_var, weight=None, bias=None, training=False,
                    momentum=0.1, eps=1e-5):
    """``relu(batch_norm(x, ...))`` as ONE op (arguments as :func:`batch_norm`): the same
    numbers, in fewer passes over memory. The ReLU is applied as the normalised value is written,
    and backward recomputes where it passed from ``x``, which batch norm's backward reads anyway
    (``kernels/normalization.py`` counts the passes: 3 + 5 instead of 5 + 8). Not in PyTorch
    (whose eager mode runs the two ops); ``nn.norm_relu`` uses it inside the ResNets."""
    return _batch_norm("batch_norm_relu", x, running_mean, running_var, weight, bias, training,
                       momentum, eps, relu=True)


def _batch_norm(op, x, running_mean, running_var, weight, bias, training, momentum, eps,
                relu=False):
    """:func:`batch_norm`'s checks and op (shared with :func:`batch_norm_relu`)."""
    if x.ndim < 2:
        raise ValueError(f"{op}: expected an input of shape (N, C) or (N, C, ...), got shape "
                         f"{tuple(x.shape)}")
    running_mean, running_var = _array(running_mean), _array(running_var)
    c = x.shape[1]
    for name, value in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
        if value is not None and tuple(value.shape) != (c,):
            raise ValueError(f"{op}: {name} has shape {tuple(value.shape)} but the input has {c} "
                             f"channels (axis 1 of its shape {tuple(x.shape)}): expected ({c},)")
    if training:
        if x.shape[0] * np.prod(x.shape[2:]) == 1:  # (PyTorch's rule: 0 values are fine)
            raise ValueError(f"{op}: expected more than 1 value per channel when training, got "
                             f"input of shape {tuple(x.shape)} (the batch variance of one value "
                             "is undefined)")
    elif running_mean is None or running_var is None:
        raise ValueError(f"{op}: running_mean and running_var are needed when not training "
                         "(evaluation normalises with them)")
    if not isinstance(momentum, (int, float, np.floating, np.integer)):
        raise TypeError(f"{op}: momentum must be a number, got {momentum!r} (a layer with "
                        "momentum=None passes its cumulative-average factor instead)")
    affine = [t for t in (weight, bias) if t is not None]
    fn = BatchNorm(running_mean, running_var, bool(training), float(momentum), float(eps),
                   weight is not None, bias is not None, relu)
    return fn(x, *affine)


# ---------------------------------------------------------------------------------------------
# Local response norm
# ---------------------------------------------------------------------------------------------

def _channel_window_sum(a, before, after):
    """``out[:, c] = a[:, c - before] + ... + a[:, c + after]``, channels outside counting as 0."""
    xp = backend.get_array_module(a)
    c = a.shape[1]
    padded = xp.zeros((a.shape[0], c + before + after, *a.shape[2:]), dtype=a.dtype)
    padded[:, before:before + c] = a
    out = padded[:, 0:c].copy()
    for shift in range(1, before + after + 1):
        out += padded[:, shift:shift + c]
    return out


class LocalResponseNorm(Function):
    """``b_c = a_c / (k + alpha/size * S_c)^beta`` with ``S_c`` the sum of ``a^2`` over the
    ``size`` channels ``c - size//2 ... c + (size-1)//2``.

    Backward: with ``D_c = k + alpha/size * S_c``, element ``a_j`` reaches ``b_j`` directly and
    every ``b_c`` whose window holds ``j`` through ``S_c``::

        gx_j = gy_j * D_j^-beta
               - 2*alpha*beta/size * a_j * sum_{c: j in window(c)} gy_c a_c D_c^(-beta-1)

    and "the windows holding j" is the mirrored window ``j - (size-1)//2 ... j + size//2``.
    """

    def __init__(self, size, alpha, beta, k):
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        xp = backend.get_array_module(x)
        before, after = self.size // 2, (self.size - 1) // 2
        window = _channel_window_sum(x * x, before, after)
        self.denom = window * x.dtype.type(self.alpha / self.size) + x.dtype.type(self.k)
        self.factor = xp.power(self.denom, x.dtype.type(-self.beta))  # D^-beta
        self.x = x
        return x * self.factor

    def backward(self, gy):
        before, after = self.size // 2, (self.size - 1) // 2
        inner = gy * self.x * self.factor / self.denom  # gy_c a_c D_c^(-beta-1)
        coef = gy.dtype.type(2 * self.alpha * self.beta / self.size)
        return gy * self.factor - coef * self.x * _channel_window_sum(inner, after, before)


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """Local response normalisation across channels (AlexNet, 2012), as PyTorch computes it:
    ``b_c = a_c / (k + alpha/size * sum of a^2 over size neighbouring channels)^beta``, the
    neighbours being channels ``c - size//2 ... c + (size-1)//2`` (zero beyond the edges). Input
    (N, C, ...) with at least 3 axes; output of the same shape."""
    if x.ndim < 3:
        raise ValueError(f"local_response_norm: expected an input of 3 or more axes (N, C, ...), "
                         f"got shape {tuple(x.shape)}")
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"local_response_norm: size must be a positive int, got {size!r}")
    return LocalResponseNorm(int(size), float(alpha), float(beta), float(k))(x)
