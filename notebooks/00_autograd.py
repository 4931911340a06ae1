# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Autograd and gradient checks
#
# *Modern CNNs with minicnn, lecture notebook 0.*
#
# Every network of this course — LeNet, AlexNet, VGG, GoogLeNet, ResNet, DenseNet, U-Net — is
# trained the same way: a forward pass computes a loss, a backward pass computes the gradient of
# that loss for every parameter, and an optimiser moves the parameters against it. This notebook
# opens the backward pass: we build a tiny graph, call `backward()`, and check every gradient
# against finite differences — the check that every op in minicnn passes.
#
# The first cell reads the mode: `MINICNN_FAST=1` (what CI sets) shrinks every experiment; the
# committed outputs come from the normal mode.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import minicnn as mc
import minicnn.nn as nn
import minicnn.nn.functional as F

FAST = os.environ.get("MINICNN_FAST", "0") == "1"   # tiny data and short runs (CI)
mc.manual_seed(0)
rng = np.random.default_rng(0)
print(f"minicnn {mc.__version__}; mode: {'FAST (MINICNN_FAST=1)' if FAST else 'normal'}")

# %% [markdown]
# ## Why this lecture exists: ImageNet, 2010–2015
#
# The ImageNet Large Scale Visual Recognition Challenge (ILSVRC) asks for the right class among
# 1000 in the top five guesses. In 2012 a convolutional network, AlexNet (the team SuperVision),
# won with about 16% top-5 error, against 26% for the best entry that was not a CNN; in 2015
# ResNet's winning entry was below the 5.1% measured for a trained human annotator. The winners
# grew from 8 layers with weights (2012, 2013) to 22 (2014) and 152 (2015) — and each step
# needed a new idea to train that depth: ReLU and dropout (AlexNet), small stacked filters (VGG),
# cheap 1x1 bottlenecks (GoogLeNet), and shortcut connections (ResNet). The notebooks of this
# series rebuild each one.
#
# VGG did not win the classification task: it came second in 2014 (it won the localisation
# task), so the chart draws it as the runner-up beside that year's winner, GoogLeNet. Each bar is
# the top-5 error of a submitted entry on the challenge's test images (most entries were
# ensembles of several networks; the depth is that of the entry's network in its paper), with
# the ILSVRC training data only: AlexNet's team also submitted 15.3% with extra training data.

# %%
entries = [  # (year, entry, place in classification, top-5 error %, layers with weights)
    (2010, "NEC-UIUC", 1, 28.2, None), (2011, "XRCE", 1, 25.8, None),
    (2012, "AlexNet", 1, 16.4, 8), (2013, "Clarifai\n(ZFNet)", 1, 11.7, 8),
    (2014, "VGG", 2, 7.3, 19), (2014, "GoogLeNet", 1, 6.7, 22), (2015, "ResNet", 1, 3.57, 152)]
fig, ax = plt.subplots(figsize=(8, 4))
xs = np.arange(len(entries))
colors = ["0.6" if layers is None else "C0" for *_, layers in entries]
hatches = ["//" if place == 2 else "" for _, _, place, _, _ in entries]
bars = ax.bar(xs, [e for *_, e, _ in entries], color=colors, hatch=hatches,
              edgecolor="white")
for x, (year, name, place, err, layers) in zip(xs, entries):
    depth = "shallow\n(not a CNN)" if layers is None else f"{layers} layers"
    ranking = "\n2nd place" if place == 2 else ""
    ax.text(x, err + 0.5, f"{err}%\n{depth}{ranking}", ha="center", va="bottom", fontsize=8,
            bbox=dict(facecolor="white", edgecolor="none", pad=1), zorder=3)
ax.axhline(5.1, color="C3", linestyle="--", zorder=1, label="trained human annotator: 5.1%")
ax.legend(loc="upper right", fontsize=8)
ax.set_xticks(xs, [f"{year}\n{name}" for year, name, *_ in entries])
ax.set_ylabel("ImageNet top-5 error (%)")
ax.set_ylim(0, 34)
ax.set_title("ILSVRC classification: each year's winner, and VGG (2nd in 2014)")
plt.show()

