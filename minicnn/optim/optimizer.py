"""``Optimizer``: the base class every optimiser (SGD, Adam...) builds on.

An optimiser holds

- ``param_groups``: a list of dicts, each ``{'params': [tensors], 'lr': ..., ...}``. A group's
  options override the optimiser's ``defaults``, which is how a pre-trained backbone gets a
  smaller learning rate than a fresh head::

      SGD([{'params': backbone.parameters(), 'lr': 1e-3},
           {'params': head.parameters()}], lr=1e-2, momentum=0.9)

- ``state``: a dict keyed by the parameter tensor itself, holding what the rule remembers between
  steps (momentum buffers, Adam's moment estimates, the step count).

Subclasses implement ``step()``; they read ``p.grad`` and update ``p.data`` in place. Parameters
whose ``.grad`` is None (frozen, or not used by this loss) are skipped. Everything is written
against the parameter's own array module, so the same code updates NumPy and CuPy parameters.
"""
import copy

import numpy as np

from minicnn import backend
from minicnn.autograd import Tensor, enable_grad


def _host_copy(value):
    """A NumPy copy of an array (fetched from the GPU when needed); other values as they are."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if backend.device_of(value) == "cuda":
        return value.get()
    return copy.deepcopy(value)


# a set's order changes from run to run, and state_dict() names parameters by their position
_SET_MESSAGE = ("optimizer parameters must be an ordered collection (a list), not a set: the "
                "order of a set changes between runs, so a checkpoint would not load back")


class Optimizer:
    """Base class: ``Optimizer(params, defaults)``.

    ``params`` is an iterable of Tensors, or of dicts (parameter groups) with a ``'params'`` key
    and any options that should differ from ``defaults`` in that group.
    """

    def __init__(self, params, defaults):
        if isinstance(params, Tensor):
            raise TypeError(
                "params given to the optimizer should be an iterable of Tensors or dicts, but got "
                "a single Tensor; wrap it in a list: [tensor]")
        if isinstance(params, dict):
            raise TypeError(
                "params given to the optimizer should be an iterable of Tensors or of dicts "
                "(parameter groups), but got one dict; wrap it in a list: [group]")
        if isinstance(params, (set, frozenset)):
            raise TypeError(_SET_MESSAGE)
        self.defaults = dict(defaults)
        self._check_options(self.defaults, where="")
        self.state = {}
        self.param_groups = []

        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError(
                "optimizer got an empty parameter list: did the model define any parameters, and "
                "was model.parameters() (a generator) already consumed by an earlier call?")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    # ---- options --------------------------------------------------------------------------
    def _check_options(self, group, where):
        """Raise ValueError for a bad option in ``group`` (or the defaults). Subclasses extend."""
        lr = group.get("lr")
        if lr is not None and not lr >= 0.0:  # `not >=` also rejects NaN
            raise ValueError(f"{type(self).__name__}: invalid learning rate lr={lr}{where}; "
                             "it must be >= 0")

    def add_param_group(self, param_group):
        """Add a group ``{'params': [...], option: value...}``; missing options take the defaults.

        Useful when fine-tuning: unfreeze a layer and hand its parameters to the optimiser.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("a parameter group needs a 'params' key holding its tensors")
        group = dict(param_group)  # do not write into the caller's dict
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(_SET_MESSAGE)
        else:
            params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but params[{i}] of group "
                                f"{len(self.param_groups)} is {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(
                    f"can't optimize a non-leaf Tensor (params[{i}] of group "
                    f"{len(self.param_groups)} was computed from other tensors); optimize the "
                    "tensor it was computed from, or .detach() it and set requires_grad=True")
        if len(params) == 0:
            raise ValueError(f"parameter group {len(self.param_groups)} has no parameters")
        # identity, not ==: Tensor.__eq__ compares values element-wise
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"parameter group {len(self.param_groups)} contains the same "
                             "parameter twice; it would be updated twice per step")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group; each "
                             "parameter must belong to exactly one group")
        group["params"] = params
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self._check_options(group, where=f" in parameter group {len(self.param_groups)}")
        self.param_groups.append(group)

    # ---- the update ---------------------------------------------------------------------------
    def step(self, closure=None):
        """Update every parameter that has a gradient. ``closure`` (optional) re-evaluates the
        model and returns the loss; its result is returned."""
        raise NotImplementedError

    def _evaluate(self, closure):
        """Run ``closure`` with gradients recorded (for ``step(closure)``)."""
        if closure is None:
            return None
        with enable_grad():
            return closure()

    def zero_grad(self, set_to_none=True):
        """Clear the gradients of all parameters.

        ``set_to_none=True`` (the default, as in PyTorch) drops the arrays, so the next
        ``backward()`` allocates fresh ones and a parameter untouched by it stays skipped;
        ``False`` fills the existing arrays with zeros in place.
        """
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.fill(0)

    # ---- checkpoints ---------------------------------------------------------------------------
    def state_dict(self):
        """The optimiser's state as plain, picklable Python: ``{'state': {index: {name: value}},
        'param_groups': [{option: value, 'params': [index, ...]}]}``.

        As in PyTorch, parameters are named by their position counted across all groups (the
        tensors themselves are not saved: the model's checkpoint holds them). Arrays are copied
        to NumPy, so the dict is a snapshot that later steps do not change.
        """
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index[id(p)] = len(index)
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {}
        for p, p_state in self.state.items():
            state[index[id(p)]] = {k: _host_copy(v) for k, v in p_state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore what ``state_dict()`` returned, onto this optimiser's own parameters.

        The groups must have the same sizes as when it was saved. The group options (lr,
        momentum...) are taken from the checkpoint; arrays are copied onto each parameter's
        device and dtype, so training continues exactly where it stopped.
        """
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            keys = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict)
            raise ValueError("an optimizer state dict has exactly the keys 'state' and "
                             f"'param_groups', but this one has {keys}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups but "
                             f"the optimizer has {len(self.param_groups)}")
        saved_sizes = [len(g["params"]) for g in saved_groups]
        sizes = [len(g["params"]) for g in self.param_groups]
        if saved_sizes != sizes:
            raise ValueError(f"loaded state dict has parameter groups of sizes {saved_sizes} "
                             f"but the optimizer's groups have sizes {sizes}")

        # saved index -> this optimiser's parameter
        params = {}
        for saved, group in zip(saved_groups, self.param_groups):
            params.update(zip(saved["params"], group["params"]))

        unknown = sorted(set(state_dict["state"]) - set(params))
        if unknown:
            raise ValueError(f"loaded state dict has state for parameter indices {unknown}, "
                             f"which are not in any of its parameter groups")
        mismatched = []
        new_state = {}
        for i, saved_state in state_dict["state"].items():
            p = params[i]
            p_state = {}
            for name, value in saved_state.items():
                if isinstance(value, np.ndarray) or backend.device_of(value) == "cuda":
                    if tuple(value.shape) != p.shape:
                        mismatched.append(f"param {i} '{name}': saved {tuple(value.shape)}, "
                                          f"parameter {p.shape}")
                        continue
                    # copy, cast to the parameter's dtype, and move to its device
                    value = backend.to_device(np.array(backend.to_numpy(value), dtype=p.dtype),
                                              p.device)
                else:
                    value = copy.deepcopy(value)
                p_state[name] = value
            new_state[p] = p_state
        if mismatched:
            raise ValueError("loaded state dict does not match the parameters' shapes:\n  "
                             + "\n  ".join(mismatched))

        self.state = new_state
        new_groups = []
        for saved, group in zip(saved_groups, self.param_groups):
            new_group = {k: copy.deepcopy(v) for k, v in saved.items() if k != "params"}
            new_group["params"] = group["params"]
            new_groups.append(new_group)
        self.param_groups = new_groups

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)
