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
# # 01 · Convolution from scratch
#
# *Modern CNNs with minicnn, lecture notebook 1.*
#
# A convolutional layer slides a small filter over the image and takes a dot product at every
# position. Written as loops that is seven nested `for`s — far too slow in Python. The trick
# every framework uses is **im2col**: copy every window into one row of a matrix, and the whole
# convolution becomes a single matrix product (GEMM), which BLAS does at full speed. Its adjoint,
# **col2im**, gives the backward pass. This notebook builds both on a real image, then pooling,
# then compares minicnn's NumPy and numba kernels, the lecture's version of the whole layer and
# minicnn's engine, and PyTorch, by the clock.

# %%
import inspect
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import minicnn as mc
import minicnn.nn.functional as F
from minicnn.kernels import im2col as K
from minicnn.kernels import pooling as P

FAST = os.environ.get("MINICNN_FAST", "0") == "1"   # tiny data and short runs (CI)
mc.manual_seed(0)
rng = np.random.default_rng(0)
print(f"minicnn {mc.__version__}; mode: {'FAST (MINICNN_FAST=1)' if FAST else 'normal'}")

# %% [markdown]
# ## A real image
#
# One Fashion-MNIST test image (28x28, grey values in [0, 1]); minicnn finds the full data set
# when it is installed and otherwise uses the small subset it ships with.

# %%
train_set, test_set = mc.data.load_fashion_mnist()
image, label = test_set[0]                       # (1, 28, 28) float32, int
print("image", image.shape, image.dtype, "label", label, f"({test_set.classes[label]})")
plt.figure(figsize=(2.5, 2.5))
plt.imshow(image[0], cmap="gray")
plt.title(test_set.classes[label])
plt.axis("off")
plt.show()

# %% [markdown]
# ## Convolution by its definition
#
# For an input $x$ of shape $(N, C, H, W)$ and a weight $w$ of shape $(OC, C, KH, KW)$, with
# stride $s$ and zero padding $p$,
#
# $$ y[n, o, i, j] = b[o] + \sum_{c, u, v} w[o, c, u, v]\; x_{\text{pad}}[n, c, i s + u, j s + v],
# \qquad OH = \left\lfloor \frac{H + 2p - KH}{s} \right\rfloor + 1 . $$
#
# (Deep learning's "convolution" does not flip the kernel: it is a cross-correlation.) As loops,
# the reference we will check everything against:

# %%
def conv2d_loops(x, w, b, stride=1, padding=0):
    """The definition, one multiply-add at a time (slow: for checking only)."""
    N, C, H, W = x.shape
    OC, _, KH, KW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    OH, OW = (H + 2 * padding - KH) // stride + 1, (W + 2 * padding - KW) // stride + 1
    y = np.zeros((N, OC, OH, OW), dtype=x.dtype)
    for n in range(N):
        for o in range(OC):
            for i in range(OH):
                for j in range(OW):
                    window = xp[n, :, i * stride:i * stride + KH, j * stride:j * stride + KW]
                    y[n, o, i, j] = (window * w[o]).sum() + b[o]
    return y


x_small = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
w_small = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
b_small = rng.standard_normal(4).astype(np.float32)
y_small = conv2d_loops(x_small, w_small, b_small, stride=2, padding=1)
y_lib = F.conv2d(mc.Tensor(x_small), mc.Tensor(w_small), mc.Tensor(b_small), stride=2, padding=1)
print("x", x_small.shape, "w", w_small.shape, "-> y", y_small.shape,
      "| max |loops - F.conv2d| =", np.abs(y_small - y_lib.numpy()).max())

# %% [markdown]
# ## im2col, step by step
#
# minicnn keeps images **channels-last** in memory, $(N, H, W, C)$, because then the $KW$ pixels
# of one kernel row are $KW \cdot C$ consecutive numbers — one contiguous copy. im2col builds the
# column matrix with one row per output pixel $(n, i, j)$ and one column per filter weight
# $(u, v, c)$:
#
# $$ \text{cols}[(n, i, j), (u, v, c)] = x[n,\; i s - p + u,\; j s - p + v,\; c] . $$
#
# The lecture version (`minicnn.kernels.im2col.im2col_reference`) fills it with one strided slice
# per kernel offset $(u, v)$ — $KH \cdot KW$ NumPy copies instead of a Python loop per pixel:

