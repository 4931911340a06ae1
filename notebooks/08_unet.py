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
# # 08 · U-Net vs FCN: segmentation with skip connections across the whole network
#
# *Modern CNNs with minicnn, lecture notebook 8.*
#
# Ronneberger, Fischer and Brox (2015), "U-Net: convolutional networks for biomedical image
# segmentation". A classifier answers one question per image; a segmentation network answers
# one per **pixel**. U-Net's **contracting path** (3x3 convs and max pools, like VGG) gathers
# context while the maps shrink; its **expanding path** grows them back with 2x2 **up-convolutions**
# (transposed convolutions); and at every level a skip connection **crops** the encoder's map and
# **concatenates** it to the decoder's, so the fine detail lost by pooling comes back.
#
# U-Net is built on the fully convolutional network of Long, Shelhamer and Darrell (2015). The
# lecture names the two differences from FCN-8s: **U-Net is symmetric** (its expanding path
# mirrors the contracting path, with as many feature maps), where FCN-8s has a light decoder of
# class scores; and **U-Net's skips concatenate**, where FCN's sum. We build both, a no-skip
# FCN-32s baseline, and a U-Net with sum skips, and measure them on one task.
#
# How we measure: the intersection-over-union (IoU) of each class, averaged over the classes
# (the "mean IU" of the FCN paper), on a validation set held out of the training images during
# training; three seeds per model, mean and min-max spread shown, a difference called one only
# when the seed ranges do not overlap ("within noise" otherwise); the test images are used once,
# at the end.

# %%
import copy
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch
from tqdm import tqdm

import minicnn as mc
import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn.models.fcn import bilinear_kernel, fcn_small
from minicnn.models.unet import unet_output_size
from minicnn.stats import compare, describe, spread

FAST = os.environ.get("MINICNN_FAST", "0") == "1"   # tiny data and short runs (CI)
mc.manual_seed(0)
rng = np.random.default_rng(0)
SEEDS = (0, 1, 2)
print(f"minicnn {mc.__version__}; mode: {'FAST (MINICNN_FAST=1)' if FAST else 'normal'}")

# %% [markdown]
# ## The task: synthetic shapes
#
# `mc.data.SyntheticShapes` draws 1–3 circles, squares and triangles of random size, position and
# brightness on a noisy background; the mask gives each pixel's class (0 background, 1 circle,
# 2 square, 3 triangle). Shapes may overlap; the one drawn later wins. A fifth of the training
# shapes (a seeded draw, `mc.data.hold_out_validation`) is held out for validation; the test
# shapes come from another seed: unseen images, used once at the end.

# %%
size = 32
n_shapes = 80 if FAST else 700
n_test = 32 if FAST else 200
shapes = mc.data.SyntheticShapes(n_shapes, size=size, seed=0)
train_set, val_set = mc.data.hold_out_validation(shapes, 0.2)
test_set = mc.data.SyntheticShapes(n_test, size=size, seed=1)   # other seed: unseen images
print(mc.data.describe_splits(train_set, val_set, test_set), f"({size}x{size} pixels)")
classes = shapes.classes
CLASS_COLOURS = ListedColormap(["#1f1f3a", "#e4572e", "#4cb944", "#f3c623"])   # one per class
LEGEND = [Patch(color=CLASS_COLOURS(k), label=f"{k} {c}") for k, c in enumerate(classes)]


def show_mask(ax, mask):
    ax.imshow(mask, cmap=CLASS_COLOURS, vmin=-0.5, vmax=len(classes) - 0.5,
              interpolation="nearest")


images, masks = train_set.get_batch(np.arange(6))
print("images", images.shape, images.dtype, " masks", masks.shape, masks.dtype, " classes", classes)
fig, axes = plt.subplots(2, 6, figsize=(10, 3.9), layout="constrained")
for j in range(6):
    axes[0, j].imshow(images[j, 0], cmap="gray")
    show_mask(axes[1, j], masks[j])
    axes[0, j].axis("off")
    axes[1, j].axis("off")
