"""Dropout (Srivastava et al., 2014, https://jmlr.org/papers/v15/srivastava14a.html).

In training every element is zeroed with probability ``p`` and the survivors are scaled by
``1 / (1 - p)`` ("inverted" dropout), so the expected value of every element is unchanged and
evaluation needs no rescaling: there dropout is the identity. The backward pass multiplies by the
same mask. ``dropout2d`` zeroes whole channels instead of single elements (for conv features,
whose neighbouring pixels are strongly correlated).

The mask is drawn from ``minicnn.random.get_generator()`` on the CPU (also for GPU tensors), so
``mc.manual_seed(n)`` repeats it exactly on either device.
"""
import warnings

import numpy as np

from minicnn import backend
from minicnn import random as mc_random
from minicnn.autograd import Function


def _check_p(p, op):
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)) or \
            not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: dropout probability has to be between 0 and 1, but got {p!r}")


class Dropout(Function):
    """``y = x * mask`` with ``mask`` 0 (probability ``p``) or ``1 / (1 - p)``; ``gx = gy * mask``.

    ``channelwise``: one mask value per (sample, channel), broadcast over the spatial axes.
    """

    def __init__(self, p, channelwise=False):
        self.p, self.channelwise = p, channelwise

    def forward(self, x):
        xp = backend.get_array_module(x)
        shape = x.shape[:2] + (1,) * (x.ndim - 2) if self.channelwise else x.shape
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float32)
        if self.p == 1:
            mask = np.zeros(shape, dtype=dtype)
        else:
            mask = mc_random.get_generator().random(shape, dtype=dtype)  # uniform in [0, 1)
            keep = mask >= self.p  # true with probability 1 - p
            np.multiply(keep, dtype.type(1 / (1 - self.p)), out=mask)  # reuse the buffer
        self.mask = backend.to_device(mask, backend.device_of(x))
        out = xp.empty_like(x)  # keeps x's memory layout (channels-last stays channels-last)
        xp.multiply(x, self.mask, out=out)
        return out

    def backward(self, gy):
        return gy * self.mask


def dropout(x, p=0.5, training=True):
    """Inverted dropout: in training zero each element with probability ``p`` and scale the rest
    by ``1 / (1 - p)``; return ``x`` itself when not training or ``p == 0``."""
    _check_p(p, "dropout")
    if not training or p == 0:
        return x
    return Dropout(float(p))(x)


def dropout2d(x, p=0.5, training=True):
    """Channel dropout for (N, C, H, W) input: zero whole channels ``x[n, c]`` with probability
    ``p`` and scale the rest by ``1 / (1 - p)``; return ``x`` itself when not training or
    ``p == 0``.

    NOTE: as in PyTorch (2.x), a 3-D input is read as a batch of signals (N, C, L), one mask value
    per ``(n, c)``, with PyTorch's warning; NOT as one unbatched image (C, H, W), which PyTorch
    announces for a future release. For one image, add the batch axis: ``x[None]``.
    """
    _check_p(p, "dropout2d")
    if x.ndim not in (3, 4):
        hint = {2: ": for (N, C) use dropout", 5: ": for (N, C, D, H, W) drop channels with "
                "dropout2d(x.reshape(N, C, D * H, W))"}.get(x.ndim, "")
        raise ValueError(f"dropout2d: expected a 4-D input (N, C, H, W) (or a 3-D (N, C, L)), "
                         f"got a {x.ndim}-D input of shape {tuple(x.shape)}{hint}")
    if x.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise "
                      "1D dropout behavior is desired - input is interpreted as shape (N, C, L), "
                      "where C is the channel dim (as PyTorch does). For one (C, H, W) image, "
                      "add the batch axis: x[None]", UserWarning, stacklevel=2)
    if not training or p == 0:
        return x
    return Dropout(float(p), channelwise=True)(x)
