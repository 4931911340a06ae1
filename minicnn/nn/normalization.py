"""Normalisation layers: ``BatchNorm2d``, ``BatchNorm1d`` and ``LocalResponseNorm``; and
``norm_relu``, a batch norm and its ReLU in one op.

A batch-norm layer holds the learned per-channel scale and shift (parameters ``weight`` and
``bias``) and the running statistics used in evaluation mode (buffers ``running_mean``,
``running_var`` and the counter ``num_batches_tracked``), under PyTorch's names, so that
``state_dict`` keys and checkpoints match torchvision's.
"""
import numpy as np

from minicnn.nn.activation import ReLU
from minicnn.nn.module import Module
from minicnn.nn.parameter import Parameter
from minicnn.ops import normalization


class _BatchNorm(Module):
    _expected_dims = ()
    _expected_text = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None, *, bias=True):
        super().__init__()
        if not isinstance(num_features, (int, np.integer)) or num_features <= 0:
            raise ValueError(f"{type(self).__name__}: num_features must be a positive int, got "
                             f"{num_features!r}")
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        dtype = np.float32 if dtype is None else dtype
        if affine:
            self.weight = Parameter(np.ones(self.num_features, dtype=dtype))
        else:
            self.register_parameter("weight", None)
        if affine and bias:
            self.bias = Parameter(np.zeros(self.num_features, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(self.num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(self.num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        if device is not None:
            self.to(device=device)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self):
        self.reset_running_stats()
        if self.weight is not None:
            self.weight.data[...] = 1
        if self.bias is not None:
            self.bias.data[...] = 0

    def forward(self, input):
        return normalization.batch_norm(input, *self._arguments(input))

    def _arguments(self, input):
        """Check ``input``, count the batch, and return what ``batch_norm`` takes after it."""
        if input.ndim not in self._expected_dims:
            raise ValueError(f"{type(self).__name__}: expected {self._expected_text} input, got a "
                             f"{input.ndim}-D input of shape {tuple(input.shape)}")
        if input.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}): expected an input with "
                             f"{self.num_features} channels (axis 1), got {input.shape[1]} "
                             f"channels in shape {tuple(input.shape)}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1  # in place: the buffer keeps its array
            if self.momentum is None:  # a cumulative average over all batches so far
                factor = 1.0 / float(self.num_batches_tracked.data)
        # batch statistics in training, and also in evaluation when there are no running ones
        use_batch = self.training or self.running_mean is None
        keep = not self.training or self.track_running_stats
        return (self.running_mean if keep else None, self.running_var if keep else None,
                self.weight, self.bias, use_batch, factor, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W): each channel normalised with its mean and variance over
    N, H and W, then scaled by ``weight`` and shifted by ``bias`` (initialised to 1 and 0).

    ``affine=False`` leaves out both; ``bias=False`` (keyword only, as in PyTorch 2.x) only the
    shift. Training mode uses the batch statistics and updates ``running_mean`` / ``running_var``
    (``r = (1 - momentum) * r + momentum * batch``, the variance unbiased; with
    ``momentum=None`` a cumulative average); evaluation mode uses the running statistics.
    """
    _expected_dims = (4,)
    _expected_text = "a 4-D (N, C, H, W)"


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L), per feature C: see :class:`BatchNorm2d`."""
    _expected_dims = (2, 3)
    _expected_text = "a 2-D (N, C) or 3-D (N, C, L)"


class LocalResponseNorm(Module):
    """Local response normalisation across channels (AlexNet):
    ``b_c = a_c / (k + alpha/size * sum of a^2 over size neighbouring channels)^beta``."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, input):
        return normalization.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


def norm_relu(norm, act, x):
    """``act(norm(x))``, with batch norm and ReLU fused into one op when they can be.

    ``norm`` is a module (a batch norm, or e.g. ``nn.Identity`` in a net without
    normalisation) and ``act`` an activation module. When ``norm`` is a ``BatchNorm1d/2d`` and
    ``act`` a ``ReLU``, this runs ``F.batch_norm_relu`` (``minicnn/ops/normalization.py``): the
    same numbers, with the ReLU's passes over memory gone. Otherwise -- and whenever a hook is
    registered on either module, since hooks want to see (or change) the tensor between them,
    as ``minicnn.gradflow`` and ``mc.summary`` do -- it calls the two modules as written.
    """
    fusable = (isinstance(norm, _BatchNorm) and type(act) is ReLU
               and not (norm._forward_hooks or norm._forward_pre_hooks
                        or act._forward_hooks or act._forward_pre_hooks))
    if not fusable:
        return act(norm(x))
    return normalization.batch_norm_relu(x, *norm._arguments(x))
