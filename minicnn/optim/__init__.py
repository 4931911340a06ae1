"""Optimisers and learning-rate schedules, with PyTorch's names and update rules.

    import minicnn as mc
    opt = mc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    sched = mc.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
"""
from minicnn.optim import lr_scheduler
from minicnn.optim.adam import Adam, AdamW
from minicnn.optim.lr_scheduler import (CosineAnnealingLR, LambdaLR, LinearLR, LRScheduler,
                                        MultiStepLR, StepLR)
from minicnn.optim.optimizer import Optimizer
from minicnn.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler", "LRScheduler", "StepLR",
           "MultiStepLR", "CosineAnnealingLR", "LambdaLR", "LinearLR"]