axes[0, 0].set_title("image", fontsize=8, loc="left")
axes[1, 0].set_title("mask", fontsize=8, loc="left")
fig.legend(handles=LEGEND, loc="lower center", ncol=len(classes), fontsize=8, frameon=False,
           bbox_to_anchor=(0.5, -0.08))
plt.show()
train_masks = train_set.get_batch(np.arange(len(train_set)))[1]
print("pixel share of each class in the training part:",
      {c: f"{100 * np.mean(train_masks == k):.1f}%" for k, c in enumerate(classes)})

# %% [markdown]
# ## The original U-Net: contracting and expanding paths
#
# The paper's net (`mc.models.unet()`: 1 input channel, 2 classes, 64–1024 channels, depth 4) uses
# *unpadded* 3x3 convs: each trims 2 pixels. A 572x572 tile shrinks to 28x28 at the bottom and
# comes back as a 388x388 map of scores — the output covers only the centre of the input.
# `mc.summary` runs it shape-only (the convs are not computed) and shows both paths:

# %%
original = mc.models.unet()
summary = mc.summary(original, (1, 1, 572, 572), depth=2)
print("unet_output_size(572) =", unet_output_size(572), "| unet_output_size(572, padding=True) =",
      unet_output_size(572, padding=True))

# %% [markdown]
# ### Crop and concatenate
#
# At the top level the encoder's map is 568x568, the decoder's after the last up-conv 392x392:
# the skip cuts the centre 392x392 out of the encoder's map (`F.center_crop`) and concatenates the
# two along the channels (64 + 64 = 128), the "copy and crop" arrows of the paper's Figure 1.
# On random maps, scaled down by 8 so the demo is quick:

# %%
encoder_map = mc.Tensor(rng.standard_normal((1, 8, 71, 71)).astype(np.float32))
decoder_map = mc.Tensor(rng.standard_normal((1, 8, 49, 49)).astype(np.float32))
cropped = F.center_crop(encoder_map, decoder_map.shape[-2:])
joined = mc.cat([cropped, decoder_map], axis=1)
print("encoder", encoder_map.shape, "-> cropped", cropped.shape, "; concat with decoder",
      decoder_map.shape, "->", joined.shape)

# %% [markdown]
# ### The up-convolution
#
# A 2x2 transposed convolution with stride 2 turns every input pixel into a 2x2 patch of outputs
# (one learned 2x2 stamp per pair of channels), doubling height and width. Its forward pass is the
# backward pass of a 2x2 stride-2 conv — the col2im of notebook 01. On a single lit pixel and on
# a random map:

# %%
up = nn.ConvTranspose2d(1, 1, kernel_size=2, stride=2)
impulse = np.zeros((1, 1, 4, 4), dtype=np.float32)
impulse[0, 0, 1, 2] = 1.0
stamped = up(mc.Tensor(impulse)).numpy()
print("input", impulse.shape, "-> up-conv", stamped.shape)
print("the learned 2x2 stamp (weight[0, 0]):\n", np.round(up.weight.numpy()[0, 0], 3))
print("output around the lit pixel:\n", np.round(stamped[0, 0, 2:4, 4:6] - up.bias.numpy()[0], 3))
fig, axes = plt.subplots(1, 2, figsize=(5, 2.4))
axes[0].imshow(impulse[0, 0], cmap="gray")
axes[0].set_title("input 4x4", fontsize=9)
axes[1].imshow(stamped[0, 0], cmap="RdBu_r")
axes[1].set_title("up-conv output 8x8", fontsize=9)
for ax in axes:
    ax.axis("off")
plt.show()
random_map = mc.Tensor(rng.standard_normal((2, 32, 6, 6)).astype(np.float32))
print("random map", random_map.shape, "-> ConvTranspose2d(32, 16, 2, stride=2):",
      nn.ConvTranspose2d(32, 16, 2, stride=2)(random_map).shape)


