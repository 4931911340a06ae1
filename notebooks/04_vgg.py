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
# # 04 · VGG: depth from stacked 3x3 convolutions
#
# *Modern CNNs with minicnn, lecture notebook 4.*
#
# Simonyan and Zisserman (2015), "Very deep convolutional networks for large-scale image
# recognition": throw away AlexNet's 11x11 and 5x5 filters and build everything from **3x3
# convolutions** (stride 1, padding 1), in five stages separated by 2x2 max pools, 11 to 19
# layers deep. 7.3% top-5 error in ILSVRC 2014. Two questions: why are stacked 3x3 filters a good
# idea, and how did they train 16 and 19 layers at all?

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import minicnn as mc
import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn.models.vgg import CFGS, DEPTHS, vgg_grow
from minicnn.plots import plot_history

FAST = os.environ.get("MINICNN_FAST", "0") == "1"   # tiny data and short runs (CI)
mc.manual_seed(0)
rng = np.random.default_rng(0)
print(f"minicnn {mc.__version__}; mode: {'FAST (MINICNN_FAST=1)' if FAST else 'normal'}")

# %% [markdown]
# ## Stacked 3x3 modules
#
# ### Receptive field
#
# One 3x3 conv sees a 3x3 window; a second 3x3 conv on top sees 3x3 windows of the first, i.e.
# a 5x5 window of the input; $n$ stacked 3x3 convs (stride 1) see $(2n + 1) \times (2n + 1)$.
# We can *measure* it with autograd: the gradient of one output pixel with respect to the input is
# non-zero exactly on that pixel's receptive field.

