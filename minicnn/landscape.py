"""Around a trained net: loss landscapes, curvature and layer responses.

Three measurements that show why a skip connection helps, each taken at the trained weights
``theta``:

1. **Loss slices** (Li, Xu, Taylor, Studer, Goldstein 2018, "Visualizing the loss landscape of
   neural nets"): the training loss along ``theta + a*d1`` (1-D) and ``theta + a*d1 + b*d2``
   (2-D), where each direction ``d`` is Gaussian noise with every filter rescaled to the norm of
   the same filter of ``theta`` (:func:`filter_normalize`). A filter is one output channel of a
   conv weight (one row of a linear weight). Batch norm makes a conv's output blind to its
   filters' scale, so without this rescaling a slice of one net could not be compared with a
   slice of another. One-dimensional tensors (biases, batch norm's weight and bias) get a zero
   direction: the paper leaves them where training put them.
2. **Curvature**: the largest eigenvalue of the Hessian of the training loss, by power iteration
   (:func:`power_iteration`) on Hessian-vector products taken by central differences of two
   gradients, ``Hv ~ (g(theta + eps*v) - g(theta - eps*v)) / (2*eps)`` (:func:`hvp_central`):
   two backward passes, no double backward needed. The error is O(eps^2) from the third
   derivative plus rounding of order ``|g| * machine_eps / eps``; in float64 (the default here)
   ``eps = 1e-4`` keeps both small.
3. **Layer responses** (He et al. 2016, Fig. 7): the standard deviation of each 3x3 layer's
   output after batch norm, before the addition and the ReLU, and per residual block the ratio
   ``||F(x)|| / ||x||`` of the residual branch to the identity it is added to: how close each
   block stays to the identity.

The loss is evaluated with batch norm in eval mode (its running statistics fixed), on batches
the caller chooses and keeps fixed, so every point of a slice sees the same function of the
weights.
"""
import copy

import numpy as np
from tqdm.auto import tqdm

import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn.autograd import Tensor, no_grad

# ---------------------------------------------------------------------------------------------
# Directions and the loss along them
# ---------------------------------------------------------------------------------------------


