"""``Module``: the base class of every layer and every network.

A module is a tree. Each node keeps three ordered registries, filled by plain attribute
assignment in ``__init__``:

- ``_parameters``: the ``Parameter`` objects assigned to it (``self.weight = Parameter(...)``),
- ``_buffers``: state that is saved but not trained (``register_buffer``: running means...),
- ``_modules``: the sub-modules assigned to it (``self.fc = Linear(3, 4)``).

Everything else is a walk over that tree: ``named_parameters`` and ``state_dict`` visit a node's
own entries in registration order and then its children, which gives exactly PyTorch's names
(``features.0.weight``) and key order, so checkpoints and torchvision weights load by name.
"""
import itertools
from collections import OrderedDict, namedtuple

import numpy as np

from minicnn import backend
from minicnn.autograd import Tensor
from minicnn.nn.parameter import Parameter


class StateDictError(RuntimeError):
    """``load_state_dict`` found keys or shapes that do not match the model.

    The message lists every problem at once; the lists are also kept as ``missing_keys``,
    ``unexpected_keys`` and ``mismatched`` (``(key, checkpoint_shape, model_shape)`` triples).
    """

    def __init__(self, message, missing_keys=(), unexpected_keys=(), mismatched=()):
        super().__init__(message)
        self.missing_keys = list(missing_keys)
        self.unexpected_keys = list(unexpected_keys)
        self.mismatched = list(mismatched)


def is_optional_key(key):
    """True for a key a checkpoint may lack: batch norm's ``num_batches_tracked`` (torchvision's
    published files predate that counter)."""
    return key.rsplit(".", 1)[-1] == "num_batches_tracked"


class IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict(..., strict=False)`` could not match (PyTorch's return value).

    ``kept_keys`` (not part of the tuple): optional buffers the state dict lacked, left as they
    were (PyTorch accepts them silently; minicnn says so in the repr)."""

    def __new__(cls, missing_keys, unexpected_keys, kept_keys=()):
        self = super().__new__(cls, missing_keys, unexpected_keys)
        self.kept_keys = list(kept_keys)
        return self

    def __repr__(self):
        kept = f" (not in the state dict, kept: {', '.join(self.kept_keys)})" * bool(self.kept_keys)
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>" + kept
        return super().__repr__() + kept

    __str__ = __repr__


class RemovableHandle:
    """Returned by ``register_forward_hook``: ``handle.remove()`` unregisters the hook. Also a
    context manager, so ``with module.register_forward_hook(f): ...`` removes it afterwards."""

    _ids = itertools.count()

    def __init__(self, hooks):
        self.hooks, self.id = hooks, next(RemovableHandle._ids)

    def remove(self):
        self.hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def _addindent(text, spaces):
    """Indent every line but the first (how PyTorch nests the reprs of children)."""
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return "\n".join([lines[0]] + [" " * spaces + line if line.strip() else ""
                                   for line in lines[1:]])


def _host_copy(array):
    """A NumPy copy of ``array`` (from the GPU when it lives there), never a view of it."""
    return array.get() if backend.device_of(array) == "cuda" else np.array(array, copy=True)


def _checkpoint_array(value):
    """A checkpoint entry as an array: ndarray, CuPy array, Tensor, or anything np.asarray takes."""
    if isinstance(value, Tensor):
        return value.data
    if backend.device_of(value) == "cuda":
        return value
    return np.asarray(value)


def _parse_to_args(args, device, dtype):
    """``to("cuda")``, ``to(np.float64)``, ``to("cuda", np.float64)`` or keywords -> (device,
    dtype)."""
    for arg in args:
        if arg is None:
            continue
        if isinstance(arg, Tensor):  # to(other_tensor): match its device and dtype
            device, dtype = arg.device, arg.dtype
        elif isinstance(arg, str) and (arg.lower() in backend.DEVICES or
                                     arg.lower().startswith("cuda:")):
            device = arg
        else:
            try:
                dtype = np.dtype(arg)
            except TypeError:
                raise TypeError(f"Module.to: expected a device ('cpu', 'cuda') or a dtype "
                                f"(np.float32, np.float64), got {arg!r}") from None
    if dtype is not None:
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"Module.to only casts to floating-point dtypes, got {dtype}")
    return device, dtype


class Module:
    """Base class of all layers and networks (PyTorch's ``nn.Module``).

    Subclasses call ``super().__init__()`` first, assign their parameters and sub-modules as
    attributes, and implement ``forward``. Calling the module runs ``forward`` (and the forward
    hooks, when there are any).
    """

    def __init__(self):
        # object.__setattr__: our own __setattr__ needs these dictionaries to exist already
        set_ = object.__setattr__
        set_(self, "training", True)
        set_(self, "_parameters", {})
        set_(self, "_buffers", {})
        set_(self, "_non_persistent_buffers_set", set())
        set_(self, "_modules", {})
        set_(self, "_forward_pre_hooks", {})
        set_(self, "_forward_hooks", {})

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward(): every Module "
                                  "subclass must define forward(self, ...)")

    def __call__(self, *args, **kwargs):
        # the common case, no hooks, goes straight to forward: small nets call this a lot
        if self._forward_hooks or self._forward_pre_hooks:
            return self._call_with_hooks(args, kwargs)
        return self.forward(*args, **kwargs)

    def _call_with_hooks(self, args, kwargs):
        for hook in list(self._forward_pre_hooks.values()):
            new_args = hook(self, args)
            if new_args is not None:
                args = new_args if isinstance(new_args, tuple) else (new_args,)
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            new_output = hook(self, args, output)
            if new_output is not None:
                output = new_output
        return output

    # ---- hooks -------------------------------------------------------------------------------
    def register_forward_pre_hook(self, hook):
        """Call ``hook(module, args)`` before ``forward``; a non-None result replaces the
        positional arguments (a single value is wrapped in a tuple). Returns a handle."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    def register_forward_hook(self, hook):
        """Call ``hook(module, args, output)`` after ``forward``; a non-None result replaces the
        output. Returns a handle whose ``remove()`` unregisters the hook."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    # ---- registration ------------------------------------------------------------------------
    def _check_new_name(self, name, kind):
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
        if name == "" or "." in name:
            raise KeyError(f"{kind} name can't be empty or contain '.', got {name!r}")
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot register a {kind} before Module.__init__() has run: "
                                 f"call super().__init__() first in {type(self).__name__}"
                                 ".__init__")

    def _forget(self, name, keep=None):
        """Remove ``name`` from every registry but ``keep`` (the one it is about to be stored
        in: replacing an entry there keeps its position, and so the state_dict key order)."""
        self.__dict__.pop(name, None)
        for registry in (self._parameters, self._buffers, self._modules):
            if registry is not keep:
                registry.pop(name, None)
        self._non_persistent_buffers_set.discard(name)

    def register_parameter(self, name, param):
        """Register ``param`` (a ``Parameter`` or ``None``) under ``name``."""
        self._check_new_name(name, "parameter")
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute '{name}' already exists")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter "
                            f"'{name}' (nn.Parameter or None required)")
        self._forget(name, keep=self._parameters)
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Register state that is not trained, such as batch norm's running mean.

        ``tensor`` may be a Tensor, an array, anything ``np.asarray`` takes, or ``None``. It is
        kept as a ``Tensor`` (without gradient), moved by ``to()`` and, when ``persistent``,
        saved in ``state_dict()``.
        """
        self._check_new_name(name, "buffer")
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        self._forget(name, keep=self._buffers)
        self._buffers[name] = self._as_buffer(name, tensor)
        if not persistent:
            self._non_persistent_buffers_set.add(name)

    @staticmethod
    def _as_buffer(name, value):
        if value is None or isinstance(value, Tensor):
            if isinstance(value, Parameter):
                raise TypeError(f"cannot register the Parameter '{name}' as a buffer: use "
                                "register_parameter (buffers are not trained)")
            return value
        return Tensor(value)

    def add_module(self, name, module):
        """Register ``module`` (a ``Module`` or ``None``) as the child ``name``."""
        if module is not None and not isinstance(module, Module):
            if isinstance(module, type) and issubclass(module, Module):
                raise TypeError(f"module '{name}' is the class {module.__name__}, not a module: "
                                f"create one first, {module.__name__}(...)")
            raise TypeError(f"module '{name}': {type(module).__name__} is not a Module")
        self._check_new_name(name, "module")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        self._forget(name, keep=self._modules)
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name, value):
        d = self.__dict__
        if isinstance(value, (Parameter, Module)):
            if "_parameters" in d:  # a plain attribute or buffer of that name gives way
                self._forget(name, keep=self._parameters if isinstance(value, Parameter)
                             else self._modules)
            if isinstance(value, Parameter):
                self.register_parameter(name, value)
            else:
                self.add_module(name, value)
        elif "_parameters" in d and name in d["_parameters"]:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                "(nn.Parameter or None expected)")
            d["_parameters"][name] = None
        elif "_modules" in d and name in d["_modules"]:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module "
                                f"'{name}' (nn.Module or None expected)")
            d["_modules"][name] = None
        elif "_buffers" in d and name in d["_buffers"]:
            d["_buffers"][name] = self._as_buffer(name, value)
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # only called when normal lookup fails. Read __dict__ directly: during copy/pickle the
        # registries may not exist yet, and self._parameters would recurse back here.
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in d and name in d[registry]:
                return d[registry][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) |
                      set(self._modules))

    # ---- walking the tree --------------------------------------------------------------------
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """Yield ``(name, module)`` for this module ('' or ``prefix``) and every descendant,
        depth first in registration order (``features``, ``features.0``, ...). A module
        reachable by two paths is yielded once unless ``remove_duplicate=False``."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if self in memo:
                return
            memo.add(self)
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                yield from module.named_modules(memo, prefix + ("." if prefix else "") + name,
                                                remove_duplicate)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        """Yield ``(name, child)`` for the direct sub-modules (each module once)."""
        seen = set()
        for name, module in self._modules.items():
            if module is not None and module not in seen:
                seen.add(module)
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry, prefix, recurse, remove_duplicate=True):
        # one tensor shared by two modules (tied weights) is yielded once: an optimiser must not
        # update it twice
        seen = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in module.__dict__[registry].items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield module_prefix + ("." if module_prefix else "") + name, value

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """Yield ``(name, parameter)``: ``'0.weight'``, ``'0.bias'``, ... (shared ones once)."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        """Yield every parameter of this module and (with ``recurse``) of its descendants."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        """Yield ``(name, buffer)``, persistent or not."""
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    def get_submodule(self, target):
        """The descendant named ``target`` (``'features.0'``); ``''`` is this module."""
        module = self
        for part in target.split(".") if target else []:
            child = module._modules.get(part)
            if child is None:
                raise AttributeError(f"{type(module).__name__} has no sub-module '{part}' "
                                     f"(looking for '{target}')")
            module = child
        return module

    def apply(self, fn):
        """Call ``fn(module)`` on every descendant, children first, then on ``self`` (used for
        custom initialisation). Returns ``self``."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # ---- modes and gradients -----------------------------------------------------------------
    def train(self, mode=True):
        """Set training mode (dropout active, batch norm using batch statistics) on this module
        and all its descendants. Returns ``self``."""
        if not isinstance(mode, bool):
            raise ValueError(f"train(mode): mode must be True or False, got {mode!r}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        """Evaluation mode, ``train(False)``: dropout off, batch norm using running statistics."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        """Switch gradient tracking of every parameter on or off (freezing layers)."""
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Clear the gradients of all parameters: drop them (``None``, the default, which saves
        memory) or fill them with zeros."""
        for param in self.parameters():
            if set_to_none:
                param.grad = None
            elif param.grad is not None:
                param.grad[...] = 0

    # ---- devices and dtypes ------------------------------------------------------------------
    def to(self, *args, device=None, dtype=None):
        """Move and/or cast all parameters and buffers IN PLACE; returns ``self``.

        ``model.to("cuda")``, ``model.to(np.float64)``, ``model.to(device=..., dtype=...)``.
        The parameter objects stay the same objects (only their ``.data`` and ``.grad`` change),
        so an optimiser created before the move keeps working. Only floating-point tensors are
        cast; integer buffers (such as counters) keep their dtype.
        """
        device, dtype = _parse_to_args(args, device, dtype)
        if device is not None:
            device = backend.normalize_device(device)

        def convert(array):
            if dtype is not None and array.dtype.kind == "f" and array.dtype != dtype:
                array = array.astype(dtype)
            if device is not None:
                array = backend.to_device(array, device)
            return array

        for tensor in itertools.chain(self.parameters(), self.buffers()):
            tensor.data = convert(tensor.data)
            if tensor.grad is not None:
                tensor.grad = convert(tensor.grad)
        return self

    def cpu(self):
        return self.to(device="cpu")

    def cuda(self):
        return self.to(device="cuda")

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    # ---- checkpoints -------------------------------------------------------------------------
    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """An ordered dict ``name -> ndarray`` of all parameters and persistent buffers.

        Per module: its parameters, then its persistent buffers, in registration order, then
        each child's entries under ``child_name.`` -- PyTorch's key order. Values are NumPy
        COPIES (copied to the host from the GPU), so later training does not change a saved
        state. ``keep_vars=True`` gives the Tensor objects themselves instead. A parameter
        shared by two modules appears under both names, as in PyTorch.
        """
        if destination is None:
            destination = OrderedDict()
        for name, param in self._parameters.items():
            if param is not None:
                destination[prefix + name] = param if keep_vars else _host_copy(param.data)
        for name, buf in self._buffers.items():
            if buf is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = buf if keep_vars else _host_copy(buf.data)
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(destination, prefix + name + ".", keep_vars)
        return destination

    def load_state_dict(self, state_dict, strict=True):
        """Copy the values of ``state_dict`` into this module's parameters and buffers.

        Values may be ndarrays, CuPy arrays, Tensors or anything ``np.asarray`` takes. They are
        cast and copied INTO the existing arrays, so every tensor keeps its dtype, device and
        identity (an optimiser holding the parameters keeps working).

        Everything is checked before anything is copied: on an error the model is unchanged.
        With ``strict=True`` a missing key, an unexpected key or a shape mismatch raises one
        ``StateDictError`` listing all of them. With ``strict=False`` only shape mismatches
        raise; the matching entries are loaded and ``(missing_keys, unexpected_keys)`` returned.

        NOTE: a missing ``*.num_batches_tracked`` is not an error, even with ``strict=True``:
        torchvision's published checkpoints predate that counter. As in PyTorch the buffer keeps
        its current value (0 on a fresh model); PyTorch says nothing, minicnn lists such keys
        in the result's ``kept_keys`` (and its repr).
        """
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"load_state_dict expects a dict of name -> array, got "
                            f"{type(state_dict).__name__}")
        targets = self.state_dict(keep_vars=True)
        missing = [key for key in targets if key not in state_dict]
        kept = [key for key in missing if is_optional_key(key)]
        missing = [key for key in missing if not is_optional_key(key)]
        unexpected = [key for key in state_dict.keys() if key not in targets]
        mismatched, problems, copies = [], [], []
        for key, target in targets.items():
            if key not in state_dict:
                continue
            value = _checkpoint_array(state_dict[key])
            if value.dtype.kind not in "biufc":
                problems.append(f"value for {key} is not numeric (an array of dtype "
                                f"{value.dtype}, from a {type(state_dict[key]).__name__})")
            elif tuple(value.shape) != tuple(target.shape):
                mismatched.append((key, tuple(value.shape), tuple(target.shape)))
                problems.append(f"size mismatch for {key}: copying a param with shape "
                                f"{tuple(value.shape)} from checkpoint, the shape in current "
                                f"model is {tuple(target.shape)}.")
            else:
                copies.append((target, value))
        if strict:
            if unexpected:
                problems.insert(0, "Unexpected key(s) in state_dict: " +
                                ", ".join(f'"{k}"' for k in unexpected) + ".")
            if missing:
                problems.insert(0, "Missing key(s) in state_dict: " +
                                ", ".join(f'"{k}"' for k in missing) + ".")
        if problems:
            raise StateDictError(
                f"Error(s) in loading state_dict for {type(self).__name__} (nothing was "
                "loaded):\n\t" + "\n\t".join(problems), missing, unexpected, mismatched)
        for target, value in copies:
            # setitem casts to the target's dtype; the value first goes to the target's device
            target.data[...] = backend.to_device(value, target.device)
        return IncompatibleKeys(missing, unexpected, kept)

    # ---- printing ----------------------------------------------------------------------------
    def extra_repr(self):
        """The text inside this module's parentheses in ``repr`` (its constructor arguments)."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): " + _addindent(repr(module), 2)
                       for name, module in self._modules.items()]
        lines = extra_lines + child_lines
        text = type(self).__name__ + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                text += extra_lines[0]
            else:
                text += "\n  " + "\n  ".join(lines) + "\n"
        return text + ")"