# %%
def receptive_field(layers, size=15):
    """The input pixels that influence the centre output pixel (non-zero gradient)."""
    x = mc.Tensor(rng.standard_normal((1, 1, size, size)), requires_grad=True)
    y = layers(x)
    centre = np.zeros(y.shape)
    centre[0, 0, y.shape[2] // 2, y.shape[3] // 2] = 1.0
    y.backward(centre)
    return x.grad[0, 0] != 0


fig, axes = plt.subplots(1, 3, figsize=(8, 2.9), layout="constrained")
for n, ax in zip((1, 2, 3), axes):
    mc.manual_seed(n)
    stack = nn.Sequential(*[m for _ in range(n) for m in
                            (nn.Conv2d(1, 1, 3, padding=1).double(), nn.Tanh())])
    field = receptive_field(stack)
    rows, cols = np.nonzero(field)
    print(f"{n} stacked 3x3 conv(s): input (1, 1, 15, 15) -> output "
          f"{stack(mc.Tensor(np.zeros((1, 1, 15, 15)))).shape}; receptive field "
          f"{np.ptp(rows) + 1}x{np.ptp(cols) + 1}")
    ax.imshow(field, cmap="Greens")
    ax.set_title(f"{n} x (3x3 conv): {np.ptp(rows) + 1}x{np.ptp(cols) + 1}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()

# %% [markdown]
# (A tanh between the convs keeps the stack non-linear, as ReLU would, but without ReLU's
# zero-gradient regions that could hide part of the field for a random input.)
#
# ### Dilated 3x3 convolutions: an exponentially growing field
#
# A plain stack grows its field by 2 pixels per layer: linearly. A **dilated** 3x3 conv
# (``dilation=d``, the *atrous* convolution of DeepLab and WaveNet) keeps its 9 weights but puts
# them $d$ pixels apart, so it spans $2d + 1$ pixels. Doubling $d$ from layer to layer
# (1, 2, 4, 8, ...) with ``padding=d`` (output as large as the input) grows the field to
# $2^{n+1} - 1$ after $n$ layers: exponentially, with exactly the parameters of the plain stack
# and no pooling, so the resolution stays. The same autograd measurement, for both stacks:

# %%
def stack_of_3x3(n, dilated):
    """n 3x3 convs (1 channel, float64) with tanh between; dilation 1, 2, 4, ... if dilated."""
    layers = []
    for i in range(n):
        d = 2 ** i if dilated else 1
        layers += [nn.Conv2d(1, 1, 3, padding=d, dilation=d).double(), nn.Tanh()]
    return nn.Sequential(*layers)


depths = range(1, 5 if FAST else 7)
size = 2 ** (max(depths) + 1) + 1               # large enough for the widest field
extent = {"plain": [], "dilated": []}
fields = {}
print("layers   plain field (2n+1)   dilated field (2^(n+1)-1)   parameters of each stack")
for n in depths:
    for kind in extent:
        mc.manual_seed(n)
        stack = stack_of_3x3(n, kind == "dilated")
        field = receptive_field(stack, size)
        rows, cols = np.nonzero(field)
        extent[kind].append(np.ptp(rows) + 1)
        assert field.sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)   # no holes in it
        fields[kind] = field
    params = sum(p.size for p in stack.parameters())
    plain, dilated = extent["plain"][-1], extent["dilated"][-1]
    print(f"{n:6d}   {f'{plain}x{plain}':>7s} ({2 * n + 1:3d})      "
          f"{f'{dilated}x{dilated}':>9s} ({2 ** (n + 1) - 1:4d})      {params:5d}")

fig, axes = plt.subplots(1, 3, figsize=(10, 3.2), layout="constrained")
axes[0].plot(list(depths), extent["plain"], "o-", label="plain 3x3 (dilation 1)")
axes[0].plot(list(depths), extent["dilated"], "s-", label="dilated 3x3 (1, 2, 4, ...)")
axes[0].set_yscale("log", base=2)
axes[0].set_xlabel("layers")
axes[0].set_ylabel("receptive field (pixels, log scale)")
axes[0].legend(fontsize=8)
for ax, kind in zip(axes[1:], ("plain", "dilated")):
    ax.imshow(fields[kind], cmap="Greens")
    ax.set_title(f"{max(depths)} {kind} layers: {extent[kind][-1]}x{extent[kind][-1]} of "
                 f"{size}x{size}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()

# %% [markdown]
# The measured fields match $2n + 1$ and $2^{n+1} - 1$ and have no holes: doubling the dilation
# lets every layer fill the gaps the previous one left. (Dilating every layer by the same $d > 1$
# would leave a grid of pixels the stack never sees — the "gridding" artefact.)
#
# ### Parameter arithmetic
#
# With $C$ channels in and out, three stacked 3x3 layers have $3 \cdot 9 C^2 = 27 C^2$ weights;
# one 7x7 layer with the same receptive field has $49 C^2$ — 81% more — and only one
# non-linearity instead of three. `mc.summary` counts both for $C = 64$ on a 56x56 map:

# %%
C = 64
three_3x3 = nn.Sequential(nn.Conv2d(C, C, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(C, C, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(C, C, 3, padding=1), nn.ReLU())
one_7x7 = nn.Sequential(nn.Conv2d(C, C, 7, padding=3), nn.ReLU())
rows = []
for name, block in (("three 3x3 convs", three_3x3), ("one 7x7 conv", one_7x7)):
    s = mc.summary(block, (1, C, 56, 56), print_table=False)
    rows.append((name, s.output_shape, s.total_params, s.macs_per_image))
    print(f"{name:16s} output {s.output_shape}  parameters {s.total_params:>9,}  "
          f"multiply-adds {s.macs_per_image:>13,}")
print(f"weights without biases: 27 C^2 = {27 * C * C:,}, 49 C^2 = {49 * C * C:,}; "
      f"the 7x7 layer has {rows[1][2] / rows[0][2]:.2f}x the parameters")

# %% [markdown]
# ## The VGG family
#
# The paper's Table 1 as data (`minicnn.models.vgg.CFGS`: a number is a conv layer's output
# channels, `"M"` a max pool). All four share the five stages; deeper columns add layers inside
# stages 1–5.

# %%
for depth, column in DEPTHS.items():
    print(f"VGG-{depth} ({column}):", " ".join(str(v) for v in CFGS[column]))
if not FAST:   # building the ImageNet-size nets allocates 130-144 M parameters each
    for factory in (mc.models.vgg11, mc.models.vgg13, mc.models.vgg16, mc.models.vgg19):
        s = mc.summary(factory(), (1, 3, 224, 224), print_table=False)
        conv_params = sum(r.params for r in s.rows if r.type == "Conv2d")
        print(f"{factory.__name__}: {s.total_params:>12,} parameters ({conv_params:>11,} in "
              f"conv layers), {s.macs_per_image / 1e9:6.2f} G multiply-adds per 224x224 image")

# %% [markdown]
# Most parameters sit in the first fully connected layer (25088 x 4096 = 102.8 M); most compute
# in the convolutions, and going from 11 to 19 layers adds 10.8 M parameters but more than
# doubles the multiply-adds.
#
# For Fashion-MNIST we use `vgg_small(depth)`: the same columns, every width divided by 4
# (16-32-64-128-128 channels), ceil-mode pools so five halvings fit 28x28, and global average
# pooling before a small classifier. A random batch through VGG-16-small, stage by stage:

# %%
model = mc.models.vgg_small(16)
x = mc.Tensor(rng.random((2, 1, 28, 28), dtype=np.float32))
print(f"{'input':14s} {x.shape}")
stage, convs = 1, 0
for layer in model.features:
    x = layer(x)
    if isinstance(layer, nn.Conv2d):
        convs += 1
    if isinstance(layer, nn.MaxPool2d):
        print(f"stage {stage} ({convs} conv{'s' if convs > 1 else ''}) -> {x.shape}")
        stage, convs = stage + 1, 0
print(f"{'classifier':14s} {model.classifier(model.avgpool(x).flatten(1)).shape}")
for depth in (11, 13, 16, 19):
    print(f"vgg_small({depth}): {sum(p.size for p in mc.models.vgg_small(depth).parameters()):,} "
          "parameters")

# %% [markdown]
# ## Why a better initialisation was needed
#
# The paper initialised its weights from $\mathcal{N}(0, 10^{-2})$ (biases 0). With a
# fixed standard deviation, each layer multiplies the scale of the signal by roughly
# $0.01 \sqrt{\text{fan-in}/2}$ (ReLU halves the variance): for a 3x3 conv with 16 input channels
# (fan-in 144) that is 0.085, with 128 (fan-in 1152) it is 0.24. Over 13 layers the signal all but vanishes — and the
# gradients with it. He et al. (2015) choose the standard deviation $\sqrt{2/\text{fan-in}}$ so
# that the factor is 1 at every layer. Measured on VGG-16-small, the standard deviation of each
# conv layer's output for a batch of real images:

# %%
train_set, test_set = mc.data.load_fashion_mnist()
n_train = 512 if FAST else 6000
n_test = 256 if FAST else 2000
order = rng.permutation(len(train_set))
train_subset = mc.data.Subset(train_set, order[:n_train])
test_subset = mc.data.Subset(test_set, rng.permutation(len(test_set))[:n_test])
images = mc.Tensor(train_set.get_batch(order[:128])[0])


def paper_init(model):
    """The VGG paper's initialisation: weights N(0, 0.01^2), biases 0."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
    return model


def conv_output_stds(model, images):
    stds = []
    hooks = [m.register_forward_hook(lambda mod, args, out: stds.append(float(out.numpy().std())))
             for m in model.features if isinstance(m, nn.Conv2d)]
    with mc.no_grad():
        logits = model(images)
    for hook in hooks:
        hook.remove()
    return stds, float(logits.numpy().std())


mc.manual_seed(0)
inits = {"N(0, 0.01^2) (paper)": paper_init(mc.models.vgg_small(16)),
         "He / Kaiming (vgg_small's default)": mc.models.vgg_small(16)}
fig, ax = plt.subplots(figsize=(6, 3.3))
for name, net in inits.items():
    stds, logit_std = conv_output_stds(net, images)
    ax.semilogy(range(1, 14), stds, "o-", label=name)
    print(f"{name:36s} conv-output std: layer 1 {stds[0]:.1e}, layer 13 {stds[-1]:.1e}; "
          f"logits std {logit_std:.1e}")
ax.set_xlabel("conv layer")
ax.set_ylabel("std of its output")
ax.set_title(f"VGG-16-small at initialisation, batch {images.shape}")
ax.legend()
plt.show()

# %% [markdown]
# ## Stage-wise training vs training deep from scratch
#
# The paper (section 3.1): "we began with training the configuration A [VGG-11], shallow enough to
# be trained with random initialisation. Then, when training deeper architectures, we initialised
# the first four convolutional layers and the last three fully-connected layers with the layers of
# net A". `vgg_grow(shallow, deeper)` does that copy, matching conv layers by their position in
# their stage. We grow VGG-11 → VGG-13 → VGG-16, copying every layer the shallower net has
# (`conv_layers=None`), and train each stage for the same number of epochs. Against it: VGG-16
# trained from scratch with the paper's $\mathcal{N}(0, 10^{-2})$ initialisation, and with He
# initialisation (which, as the paper notes it found after submission, makes the staging
# unnecessary).
#
# All runs: Adam, learning rate 1e-3, batch 64, the same 6,000 training images; test accuracy on
# 2,000 test images.

# %%
epochs = 1 if FAST else 2


def train(model, label):
    mc.manual_seed(0)
    loader = mc.data.DataLoader(train_subset, batch_size=64, shuffle=True, seed=0)
    started = time.perf_counter()
    history = mc.fit(model, mc.optim.Adam(model.parameters(), lr=1e-3), loader, epochs,
                     val_loader=mc.data.DataLoader(test_subset, batch_size=500), log=None)
    print(f"{label:36s} test accuracy per epoch "
          f"{', '.join(f'{100 * a:.1f}%' for a in history['val_acc'])}   "
          f"({time.perf_counter() - started:.0f} s)")
    return history


histories = {}
mc.manual_seed(0)
vgg11 = mc.models.vgg_small(11)
histories["VGG-11 (stage 1)"] = train(vgg11, "VGG-11 from scratch (stage 1)")
vgg13 = mc.models.vgg_small(13)
report = vgg_grow(vgg11, vgg13, conv_layers=None)
print(f"    VGG-11 -> VGG-13: copied {len(report.copied)} tensors, left random: "
      f"{', '.join(report.random)}")
histories["VGG-13 grown (stage 2)"] = train(vgg13, "VGG-13 grown from VGG-11 (stage 2)")
vgg16 = mc.models.vgg_small(16)
report = vgg_grow(vgg13, vgg16, conv_layers=None)
print(f"    VGG-13 -> VGG-16: copied {len(report.copied)} tensors, left random: "
      f"{', '.join(report.random)}")
histories["VGG-16 grown (stage 3)"] = train(vgg16, "VGG-16 grown from VGG-13 (stage 3)")
mc.manual_seed(0)
histories["VGG-16 scratch, N(0, 0.01^2)"] = train(paper_init(mc.models.vgg_small(16)),
                                                  "VGG-16 from scratch, N(0, 0.01^2)")
mc.manual_seed(0)
histories["VGG-16 scratch, He"] = train(mc.models.vgg_small(16), "VGG-16 from scratch, He init")

# %%
plot_history(histories, title="VGG-small on Fashion-MNIST (dashed: training, solid: test)")

# %%
final = {name: 100 * h["val_acc"][-1] for name, h in histories.items()}
for name, acc in final.items():
    print(f"{name:30s} test accuracy after its {epochs} epochs: {acc:.1f}%")

# %% [markdown]
# What the committed run shows (numbers above): the paper's fixed-scale initialisation leaves
# VGG-16 untrainable from scratch — its conv outputs shrink from 1e-2 to 1e-12 through the 13
# layers, the logits are 1e-15, and its test accuracy stays at chance (9.2%) — which is exactly
# why VGG was first trained stage by stage. Grown from the trained shallower nets, VGG-16 starts
# where VGG-13 ended (74% after its first epoch) and reaches 78.6%. With He initialisation VGG-16
# trains from scratch, no staging needed, but in this short budget it is still far behind (58.7%
# after 2 epochs); the stage-wise VGG-16 has also seen three times as many epochs in total,
# counting its ancestors' training, so the two are not a like-for-like comparison of final
# accuracy — the point is that one of them can start at all.
#
# **Summary.** Stacks of 3x3 convolutions reach any receptive field with fewer parameters and
# more non-linearities than one large filter. Depth needs a good initialisation: at a fixed
# $\sigma = 0.01$ the signal of a 13-conv VGG dies out, so the authors grew their deep nets from
# shallower ones; a variance-preserving initialisation (He) makes that unnecessary. Next:
# GoogLeNet's answer to the cost of depth and width — the 1x1 bottleneck (notebook 05).