# %%
print(inspect.getsource(K.im2col_reference))

# %% [markdown]
# On our image with a 3x3 kernel, stride 1 and padding 1 it gives 28·28 = 784 rows of 9 numbers:

# %%
x_nhwc = image.transpose(1, 2, 0)[None]           # (1, 28, 28, 1): channels last
cols = K.im2col_reference(x_nhwc, (3, 3), (1, 1), (1, 1))
print("image (N, H, W, C)", x_nhwc.shape, "-> cols (N*OH*OW, KH*KW*C)", cols.shape)

# %% [markdown]
# Here is what that matrix looks like. Left: three output positions marked on the image. Middle:
# their rows of `cols`, each reshaped back to 3x3 — the window under the kernel. Right: the
# column matrix itself for the 84 output pixels of image rows 12–14 (rows of `cols` drawn as
# columns here, so that it fits): each of the 9 lines is the image shifted by one kernel offset.

# %%
positions = [(17, 5), (14, 12), (20, 22)]
fig = plt.figure(figsize=(11, 3.4), layout="constrained")
grid = fig.add_gridspec(2, 5, width_ratios=[3, 1, 1, 1, 7])
ax = fig.add_subplot(grid[:, 0])
ax.imshow(image[0], cmap="gray")
for k, (i, j) in enumerate(positions):
    ax.add_patch(plt.Rectangle((j - 1.5, i - 1.5), 3, 3, fill=False, color=f"C{k + 1}", lw=2))
ax.set_title("image, 3 windows")
ax.axis("off")
for k, (i, j) in enumerate(positions):
    ax = fig.add_subplot(grid[0, 1 + k])
    row = cols[i * 28 + j]                        # row (n=0, i, j) of the column matrix
    ax.imshow(row.reshape(3, 3), cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"row {i * 28 + j}", color=f"C{k + 1}", fontsize=9)
    ax.axis("off")
    ax = fig.add_subplot(grid[1, 1 + k])
    ax.imshow(row[None], cmap="gray", vmin=0, vmax=1, aspect=3)
    if k == 0:
        ax.set_title("as stored (1x9)", fontsize=8, loc="left")
    ax.axis("off")
ax = fig.add_subplot(grid[:, 4])
ax.imshow(cols[12 * 28:15 * 28].T, cmap="gray", aspect="auto", interpolation="nearest")
ax.set_xlabel("output pixel (rows 12-14 of the image)")
ax.set_ylabel("kernel offset (u, v)")
ax.set_title("cols.T for 84 output pixels")
plt.show()

# %% [markdown]
# ## Convolution as one matrix product
#
# Flatten each filter in the same $(u, v, c)$ order, $W[o, (u, v, c)] = w[o, c, u, v]$, and the
# convolution of the whole batch is
#
# $$ Y = \text{cols} \cdot W^\top \quad (N \cdot OH \cdot OW \times OC), $$
#
# which already *is* the channels-last output $(N, OH, OW, OC)$. Let us check it against the loops
# and `F.conv2d` on the random batch, then run two hand-made filters (Sobel edge detectors) over
# the image.

# %%
def conv2d_gemm(x, w, b, stride=1, padding=0):
    """im2col + one GEMM: (N, C, H, W) -> (N, OC, OH, OW)."""
    N, C, H, W = x.shape
    OC, _, KH, KW = w.shape
    OH, OW = (H + 2 * padding - KH) // stride + 1, (W + 2 * padding - KW) // stride + 1
    cols = K.im2col_reference(x.transpose(0, 2, 3, 1), (KH, KW), (stride, stride),
                              (padding, padding))             # (N*OH*OW, KH*KW*C)
    w_matrix = w.transpose(0, 2, 3, 1).reshape(OC, -1)        # (OC, KH*KW*C), (u, v, c) order
    y = cols @ w_matrix.T + b                                 # (N*OH*OW, OC)
    return y.reshape(N, OH, OW, OC).transpose(0, 3, 1, 2)     # NCHW-shaped view


y_gemm = conv2d_gemm(x_small, w_small, b_small, stride=2, padding=1)
print("GEMM conv", y_gemm.shape, "| max |GEMM - loops| =", np.abs(y_gemm - y_small).max())

sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32)
filters = np.stack([sobel_x, sobel_x.T])[:, None]            # (2, 1, 3, 3)
edges = conv2d_gemm(image[None], filters, np.zeros(2, np.float32), padding=1)
print("image", image[None].shape, "filters", filters.shape, "-> feature maps", edges.shape)
fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.6), layout="constrained")
for ax, picture, title in zip(axes, [image[0], edges[0, 0], edges[0, 1]],
                              ["image", "vertical edges (Sobel x)", "horizontal edges (Sobel y)"]):
    ax.imshow(picture, cmap="gray" if title == "image" else "RdBu_r")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## col2im: the backward pass
#
# In the backward pass we receive $G_Y = \partial L / \partial Y$ (same shape as $Y$). Since
# $Y = \text{cols}\, W^\top$:
#
# * the weight gradient is one more GEMM, $\partial L/\partial W = G_Y^\top\, \text{cols}$;
# * the gradient of the column matrix is $G_\text{cols} = G_Y W$ — but a pixel was copied into
#   up to $KH \cdot KW$ rows, so its gradient is the **sum** of all those copies' gradients.
#   Sending every entry back to where it came from and summing is **col2im**, the adjoint
#   (transpose) of im2col.
#
# col2im of a matrix of ones counts how many windows cover each pixel: 9 inside, fewer at the
# border (the windows that would cover them there lie partly in the padding).

# %%
ones = np.ones_like(cols)
coverage = K.col2im_reference(ones, x_nhwc.shape, (3, 3), (1, 1), (1, 1))
print("ones like cols", ones.shape, "-> col2im", coverage.shape,
      "| values:", sorted(set(coverage.ravel().tolist())))
coverage_s2 = K.col2im_reference(np.ones((14 * 14, 9), np.float32), x_nhwc.shape, (3, 3),
                                 (2, 2), (1, 1))
fig, axes = plt.subplots(1, 2, figsize=(6, 2.8), layout="constrained")
for ax, c, title in zip(axes, [coverage, coverage_s2], ["3x3, stride 1, pad 1",
                                                        "3x3, stride 2, pad 1"]):
    shown = ax.imshow(c[0, :, :, 0], cmap="viridis", vmin=0, vmax=9)
    ax.set_title(f"windows per pixel\n{title}", fontsize=9)
    ax.axis("off")
fig.colorbar(shown, ax=axes, shrink=0.8)
plt.show()
print("top-left corner of the stride-2 map:\n", coverage_s2[0, :5, :5, 0])

# %% [markdown]
# The stride-2 picture shows why strided convolutions with overlapping windows give uneven
# gradients: the windows start at rows -1, 1, 3, ..., so a pixel on an odd row or column
# (counted from 0) lies on the border of two windows and the others in one; a pixel odd in both
# directions is in 4 windows (the corner printed above).
#
# Is col2im really the adjoint? Then $\langle \text{im2col}(x), C\rangle = \langle x,
# \text{col2im}(C)\rangle$ for any $x$ and $C$. And the full backward built from it must equal
# what minicnn's autograd computes for `F.conv2d`:

# %%
x_r = rng.standard_normal((2, 6, 6, 3))
c_r = rng.standard_normal((2 * 6 * 6, 27))
lhs = (K.im2col_reference(x_r, (3, 3), (1, 1), (1, 1)) * c_r).sum()
rhs = (x_r * K.col2im_reference(c_r, x_r.shape, (3, 3), (1, 1), (1, 1))).sum()
print(f"<im2col(x), C> = {lhs:.10f}   <x, col2im(C)> = {rhs:.10f}")

x_t = mc.Tensor(x_small.astype(np.float64), requires_grad=True)
w_t = mc.Tensor(w_small.astype(np.float64), requires_grad=True)
y_t = F.conv2d(x_t, w_t, None, stride=2, padding=1)
gy = rng.standard_normal(y_t.shape)
y_t.backward(gy)

cols_s = K.im2col_reference(x_small.astype(np.float64).transpose(0, 2, 3, 1), (3, 3), (2, 2),
                            (1, 1))
gy_rows = gy.transpose(0, 2, 3, 1).reshape(-1, 4)            # (N*OH*OW, OC)
w_matrix = w_small.astype(np.float64).transpose(0, 2, 3, 1).reshape(4, -1)
gw = (gy_rows.T @ cols_s).reshape(4, 3, 3, 3).transpose(0, 3, 1, 2)
gx = K.col2im_reference(gy_rows @ w_matrix, (2, 5, 5, 3), (3, 3), (2, 2), (1, 1))
print("dL/dw", gw.shape, "max |by hand - autograd| =", np.abs(gw - w_t.grad).max())
print("dL/dx", gx.transpose(0, 3, 1, 2).shape, "max |by hand - autograd| =",
      np.abs(gx.transpose(0, 3, 1, 2) - x_t.grad).max())

