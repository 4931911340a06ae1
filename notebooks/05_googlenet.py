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
# # 05 · GoogLeNet / Inception: width at a low price
#
# *Modern CNNs with minicnn, lecture notebook 5.*
#
# Szegedy et al. (2015), "Going deeper with convolutions": 22 layers, 6.7% top-5 error in
# ILSVRC 2014 — with 12 times fewer parameters than AlexNet. Its building block, the **Inception
# module**, runs four branches side by side on the same input — 1x1, 3x3 and 5x5 convolutions and
# a 3x3 max pool — and concatenates their outputs along the channel axis, so the next layer can
# pick features at several scales. Done naively this is expensive; the fix is the **1x1
# bottleneck**: a cheap 1x1 convolution that shrinks the channels before each 3x3 and 5x5.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import minicnn as mc
import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn.models.googlenet import INCEPTION_V1_CONFIG, BasicConv2d, Inception
from minicnn.plots import plot_history

FAST = os.environ.get("MINICNN_FAST", "0") == "1"   # tiny data and short runs (CI)
mc.manual_seed(0)
rng = np.random.default_rng(0)
print(f"minicnn {mc.__version__}; mode: {'FAST (MINICNN_FAST=1)' if FAST else 'normal'}")

# %% [markdown]
# ## Four branches, merged by concatenation
#
# `inception3a` of the paper's Table 1 takes the 192-channel 28x28 maps of the stem and has
# #1x1 = 64, #3x3 reduce = 96, #3x3 = 128, #5x5 reduce = 16, #5x5 = 32, pool proj = 32. Every
# branch keeps the 28x28 size (padding 1 for 3x3, 2 for 5x5, a stride-1 pool), so the four outputs
# stack along the channels: 64 + 128 + 32 + 32 = 256. On a random input:

# %%
name, *widths = INCEPTION_V1_CONFIG[0]
block = Inception(192, *widths, ch5x5_kernel=5)     # the paper's true 5x5 kernel
x = mc.Tensor(rng.standard_normal((2, 192, 28, 28)).astype(np.float32))
print(f"{name}: input {x.shape}")
branch_outputs = {}
for branch in ("branch1", "branch2", "branch3", "branch4"):
    branch_outputs[branch] = getattr(block, branch)(x)
    print(f"  {branch}: {branch_outputs[branch].shape}")
merged = mc.cat(list(branch_outputs.values()), 1)
print(f"  concatenated: {merged.shape};  block(x): {block(x).shape}")

fig, ax = plt.subplots(figsize=(7, 1.5))
start = 0
labels = ["1x1", "1x1 -> 3x3", "1x1 -> 5x5", "3x3 pool -> 1x1"]
for k, (branch, out) in enumerate(branch_outputs.items()):
    ax.barh(0, out.shape[1], left=start, color=f"C{k}")
    ax.text(start + out.shape[1] / 2, 0, f"{labels[k]}\n{out.shape[1]} ch", ha="center",
            va="center", fontsize=8, color="white")
    start += out.shape[1]
ax.set_xlim(0, start)
ax.set_yticks([])
ax.set_xlabel("output channel of inception3a")
plt.show()

# %% [markdown]
# ## What the 1x1 bottleneck saves
#
# The naive module (the paper's Figure 2a) applies the 3x3 and 5x5 filters to all 192 input
# channels, and its pool branch passes all 192 channels on. We build it from the same layers and
# let `mc.summary` count the multiply-adds of both versions for one 28x28 input.

# %%
class NaiveInception(nn.Module):
    """Figure 2a: 1x1, 3x3 and 5x5 convs straight on the input, and the 3x3 max pool, concat."""

    def __init__(self, in_channels, ch1x1, ch3x3, ch5x5):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = BasicConv2d(in_channels, ch3x3, kernel_size=3, padding=1)
        self.branch3 = BasicConv2d(in_channels, ch5x5, kernel_size=5, padding=2)
        self.branch4 = nn.MaxPool2d(3, stride=1, padding=1)

    def forward(self, x):
        return mc.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


naive = NaiveInception(192, 64, 128, 32)
print("naive module: input", x.shape, "-> output", naive(x).shape,
      "(the pool branch keeps all 192 channels)")
costs = {}
for label, module in (("naive (Fig. 2a)", naive), ("with 1x1 reductions (Fig. 2b)", block)):
    s = mc.summary(module, (1, 192, 28, 28), print_table=False)
    per_branch = {b: sum(r.macs for r in s.rows if r.name.startswith(b) and r.leaf)
                  for b in ("branch1", "branch2", "branch3", "branch4")}
    costs[label] = (s, per_branch)
    print(f"{label:30s} output {s.output_shape}  parameters {s.total_params:>9,}  "
          f"multiply-adds {s.macs_per_image:>12,}")
    print("    per branch:", ", ".join(f"{b} {m / 1e6:.1f} M" for b, m in per_branch.items()))
saving = costs["naive (Fig. 2a)"][0].macs_per_image / costs[
    "with 1x1 reductions (Fig. 2b)"][0].macs_per_image
print(f"the bottlenecks cut the multiply-adds {saving:.1f}-fold, and the output is 256 channels "
      "instead of 416")

# %%
fig, ax = plt.subplots(figsize=(6.5, 2.6))
for k, (label, (s, per_branch)) in enumerate(costs.items()):
    left = 0
    for j, (branch, macs) in enumerate(per_branch.items()):
        ax.barh(k, macs / 1e6, left=left, color=f"C{j}", label=labels[j] if k == 0 else None)
        left += macs / 1e6
