"""Loss layers: ``CrossEntropyLoss`` for classification (and per-pixel segmentation) and
``MSELoss`` for regression. Called as ``criterion(output, target)``."""
from minicnn.autograd import Tensor
from minicnn.nn import functional as F
from minicnn.nn.module import Module

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(name, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


class CrossEntropyLoss(Module):
    """Cross-entropy of logits (N, C) against class indices (N,), or per pixel (N, C, H, W)
    against (N, H, W), or against class probabilities of the logits' shape; softmax is
    included, so the model outputs raw logits.

    ``weight`` (C,): a weight per class (``'mean'`` then divides by the targets' summed weight,
    PyTorch's rule); ``label_smoothing``: the target becomes ``(1 - e) target + e / C``;
    ``reduction``: 'mean' (over the targets not equal to ``ignore_index``), 'sum' or 'none'.
    The weight is a buffer (not trained, moved by ``to()``), as in PyTorch.
    """

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__()
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must lie in [0, 1], got "
                             f"{label_smoothing}")
        self.register_buffer("weight", None if weight is None else
                             (weight if isinstance(weight, Tensor) else Tensor(weight)))
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing
        self.reduction = _check_reduction("CrossEntropyLoss", reduction)

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class MSELoss(Module):
    """Mean squared error ``mean((input - target) ** 2)``; shapes must be equal."""

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = _check_reduction("MSELoss", reduction)

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)
