"""Adam (Kingma & Ba, 2015, https://arxiv.org/abs/1412.6980) and AdamW (Loshchilov & Hutter,
2019, https://arxiv.org/abs/1711.05101)."""
import math

from minicnn import backend
from minicnn.optim.optimizer import Optimizer


class Adam(Optimizer):
    r"""``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False)``,
    PyTorch's rule. At step ``t = 1, 2, ...`` for each parameter ``p`` with gradient ``g``::

        g     = -g                                 if maximize
        g     = g + weight_decay * p               (Adam: L2 penalty inside the gradient)
        p     = p * (1 - lr * weight_decay)        (AdamW instead: decoupled weight decay)
        m     = beta1 * m + (1 - beta1) * g        first moment (running mean of g)
        v     = beta2 * v + (1 - beta2) * g**2     second moment (running mean of g**2)
        v_max = max(v_max, v)                      if amsgrad, and v_max replaces v below
        m_hat = m / (1 - beta1**t)                 bias corrections: m, v start at zero
        v_hat = v / (1 - beta2**t)
        p     = p - lr * m_hat / (sqrt(v_hat) + eps)

    The last line is computed as PyTorch does it,
    ``p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)``.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, maximize=False, decoupled_weight_decay=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _check_options(self, group, where):
        super()._check_options(group, where)
        name = type(self).__name__
        betas = group["betas"]
        try:
            beta1, beta2 = betas
            valid = 0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise ValueError(f"{name}: invalid betas={betas!r}{where}; expected a pair "
                             "(beta1, beta2) with 0 <= beta < 1, such as (0.9, 0.999)")
        if not group["eps"] >= 0.0:
            raise ValueError(f"{name}: invalid eps={group['eps']}{where}; it must be >= 0")
        if not group["weight_decay"] >= 0.0:
            raise ValueError(f"{name}: invalid weight_decay={group['weight_decay']}{where}; it "
                             "must be >= 0")

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns ``closure()``'s loss."""
        loss = self._evaluate(closure)
        for group in self.param_groups:
            # Python floats keep float32 arrays float32 (NumPy float64 scalars would not)
            lr = float(group["lr"])
            beta1, beta2 = (float(b) for b in group["betas"])
            eps = float(group["eps"])
            weight_decay = float(group["weight_decay"])
            for p in group["params"]:
                if p.grad is None:  # frozen or unused in this loss: leave it alone
                    continue
                param, g = p.data, p.grad
                xp = backend.get_array_module(param)
                state = self.state.setdefault(p, {})
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = xp.zeros_like(param)      # m
                    state["exp_avg_sq"] = xp.zeros_like(param)   # v
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = xp.zeros_like(param)
                state["step"] += 1
                step = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]

                # g may be p.grad itself, so every change of g below makes a new array
                if group["maximize"]:
                    g = -g
                if weight_decay != 0:
                    if group["decoupled_weight_decay"]:
                        # AdamW: shrink p directly, so the decay is not rescaled by 1/sqrt(v)
                        param *= 1 - lr * weight_decay
                    else:
                        g = g + weight_decay * param

                m *= beta1
                m += (1 - beta1) * g
                v *= beta2
                v += (1 - beta2) * g * g
                if group["amsgrad"]:
                    # the largest v so far: the effective step size can only shrink
                    xp.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
                    v = state["max_exp_avg_sq"]

                # Python-float arithmetic (math, not np.sqrt) so no float64 scalar leaks in
                step_size = lr / (1 - beta1 ** step)
                bias_correction2_sqrt = math.sqrt(1 - beta2 ** step)
                update = xp.sqrt(v)                 # one scratch array, reused below
                update /= bias_correction2_sqrt
                update += eps                       # denominator sqrt(v_hat) + eps
                xp.divide(m, update, out=update)    # m / denominator
                update *= step_size
                param -= update
        return loss


class AdamW(Adam):
    r"""``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
    amsgrad=False)``: Adam with decoupled weight decay. The parameter is shrunk directly,
    ``p = p * (1 - lr * weight_decay)``, before the Adam step, instead of adding
    ``weight_decay * p`` to the gradient (where Adam's 1/sqrt(v) scaling would weaken the decay
    of parameters with large gradients). See :class:`Adam` for the rest of the rule.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=True)
