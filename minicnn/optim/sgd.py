"""Stochastic gradient descent, with momentum, Nesterov momentum and weight decay."""
from minicnn.optim.optimizer import Optimizer


class SGD(Optimizer):
    r"""``SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
    maximize=False)``, PyTorch's rule. For each parameter ``p`` with gradient ``g``::

        g   = -g                           if maximize
        g   = g + weight_decay * p         (L2 penalty folded into the gradient)
        buf = g                            on the first step with momentum
        buf = momentum * buf + (1 - dampening) * g     afterwards
        g   = g + momentum * buf           if nesterov
        g   = buf                          otherwise (when momentum != 0)
        p   = p - lr * g

    NOTE: this is PyTorch's form of momentum (lr outside the buffer), not Sutskever's
    ``v = momentum * v - lr * g; p = p + v``; the two agree while lr is constant but differ once a
    scheduler changes lr.
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                 maximize=False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, group, where):
        super()._check_options(group, where)
        name = type(self).__name__
        if not group["momentum"] >= 0.0:
            raise ValueError(f"{name}: invalid momentum={group['momentum']}{where}; it must be "
                             ">= 0")
        if not group["weight_decay"] >= 0.0:
            raise ValueError(f"{name}: invalid weight_decay={group['weight_decay']}{where}; it "
                             "must be >= 0")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"{name}: Nesterov momentum requires momentum > 0 and dampening = 0"
                             f" (got momentum={group['momentum']}, "
                             f"dampening={group['dampening']}{where})")

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns ``closure()``'s loss."""
        loss = self._evaluate(closure)
        for group in self.param_groups:
            # Python floats are "weak" scalars: they take the array's dtype, so float32 stays
            # float32 (a NumPy float64 scalar here would promote the temporaries to float64)
            lr = float(group["lr"])
            momentum = float(group["momentum"])
            dampening = float(group["dampening"])
            weight_decay = float(group["weight_decay"])
            for p in group["params"]:
                if p.grad is None:  # frozen or unused in this loss: leave it alone
                    continue
                param, g = p.data, p.grad
                # g may be p.grad itself, so every change of g below makes a new array
                if group["maximize"]:
                    g = -g
                if weight_decay != 0:
                    g = g + weight_decay * param
                if momentum != 0:
                    state = self.state.setdefault(p, {})
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        # a copy: g may be p.grad, which zero_grad(set_to_none=False) zeroes
                        buf = state["momentum_buffer"] = g.copy()
                    else:
                        buf *= momentum
                        if dampening == 0:
                            buf += g
                        else:
                            buf += (1 - dampening) * g
                    g = g + momentum * buf if group["nesterov"] else buf
                param -= lr * g
        return loss