# %% [markdown]
# ## FCN-8s: a classifier made fully convolutional
#
# Long, Shelhamer and Darrell took VGG-16, turned its fully connected layers into convolutions
# (`fc6`: 7x7, `fc7`: 1x1) and put a 1x1 conv on top that gives a score per class at every
# position, at stride 32. Upsampling those scores back to the image gives **FCN-32s**, which has
# no skip. **FCN-8s** adds two: 1x1 convs turn the pooled maps `pool4` (stride 16) and `pool3`
# (stride 8) into class scores too, and each is **added** to the coarser scores after a learned
# 2x up-convolution (initialised to bilinear interpolation); a fixed bilinear 8x upsampling ends
# the net. Everything after the encoder carries class scores, a handful of maps: the decoder is
# light. `mc.models.fcn8s()` builds the paper's net (VGG-16 encoder, 21 PASCAL classes, the
# paper's 134M parameters, checked in `tests/test_fcn.py`). Fine-tuned from ImageNet weights on
# images of a few hundred pixels a side, it reached 62.2% mean IU on the PASCAL VOC 2012 test
# set, a 20% relative improvement over the best method before it; FCN-32s, without the skips,
# gave coarser masks and a lower mean IU.
#
# Bilinear interpolation as a transposed convolution: a stride-$s$ up-conv whose $2s \times 2s$
# kernel is a "tent", so each input score is spread over its neighbourhood with weights that
# fall linearly with distance. The kernel for the 2x up-convolution, and a 2x2 map of scores
# upsampled 8x by it:

# %%
print("bilinear kernel for stride 2 (4x4):\n", bilinear_kernel(4))
demo = fcn_small(num_classes=1, stride=8, width=4)
coarse = mc.Tensor(np.array([[[[0.0, 1.0], [1.0, 0.0]]]], dtype=np.float32))
fine = demo.upsample(coarse, (16, 16)).numpy()
fig, axes = plt.subplots(1, 2, figsize=(5, 2.4))
axes[0].imshow(coarse.numpy()[0, 0], cmap="viridis", vmin=0, vmax=1)
axes[0].set_title("scores 2x2", fontsize=9)
axes[1].imshow(fine[0, 0], cmap="viridis", vmin=0, vmax=1)
axes[1].set_title("fixed bilinear x8: 16x16", fontsize=9)
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Four nets for the shapes
#
# The small configurations for this CPU, all with batch norm after every 3x3 conv (in neither
# paper: it lets these nets train in a few epochs from scratch):
#
# - **FCN-32s** and **FCN-8s**: VGG-16's 13 convs and five pools at a quarter of its widths,
#   `fc6` a 3x3 conv (the 32x32 images leave a 1x1 map at `pool5`), then the score layers;
# - **U-Net, concat** and **U-Net, sum**: padded 3x3 convs (output size = input size), depth 3,
#   16 to 128 channels. With `skip="concat"` each decoder level's first conv reads $2C$ channels
#   (skip and up-conv stacked); with `skip="sum"` the two are added and it reads $C$.
#
# The lecture's two differences, each isolated by one pair: **concat vs sum** is U-Net concat
# against U-Net sum (nothing else differs); **symmetry** is U-Net sum against FCN-8s (both sum
# their skips; the decoders differ: U-Net's mirrors the encoder with feature maps and a skip at
# every level down to full resolution, FCN-8s's carries class scores and its finest skip is at
# stride 8). The encoders differ too (U-Net's is shallower), so that pair measures the whole
# design, not the decoder alone. FCN-8s against FCN-32s measures what the skips add.
#
# What "symmetric" means in numbers, from `mc.summary` on one 32x32 image (the decoder is
# everything after the deepest map: U-Net's up-convs, decoder convs and head; FCN's score
# layers and up-convs, plus the fixed bilinear upsampling, which has no parameters):

# %%
BUILDERS = {
    "FCN-32s": lambda: fcn_small(len(classes), 1, stride=32, width=16, batch_norm=True),
    "FCN-8s": lambda: fcn_small(len(classes), 1, stride=8, width=16, batch_norm=True),
    "U-Net, sum": lambda: mc.models.unet(1, len(classes), base_channels=16, depth=3,
                                         padding=True, skip="sum", batch_norm=True),
    "U-Net, concat": lambda: mc.models.unet(1, len(classes), base_channels=16, depth=3,
                                            padding=True, skip="concat", batch_norm=True),
}
DECODER = {"upconvs", "decoder", "head", "score_fr", "score_pool4", "score_pool3", "upscore2",
           "upscore_pool4"}
