"""Learning-rate schedules: they set ``group['lr']`` of an optimiser's groups, once per epoch.

    scheduler = StepLR(optimizer, step_size=30, gamma=0.1)
    for epoch in range(90):
        train_one_epoch(model, optimizer)    # optimizer.step() many times
        scheduler.step()                     # then move to the next epoch's lr

Every scheduler here computes the lr of epoch ``t = last_epoch`` from a closed-form formula of
``t`` and each group's starting lr (``base_lrs``, kept in ``group['initial_lr']``). Each group
is scaled on its own, so a backbone group with a ten times smaller lr keeps its ratio to the
head. The lrs equal PyTorch's schedulers (which mostly update recursively, lr_t from lr_{t-1});
unlike those, a closed form overwrites any lr you set by hand between steps, and two schedulers
on one optimiser do not compose: the later one wins.
"""
import bisect
import math
import numbers
import types

from minicnn.optim.optimizer import Optimizer


class LRScheduler:
    """Base class. Subclasses implement ``get_lr()``: the lr of every group at ``last_epoch``.

    Creating a scheduler already applies epoch 0 (``last_epoch`` becomes 0), as in PyTorch.
    ``last_epoch`` other than -1 resumes a schedule; the groups then need ``'initial_lr'``.
    """

    def __init__(self, optimizer, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__} needs an Optimizer, but got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        if last_epoch == -1:
            # remember each group's starting lr; a second scheduler on the same optimiser
            # finds it already there and schedules from the same start
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"param 'initial_lr' is not specified in param_groups[{i}] when resuming "
                        f"a schedule (last_epoch={last_epoch}); load the optimizer's state_dict "
                        "first, or start from last_epoch=-1")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def get_lr(self):
        """The lr of every parameter group at epoch ``self.last_epoch``."""
        raise NotImplementedError

    def step(self):
        """Advance one epoch and write the new lrs into the optimiser's groups."""
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        """The lrs the last ``step()`` set, one per parameter group."""
        return list(self._last_lr)

    def state_dict(self):
        """Everything but the optimiser (which has its own ``state_dict``), as a dict."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict):
        """Restore what ``state_dict()`` returned; the next ``step()`` continues the schedule."""
        self.__dict__.update(state_dict)


def _check_int(scheduler, name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{type(scheduler).__name__}: {name} must be an integer >= {minimum}, "
                         f"but got {value!r}")


class StepLR(LRScheduler):
    """``lr_t = base_lr * gamma ** (t // step_size)``: divide by 1/gamma every ``step_size``
    epochs."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        _check_int(self, "step_size", step_size, 1)
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        factor = self.gamma ** (self.last_epoch // self.step_size)
        return [base_lr * factor for base_lr in self.base_lrs]


class MultiStepLR(LRScheduler):
    """``lr_t = base_lr * gamma ** (number of milestones <= t)``: multiply by gamma at each
    milestone epoch (a milestone listed twice counts twice, as in PyTorch)."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        milestones = list(milestones)
        for m in milestones:
            _check_int(self, "every milestone", m, 0)
        self.milestones = sorted(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        # bisect_right counts the milestones m with m <= last_epoch
        factor = self.gamma ** bisect.bisect_right(self.milestones, self.last_epoch)
        return [base_lr * factor for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """``lr_t = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2``: half a cosine
    from base_lr down to eta_min over T_max epochs (SGDR without restarts; past T_max the
    cosine climbs back up, as PyTorch's does)."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        _check_int(self, "T_max", T_max, 1)
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        cosine = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (base_lr - self.eta_min) * cosine for base_lr in self.base_lrs]


class LambdaLR(LRScheduler):
    """``lr_t = base_lr * lr_lambda(t)``. ``lr_lambda`` is one function, or a list with one
    function per parameter group.

    Plain functions and lambdas are not part of ``state_dict()`` (they do not pickle); a callable
    object's attributes are.
    """

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        n_groups = len(optimizer.param_groups) if isinstance(optimizer, Optimizer) else 0
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != n_groups:
                raise ValueError(f"Expected {n_groups} lr_lambdas (one per parameter group), but "
                                 f"got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * n_groups
        for fn in self.lr_lambdas:
            if not callable(fn):
                raise TypeError(f"LambdaLR: lr_lambda must be callable (epoch -> factor), but "
                                f"got {type(fn).__name__}")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base_lr * fn(self.last_epoch) for base_lr, fn in zip(self.base_lrs,
                                                                       self.lr_lambdas)]

    def state_dict(self):
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}
        # like PyTorch: keep the attributes of callable objects, drop plain functions
        state["lr_lambdas"] = [None if isinstance(fn, types.FunctionType)
                               else dict(getattr(fn, "__dict__", {})) for fn in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        saved = state_dict.pop("lr_lambdas", [])
        self.__dict__.update(state_dict)
        for fn, attributes in zip(self.lr_lambdas, saved):
            if attributes is not None:
                fn.__dict__.update(attributes)


class LinearLR(LRScheduler):
    """``lr_t = base_lr * (start_factor + (end_factor - start_factor) * min(t, total_iters) /
    total_iters)``: a linear ramp of the factor over ``total_iters`` epochs, then constant.
    The usual warm-up: ``LinearLR(opt, start_factor=0.1, total_iters=5)``."""

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5,
                 last_epoch=-1):
        if not 0 < start_factor <= 1:
            raise ValueError("LinearLR: start_factor expected to be greater than 0 and less or "
                             f"equal to 1, but got {start_factor}")
        if not 0 <= end_factor <= 1:
            raise ValueError(f"LinearLR: end_factor expected to be between 0 and 1, but got "
                             f"{end_factor}")
        _check_int(self, "total_iters", total_iters, 1)
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        progress = min(self.last_epoch, self.total_iters) / self.total_iters
        factor = self.start_factor + (self.end_factor - self.start_factor) * progress
        return [base_lr * factor for base_lr in self.base_lrs]


# the name the lecture uses for a warm-up
LinearWarmup = LinearLR
