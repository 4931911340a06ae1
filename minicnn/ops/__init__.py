"""Every differentiable op: one ``Function`` subclass (forward and backward side by side) and
its snake_case function. ``Tensor``'s operators and methods call the functions here."""
from minicnn.ops.activation import exp, log, relu, sigmoid, tanh
from minicnn.ops.arithmetic import add, astype, div, matmul, mul, neg, pow, sub, to_device
from minicnn.ops.linear import linear
from minicnn.ops.loss import cross_entropy, log_softmax, mse_loss, softmax
from minicnn.ops.reduce import max, mean, sum
from minicnn.ops.shape import (cat, flatten, getitem, pad, permute, reshape, split, stack,
                               transpose)

__all__ = ["exp", "log", "relu", "sigmoid", "tanh", "add", "astype", "div", "matmul", "mul",
           "neg", "pow", "sub", "to_device", "linear", "cross_entropy", "log_softmax", "mse_loss",
           "softmax", "max", "mean", "sum", "cat", "flatten", "getitem", "pad", "permute",
           "reshape", "split", "stack", "transpose"]