x = mc.Tensor(images[:2])
print(f"{'':14s} {'parameters':>10s} {'decoder':>8s}   {'mult-adds':>10s} {'decoder':>8s}   "
      "output        finest skip")
for name, build in BUILDERS.items():
    net = build()
    rows = [r for r in mc.summary(net, (1, 1, size, size), depth=3, print_table=False).rows
            if r.leaf]
    params = sum(r.params for r in rows)
    macs = sum(r.macs for r in rows)
    dec_params = sum(r.params for r in rows if r.name.split(".")[0] in DECODER)
    dec_macs = sum(r.macs for r in rows if r.name.split(".")[0] in DECODER)
    finest = {"FCN-32s": "none (stride 32)", "FCN-8s": "pool3 (stride 8)"}.get(
        name, "level 0 (stride 1)")
    with mc.no_grad():
        out = net(x)
    print(f"{name:14s} {params:>10,} {dec_params / params:>8.1%}   {macs:>10,} "
          f"{dec_macs / macs:>8.1%}   {str(out.shape):13s} {finest}")
print(f"at {size}x{size} FCN's deepest scores are a {size // 32}x{size // 32} map (stride 32), "
      f"its finest skip scores a {size // 8}x{size // 8} map (stride 8)")

# %% [markdown]
# The lecture's symmetry, in numbers: the U-Nets spend a large share of their parameters and
# most of their multiply-adds in the expanding path, which carries as many feature maps as the
# contracting path at each level; in FCN the decoder is a rounding error beside the encoder,
# because it carries only the class scores. The other side of the light decoder is where its
# decisions are made: on these small images the deepest scores of FCN are one value per class
# for the whole image, and its finest skip still scores coarse cells.
#
# Before any training: how much can a score map at stride 8 or 32 say? Give each 8x8 (or
# 32x32) cell of a validation mask the exact fraction of each class in it, upsample those
# fractions with FCN's own fixed bilinear layer and take the most likely class per pixel. The
# mean IoU of that is a reference for a decoder that stops at that stride (not a strict bound: a
# net's scores need not be fractions, and sharper scores can move the boundaries):

# %%
def count_pixels(truth, pred):
    """(K, K) pixel counts: row = true class, column = predicted class."""
    k = len(classes)
    return np.bincount(k * truth.ravel() + pred.ravel(), minlength=k * k).reshape(k, k)


def class_iou(counts):
    """IoU of each class over the whole set: true positives / (true + predicted - true pos.)."""
    tp = np.diag(counts).astype(np.float64)
    union = counts.sum(0) + counts.sum(1) - tp
    return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


val_masks = val_set.get_batch(np.arange(len(val_set)))[1]
one_hot = np.eye(len(classes), dtype=np.float32)[val_masks].transpose(0, 3, 1, 2)  # N, K, H, W
reference = {}
for stride in (32, 8):
    fractions = F.avg_pool2d(mc.Tensor(one_hot), stride)       # N x K x H/stride x W/stride
    upsampled = fcn_small(len(classes), stride=stride, width=1).upsample(fractions, (size, size))
    ceiling_iou = class_iou(count_pixels(val_masks, upsampled.numpy().argmax(1)))
    reference[stride] = float(np.nanmean(ceiling_iou))
    print(f"stride {stride:2d} ({size // stride}x{size // stride} score map), exact class fractions upsampled: "
          f"validation mean IoU {np.nanmean(ceiling_iou):.3f} (per class: "
          + ", ".join(f"{c} {v:.3f}" for c, v in zip(classes, ceiling_iou)) + ")")

# %% [markdown]
# ## Training: four nets, three seeds each
#
# All trained the same way: per-pixel cross-entropy, Adam with one learning rate for all and a
# cosine schedule, batch 16, the same training part; the seed sets the initial weights and the
# order of the batches. After every epoch the mean IoU on the validation part is measured, and
# each run keeps the weights of its best validation epoch (the only choice made here, made on
# validation). The learning rate was not tuned per model.