# %% [markdown]
# ## Pooling
#
# Max pooling keeps the largest value of each window (no weights); its backward sends each output
# gradient to the one input that won the window (NOTE: on a tie, to the first maximum in scan
# order, as PyTorch does). Average pooling shares the gradient equally. Both reference kernels
# use the same strided slices as im2col:

# %%
pooled, winners = P.max_pool2d_forward_reference(image[None], (2, 2), (2, 2), (0, 0), (14, 14))
gy_pool = np.ones_like(pooled)
routed = P.max_pool2d_backward_reference(gy_pool, winners, image[None].shape, (2, 2), (2, 2),
                                         (0, 0))
avg = F.avg_pool2d(mc.Tensor(image[None]), 2)
print("image", image[None].shape, "-> max pool", pooled.shape, ", avg pool", avg.shape,
      "| backward of ones:", routed.shape, "with", int(routed.sum()), "ones")
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8), layout="constrained")
for ax, picture, title in zip(
        axes, [image[0], pooled[0, 0], avg.numpy()[0, 0], routed[0, 0]],
        ["image 28x28", "max pool 2x2 -> 14x14", "avg pool 2x2 -> 14x14",
         "max-pool backward: where\nthe gradient goes"]):
    ax.imshow(picture, cmap="gray")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Three twins of one kernel
#
# Every hand-written kernel in minicnn exists three times, and the tests make them agree:
#
# 1. the **NumPy reference** above — readable, works on CuPy arrays too, the lecture version;
# 2. a **numba twin** (`@njit`), what the CPU runs: with channels-last data, the $KW \cdot C$
#    numbers of one kernel row are one contiguous run, copied in a tight compiled loop;
# 3. a **CUDA C twin** for the GPU, one thread per output element.
#
# The numba twin of im2col:

# %%
print(inspect.getsource(K._im2col_nhwc.py_func))

# %% [markdown]
# ### ▶ The CUDA twin
#
# The third twin is CUDA C (`kernels/im2col.cu`), compiled by CuPy on a GPU: **one thread per
# element of the column matrix**, each computing from its index which pixel it copies, so no two
# threads write the same address. `show_kernel` (in `minicnn.kernels.launch_view`) prints the kernel and how a launch maps
# threads to elements for a given input — it needs no GPU, so here it runs on this CPU-only
# machine too (for our image: 784 x 9 elements, one thread each). *(On an installation without
# the CUDA sources this cell only lists what is there.)*

# %%
from minicnn import kernels
from minicnn.kernels.launch_view import show_kernel

sources = kernels.cuda_sources()
print("CUDA sources shipped:", [s.name for s in sources] or "none")
print("GPU usable here:", mc.cuda.is_available(), "" if mc.cuda.is_available()
      else f"({mc.cuda.why_unavailable()})")
if any(s.name == "im2col.cu" for s in sources):
    print(show_kernel("im2col", x_nhwc.shape, kernel_size=3, padding=1))

# %% [markdown]
# ### Equal, and how fast?
#
# On a batch shaped like a middle layer of a small CNN, both twins must give the same matrix;
# then the clock (best of several runs; this machine is shared, so expect some noise):

# %%
def best_time(fn, repeats):
    fn()                                            # warm up (numba compiles on the first call)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


batch = 8 if FAST else 64
repeats = 2 if FAST else 7
x_b = rng.standard_normal((batch, 14, 14, 32)).astype(np.float32)   # N, H, W, C
ref = K.im2col_reference(x_b, (3, 3), (1, 1), (1, 1))
fast = K.im2col_numba(x_b, (3, 3), (1, 1), (1, 1))
print("batch", x_b.shape, "-> cols", ref.shape, "| twins equal:", np.array_equal(ref, fast))
g_b = rng.standard_normal(ref.shape).astype(np.float32)
assert np.allclose(K.col2im_reference(g_b, x_b.shape, (3, 3), (1, 1), (1, 1)),
                   K.col2im_numba(g_b, x_b.shape, (3, 3), (1, 1), (1, 1)), atol=1e-5)