def filter_normalize(direction, weight):
    """``direction`` rescaled filter by filter to the norms of ``weight``'s filters.

    A filter is a slice along axis 0 (an output channel of a conv, a row of a linear layer). A
    1-D tensor (a bias, batch norm's weight or bias) gets zeros: it is left fixed.
    """
    direction = np.asarray(direction, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    if direction.shape != weight.shape:
        raise ValueError(f"filter_normalize: direction {direction.shape} and weight "
                         f"{weight.shape} differ in shape")
    if weight.ndim <= 1:
        return np.zeros_like(direction)
    axes = tuple(range(1, weight.ndim))
    d_norm = np.sqrt((direction ** 2).sum(axis=axes, keepdims=True))
    w_norm = np.sqrt((weight ** 2).sum(axis=axes, keepdims=True))
    return direction * (w_norm / np.maximum(d_norm, 1e-12))


def parameter_arrays(model):
    """``{name: array}`` of the model's trainable parameters (the arrays themselves)."""
    return {name: p.data for name, p in model.named_parameters() if p.requires_grad}


def random_direction(model, seed=0):
    """A filter-normalised Gaussian direction ``{name: array}`` for every trainable parameter."""
    rng = np.random.default_rng(seed)
    return {name: filter_normalize(rng.standard_normal(w.shape), w).astype(w.dtype)
            for name, w in parameter_arrays(model).items()}


def _set_parameters(model, base, directions, coefficients):
    """Set every parameter to ``base + sum(c * d)`` in place (arrays keep their dtype)."""
    for name, p in model.named_parameters():
        if name not in base:
            continue
        value = base[name].copy()
        for c, d in zip(coefficients, directions):
            value += np.asarray(c * d[name], dtype=value.dtype)
        p.data[...] = value


def batch_loss(model, batches, loss_fn=F.cross_entropy):
    """Mean loss over the fixed ``batches`` (a list of ``(images, labels)`` NumPy arrays), with
    no graph built; each batch weighs by its size."""
    total, count = 0.0, 0
    with no_grad():
        for images, labels in batches:
            loss = loss_fn(model(Tensor(images)), Tensor(labels))
            total += float(loss.item()) * len(images)
            count += len(images)
    return total / count


def _eval_copy(model, dtype=None):
    clone = copy.deepcopy(model)
    if dtype is not None:
        clone.to(dtype=dtype)
    return clone.eval()


def _as_dtype(batches, dtype):
    return [(np.asarray(x, dtype=dtype), np.asarray(y)) for x, y in batches]


def loss_slice_1d(model, batches, steps=np.linspace(-1.0, 1.0, 21), seed=0,
                  loss_fn=F.cross_entropy, progress=True):
    """The loss at ``theta + a*d`` for each ``a`` in ``steps`` along one random filter-normalised
    direction ``d``. Returns ``{"steps": array, "loss": array}``. The model is not changed."""
    net = _eval_copy(model)
    base = {k: v.copy() for k, v in parameter_arrays(net).items()}
    direction = random_direction(net, seed)
    steps = np.asarray(steps, dtype=np.float64)
    losses = []
    for a in tqdm(steps, desc="1-D slice", disable=not progress, leave=False):
        _set_parameters(net, base, [direction], [a])
        losses.append(batch_loss(net, batches, loss_fn))
    return {"steps": steps, "loss": np.asarray(losses)}


def loss_slice_2d(model, batches, steps=np.linspace(-1.0, 1.0, 11), seed=0,
                  loss_fn=F.cross_entropy, progress=True):
    """The loss on the plane ``theta + a*d1 + b*d2`` (two independent random filter-normalised
    directions, seeds ``seed`` and ``seed + 1``). Returns ``{"steps": array, "loss": 2-D array}``
    with ``loss[i, j]`` at ``a = steps[i]``, ``b = steps[j]``. The model is not changed."""
    net = _eval_copy(model)
    base = {k: v.copy() for k, v in parameter_arrays(net).items()}
    d1, d2 = random_direction(net, seed), random_direction(net, seed + 1)
    steps = np.asarray(steps, dtype=np.float64)
    grid = np.empty((len(steps), len(steps)))
    with tqdm(total=grid.size, desc="2-D slice", disable=not progress, leave=False) as bar:
        for i, a in enumerate(steps):
            for j, b in enumerate(steps):
                _set_parameters(net, base, [d1, d2], [a, b])
                grid[i, j] = batch_loss(net, batches, loss_fn)
                bar.update()
    return {"steps": steps, "loss": grid}


# ---------------------------------------------------------------------------------------------
# Curvature: Hessian-vector products by central differences, power iteration
# ---------------------------------------------------------------------------------------------


def hvp_central(grad, theta, v, eps=1e-4):
    """``H(theta) @ v`` from two gradients: ``(grad(theta + eps*v) - grad(theta - eps*v)) /
    (2*eps)``, exact for a quadratic loss up to rounding. ``grad`` maps a flat vector to the
    flat gradient."""
    theta, v = np.asarray(theta, dtype=np.float64), np.asarray(v, dtype=np.float64)
    return (np.asarray(grad(theta + eps * v)) - np.asarray(grad(theta - eps * v))) / (2 * eps)


def power_iteration(matvec, size, iterations=100, tol=1e-4, seed=0, progress=False):
    """The eigenvalue of largest magnitude of a symmetric operator given as ``matvec``.

    Starts from a random unit vector, applies ``matvec`` and renormalises until the Rayleigh
    quotient ``v . Av`` changes by less than ``tol`` (relative). Returns ``(eigenvalue,
    eigenvector, history)`` with the quotient after each iteration in ``history``.
    NOTE: a Hessian away from a minimum may have a negative eigenvalue larger in magnitude than
    the largest positive one; power iteration then returns that one (check the sign).
    """
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(size)
    v /= np.linalg.norm(v)
    history, eigenvalue = [], None
    for _ in tqdm(range(iterations), desc="power iteration", disable=not progress, leave=False):
        w = np.asarray(matvec(v), dtype=np.float64)
        quotient = float(v @ w)
        history.append(quotient)
        norm = np.linalg.norm(w)
        if norm == 0:
            return 0.0, v, history
        v = w / norm
        if eigenvalue is not None and abs(quotient - eigenvalue) <= tol * abs(quotient):
            eigenvalue = quotient
            break
        eigenvalue = quotient
    return eigenvalue, v, history


class FlatLoss:
    """A model's training loss on fixed batches as a function of one flat parameter vector.

    ``FlatLoss(model, batches)`` works on a float64 copy in eval mode (batch norm's running
    statistics fixed): ``flat.theta`` is the starting vector, ``flat.gradient(theta)`` the flat
    gradient at ``theta``, ``flat.hvp(v)`` the Hessian-vector product at the starting point.
    """

    def __init__(self, model, batches, loss_fn=F.cross_entropy, dtype=np.float64, eps=1e-4):
        self.net = _eval_copy(model, dtype)
        self.params = [p for p in self.net.parameters() if p.requires_grad]
        self.batches = _as_dtype(batches, dtype)
        self.loss_fn, self.eps = loss_fn, eps
        self.theta = np.concatenate([p.data.ravel() for p in self.params]).astype(np.float64)

    def _load(self, theta):
        offset = 0
        for p in self.params:
            p.data[...] = theta[offset:offset + p.data.size].reshape(p.data.shape)
            offset += p.data.size

    def gradient(self, theta):
        self._load(theta)
        total = np.zeros_like(self.theta)
        count = sum(len(x) for x, _ in self.batches)
        for images, labels in self.batches:
            for p in self.params:
                p.grad = None
            loss = self.loss_fn(self.net(Tensor(images)), Tensor(labels))
            loss.backward()
            grads = [np.zeros(p.data.size) if p.grad is None else
                     np.asarray(p.grad, dtype=np.float64).ravel() for p in self.params]
            total += np.concatenate(grads) * (len(images) / count)
        self._load(self.theta)
        return total

    def hvp(self, v):
        return hvp_central(self.gradient, self.theta, v, self.eps)


def largest_eigenvalue(matvec, size, iterations=100, tol=1e-4, seed=0, dominant=None,
                       progress=False):
    """The largest (most positive) eigenvalue of a symmetric operator, with its dominant one.

    Power iteration finds the eigenvalue of largest magnitude, ``dominant`` (measured here
    unless given). When it is negative, the largest eigenvalue is found by power iteration on
    the shifted operator ``A + |dominant| I``, whose eigenvalues all lie in
    ``[0, largest + |dominant|]``. Returns ``(largest, dominant, history)``, ``history`` the
    Rayleigh quotients of the last power iteration, unshifted.
    """
    history = []
    if dominant is None:
        dominant, _, history = power_iteration(matvec, size, iterations, tol, seed, progress)
    if dominant >= 0:
        return dominant, dominant, history
    shift = -dominant
    shifted, _, history = power_iteration(lambda v: matvec(v) + shift * np.asarray(v), size,
                                          iterations, tol, seed + 1, progress)
    return shifted - shift, dominant, [h - shift for h in history]


def top_hessian_eigenvalue(model, batches, loss_fn=F.cross_entropy, iterations=20, tol=1e-3,
                           seed=0, eps=1e-4, progress=True, dominant=None):
    """The largest eigenvalue of the training loss's Hessian at the model's weights (float64,
    eval mode, fixed ``batches``), by :func:`largest_eigenvalue`. Returns
    ``(largest, dominant, history)``: ``dominant`` is the eigenvalue of largest magnitude
    (equal to ``largest`` unless it is negative; pass a known one to skip measuring it)."""
    flat = FlatLoss(model, batches, loss_fn, eps=eps)
    return largest_eigenvalue(flat.hvp, flat.theta.size, iterations, tol, seed, dominant,
                              progress)


# ---------------------------------------------------------------------------------------------
# Layer responses (He et al. 2016, Fig. 7)
# ---------------------------------------------------------------------------------------------


def _norm_layers(model):
    """``(name, module)`` of each batch norm in forward order: in the CIFAR ResNets and their
    plain twins every one of them follows a 3x3 convolution."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]


def layer_responses(model, images):
    """Standard deviations of each 3x3 layer's response (after batch norm, before the addition
    and the ReLU) over batch, channels and positions, and for each residual block of a net with
    ``blocks()`` the ratio ``||F(x)|| / ||x||`` of the residual branch to the identity it is
    added to (for a plain block: to the block's input, which it replaces).

    Returns ``{"layers": [names], "std": [floats], "blocks": [names], "ratio": [floats]}``.
    """
    net = _eval_copy(model)
    layers = _norm_layers(net)
    if not layers:
        raise ValueError("layer_responses: the model has no BatchNorm2d layers to read the "
                         "responses after (a net built with norm=False has none)")
    stds, outputs, handles = {}, {}, []
    for name, module in layers:
        def record(m, args, out, name=name):
            stds[name] = float(out.data.std())
            outputs[id(m)] = out.data         # a block's bn2 output is its residual F(x)
        handles.append(module.register_forward_hook(record))
    ratios, block_names = [], []
    blocks = net.blocks() if hasattr(net, "blocks") else []
    names = {id(m): n for n, m in net.named_modules()}
    for block in blocks:
        block_names.append(names[id(block)])
        handles.append(block.register_forward_hook(
            lambda m, args, out: ratios.append(_block_ratio(m, args[0], outputs[id(m.bn2)]))))
    try:
        with no_grad():
            net(Tensor(np.asarray(images)))
    finally:
        for handle in handles:
            handle.remove()
    return {"layers": [n for n, _ in layers], "std": [stds[n] for n, _ in layers],
            "blocks": block_names, "ratio": ratios}


def _block_ratio(block, x, residual):
    """``||F(x)|| / ||x||`` of a CIFAR block: ``residual`` is F(x), its second batch norm's
    output; ``x`` is compared as it reaches the addition (through the shortcut)."""
    identity = x if getattr(block, "downsample", None) is None else block.downsample(x)
    return float(np.linalg.norm(residual) / max(np.linalg.norm(identity.data), 1e-12))