# %%
def confusion(net, dataset, batch_size=100):
    """(K, K) pixel counts of ``net``'s predictions on ``dataset`` (see count_pixels)."""
    net.eval()
    counts = 0
    with mc.no_grad():
        for batch_images, batch_masks in mc.data.DataLoader(dataset, batch_size=batch_size):
            counts = counts + count_pixels(batch_masks.numpy(),
                                           net(batch_images).numpy().argmax(1))
    return counts


def train_run(name, seed, epochs, lr, bar):
    """Train one net; returns (net at its best validation epoch, validation mean IoU per
    epoch, the best epoch)."""
    mc.manual_seed(seed)
    net = BUILDERS[name]()
    optimizer = mc.optim.Adam(net.parameters(), lr=lr)
    scheduler = mc.optim.CosineAnnealingLR(optimizer, epochs)
    loader = mc.data.DataLoader(train_set, batch_size=16, shuffle=True, seed=seed)
    curve, best_state = [], None
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        net.train()
        for batch_images, batch_masks in loader:
            loss = F.cross_entropy(net(batch_images), batch_masks)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
        curve.append(float(np.nanmean(class_iou(confusion(net, val_set)))))
        bar.set_postfix_str(f"{name}, seed {seed}: validation mean IoU {curve[-1]:.3f}")
        bar.update(1)
        if curve[-1] >= max(curve):
            best_state = copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)
    return net, curve, int(np.argmax(curve))


epochs = 1 if FAST else 5
lr = 3e-3
steps = epochs * len(mc.data.DataLoader(train_set, batch_size=16))
runs = {}   # (name, seed) -> (net, validation curve, best epoch)
started = time.perf_counter()
with tqdm(total=len(BUILDERS) * len(SEEDS) * epochs, desc="4 nets x 3 seeds",
          unit="epoch") as bar:
    for seed in SEEDS:
        for name in BUILDERS:
            runs[name, seed] = train_run(name, seed, epochs, lr, bar)
print(f"{len(runs)} runs of {epochs} epochs ({steps} steps each) in "
      f"{time.perf_counter() - started:.0f} s")

# %%
fig, ax = plt.subplots(figsize=(6, 3.4), layout="constrained")
epochs_axis = np.arange(1, epochs + 1)
for name in BUILDERS:
    curves = np.array([runs[name, seed][1] for seed in SEEDS])
    line, = ax.plot(epochs_axis, curves.mean(0), marker="o", label=name)
    ax.fill_between(epochs_axis, curves.min(0), curves.max(0), color=line.get_color(), alpha=0.2)
ax.set_xlabel("epoch")
ax.set_ylabel("validation mean IoU")
ax.set_title(f"mean of {len(SEEDS)} seeds, band: min to max", fontsize=9)
ax.legend(fontsize=8)
plt.show()
val_best = {name: [max(runs[name, seed][1]) for seed in SEEDS] for name in BUILDERS}
for name in BUILDERS:
    print(f"{name:14s} best validation mean IoU: {describe(val_best[name], '{:.3f}')}; "
          f"chosen epochs {[runs[name, seed][2] + 1 for seed in SEEDS]}")

# %% [markdown]
# ## The two differences, and the skips, on validation
#
# The three comparisons, each in the words of `mc.stats.compare` (a difference only when every
# seed of one net is above every seed of the other):

# %%
PAIRS = [("symmetry (both sum skips)", "U-Net, sum", "FCN-8s"),
         ("concat vs sum (both U-Nets)", "U-Net, concat", "U-Net, sum"),
         ("FCN's skips", "FCN-8s", "FCN-32s")]
for title, a, b in PAIRS:
    print(f"{title}: " + compare(val_best[a], val_best[b], a, b, "{:.3f}"))
for name, stride in (("FCN-32s", 32), ("FCN-8s", 8)):
    print(f"{name}: best validation mean IoU {spread(val_best[name])['max']:.3f} at most, against "
          f"{reference[stride]:.3f} for the exact class fractions at stride {stride}")

# %% [markdown]
# ## Test, once
#
# Each run's chosen weights, measured once on the test shapes: the IoU of every class and their
# mean, over three seeds.

# %%
test_iou = {name: np.array([class_iou(confusion(runs[name, seed][0], test_set))
                            for seed in SEEDS]) for name in BUILDERS}   # (seeds, classes)