kernel_times = {
    "im2col": [best_time(lambda: K.im2col_reference(x_b, (3, 3), (1, 1), (1, 1)), repeats),
               best_time(lambda: K.im2col_numba(x_b, (3, 3), (1, 1), (1, 1)), repeats)],
    "col2im": [best_time(lambda: K.col2im_reference(g_b, x_b.shape, (3, 3), (1, 1), (1, 1)),
                         repeats),
               best_time(lambda: K.col2im_numba(g_b, x_b.shape, (3, 3), (1, 1), (1, 1)),
                         repeats)],
}
for name, (t_ref, t_numba) in kernel_times.items():
    print(f"{name}: NumPy reference {1e3 * t_ref:7.2f} ms   numba {1e3 * t_numba:7.2f} ms   "
          f"-> numba {t_ref / t_numba:.1f}x faster")

# %% [markdown]
# ## The lecture's version and the engine
#
# `F.conv2d` runs exactly the products of this notebook. Which code runs them is one switch:
# under `mc.reference_kernels()` (or `MINICNN_KERNELS=reference` for a whole process) every op
# takes the plain NumPy reference kernels -- im2col and one GEMM forward, two GEMMs and col2im
# backward, for the whole batch at once. Otherwise the **engine** (`minicnn/engine/`) does the
# same products in chunks that stay in the CPU cache, on worker threads, with reused buffers,
# numba copies and a few special cases (1x1 kernels, one input channel, the input gradient as a
# convolution with the flipped kernel, and Winograd's algorithm for 3x3 layers with enough
# channels, the last section of this notebook). The op, `minicnn/ops/conv.py`, holds the lesson; the
# engine's docstring holds the speed notes. Both lanes on one ResNet-20 layer (16 -> 16
# channels, 3x3, 32x32), forward and backward:

# %%
conv_layer = mc.nn.Conv2d(16, 16, 3, padding=1)
x_layer = rng.standard_normal((8 if FAST else 64, 16, 32, 32)).astype(np.float32)
gy_layer = rng.standard_normal(x_layer.shape).astype(np.float32)   # dL/dy, same shape here


def layer_forward_backward():
    x_ = mc.Tensor(x_layer, requires_grad=True)
    conv_layer.zero_grad()
    y_ = conv_layer(x_)
    y_.backward(gy_layer)
    return [y_.numpy(), x_.grad, conv_layer.weight.grad, conv_layer.bias.grad]


lanes = {}
for lane, reference in (("reference", True), ("engine", False)):
    with mc.reference_kernels(reference):
        lanes[lane] = (layer_forward_backward(), best_time(layer_forward_backward, repeats))
for what, a, b in zip(["y", "dL/dx", "dL/dw", "dL/db"], lanes["reference"][0],
                      lanes["engine"][0]):
    print(f"{what:6s} {str(a.shape):18s} max |reference - engine| = {np.abs(a - b).max():.1e}"
          f"   (largest |value| {np.abs(a).max():.1e})")
t_reference, t_engine = lanes["reference"][1], lanes["engine"][1]
print(f"forward + backward, batch {len(x_layer)}: reference {1e3 * t_reference:.1f} ms, "
      f"engine {1e3 * t_engine:.1f} ms -> the engine is {t_reference / t_engine:.1f}x faster")

# %% [markdown]
# The differences are float32 rounding: the two lanes add the same products in a different
# order (chunk by chunk, and the input gradient through the flipped kernel instead of col2im).
# `tests/test_reference_lane.py` holds them equal for every op and for a few training steps of
# ResNet-20.

# %% [markdown]
# ### Against PyTorch
#
# A whole convolution, forward and backward, for three layer shapes from the lecture's networks,
# minicnn (`F.conv2d`: im2col in chunks that fit the cache, GEMM by OpenBLAS, col2im; Winograd
# for the two 3x3 layers, see below) against PyTorch's CPU convolution (oneDNN) in the same
# process.

# %%
try:
    import torch
except ImportError:
    torch = None
    print("PyTorch is not installed: this comparison is skipped")

layers = {  # name: (input N, C, H, W), (OC, C, KH, KW), padding
    "LeNet-5 C3 (6->16, 5x5)": ((64, 6, 14, 14), (16, 6, 5, 5), 0),
    "VGG-ish 32->32 3x3 @28": ((16, 32, 28, 28), (32, 32, 3, 3), 1),
    "AlexNet-ish 64->96 3x3 @7": ((64, 64, 7, 7), (96, 64, 3, 3), 1),
}
if FAST:
    layers = {k: ((4,) + v[0][1:], v[1], v[2]) for k, v in list(layers.items())[:1]}


