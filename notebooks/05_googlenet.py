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
# Szegedy et al. (2015), "Going deeper with convolutions": a network 22 layers deep that won the
# ILSVRC 2014 classification task with 6.67% top-5 error, using, in the paper's words, 12× fewer
# parameters than the AlexNet of two years before (we count both below). Its building block, the
# **Inception module**, runs four branches side by side on the same input — 1x1, 3x3 and 5x5
# convolutions and a 3x3 max pool — and concatenates their outputs along the channel axis, so the
# next layer can pick features at several scales. Done naively this is expensive; the fix is the
# **1x1 bottleneck**: a cheap 1x1 convolution that shrinks the channels before each 3x3 and 5x5.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from tqdm import tqdm

import minicnn as mc
import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn.models.googlenet import INCEPTION_V1_CONFIG, BasicConv2d, Inception
from minicnn.stats import describe, separated, spread

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
param_saving = costs["naive (Fig. 2a)"][0].total_params / costs[
    "with 1x1 reductions (Fig. 2b)"][0].total_params
print(f"mc.summary: the 1x1 bottlenecks cut the multiply-adds {saving:.1f}-fold and the parameters "
      f"{param_saving:.1f}-fold, and the output is 256 channels instead of 416")

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
# GoogLeNet is cheap. `mc.summary` counts it (torchvision's layout with batch norm, and the
# paper's own with biases and local response normalisation) beside the two earlier ImageNet
# winners' designs, AlexNet and VGG-16, for one 224x224 image:

# %%
counted = {}
for factory in (mc.models.googlenet, mc.models.googlenet_paper, mc.models.alexnet,
                mc.models.vgg16):
    s = mc.summary(factory(), (1, 3, 224, 224), print_table=False)
    counted[factory.__name__] = s
    print(f"{factory.__name__:16s} {s.total_params:>12,} parameters, "
          f"{s.macs_per_image / 1e9:6.3f} G multiply-adds per image")
alex = counted["alexnet"].total_params
print(f"AlexNet has {alex / counted['googlenet'].total_params:.1f} times the parameters of "
      f"googlenet() and {alex / counted['googlenet_paper'].total_params:.1f} times those of "
      f"googlenet_paper(); VGG-16 does {counted['vgg16'].macs_per_image / counted['googlenet'].macs_per_image:.1f} "
      "times the multiply-adds of googlenet()")

# %% [markdown]
# Counted, AlexNet has about nine times GoogLeNet's parameters (the two ratios printed above),
# not the 12× of the paper's sentence; the paper does not say which counts it divided. The
# point stands either way: GoogLeNet is far deeper than AlexNet with several times fewer
# parameters, and does a fraction of VGG-16's multiply-adds. Most of AlexNet's parameters sit in
# its fully connected layers; GoogLeNet replaces them with global average pooling and one linear
# layer.
#
# ## A small Inception net, trained
#
# `googlenet_small` keeps the idea at about a quarter of Table 1's widths for 28x28 images: a 3x3
# stem, five Inception modules (with BN after every conv, as torchvision does), global average
# pooling and one linear layer. Its summary, folded to the modules:

# %%
model = mc.models.googlenet_small()
summary = mc.summary(model, (1, 1, 28, 28), depth=1)

# %% [markdown]
# The data: one in ten of the Fashion-MNIST training images is held out as the **validation**
# set (`mc.data.hold_out_validation`); the nets train on a random subset of the rest, and
# everything below (the curves, the ablation) is judged on validation images. The **test** set
# is used once, at the very end.
#
# Three seeds (the seed fixes the initial weights and the order of the batches), same recipe for
# each: Adam, learning rate 2e-3 with a cosine schedule, batches of 128.

# %%
full_train, test_set = mc.data.load_fashion_mnist()
if FAST:
    test_set = mc.data.Subset(test_set, np.arange(500))
train_part, val_part = mc.data.hold_out_validation(full_train, 0.1)
pick = np.random.default_rng(1)
n_train = 512 if FAST else 4000
n_val = 200 if FAST else 1000
train_set = mc.data.Subset(train_part, pick.permutation(len(train_part))[:n_train])
val_set = mc.data.Subset(val_part, pick.permutation(len(val_part))[:n_val])
epochs = 1 if FAST else 3
seeds = (0, 1, 2)
print(f"data: {len(train_set):,} train (of {len(train_part):,}) / {len(val_set):,} validation "
      f"(of {len(val_part):,}) / {len(test_set):,} test images; {epochs} epochs, seeds {seeds}")
