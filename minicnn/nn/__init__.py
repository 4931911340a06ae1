"""``minicnn.nn``: modules, layers, containers, losses, initialisation (PyTorch's ``torch.nn``).

    import minicnn.nn as nn
    import minicnn.nn.functional as F
"""
from minicnn.nn import functional, init
from minicnn.nn.activation import LogSoftmax, ReLU, Sigmoid, Softmax, Tanh, residual_act
from minicnn.nn.containers import ModuleDict, ModuleList, Sequential
from minicnn.nn.conv import Conv2d, ConvTranspose2d
from minicnn.nn.dropout import Dropout, Dropout2d
from minicnn.nn.flatten import Flatten
from minicnn.nn.linear import Identity, Linear
from minicnn.nn.loss import CrossEntropyLoss, MSELoss
from minicnn.nn.module import Module, StateDictError
from minicnn.nn.normalization import BatchNorm1d, BatchNorm2d, LocalResponseNorm, norm_relu
from minicnn.nn.parameter import Parameter
from minicnn.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d, Upsample

__all__ = ["Module", "Parameter", "StateDictError", "Sequential", "ModuleList", "ModuleDict",
           "Linear", "Identity", "ReLU", "Tanh", "Sigmoid", "Softmax", "LogSoftmax", "Flatten",
           "CrossEntropyLoss", "MSELoss", "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d",
           "AdaptiveAvgPool2d", "Upsample", "BatchNorm1d", "BatchNorm2d", "LocalResponseNorm",
           "norm_relu", "residual_act",
           "Dropout", "Dropout2d", "init", "functional"]
