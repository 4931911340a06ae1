"""Weight initialisation, PyTorch's ``torch.nn.init``.

Each function fills a tensor IN PLACE and returns it. Values are drawn on the CPU from
``minicnn.random.get_generator()`` (so ``mc.manual_seed(n)`` makes them repeatable, on the GPU
too), cast to the tensor's dtype and copied into its existing array on its device.

The scale of a good initialisation depends on how many inputs feed each output (``fan_in``) and
how many outputs each input feeds (``fan_out``): keeping the variance of activations (Kaiming,
He et al. 2015) or of activations and gradients (Xavier, Glorot and Bengio 2010) constant from
layer to layer is what lets deep nets start training at all.
"""
import math
import warnings

import numpy as np

from minicnn import backend
from minicnn.autograd import Tensor
from minicnn.random import get_generator

_LINEAR_LIKE = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (PyTorch's table).

    linear, conv*, sigmoid: 1; tanh: 5/3; relu: sqrt(2); leaky_relu: sqrt(2 / (1 + slope**2))
    with ``param`` the negative slope (default 0.01); selu: 3/4.
    """
    if nonlinearity in _LINEAR_LIKE:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; expected one "
                     f"of {', '.join(_LINEAR_LIKE + ('tanh', 'relu', 'leaky_relu', 'selu'))}")


def _array(tensor):
    """The array behind ``tensor`` (a Tensor/Parameter or a bare array)."""
    return tensor.data if isinstance(tensor, Tensor) else tensor


def _calculate_fan_in_and_fan_out(tensor):
    """``(fan_in, fan_out)`` of a weight: (out, in) for linear, (out, in, kH, kW) for conv.

    fan_in = in * kH * kW, fan_out = out * kH * kW (the receptive field counts for both).
    """
    shape = _array(tensor).shape
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out can not be computed for a tensor with fewer than "
                         f"2 dimensions (shape {tuple(shape)}); biases are initialised from "
                         "the fan_in of their weight")
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


def _calculate_correct_fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode {mode!r} not supported, please use one of 'fan_in', 'fan_out'")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _write(tensor, values):
    """Copy CPU ``values`` into the tensor's own array (its dtype, its device); return it."""
    array = _array(tensor)
    array[...] = backend.to_device(np.asarray(values, dtype=array.dtype),
                                   backend.device_of(array))
    return tensor


def _is_empty(tensor):
    if _array(tensor).size == 0:
        warnings.warn("Initializing zero-element tensors is a no-op")
        return True
    return False


def _draw_dtype(tensor):
    """Draw float32 numbers for a float32 tensor: half the work of drawing float64 and
    converting (building VGG-16's 138 M parameters took 6 s the other way)."""
    return np.float32 if _array(tensor).dtype == np.float32 else np.float64


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with values drawn uniformly from [a, b)."""
    generator = get_generator() if generator is None else generator
    values = generator.random(_array(tensor).shape, dtype=_draw_dtype(tensor))
    values *= b - a
    values += a
    return _write(tensor, values)


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with values drawn from N(mean, std**2)."""
    generator = get_generator() if generator is None else generator
    values = generator.standard_normal(_array(tensor).shape, dtype=_draw_dtype(tensor))
    values *= std
    values += mean
    return _write(tensor, values)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """Fill with N(mean, std**2) values restricted to [a, b]: draws outside are redrawn."""
    if not a < b:
        raise ValueError(f"trunc_normal_: need a < b, got a={a}, b={b}")
    # NOTE: rejection sampling redraws until every value lies inside; that takes forever when
    # [a, b] holds almost none of the mass, so refuse those cases up front
    cdf = lambda x: 0.5 * (1 + math.erf((x - mean) / (std * math.sqrt(2))))  # noqa: E731
    if cdf(b) - cdf(a) < 1e-3:
        raise ValueError(f"trunc_normal_: [a, b] = [{a}, {b}] holds less than 0.1% of "
                         f"N({mean}, {std}**2); choose mean and std closer to the interval")
    generator = get_generator() if generator is None else generator
    values = generator.normal(mean, std, size=_array(tensor).shape)
    outside = (values < a) | (values > b)
    while outside.any():
        values[outside] = generator.normal(mean, std, size=int(outside.sum()))
        outside = (values < a) | (values > b)
    return _write(tensor, values)


def constant_(tensor, val):
    """Fill with the value ``val``."""
    _array(tensor)[...] = val
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0)


def ones_(tensor):
    return constant_(tensor, 1)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """Glorot: U(-bound, bound) with bound = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std  # a uniform on [-b, b] has standard deviation b / sqrt(3)
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """Glorot: N(0, std**2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He: U(-bound, bound) with bound = gain * sqrt(3 / fan), gain = calculate_gain(
    nonlinearity, a). ``mode='fan_in'`` keeps the forward variance, ``'fan_out'`` the backward.

    With ``a=sqrt(5)`` (what ``Linear`` and ``Conv2d`` use) the bound is 1 / sqrt(fan_in).
    """
    if _is_empty(tensor):
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He: N(0, std**2) with std = gain / sqrt(fan); for ReLU nets ``nonlinearity='relu'``
    gives std = sqrt(2 / fan)."""
    if _is_empty(tensor):
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return normal_(tensor, 0.0, std, generator)