def step_minicnn(xa, wa, pad):
    x_ = mc.Tensor(xa, requires_grad=True)
    w_ = mc.Tensor(wa, requires_grad=True)
    F.conv2d(x_, w_, padding=pad).sum().backward()


def step_torch(xa, wa, pad):
    x_ = torch.tensor(xa, requires_grad=True)
    w_ = torch.tensor(wa, requires_grad=True)
    torch.nn.functional.conv2d(x_, w_, padding=pad).sum().backward()


results = {}
for name, (x_shape, w_shape, pad) in layers.items():
    xa = rng.standard_normal(x_shape).astype(np.float32)
    wa = rng.standard_normal(w_shape).astype(np.float32)
    t_mc = best_time(lambda: step_minicnn(xa, wa, pad), repeats)
    t_torch = best_time(lambda: step_torch(xa, wa, pad), repeats) if torch else float("nan")
    results[name] = (t_mc, t_torch)
    print(f"{name:28s} x {x_shape}: minicnn {1e3 * t_mc:7.2f} ms  PyTorch "
          f"{1e3 * t_torch:7.2f} ms  ratio {t_mc / t_torch:.2f}")

if torch is not None:
    fig, ax = plt.subplots(figsize=(7, 2.6))
    names = list(results)
    ys = np.arange(len(names))
    ax.barh(ys - 0.2, [1e3 * results[n][0] for n in names], 0.4, label="minicnn")
    ax.barh(ys + 0.2, [1e3 * results[n][1] for n in names], 0.4, label="PyTorch")
    ax.set_yticks(ys, names)
    ax.invert_yaxis()
    ax.set_xlabel("forward + backward, ms (best of runs)")
    ax.legend()
    plt.show()

# %% [markdown]
# The ratios printed above move from run to run when other work shares the machine's cores, and
# the numba twins were several times faster than the NumPy references: most of the time goes into
# GEMMs, and what differs is how well the copies (im2col, col2im) and the GEMM calls are
# arranged around them -- or, with Winograd, how many multiplications are left to do. The
# README's speed table has more shapes, measured on a quiet machine.

# %% [markdown]
# ## Winograd: the same convolution with fewer multiplications
#
# im2col + GEMM does every multiplication of the definition: 9 per output per input channel for
# a 3x3 filter. Lavin and Gray (2016, "Fast Algorithms for Convolutional Neural Networks") took
# Winograd's minimal filtering algorithms to CNNs. In one dimension, two outputs of a 3-tap
# filter `g` over four inputs `d`,
#
# `y0 = d0 g0 + d1 g1 + d2 g2`,  `y1 = d1 g0 + d2 g1 + d3 g2`   (6 multiplications),
#
# come out of 4 products, because the filter's sums can be prepared once, before any data:
#
# `m1 = (d0 - d2) g0`, `m2 = (d1 + d2)(g0 + g1 + g2)/2`, `m3 = (d2 - d1)(g0 - g1 + g2)/2`,
# `m4 = (d1 - d3) g2`;  `y0 = m1 + m2 + m3`, `y1 = m2 - m3 - m4`.
#
# Multiply out `m2 + m3` and `m2 - m3` and the cross terms cancel. This is F(2, 3), by hand:

# %%
d = np.array([2.0, -1.0, 3.0, 0.5])            # four inputs
g = np.array([1.0, 2.0, -1.0])                 # one 3-tap filter
direct = [d[0] * g[0] + d[1] * g[1] + d[2] * g[2], d[1] * g[0] + d[2] * g[1] + d[3] * g[2]]
g_sum, g_alt = (g[0] + g[1] + g[2]) / 2, (g[0] - g[1] + g[2]) / 2   # the filter's part: once
m1, m2 = (d[0] - d[2]) * g[0], (d[1] + d[2]) * g_sum
m3, m4 = (d[2] - d[1]) * g_alt, (d[1] - d[3]) * g[2]
winograd_1d = [m1 + m2 + m3, m2 - m3 - m4]
direct, winograd_1d = [float(v) for v in direct], [float(v) for v in winograd_1d]
print("direct   (6 multiplications):", direct)
print("Winograd (4 multiplications):", winograd_1d)