nets, histories = {}, {}
started = time.perf_counter()
for seed in seeds:
    mc.manual_seed(seed)
    net = mc.models.googlenet_small()
    optimizer = mc.optim.Adam(net.parameters(), lr=2e-3)
    print(f"--- seed {seed}")
    histories[seed] = mc.fit(
        net, optimizer, mc.data.DataLoader(train_set, batch_size=128, shuffle=True, seed=seed),
        epochs, val_loader=mc.data.DataLoader(val_set, batch_size=500),
        scheduler=mc.optim.CosineAnnealingLR(optimizer, epochs), progress=True)
    nets[seed] = net
print(f"{len(seeds)} nets trained in {time.perf_counter() - started:.0f} s (a shared CPU)")

# %%
val_acc = 100 * np.array([histories[s]["val_acc"] for s in seeds])        # (seeds, epochs)
train_acc = 100 * np.array([histories[s]["train_acc"] for s in seeds])
epoch_axis = np.arange(1, epochs + 1)
fig, ax = plt.subplots(figsize=(5.5, 3.2))
for k, (label, acc) in enumerate((("training (during each epoch)", train_acc),
                                  ("validation", val_acc))):
    ax.plot(epoch_axis, acc.mean(0), "o-", color=f"C{k}", label=f"{label}, mean")
    ax.fill_between(epoch_axis, acc.min(0), acc.max(0), color=f"C{k}", alpha=0.25)
ax.set_xlabel("epoch")
ax.set_ylabel("accuracy (%)")
ax.set_title(f"googlenet_small, {len(seeds)} seeds (band: min to max)", fontsize=9)
ax.legend(fontsize=8)
plt.show()
print(f"{summary.total_params:,} parameters; validation accuracy after {epochs} epochs: "
      + describe(val_acc[:, -1], "{:.2f}%"))

# %% [markdown]
# ## Which branches does the trained net use?
#
# An ablation: switch off one branch of one module (a forward hook replaces its output with
# zeros) and measure the validation accuracy of the trained net without it, for each of the
# three nets. A branch counts as *needed* only when the ablated accuracies of all three seeds lie
# below the intact accuracies of all three (the seed ranges do not overlap); otherwise its drop
# is **within noise**. (A crude measure: a zeroed branch also shifts what the next batch norm
# sees, so a drop overstates how much information the branch carries.)
#
# The modules run in sequence, so the forward pass up to an ablated module is the same as the
# intact one: it is computed once per net and reused.

# %%
modules = ["inception3a", "inception3b", "inception4a", "inception4b", "inception5a"]
branches = ["branch1", "branch2", "branch3", "branch4"]
stages = ["conv1", "maxpool1", "conv2", "inception3a", "inception3b", "maxpool2", "inception4a",
          "inception4b", "inception5a"]
images, truth = val_set.get_batch(np.arange(len(val_set)))


def run_from(net, k, x):
    """The net's forward pass from stage k on (the same layers as googlenet_small's forward)."""
    for name in stages[k:]:
        x = getattr(net, name)(x)
    return net.fc(net.dropout(F.flatten(net.avgpool(x), 1)))


def accuracy_of(logits):
    return 100 * float((logits.numpy().argmax(1) == truth).mean())


intact = np.zeros(len(seeds))
ablated = np.zeros((len(seeds), len(modules), len(branches)))
with tqdm(total=len(seeds) * len(modules) * len(branches), desc="ablations", unit="run") as bar:
    for s, seed in enumerate(seeds):
        net = nets[seed]
        net.eval()
        with mc.no_grad():
            inputs = [mc.Tensor(images)]          # inputs[k]: what stage k receives
            for name in stages:
                inputs.append(getattr(net, name)(inputs[-1]))
            logits = run_from(net, len(stages), inputs[-1])
            assert np.allclose(logits.numpy(), net(mc.Tensor(images)).numpy(), atol=1e-4)
            intact[s] = accuracy_of(logits)
            for i, name in enumerate(modules):
                k = stages.index(name)
                for j, branch in enumerate(branches):
                    hook = getattr(getattr(net, name), branch).register_forward_hook(
                        lambda m, args, out: mc.Tensor(np.zeros_like(out.numpy())))
                    ablated[s, i, j] = accuracy_of(run_from(net, k, inputs[k]))
                    hook.remove()
                    bar.update()
