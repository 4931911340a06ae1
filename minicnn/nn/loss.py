"""Loss layers: ``CrossEntropyLoss`` for classification (and per-pixel segmentation) and
``MSELoss`` for regression. Called as ``criterion(output, target)``."""
from minicnn.nn import functional as F
from minicnn.nn.module import Module

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(name, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


class CrossEntropyLoss(Module):
    """Cross-entropy of logits (N, C) against class indices (N,), or per pixel (N, C, H, W)
    against (N, H, W); softmax is included, so the model outputs raw logits.

    ``reduction``: 'mean' (over the targets not equal to ``ignore_index``), 'sum' or 'none'.
    ``weight`` and ``label_smoothing`` are in the signature only to give a clear error: they
    are not supported.
    """

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__()
        if weight is not None or label_smoothing:
            raise NotImplementedError("CrossEntropyLoss: class weights and label smoothing are "
                                      "not supported in minicnn")
        self.ignore_index = ignore_index
        self.reduction = _check_reduction("CrossEntropyLoss", reduction)

    def forward(self, input, target):
        return F.cross_entropy(input, target, ignore_index=self.ignore_index,
                               reduction=self.reduction)


class MSELoss(Module):
    """Mean squared error ``mean((input - target) ** 2)``; shapes must be equal."""

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = _check_reduction("MSELoss", reduction)

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)