# %% [markdown]
# In matrices this is `y = Aᵀ [(G g) ⊙ (Bᵀ d)]` (⊙ element by element): `Bᵀ` transforms the data,
# `G` the filter, `Aᵀ` takes the products back to outputs. Where the matrices come from: the
# outputs are the coefficients of a product of two polynomials, fixed by its values at 4 points
# (0, 1, -1 and infinity); evaluate, multiply pointwise, interpolate back (Toom-Cook). F(4, 3)
# takes 6 points (adding 2 and -2) for 4 outputs. `minicnn/kernels/winograd.py` writes them out:

# %%
from minicnn.kernels import winograd as WG

BT, G, AT = WG.matrices(2)
print("B^T =\n", BT, "\nG =\n", G, "\nA^T =\n", AT)
print("A^T [(G g) * (B^T d)] =", AT @ ((G @ g) * (BT @ d)))
BT4, G4, AT4 = WG.matrices(4)
d6 = rng.standard_normal(6)
print("F(4, 3) on six inputs:", AT4 @ ((G4 @ g) * (BT4 @ d6)), "direct:",
      np.array([d6[i:i + 3] @ g for i in range(4)]))
print("largest entries: F(2, 3)", np.abs(np.r_[BT.ravel(), AT.ravel()]).max(),
      "| F(4, 3)", np.abs(np.r_[BT4.ravel(), AT4.ravel()]).max(),
      "; smallest nonzero in G:", np.abs(G[G != 0]).min(), "and", np.abs(G4[G4 != 0]).min())

# %% [markdown]
# **Two dimensions.** Nest the 1-D algorithm in rows and columns: an `m x m` output tile from an
# `(m + 2) x (m + 2)` input tile `d` (neighbouring tiles overlap by two pixels) is
# `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`. With many channels the element-wise product becomes a sum over
# input channels: one matrix product per position of the tile, `(tiles, C_in) @ (C_in, C_out)`,
# which BLAS does at full speed, between transforms that cost additions only. Multiplications per
# output pixel, per input and output channel:

# %%
for m in (2, 4):
    alpha = m + 2
    per_tile, direct_per_tile = alpha * alpha, 9 * m * m
    print(f"F({m}x{m}, 3x3): {per_tile} multiplications per {m}x{m} tile instead of "
          f"{direct_per_tile}: {direct_per_tile / per_tile:.2f}x fewer")

# the whole layer: the readable NumPy reference on our image, against F.conv2d
filters = rng.standard_normal((4, 1, 3, 3)).astype(np.float64)
x_img = image[None].astype(np.float64).transpose(0, 2, 3, 1)          # (1, 28, 28, 1) NHWC
y_wino = WG.conv2d_winograd_reference(x_img, filters, None, (1, 1), 2)
y_ref = F.conv2d(mc.Tensor(image[None].astype(np.float64)), mc.Tensor(filters), padding=1)
print("F(2x2, 3x3) on the image:", y_wino.shape, "max |Winograd - conv2d| =",
      f"{np.abs(y_wino.transpose(0, 3, 1, 2) - y_ref.numpy()).max():.1e} (float64)")

# %% [markdown]
# **Accuracy.** The transforms add and subtract numbers of different sizes, and `G` holds halves
# (F(2x2)) or sixths and twenty-fourths (F(4x4)), so float32 rounding grows with the tile. The
# error of each algorithm in float32, against float64 direct convolution of the same numbers, as
# a fraction of the output's largest value, on a ResNet-20 layer (32 channels, 16x16), forward and
# both gradients:

# %%
from minicnn.engine import conv as engine_conv
from minicnn.engine.winograd import conv_algorithm

n_acc = 4 if FAST else 32
x32 = rng.standard_normal((n_acc, 16, 16, 32)).astype(np.float32)               # NHWC
w32 = (rng.standard_normal((32, 32, 3, 3)) * np.sqrt(2 / 288)).astype(np.float32)
gy32 = rng.standard_normal(x32.shape).astype(np.float32)
exact = [engine_conv.reference_forward(x32.astype(np.float64), w32.astype(np.float64), None,
                                       (1, 1), (1, 1), 1)]
with mc.reference_kernels():                                  # float64 im2col: the yardstick
    exact += list(engine_conv.backward(x32.astype(np.float64), w32.astype(np.float64),
                                       gy32.astype(np.float64), (1, 1), (1, 1), 1, True, True))
