"""minicnn: a from-scratch framework for teaching modern convolutional networks.

    import minicnn as mc
    import minicnn.nn as nn
    import minicnn.nn.functional as F
"""
from minicnn.version import __version__

from minicnn import backend, cuda
from minicnn.backend import reference_kernels
from minicnn.autograd import (AnomalyError, Function, Tensor, detect_anomaly, enable_grad,
                              is_grad_enabled, no_grad)
from minicnn.gradcheck import GradcheckError, gradcheck, gradcheck_model
from minicnn.ops import cat, split, stack
# PyTorch's everyday names (``import minicnn as torch`` runs the tutorials' code)
from minicnn.ops import (abs, amax, amin, clamp, clip, clone, exp, flatten, log, max,  # noqa
                         maximum, mean, min, minimum, permute, pow, reshape, sigmoid, softmax,
                         log_softmax, sqrt, squeeze, std, sum, tanh, transpose, unsqueeze, var)
from minicnn.creation import (arange, device, double, empty, float16, float32,  # noqa: E402
                              float64, from_numpy, full, full_like, half, int8, int16, int32,
                              int64, is_tensor, linspace, long, numel, ones, ones_like, rand,
                              rand_like, randint, randn, randn_like, tensor, uint8, zeros,
                              zeros_like)
from minicnn.random import manual_seed
from minicnn import nn, optim  # noqa: E402  (they import the names above)
from minicnn import data, models  # noqa: E402
from minicnn.checkpoint import (CheckpointError, load_checkpoint, load_weights,  # noqa: E402
                                save_checkpoint, save_weights)
from minicnn.training import TrainingDiverged, evaluate, fit  # noqa: E402
from minicnn.summary import summary  # noqa: E402  (the function; the module stays importable)
from minicnn.profiler import profile  # noqa: E402
from minicnn.plots import plot_history  # noqa: E402
from minicnn import gradflow, landscape, stats, transfer, weights  # noqa: E402
from minicnn.saving import load, save  # noqa: E402  (torch.save / torch.load of a state dict)

__all__ = ["Tensor", "Function", "no_grad", "detect_anomaly", "AnomalyError", "enable_grad",
           "is_grad_enabled", "gradcheck", "gradcheck_model", "GradcheckError", "profile", "cat",
           "stack", "split", "manual_seed", "cuda", "backend", "reference_kernels", "nn", "optim", "data", "models",
           "fit", "evaluate", "TrainingDiverged", "save_checkpoint", "load_checkpoint",
           "save_weights", "load_weights", "CheckpointError", "summary", "plot_history", "gradflow",
           "transfer", "weights", "landscape", "stats",
           "__version__"]
__all__ += ["abs", "amax", "amin", "clamp", "clip", "clone", "exp", "flatten", "log", "max",
            "maximum", "mean", "min", "minimum", "permute", "pow", "reshape", "sigmoid", "softmax",
            "log_softmax", "sqrt", "squeeze", "std", "sum", "tanh", "transpose", "unsqueeze",
            "var", "arange", "device", "empty", "float16", "float32", "float64", "from_numpy",
            "full", "full_like", "int32", "int64", "is_tensor", "linspace", "long", "numel",
            "ones", "ones_like", "rand", "rand_like", "randint", "randn", "randn_like", "tensor",
            "zeros", "zeros_like", "save", "load"]