# %% [markdown]
# ## A tiny graph
#
# A `mc.Tensor` holds an array (`.data`) and, when `requires_grad=True`, receives a gradient
# (`.grad`) from `backward()`. Every operation on tensors records the function that made its
# output (`.creator`) and that function's inputs — the computational graph. Here is a single
# neuron with a tanh, on a random input:
#
# $$ y = \tanh(w \cdot x + b), \qquad L = \sum_i y_i^2 . $$

# %%
x = mc.Tensor(rng.standard_normal((4, 3)))                    # 4 samples, 3 features
w = mc.Tensor(rng.standard_normal((3, 2)), requires_grad=True)
b = mc.Tensor(np.zeros(2), requires_grad=True)
y = F.tanh(x @ w + b)
loss = (y * y).sum()
print("x", x.shape, " w", w.shape, " b", b.shape, " ->  y", y.shape, " loss", loss.shape)


# %% [markdown]
# Walking back from `loss` through `.creator` shows the graph the forward pass recorded:

# %%
def show_graph(tensor, indent=0, seen=None):
    """Print the functions that produced ``tensor``, one per line, inputs indented below."""
    seen = set() if seen is None else seen
    fn = tensor.creator
    if fn is None:
        kind = "parameter" if tensor.requires_grad else "input"
        print("  " * indent + f"{kind} {tuple(tensor.shape)}")
        return
    print("  " * indent + f"{type(fn).__name__} -> {tuple(tensor.shape)}"
          + ("  (seen above)" if id(fn) in seen else ""))
    if id(fn) not in seen:
        seen.add(id(fn))
        for parent in fn.inputs:
            show_graph(parent, indent + 1, seen)


show_graph(loss)

# %% [markdown]
# `backward()` walks this graph in reverse topological order: each function receives the gradient
# of the loss with respect to its output and passes on the gradients for its inputs (chain rule).
# By hand: $\partial L/\partial y = 2y$, $\partial y/\partial z = 1 - y^2$ with $z = xw + b$, so
# $\partial L/\partial w = x^\top [2y(1-y^2)]$ and $\partial L/\partial b = \sum_{\text{rows}}
# 2y(1-y^2)$. Does the engine agree?

# %%
loss.backward()
gz = 2 * y.data * (1 - y.data ** 2)
print("dL/dw from backward():\n", w.grad)
print("max |backward - hand formula|: w", np.abs(w.grad - x.data.T @ gz).max(),
      " b", np.abs(b.grad - gz.sum(0)).max())

# %% [markdown]
# And PyTorch (when installed), from the same numbers:

# %%
try:
    import torch
except ImportError:
    torch = None
    print("PyTorch is not installed: comparison skipped")
if torch is not None:
    tw = torch.tensor(w.data, requires_grad=True)
    tb = torch.tensor(b.data, requires_grad=True)
    ty = torch.tanh(torch.tensor(x.data) @ tw + tb)
    (ty * ty).sum().backward()
    print("max |minicnn - torch|: w", np.abs(w.grad - tw.grad.numpy()).max(),
          " b", np.abs(b.grad - tb.grad.numpy()).max())

# %% [markdown]
# ### A tensor used twice
#
# When a value feeds two branches, its gradient is the **sum** of what both branches send back
# (the multivariate chain rule). For $L = \sum (a \cdot a + 3a)$ the gradient is $2a + 3$: the
# product contributes $a$ twice, the second branch 3.

# %%
a = mc.Tensor(rng.standard_normal(5), requires_grad=True)
(a * a + 3 * a).sum().backward()
print("a          ", np.round(a.data, 4))
print("a.grad     ", np.round(a.grad, 4))
print("2a + 3     ", np.round(2 * a.data + 3, 4))

