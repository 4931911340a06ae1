"""Numerical gradient checks: is ``backward`` right?

For inputs ``x`` and a function ``y = fn(x)`` we check the gradient of the scalar
``L(x) = sum(y * v)`` for a fixed random ``v`` (so every output element takes part). The
analytic gradient comes from ``backward``; the numerical one from central differences,

    dL/dx . d  ~  (L(x + eps d) - L(x - eps d)) / (2 eps),

in float64 (in float32 the rounding error of L swamps the difference). For a small input we
perturb one element at a time (``d`` a unit vector); for a large one, such as a conv weight, we
check along a few random directions ``d``: one pair of evaluations per direction instead of one
per element, and a wrong gradient still shows, because a random direction is almost never
orthogonal to the error.
"""
import copy

import numpy as np

from minicnn import random as mc_random
from minicnn.autograd import Tensor, no_grad


class GradcheckError(AssertionError):
    """Raised by :func:`gradcheck` with a message that says where and by how much it failed."""


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, max_elementwise=64, n_directions=6,
              seed=0):
    """Compare ``fn``'s backward with central differences; return True or raise GradcheckError.

    ``inputs``: a tensor or a sequence of tensors (and other arguments, passed through); those
    with ``requires_grad=True`` are checked. They are copied to float64 first. Inputs with at
    most ``max_elementwise`` elements are checked element by element, larger ones along
    ``n_directions`` random directions. ``fn`` must be deterministic (seed dropout inside it).
    """
    if isinstance(inputs, Tensor) or not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    xs = [_float64_copy(x) for x in inputs]
    checked = [i for i, x in enumerate(xs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, so there is nothing to check")
    rng = np.random.default_rng(seed)

    y = fn(*xs)
    if not isinstance(y, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(y).__name__}")
    xp = y.xp
    v = xp.asarray(rng.standard_normal(y.shape))

    def loss(arrays):
        with no_grad():
            out = fn(*arrays)
        return float((out.data * v).sum())

    y.backward(v)
    for i in checked:
        x = xs[i]
        analytic = x.grad
        if analytic is None:
            raise GradcheckError(
                f"gradcheck: input {i} (shape {tuple(x.shape)}) received no gradient at all: "
                "it does not reach the output, or a backward returned None for it")
        if x.numel() <= max_elementwise:
            directions = ((f"element {tuple(int(k) for k in np.unravel_index(j, x.shape))}",
                           _unit(xp, x.shape, j))
                          for j in range(x.numel()))
        else:
            directions = ((f"random direction {k} of {n_directions}",
                           xp.asarray(rng.standard_normal(x.shape)))
                          for k in range(n_directions))
        for where, d in directions:
            slope = _slopes(loss, xs, i, d, eps)
            numerical = slope["central"]
            predicted = float((analytic * d).sum())
            if abs(predicted - numerical) > atol + rtol * abs(numerical):
                raise GradcheckError(_explain(i, x, where, predicted, slope, eps, atol, rtol))
    return True


def _float64_copy(x):
    if not isinstance(x, Tensor):
        return x
    data = x.data.astype(np.float64) if x.dtype.kind == "f" else x.data.copy()
    return Tensor(data, requires_grad=x.requires_grad)


def _unit(xp, shape, j):
    d = xp.zeros(int(np.prod(shape)))
    d[j] = 1.0
    return d.reshape(shape)


def _slopes(loss, xs, i, d, eps):
    """Central, right and left difference quotients of ``loss`` at ``xs`` along ``d`` for
    input i."""
    def at(step):
        moved = list(xs)
        moved[i] = Tensor(xs[i].data + step * d)
        return loss(moved)
    plus, minus = at(eps), at(-eps)
    here = at(0.0)
    return {"central": (plus - minus) / (2 * eps), "right": (plus - here) / eps,
            "left": (here - minus) / eps}


def _explain(i, x, where, predicted, slope, eps, atol, rtol):
    numerical = slope["central"]
    lines = [
        f"gradcheck failed for input {i} (shape {tuple(x.shape)}), {where}:",
        f"  backward() gives          {predicted: .6g}",
        f"  central difference gives  {numerical: .6g}   (eps={eps:g}, in float64)",
        f"  |difference| = {abs(predicted - numerical):.3g} > atol + rtol*|numerical| = "
        f"{atol + rtol * abs(numerical):.3g}",
    ]
    left, right = slope["left"], slope["right"]
    if abs(left - right) > 10 * (atol + rtol * abs(numerical)):
        lines.append(
            f"Hint: the function has a kink here: the slope is {left:.6g} just left of this point "
            f"and {right:.6g} just right of it, so no single derivative exists. A ReLU input at 0, "
            "a tie in a max (max pooling) or an |x| at 0 is near: move the inputs away from kinks "
            "and ties and check again.")
    elif abs(predicted) < 1e-12 <= abs(numerical):
        lines.append("Hint: backward gives no gradient where the function clearly changes: a "
                     "gradient is dropped (a None or a wrong mask) on the way back.")
    elif abs(predicted + numerical) <= atol + rtol * abs(numerical):
        lines.append("Hint: the sign is flipped.")
    elif numerical and abs(predicted / numerical - round(predicted / numerical)) < 1e-3 and \
            round(predicted / numerical) not in (0, 1):
        lines.append(f"Hint: backward is {round(predicted / numerical)} times too large: a "
                     "gradient counted more than once?")
    elif predicted and abs(numerical / predicted - round(numerical / predicted)) < 1e-3 and \
            round(numerical / predicted) not in (0, 1):
        lines.append(f"Hint: backward is {round(numerical / predicted)} times too small: a "
                     "missing factor (the 2 of x**2, the 1/N of a mean) or a missed branch of "
                     "a tensor used twice?")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# A whole network at once
# ---------------------------------------------------------------------------------------------

def gradcheck_model(model, x, n_directions=2, eps=1e-6, atol=1e-6, rtol=1e-4, seed=0):
    """Check the gradient of every parameter (and of the input) of a whole network.

    The network is copied and cast to float64 (``model`` itself is not touched); the loss is
    ``sum(output * v)`` for a fixed random ``v``; each parameter is moved along ``n_directions``
    random unit directions ``d`` and the central difference of the loss is compared with
    ``grad . d`` from one ``backward()``. Dropout is re-seeded before every forward pass, so the
    same units are dropped each time; batch norm runs in training mode (batch statistics), as
    in training. Returns a list of dicts ``{name, shape, backward, numerical, error, ok}``, one
    per (parameter, direction), ``name == 'input'`` for the input; raises nothing, so that a
    student sees every row; ``all(r['ok'] for r in rows)`` is the verdict.
    """
    model = copy.deepcopy(model).to(dtype=np.float64)
    model.train()
    data = x.data if isinstance(x, Tensor) else np.asarray(x)
    x = Tensor(data.astype(np.float64), requires_grad=True)
    params = [("input", x)] + [(name, p) for name, p in model.named_parameters()
                               if p.requires_grad]
    rng = np.random.default_rng(seed)

    def outputs(inp):
        mc_random.manual_seed(seed)  # the same dropout masks in every pass
        out = model(inp)
        return list(out) if isinstance(out, tuple) else [out]

    first = outputs(x)
    weights = [Tensor(rng.standard_normal(o.shape)) for o in first]
    total = sum((o * w).sum() for o, w in zip(first, weights))
    model.zero_grad()
    total.backward()

    def loss():
        with no_grad():
            return float(sum(float((o.data * w.data).sum())
                             for o, w in zip(outputs(x), weights)))

    rows = []
    for name, p in params:
        grad = p.grad
        for _ in range(n_directions):
            d = rng.standard_normal(p.shape)
            d /= np.linalg.norm(d)
            original = p.data
            p.data = original + eps * d
            plus = loss()
            p.data = original - eps * d
            minus = loss()
            p.data = original
            numerical = (plus - minus) / (2 * eps)
            predicted = 0.0 if grad is None else float((grad * d).sum())
            error = abs(predicted - numerical)
            rows.append({"name": name, "shape": tuple(p.shape), "backward": predicted,
                         "numerical": numerical, "error": error,
                         "ok": bool(error <= atol + rtol * abs(numerical))})
    return rows