ax.set_yticks([0, 1], list(costs))
ax.set_xlabel("multiply-adds per 28x28 image (millions)")
ax.legend(fontsize=8, loc="lower right")
plt.show()

# %% [markdown]
# The saving compounds: a naive module's output is wider than its input (416 channels from 192),
# so the next naive module would be more expensive still. With the bottlenecks the whole of
# GoogLeNet costs about 1.5 G multiply-adds per 224x224 image, less than VGG-16's 15.5 G, with
# 6.6 M parameters (torchvision's layout; the paper's own, with biases and without batch norm,
# has 7.0 M):

# %%
for factory in (mc.models.googlenet, mc.models.googlenet_paper):
    s = mc.summary(factory(), (1, 3, 224, 224), print_table=False)
    print(f"{factory.__name__:16s} {s.total_params:>10,} parameters, "
          f"{s.macs_per_image / 1e9:.3f} G multiply-adds per image, output {s.output_shape}")

# %% [markdown]
# ## A small Inception net, trained
#
# `googlenet_small` keeps the idea at about a quarter of Table 1's widths for 28x28 images: a 3x3
# stem, five Inception modules (with BN after every conv, as torchvision does), global average
# pooling and one linear layer — 154,070 parameters. Its summary, folded to the modules:

# %%
model = mc.models.googlenet_small()
summary = mc.summary(model, (1, 1, 28, 28), depth=1)

# %% [markdown]
# Trained on Fashion-MNIST (Adam, learning rate 2e-3 with a cosine schedule, batch 128):

# %%
train_set, test_set = mc.data.load_fashion_mnist()
n_train = 512 if FAST else 12000
n_test = 256 if FAST else 2000
epochs = 1 if FAST else 3
train_subset = mc.data.Subset(train_set, rng.permutation(len(train_set))[:n_train])
test_subset = mc.data.Subset(test_set, rng.permutation(len(test_set))[:n_test])
mc.manual_seed(0)
model = mc.models.googlenet_small()
optimizer = mc.optim.Adam(model.parameters(), lr=2e-3)
started = time.perf_counter()
history = mc.fit(model, optimizer, mc.data.DataLoader(train_subset, batch_size=128, shuffle=True,
                                                      seed=0), epochs,
                 val_loader=mc.data.DataLoader(test_subset, batch_size=500),
                 scheduler=mc.optim.CosineAnnealingLR(optimizer, epochs))
print(f"{n_train:,} training images, {epochs} epochs, {time.perf_counter() - started:.0f} s")

# %%
plot_history(history, title="googlenet_small on Fashion-MNIST")

# %% [markdown]
# ## Which branches does the trained net use?
#
# An ablation: switch off one branch of one module (a forward hook replaces its output with
# zeros) and measure the test accuracy of the trained net without it. A large drop means the
# network relies on that branch; none means it could do without.

# %%
n_ablate = min(1000, n_test)
images, truth = test_subset.get_batch(np.arange(n_ablate))
images = mc.Tensor(images)


def accuracy(net):
    net.eval()
    with mc.no_grad():
        return float((net(images).numpy().argmax(1) == truth).mean())


baseline = accuracy(model)
modules = ["inception3a", "inception3b", "inception4a", "inception4b", "inception5a"]
branches = ["branch1", "branch2", "branch3", "branch4"]
drops = np.zeros((len(modules), len(branches)))
for i, name in enumerate(modules):
    for j, branch in enumerate(branches):
        hook = getattr(getattr(model, name), branch).register_forward_hook(
            lambda m, args, out: mc.Tensor(np.zeros_like(out.numpy())))
        drops[i, j] = 100 * (baseline - accuracy(model))
        hook.remove()
print(f"test images {images.shape}; accuracy of the trained net: {100 * baseline:.1f}%")
fig, ax = plt.subplots(figsize=(6.5, 3))
for j in range(4):
    ax.bar(np.arange(len(modules)) + 0.2 * j - 0.3, drops[:, j], 0.2, label=labels[j],
           color=f"C{j}")
ax.set_xticks(range(len(modules)), modules, fontsize=8)
ax.set_ylabel("accuracy lost without it (points)")
ax.legend(fontsize=7)
plt.show()
for name, row in zip(modules, drops):
    print(f"{name}: " + "  ".join(f"{b} {d:+5.1f}" for b, d in zip(labels, row)))

# %% [markdown]
# **Summary.** An Inception module runs filters of several sizes in parallel and concatenates
# them; 1x1 convolutions in front of the 3x3 and 5x5 filters (and behind the pool) keep the cost
# down — 2.4 times fewer multiply-adds for `inception3a` as counted by `mc.summary`, with an output
# of 256 instead of 416 channels, a saving that compounds from module to module — and the whole
# network costs a tenth of VGG-16's multiply-adds. The small Inception net above learns
# Fashion-MNIST with 154 k parameters (88.7% on 2,000 test images after 3 epochs on 12,000). The
# ablation of the committed run: the trained net leans hardest on the 3x3 branches of the early
# modules (switching off `inception3a`'s costs 79 points), uses every branch of `inception3b`
# (the 5x5 one costs 36 points), and barely needs any single branch of the last module (at most
# 1 point). (A crude measure: a zeroed branch also shifts what the next batch norm sees, so a
# drop overstates how much information the branch carries.) Next: ResNet's shortcut (notebook 06), then DenseNet, which concatenates
# like Inception but across depth (notebook 07).
