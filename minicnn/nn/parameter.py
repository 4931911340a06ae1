"""``Parameter``: a tensor that a ``Module`` owns and an optimiser updates.

A parameter is an ordinary leaf ``Tensor`` with ``requires_grad=True`` by default. The separate
type exists for one reason: assigning a ``Parameter`` to a module attribute
(``self.weight = Parameter(...)``) registers it, so that ``parameters()``, ``state_dict()`` and
``to()`` find it, while a plain ``Tensor`` attribute stays a plain attribute.
"""
import numpy as np

from minicnn.autograd import Tensor


class Parameter(Tensor):
    """``Parameter(data=None, requires_grad=True)``: a trainable tensor of a module.

    ``data`` may be an array, a list or a ``Tensor`` (whose array is shared, not copied). As with
    ``Tensor``, Python floats become float32 and NumPy arrays keep their dtype, so a float64
    array gives a float64 parameter (the gradient checks use that). ``None`` gives an empty
    float32 parameter, like ``torch.nn.Parameter()``.
    """

    __slots__ = ()  # Tensor uses __slots__; a Parameter adds no fields of its own

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = np.empty(0, dtype=np.float32)
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
