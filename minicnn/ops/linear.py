"""The fully connected layer as one op: ``y = x @ W.T + b`` with ``W`` of shape (out, in).

One fused op instead of matmul + transpose + add: three GEMMs and a sum, and no graph nodes in
between (small nets like LeNet spend much of their time in Python per op).
"""
from minicnn import threads
from minicnn.autograd import Function, as_tensor


class Linear(Function):
    def forward(self, x, w, b=None):
        self.x, self.w, self.has_bias = x, w, b is not None
        y = threads.matmul(x, w.T)   # all BLAS threads only for a large product
        if b is not None:
            y += b
        return y

    def backward(self, gy):
        # only the products someone needs: a frozen weight gets no gW, and the first trainable
        # layer after a frozen backbone (its input needs no gradient) gets no gx
        need_x, need_w, *need_b = self.needs_input_grad
        gy2 = gy.reshape(-1, gy.shape[-1])
        gx = gw = gb = None
        if need_x:
            gx = threads.matmul(gy, self.w)     # (..., out) @ (out, in) -> (..., in)
        if need_w:
            x2 = self.x.reshape(-1, self.x.shape[-1])
            gw = threads.matmul(gy2.T, x2)      # (out, M) @ (M, in) -> (out, in)
        if not self.has_bias:
            return gx, gw
        if need_b[0]:
            gb = gy2.sum(axis=0)
        return gx, gw, gb


def linear(x, weight, bias=None):
    """``x @ weight.T + bias``; ``x`` is (..., in_features), ``weight`` (out_features,
    in_features), ``bias`` (out_features,). Output (..., out_features)."""
    x, weight = as_tensor(x), as_tensor(weight)
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be (out_features, in_features), got shape "
                         f"{tuple(weight.shape)}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        features = x.shape[-1] if x.ndim else 0
        raise ValueError(f"linear: input of shape {tuple(x.shape)} has {features} "
                         f"features but the weight {tuple(weight.shape)} expects "
                         f"{weight.shape[1]}")
    if x.dtype != weight.dtype:  # NumPy would silently promote the whole layer to float64
        raise TypeError(f"linear: input is {x.dtype} but the weight is {weight.dtype}; convert "
                        f"the input (x.float() for float32) or the layer "
                        f"(model.to(dtype=np.{x.dtype}))")
    if bias is None:
        return Linear()(x, weight)
    bias = as_tensor(bias)
    if bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got "
                         f"{tuple(bias.shape)}")
    return Linear()(x, weight, bias)