print(f"test IoU, mean over {len(SEEDS)} seeds (min-max):")
print(f"{'':14s} " + " ".join(f"{c:>18s}" for c in classes) + f" {'mean IoU':>18s}")
for name, values in test_iou.items():
    cells = [f"{v.mean():.3f} ({v.min():.3f}-{v.max():.3f})" for v in values.T]
    m = np.nanmean(values, axis=1)
    print(f"{name:14s} " + " ".join(f"{c:>18s}" for c in cells)
          + f" {m.mean():.3f} ({m.min():.3f}-{m.max():.3f})")
test_mean = {name: np.nanmean(values, axis=1) for name, values in test_iou.items()}
for title, a, b in PAIRS:
    print(f"test, {title}: " + compare(test_mean[a], test_mean[b], a, b, "{:.3f}"))

# %%
show = np.arange(6)
test_images, test_masks = test_set.get_batch(show)
rows = [("image", test_images[:, 0]), ("true mask", test_masks)]
for name in BUILDERS:
    net = runs[name, SEEDS[0]][0]
    net.eval()
    with mc.no_grad():
        rows.append((f"{name}\n(seed {SEEDS[0]})", net(mc.Tensor(test_images)).numpy().argmax(1)))
fig, axes = plt.subplots(len(rows), len(show), figsize=(9, 1.55 * len(rows)),
                         layout="constrained")
for i, (title, pictures) in enumerate(rows):
    for j in range(len(show)):
        if i == 0:
            axes[i, j].imshow(pictures[j], cmap="gray")
        else:
            show_mask(axes[i, j], pictures[j])
        axes[i, j].set_xticks([])
        axes[i, j].set_yticks([])
    axes[i, 0].set_ylabel(title, fontsize=8)
fig.legend(handles=LEGEND, loc="lower center", ncol=len(classes), fontsize=8, frameon=False,
           bbox_to_anchor=(0.5, -0.03))
plt.show()

# %% [markdown]
# ## What was measured
#
# **Symmetry.** The U-Net with sum skips beat FCN-8s by a wide margin on every seed, on
# validation and on test, although both sum their skips. Much of that gap is where the decisions
# are made: FCN-8s scores cells of 8x8 pixels, and on shapes only a few cells wide even the exact
# class fractions at that stride, upsampled, stay far below the U-Nets; FCN-8s stayed below that
# reference too. U-Net's mirrored path brings feature maps, not scores, back to every resolution
# and takes a skip at full resolution, so it decides pixel by pixel. The FCN paper worked at
# another scale (images of a few hundred pixels, objects many cells wide, an encoder pre-trained on
# ImageNet), so the size of this gap does not carry over to its setting; the direction is what
# the lecture claims, and it holds here.
#
# **Concat vs sum.** Between the two U-Nets the difference is within noise, on validation and on
# test: with three seeds, concatenating did not come out ahead of summing on this task. Neither
# paper compares the two in one net; the lecture's second difference is a design choice (the
# decoder sees the encoder's maps beside its own, at the cost of wider convs: the table above
# counts the parameters), and this task does not reward it. A one-seed comparison could have
# said either: look at the min-max bands of the curves. Both U-Nets were still improving at the
# last epoch, so this is a verdict for this short budget; a longer run could separate them.
#
# **FCN's skips.** FCN-8s beat FCN-32s on every seed, as in the paper. On 32x32 images FCN-32s
# is at its reference exactly: its 1x1 score map names one class per image, the background,
# and it never finds a shape.
#
# **Summary.** U-Net is an encoder–decoder whose skips carry each encoder level's maps to the
# decoder level of the same size — cropped, when unpadded convs have shrunk the decoder's maps,
# and concatenated. Up-convolutions double the map size (the transposed convolution of notebook
# 01's col2im). FCN turns a classifier's layers into class scores at every position and sums in
# finer scores from pool4 and pool3 before a bilinear upsampling. On the synthetic shapes the
# symmetric design segmented far better than FCN-8s, and the skips helped FCN; concat vs sum
# made no difference beyond the seed-to-seed noise.