errors = {}
for algorithm in ("im2col", "winograd2", "winograd4"):
    with conv_algorithm(algorithm):
        got = [engine_conv.forward(x32, w32, None, (1, 1), (1, 1), 1)]
        got += list(engine_conv.backward(x32, w32, gy32, (1, 1), (1, 1), 1, True, True))
    errors[algorithm] = [np.abs(a - e).max() / np.abs(e).max() for a, e in zip(got, exact)]
    print(f"{algorithm:10s} forward {errors[algorithm][0]:.1e}  input grad "
          f"{errors[algorithm][1]:.1e}  weight grad {errors[algorithm][2]:.1e}")
worst = {a: max(e) for a, e in errors.items()}
print(f"F(4x4) is {worst['winograd4'] / worst['winograd2']:.0f} times less accurate than "
      f"F(2x2) here, F(2x2) {worst['winograd2'] / worst['im2col']:.1f} times im2col's error")

# %% [markdown]
# F(2x2, 3x3) is as accurate as im2col; F(4x4, 3x3) loses about a decimal digit, still far
# below what float32 training notices, but `tests/test_winograd.py` holds each to its own
# bound. So minicnn chooses by itself, for 3x3 stride-1 layers: F(2x2, 3x3) from 32 channels
# in and out, F(4x4, 3x3) from 64, where it measured fastest, and im2col below 32 (`mc.summary`
# names the algorithm of every layer, and the measurements behind the rule are in
# `minicnn/engine/winograd.py`). `MINICNN_CONV_ALGORITHM=winograd4` (or `im2col`, `winograd2`,
# `auto`) forces one for a process, `conv_algorithm(...)` for a block of code.
#
# **By the clock.** The same ResNet-20 layer, forward and backward, each algorithm against
# PyTorch (same process, best of several runs; the benchmark `benchmarks/bench_winograd.py` runs
# each framework in its own process, which is fairer on two cores):

# %%
n_time = 8 if FAST else 128
xa = rng.standard_normal((n_time, 32, 16, 16)).astype(np.float32)
xa_cl = np.ascontiguousarray(xa.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)   # NHWC memory
wa = (rng.standard_normal((32, 32, 3, 3)) * 0.1).astype(np.float32)
clock = {}
for algorithm in ("im2col", "winograd2", "winograd4"):
    with conv_algorithm(algorithm):
        clock[algorithm] = best_time(lambda: step_minicnn(xa_cl, wa, 1), repeats)
if torch is not None:
    clock["PyTorch"] = best_time(lambda: step_torch(xa, wa, 1), repeats)
for name, seconds in clock.items():
    print(f"{name:10s} {1e3 * seconds:7.1f} ms")
print(f"Winograd F(2x2) took {clock['winograd2'] / clock['im2col']:.2f} of im2col's time, "
      f"F(4x4) {clock['winograd4'] / clock['im2col']:.2f}"
      + (f"; PyTorch took {clock['PyTorch'] / clock['winograd2']:.2f} times F(2x2)'s"
         if torch is not None else ""))
mc.summary(mc.nn.Sequential(mc.nn.Conv2d(3, 16, 3, padding=1), mc.nn.Conv2d(16, 16, 3, padding=1),
                            mc.nn.Conv2d(16, 32, 3, stride=2, padding=1),
                            mc.nn.Conv2d(32, 32, 3, padding=1)), (n_time, 3, 32, 32))

# %% [markdown]
# Fewer multiplications do not turn one for one into time: the transforms read and write every
# tile, and with few channels the GEMMs are too narrow to be limited by multiplications at all,
# so minicnn's choice also asks for enough channels. On a machine shared with other work single
# timings move a lot; `benchmarks/bench_winograd.py --passes` measures each pass in CPU time of
# one thread, which is steadier.
#
# **Summary.** A convolution is a matrix product once every window is copied into a row
# (im2col); its input gradient is the adjoint copy summed back (col2im); pooling uses the same
# strided windows. The readable NumPy kernels are the definition, the numba twins the CPU's
# speed, the CUDA twins the GPU's (one thread per output element), and the tests hold them
# equal; one switch, `mc.reference_kernels()`, runs a whole network on the lecture's version.
# Next: the first CNN that used all of this, LeNet-5 (notebook 02).