drops = intact[:, None, None] - ablated                                  # (seeds, modules, branches)
print(f"{len(val_set):,} validation images; intact nets: " + describe(intact, "{:.2f}%"))

# %%
fig, ax = plt.subplots(figsize=(7, 3.2))
for j in range(len(branches)):
    mean = drops[:, :, j].mean(0)
    err = np.stack([mean - drops[:, :, j].min(0), drops[:, :, j].max(0) - mean])
    ax.bar(np.arange(len(modules)) + 0.2 * j - 0.3, mean, 0.2, yerr=err, capsize=2,
           label=labels[j], color=f"C{j}")
ax.axhspan(0, np.ptp(intact), color="0.85", zorder=0,
           label="spread of the intact nets' accuracy")
ax.set_xticks(range(len(modules)), modules, fontsize=8)
ax.set_ylabel("validation accuracy lost (points)")
ax.set_title(f"without one branch: mean of {len(seeds)} nets, bars min to max", fontsize=9)
ax.legend(fontsize=7)
plt.show()
needed = np.zeros((len(modules), len(branches)), dtype=bool)
for i, name in enumerate(modules):
    cells = []
    for j, label in enumerate(labels):
        needed[i, j] = separated(intact, ablated[:, i, j]) > 0
        d = spread(drops[:, i, j])
        cells.append(f"{label} {d['mean']:+.1f} ({d['min']:+.1f}..{d['max']:+.1f})"
                     + ("" if needed[i, j] else " noise"))
    print(f"{name}: " + "; ".join(cells))
print(f"spread of the intact nets: {np.ptp(intact):.1f} points. A branch is needed (every seed's "
      f"ablated accuracy below every seed's intact one) in {needed.sum()} of {needed.size} cases")
for i, name in enumerate(modules):
    used = [labels[j] for j in range(len(branches)) if needed[i, j]]
    noise = [labels[j] for j in range(len(branches)) if not needed[i, j]]
    print(f"  {name}: needed: {', '.join(used) or 'none'}; within noise: "
          f"{', '.join(noise) or 'none'}")
biggest = np.unravel_index(drops.mean(0).argmax(), drops.shape[1:])
print(f"largest drop: {modules[biggest[0]]}'s {labels[biggest[1]]} branch, "
      + describe(drops[:, biggest[0], biggest[1]], "{:.1f} points"))

# %% [markdown]
# The lines above say, module by module, which branches the trained nets need beyond the
# seed-to-seed spread and which are within noise. An earlier, one-seed version of this notebook
# read "uses every branch" into a single run; with three seeds, only the branches listed as needed
# support such a statement. In this run the two early modules need all four of their branches,
# the first module's 3x3 branch costs the most when removed, and the last module needs none of
# its branches on its own: with five modules in a row, its branches are partly redundant with one
# another. A branch counts as needed only when every seed's ablated accuracy is below every
# seed's intact accuracy (the grey band is the intact nets' spread); the verdicts near that bar,
# on the middle modules' 5x5 and pool branches, are the ones a rerun can change (training on a
# busy multi-core CPU is not bit-for-bit repeatable, so a rerun gives slightly different nets).
#
# ## The test set, once
#
# Nothing above looked at the test images. Now the three trained nets are evaluated on them,
# once:

# %%
test_loader = mc.data.DataLoader(test_set, batch_size=500)
test_acc = [100 * mc.evaluate(nets[seed], test_loader, progress=True)[1] for seed in seeds]
print(f"test accuracy on {len(test_set):,} test images, {len(seeds)} seeds: "
      + describe(test_acc, "{:.2f}%")
      + f"; validation: {describe(val_acc[:, -1], '{:.2f}%')}")

# %% [markdown]
# **Summary.** An Inception module runs filters of several sizes in parallel and concatenates
# them; 1x1 convolutions in front of the 3x3 and 5x5 filters (and behind the pool) keep the cost
# down — the saving `mc.summary` counts for `inception3a` is printed above, and it compounds from
# module to module, so the whole of GoogLeNet has several times fewer parameters than AlexNet
# (about nine times, counted, against the paper's 12×) and a fraction of VGG-16's multiply-adds.
# The small Inception net learns Fashion-MNIST; its validation and test accuracies over three
# seeds are printed above, and the branch ablation, judged against the seed spread, says which
# branches it needs. Next: ResNet's shortcut (notebook 06), then DenseNet, which concatenates
# like Inception but across depth (notebook 07).