# %% [markdown]
# ## Checking gradients numerically
#
# A backward pass is hand-written code, and hand-written code has bugs. The definition of the
# derivative gives an independent check: for a small step $\varepsilon$ along a direction $d$,
#
# $$ \nabla L \cdot d \;\approx\; \frac{L(x + \varepsilon d) - L(x - \varepsilon d)}{2\varepsilon}, $$
#
# the *central difference*, whose error shrinks like $\varepsilon^2$. But $\varepsilon$ cannot be
# made arbitrarily small: $L$ is computed in floating point, and the rounding error of each
# evaluation, divided by $2\varepsilon$, grows as $\varepsilon$ shrinks. Measured on our neuron:

# %%
def neuron_loss(w_array, dtype):
    z = x.data.astype(dtype) @ w_array.astype(dtype) + b.data.astype(dtype)
    return float((np.tanh(z) ** 2).sum(dtype=dtype))


exact = w.grad[0, 0]   # from backward() in float64 (checked against the formula above)
direction = np.zeros_like(w.data)
direction[0, 0] = 1.0
epsilons = np.logspace(-1, -12, 23)
errors = {}
for dtype in (np.float32, np.float64):
    errors[dtype] = [abs((neuron_loss(w.data + e * direction, dtype)
                          - neuron_loss(w.data - e * direction, dtype)) / (2 * e) - exact)
                     for e in epsilons]
fig, ax = plt.subplots(figsize=(6, 3.6))
for dtype, style in ((np.float32, "o-"), (np.float64, "s-")):
    ax.loglog(epsilons, np.maximum(errors[dtype], 1e-17), style, label=np.dtype(dtype).name)
ax.axvline(1e-6, color="0.5", linestyle=":")
ax.text(1.2e-6, 1e-14, "gradcheck's eps", color="0.4")
ax.set_xlabel("step eps")
ax.set_ylabel("|central difference - backward|")
ax.set_title("Truncation error (right) vs rounding error (left)")
ax.legend()
plt.show()
for dtype in (np.float32, np.float64):
    best = int(np.argmin(errors[dtype]))
    print(f"{np.dtype(dtype).name}: smallest error {errors[dtype][best]:.1e} at eps = "
          f"{epsilons[best]:.0e}; at eps = 1e-6 the error is "
          f"{errors[dtype][int(np.argmin(abs(epsilons - 1e-6)))]:.1e}")

# %% [markdown]
# In float32 the best achievable agreement is only a few digits — too coarse to tell a subtly
# wrong backward from rounding noise. That is why `mc.gradcheck` copies every input to
# **float64** and uses $\varepsilon = 10^{-6}$, where the error above is many orders smaller
# than its tolerance (`atol=1e-5`, `rtol=1e-3`).
#
# `mc.gradcheck(fn, inputs)` compares `backward()` with central differences for every input that
# has `requires_grad=True`: element by element for small inputs, along a few random directions
# for large ones (a conv weight would otherwise need two forward passes per weight; a wrong
# gradient is almost never orthogonal to a random direction). It returns `True` or raises.

# %%
checks = {
    "neuron tanh(x @ w + b)": (lambda w_, b_: F.tanh(x @ w_ + b_), [w, b]),
    "broadcast (4,3) * (3,)": (lambda p, q: p * q,
                               [mc.Tensor(rng.standard_normal((4, 3)), requires_grad=True),
                                mc.Tensor(rng.standard_normal(3), requires_grad=True)]),
    "softmax cross-entropy": (lambda s: F.cross_entropy(s, mc.Tensor(np.array([0, 2, 1]))),
                              [mc.Tensor(rng.standard_normal((3, 4)), requires_grad=True)]),
    "conv2d 3->4, 3x3, stride 2, pad 1": (
        lambda img, k, bias: F.conv2d(img, k, bias, stride=2, padding=1),
        [mc.Tensor(rng.standard_normal((2, 3, 7, 7)), requires_grad=True),
         mc.Tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True),
         mc.Tensor(rng.standard_normal(4), requires_grad=True)]),
}
for name, (fn, inputs) in checks.items():
    out = fn(*inputs)
    shapes = ", ".join(str(tuple(t.shape)) for t in inputs)
    print(f"{name:36s} inputs {shapes} -> {tuple(out.shape)}:  gradcheck",
          mc.gradcheck(fn, inputs))

