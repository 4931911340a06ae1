"""Element-wise functions: exp, log, sqrt, abs, relu, tanh, sigmoid.

Each backward is the local derivative times the incoming gradient, written with what forward
already computed (``tanh' = 1 - y**2``, ``sigmoid' = y (1 - y)``, ``exp' = y``).
"""
from minicnn import backend
from minicnn.autograd import Function, as_tensor
from minicnn.kernels import elementwise


class Exp(Function):
    def forward(self, x):
        self.y = backend.get_array_module(x).exp(x)
        return self.y

    def backward(self, gy):
        return gy * self.y


class Log(Function):
    def forward(self, x):
        self.x = x
        return backend.get_array_module(x).log(x)

    def backward(self, gy):
        return gy / self.x


class Sqrt(Function):
    """``sqrt(x)``; its derivative ``1 / (2 sqrt(x))`` reuses the output (infinite at 0, as in
    PyTorch)."""

    def forward(self, x):
        self.y = backend.get_array_module(x).sqrt(x)
        return self.y

    def backward(self, gy):
        return gy / (2 * self.y)


class Abs(Function):
    """``|x|``; the derivative is ``sign(x)``, taken as 0 at the kink x = 0 (as in PyTorch)."""

    def forward(self, x):
        self.x = x
        return backend.get_array_module(x).abs(x)

    def backward(self, gy):
        return gy * backend.get_array_module(gy).sign(self.x)


class ReLU(Function):
    """``max(x, 0)``. NOTE: at exactly 0 the derivative is taken as 0 (as PyTorch does); a
    numerical gradient check straddling 0 sees a kink, so tests keep inputs away from it.

    The work is done by ``kernels/elementwise.py`` (``minicnn.kernels.elementwise``): its NumPy
    reference reads ``x * (x > 0)`` and ``gy * (y > 0)``; its numba twin does each in one pass on
    all cores.
    Backward needs only the output ``y`` (positive exactly where ``x`` is)."""

    def forward(self, x):
        self.y = elementwise.relu_forward(x)
        return self.y

    def backward(self, gy):
        return elementwise.relu_backward(gy, self.y)


class AddReLU(Function):
    """``max(a + b, 0)`` of two tensors of one shape, in one pass: the end of a residual block,
    ``relu(F(x) + x)``, without the sum's own array. Backward: the ReLU's gradient, which is the
    gradient of both summands (the sum passes it on unchanged)."""

    def forward(self, a, b):
        self.y = elementwise.add_relu(a, b)
        return self.y

    def backward(self, gy):
        g = elementwise.relu_backward(gy, self.y)
        return g, g


class Tanh(Function):
    def forward(self, x):
        self.y = backend.get_array_module(x).tanh(x)
        return self.y

    def backward(self, gy):
        return gy * (1 - self.y * self.y)


class Sigmoid(Function):
    def forward(self, x):
        # 1 / (1 + exp(-x)) overflows for large negative x; this identity never does
        self.y = 0.5 * (backend.get_array_module(x).tanh(0.5 * x) + 1)
        return self.y

    def backward(self, gy):
        return gy * self.y * (1 - self.y)


def exp(x):
    return Exp()(x)


def log(x):
    return Log()(x)


def sqrt(x):
    return Sqrt()(x)


def abs(x):
    return Abs()(x)


def relu(x):
    """``max(x, 0)`` element-wise."""
    return ReLU()(x)


def add_relu(a, b):
    """``relu(a + b)`` as one op for ``a`` and ``b`` of the same shape (``nn.residual_act`` uses
    it at the end of the ResNet blocks). Not in PyTorch, whose eager mode runs the two."""
    a, b = as_tensor(a), as_tensor(b)
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"add_relu: the two inputs must have the same shape (no broadcasting), "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")
    return AddReLU()(a, b)


def tanh(x):
    return Tanh()(x)


def sigmoid(x):
    """``1 / (1 + exp(-x))`` element-wise, computed without overflow."""
    return Sigmoid()(x)
