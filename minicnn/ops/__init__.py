"""Every differentiable op: one ``Function`` subclass (forward and backward side by side) and
its snake_case function. ``Tensor``'s operators and methods call the functions here."""
from minicnn.ops.activation import abs, add_relu, exp, log, relu, sigmoid, sqrt, tanh
from minicnn.ops.arithmetic import (add, astype, clamp, clip, div, matmul, maximum, minimum, mul,
                                    neg, pow, sub, to_device)
from minicnn.ops.linear import linear
from minicnn.ops.loss import cross_entropy, log_softmax, mse_loss, softmax
from minicnn.ops.reduce import amax, amin, max, mean, min, std, sum, var
from minicnn.ops.shape import (cat, clone, flatten, getitem, pad, permute, reshape, split,
                               squeeze, stack, transpose, unsqueeze)

__all__ = ["abs", "add_relu", "exp", "log", "relu", "sigmoid", "sqrt", "tanh", "add", "astype",
           "clamp", "clip", "div", "matmul", "maximum", "minimum", "mul", "neg", "pow", "sub",
           "to_device", "linear", "cross_entropy", "log_softmax", "mse_loss", "softmax", "amax",
           "amin", "max", "mean", "min", "std", "sum", "var", "cat", "clone", "flatten", "getitem",
           "pad", "permute", "reshape", "split", "squeeze", "stack", "transpose", "unsqueeze"]
