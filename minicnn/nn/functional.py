"""``minicnn.nn.functional`` (imported as ``F``): the ops as plain functions, with PyTorch's
names and keywords (``dim`` where the ops in ``minicnn.ops`` say ``axis``).

The work happens in ``minicnn.ops``; this module only adapts signatures. Layers in ``minicnn.nn``
call these functions in their ``forward``.
"""
from minicnn import ops
from minicnn.ops import add_relu, linear, mse_loss, pad, sigmoid, tanh
from minicnn.ops.conv import conv2d, conv_transpose2d
from minicnn.ops.dropout import dropout, dropout2d
from minicnn.ops.normalization import batch_norm, batch_norm_relu, local_response_norm
from minicnn.ops.pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from minicnn.ops.resize import center_crop, interpolate

__all__ = ["linear", "relu", "add_relu", "tanh", "sigmoid", "softmax", "log_softmax",
           "cross_entropy", "mse_loss", "pad", "flatten", "conv2d", "conv_transpose2d",
           "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "batch_norm", "batch_norm_relu",
           "local_response_norm", "dropout", "dropout2d", "interpolate", "center_crop"]


def relu(input, inplace=False):
    """``max(input, 0)``. ``inplace`` is accepted for PyTorch compatibility and ignored: minicnn
    always returns a new tensor (an in-place op would overwrite what backward needs)."""
    return ops.relu(input)


def softmax(input, dim=-1, _stacklevel=3, dtype=None):
    """``exp(x) / sum(exp(x))`` along ``dim`` (computed after subtracting the maximum).
    ``dtype``: the input is cast to it first (float64 for more precision)."""
    return ops.softmax(input, dim, dtype)


def log_softmax(input, dim=-1, _stacklevel=3, dtype=None):
    """``log(softmax(x))`` along ``dim``, computed stably (never the log of a tiny number)."""
    return ops.log_softmax(input, dim, dtype)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0):
    """Cross-entropy of logits against class targets (PyTorch's ``F.cross_entropy``).

    ``input`` (N, C) with ``target`` (N,), or per pixel (N, C, H, W) with (N, H, W): integer
    class indices (``ignore_index`` ones are skipped); or a float ``target`` of ``input``'s
    shape holding class probabilities. ``weight`` (C,) weighs each class (the mean divides by
    the targets' summed weight), ``label_smoothing`` mixes the target with the uniform
    distribution. ``size_average``/``reduce`` are PyTorch's long-deprecated spellings: refused.
    """
    if size_average is not None or reduce is not None:
        raise TypeError("cross_entropy: size_average and reduce are deprecated in PyTorch and "
                        "not supported: use reduction='mean' | 'sum' | 'none'")
    return ops.cross_entropy(input, target, reduction=reduction, ignore_index=ignore_index,
                             weight=weight, label_smoothing=label_smoothing)


def flatten(input, start_dim=1, end_dim=-1):
    """Merge axes ``start_dim..end_dim`` into one.

    NOTE: the default ``start_dim=1`` keeps the batch axis, (N, C, H, W) -> (N, C*H*W), like
    ``nn.Flatten``; ``torch.flatten`` (and ``Tensor.flatten``) default to ``start_dim=0``.
    """
    return ops.flatten(input, start_dim, end_dim)