# %% [markdown]
# ### NOTE: kinks
#
# ReLU has no derivative at 0 and max pooling none at a tie. A finite difference that straddles
# such a point measures the average of two slopes, and the check fails although the backward is
# right. gradcheck recognises this (the left and right slopes differ) and says so:

# %%
at_kink = mc.Tensor(np.array([[-1.0, 0.0, 2.0]]), requires_grad=True)   # one input exactly at 0
try:
    mc.gradcheck(F.relu, [at_kink])
except mc.GradcheckError as error:
    print(error)

# %% [markdown]
# ## Catching a broken backward
#
# Now the point of it all. An op in minicnn is a `Function`: `forward` computes on arrays and
# stores what the backward needs; `backward` maps the output's gradient `gy` to the input's. Here
# is $x^2$ written correctly, and three ways it is commonly got wrong.

# %%
from minicnn.autograd import Function


class Square(Function):
    """y = x**2, dy/dx = 2x."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, gy):
        return 2 * self.x * gy


class SquareMissingFactor(Square):
    def backward(self, gy):
        return self.x * gy            # forgot the 2


class SquareSignFlipped(Square):
    def backward(self, gy):
        return -2 * self.x * gy       # a minus sign from somewhere


class SquareDropsGradient(Square):
    def backward(self, gy):
        return 0 * gy                 # e.g. a mask that zeroes everything


z = mc.Tensor(rng.uniform(0.5, 2.0, size=(3, 4)), requires_grad=True)
print("input", z.shape, "-> output", Square()(z).shape)
for op in (Square, SquareMissingFactor, SquareSignFlipped, SquareDropsGradient):
    print(f"--- {op.__name__}")
    try:
        print("gradcheck passed:", mc.gradcheck(lambda t: op()(t), [z]))
    except mc.GradcheckError as error:
        print(error)

# %% [markdown]
# Each message says which input and which element failed, both numbers, and a hint at the kind
# of mistake. The same check runs in minicnn's test suite for every op in the library (convolution,
# pooling, batch norm, dropout with a fixed seed, concatenation...), in float64, so the networks of
# the next notebooks train on gradients that have been verified, not trusted.
#
# ## A gradient check of a whole network
#
# The check composes: a tiny CNN built from those ops, with its input and the first conv's weight
# as the checked inputs (float64, because gradcheck casts them):

# %%
def tiny_cnn(image, kernel):
    h = F.relu(F.conv2d(image, kernel, padding=1))      # N x 4 x 6 x 6
    h = F.max_pool2d(h, 2)                              # N x 4 x 3 x 3
    return F.cross_entropy(h.flatten(1) @ head, labels)


image = mc.Tensor(rng.standard_normal((2, 1, 6, 6)), requires_grad=True)
kernel = mc.Tensor(rng.standard_normal((4, 1, 3, 3)), requires_grad=True)
head = mc.Tensor(rng.standard_normal((36, 3)))
labels = mc.Tensor(np.array([0, 2]))
print("image", image.shape, "kernel", kernel.shape, "-> loss", tiny_cnn(image, kernel).shape)
print("gradcheck of the tiny CNN:", mc.gradcheck(tiny_cnn, [image, kernel]))

# %% [markdown]
# **Summary.** `backward()` applies the chain rule through the recorded graph, summing the
# gradients of tensors used more than once. Central differences in float64 check it
# independently; in float32 rounding leaves too few digits. `mc.gradcheck` finds a missing
# factor, a flipped sign or a dropped gradient and says which. Next: the convolution itself,
# from scratch (notebook 01).
