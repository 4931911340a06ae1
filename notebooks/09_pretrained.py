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
# # 09 · Pre-trained models: feature extraction and fine-tuning
#
# *Modern CNNs with minicnn, lecture notebook 9.*
#
# Training a modern CNN from scratch needs a large labelled data set and a lot of compute. The
# lecture's way around it: take a network somebody trained on a large data set (ImageNet for
# torchvision's models) — its early layers have learned edges and textures, its later layers
# parts and shapes — and reuse it for a new task with few labels. Two ways:
#
# - **feature extraction**: freeze every pre-trained weight, put a new classifier on the
#   network's features and train only that;
# - **fine-tuning**: replace the head, then train some or all of the pre-trained layers too,
#   with a *smaller* learning rate than the new head (their weights are already good).
#
# minicnn ships a small zoo trained on Fashion-MNIST (`minicnn.models.pretrained`, imported here
# as `zoo`), the tools (`minicnn.transfer`: freeze by stage, replace the head, feature
# extractors, parameter groups, the trainable/frozen report; the experiment built on them is
# `minicnn.experiments.finetune`) and reads PyTorch's weight files (`minicnn.weights`).

# %%
import json
import os
import pathlib
import tempfile
import time

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display

import minicnn as mc
import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn import transfer, weights
from minicnn.data import transforms as T
from minicnn.experiments import finetune
from minicnn.models import pretrained as zoo

FAST = os.environ.get("MINICNN_FAST", "0") == "1"   # tiny data and short runs (CI)
mc.manual_seed(0)
rng = np.random.default_rng(0)
EXPERIMENTS = pathlib.Path("..") / "experiments" / "transfer"   # the committed full run
workdir = tempfile.TemporaryDirectory(prefix="minicnn_nb09_")    # removed in the last cell
print(f"minicnn {mc.__version__}; mode: {'FAST (MINICNN_FAST=1)' if FAST else 'normal'}")

# %% [markdown]
# ## The shipped weights
#
# `pretrained=True` loads weights trained by minicnn on the full Fashion-MNIST training set
# (`experiments/pretrained/train.py` reproduces them). The manifest records, for each file, the
# call it fits, the test accuracy measured when it was made, its SHA-256 (checked at every load:
# a damaged file is an error, never silently wrong weights) and the input normalisation:

# %%
print(zoo.describe())
entries = zoo.manifest()["models"]
norm = entries["lenet5"]["normalize"]
print("inputs: (pixels in [0, 1] - mean) / std with", norm)

# %% [markdown]
# Do they really do what the manifest says? Load each and measure its accuracy on the
# Fashion-MNIST test images ourselves:

# %%
normalize = T.Normalize(tuple(norm["mean"]), tuple(norm["std"]))
train_set, test_set = mc.data.load_fashion_mnist(transform=normalize)
n_check = 1000 if FAST else len(test_set)
check_loader = mc.data.DataLoader(mc.data.Subset(test_set, np.arange(n_check)), batch_size=500)
pretrained = {
    "lenet5": mc.models.lenet5(pretrained=True),
    "vgg_small": mc.models.vgg_small(pretrained=True),
    "resnet8": mc.models.cifar_resnet(8, in_channels=1, pretrained=True),
}
for name, model in pretrained.items():
    started = time.perf_counter()
    loss, acc = mc.evaluate(model, check_loader)
    print(f"{name:10s} test accuracy on {n_check:,} test images: {100 * acc:.2f}% "
          f"(manifest: {100 * entries[name]['test_accuracy']:.2f}%)  "
          f"[{time.perf_counter() - started:.1f} s]")

# %% [markdown]
# A call the weights do not fit is refused with a message that says which call does (to reuse
# the weights for other classes, load them as they are and replace the head, below):

# %%
try:
    mc.models.lenet5(num_classes=5, pretrained=True)
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# ## Stages, freezing and the report
#
# `transfer.stages(model)` names groups of modules from the input to the output: for the ResNets
# `stem`, `layer1`, `layer2`, `layer3`, `head`; for VGG and LeNet-5 `stage1`, `stage2`, ... (the
# convs up to each pooling layer), `classifier` (the hidden linear layers) and `head`. Any module
# path works as well. `freeze` / `unfreeze` set `requires_grad`; `report` counts what trains:

# %%
model = mc.models.cifar_resnet(8, in_channels=1, pretrained=True)
for stage, paths in transfer.stages(model).items():
    print(f"{stage:7s} {', '.join(paths)}")
transfer.freeze(model)                        # everything ...
transfer.unfreeze(model, "layer3", "head")    # ... but the deepest stage and the head
print(transfer.report(model))
print("frozen modules:", ", ".join(transfer.frozen_modules(model)[:6]), "...")

# %% [markdown]
# A batch norm layer inside a frozen part is kept in evaluation mode even when the model is in
# training mode: it normalises with the pre-training data's running statistics and does not
# update them (otherwise a "frozen" stage would still change, through its statistics):

# %%
model.train()
bn = model.layer1[0].bn1
before = bn.running_mean.numpy().copy()
model(mc.Tensor(rng.standard_normal((8, 1, 28, 28)).astype(np.float32)))
print(f"frozen layer1 BN: training flag {bn.training}, running mean changed: "
      f"{not np.array_equal(before, bn.running_mean.numpy())}")
bn3 = model.layer3[0].bn1
before = bn3.running_mean.numpy().copy()
model(mc.Tensor(rng.standard_normal((8, 1, 28, 28)).astype(np.float32)))
print(f"trainable layer3 BN: training flag {bn3.training}, running mean changed: "
      f"{not np.array_equal(before, bn3.running_mean.numpy())}")

# %% [markdown]
# ## A new head
#
# The shipped nets predict the 10 Fashion-MNIST classes. For a task with 5 classes,
# `replace_head` puts a fresh `Linear(in_features, 5)` where the old head was, under the same name
# (so the state dict keys stay `fc.weight`, `fc.bias`):

# %%
head = transfer.replace_head(model, num_classes=5)
print("new head:", head, "| trainable:", head.weight.requires_grad)
x = mc.Tensor(rng.standard_normal((4, 1, 28, 28)).astype(np.float32))
print("input", x.shape, "-> output", model(x).shape)

# %% [markdown]
# ## Parameter groups: a smaller learning rate for the backbone
#
# `param_groups(model, lr, backbone_lr)` gives the optimiser two groups: the trainable
# pre-trained parameters with `backbone_lr` and the head with `lr`; frozen parameters are left
# out entirely:

# %%
transfer.unfreeze(model)                      # fine-tune everything
groups = transfer.param_groups(model, lr=2e-3, backbone_lr=2e-4)
for g in groups:
    print(f"group {g['name']:8s} lr {g['lr']:g}: {len(g['params'])} tensors, "
          f"{sum(p.size for p in g['params']):,} parameters")
optimizer = mc.optim.Adam(groups, lr=2e-3)
print("optimiser groups:", [(g["name"], g["lr"]) for g in optimizer.param_groups])

# %% [markdown]
# ## Feature extraction: cut the network after a named layer
#
# `FeatureExtractor(model, layer)` returns what `layer` returns and never runs the layers after
# it (a forward hook stops the pass), so it works on any model, residual additions included.
# The pre-trained ResNet-8 cut after its global average pool gives 64 numbers per image; the
# LeNet-5 cut after its conv part (`features`, S4) 16 x 5 x 5 = 400:

# %%
resnet = mc.models.cifar_resnet(8, in_channels=1, pretrained=True).eval()
lenet = mc.models.lenet5(pretrained=True).eval()
images, labels = mc.data.DataLoader(test_set).fetch(np.arange(8))
for name, extractor in (("resnet8 @ avgpool", transfer.FeatureExtractor(resnet, "avgpool")),
                        ("resnet8 @ layer2", transfer.FeatureExtractor(resnet, "layer2")),
                        ("lenet5 @ features", transfer.FeatureExtractor(lenet, "features",
                                                                        flatten=True))):
    with mc.no_grad():
        print(f"{name:18s} input {tuple(images.shape)} -> {extractor(mc.Tensor(images)).shape}")

# %% [markdown]
# What the 64 features of the pre-trained ResNet-8 look like: the first two principal components
# of the features of test images, against the same for a randomly initialised ResNet-8 (colour =
# class). How separable the classes are, in a number: a nearest-class-mean classifier on the 64
# features, its class means taken from the first half of the images, scored on the second half.

# %%
n_pca = 500 if FAST else 2000
pca_images, pca_labels = mc.data.DataLoader(test_set).fetch(np.arange(n_pca))
mc.manual_seed(0)
fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), layout="constrained")
for ax, (title, net) in zip(axes, (("pre-trained ResNet-8", resnet),
                                   ("random ResNet-8", mc.models.cifar_resnet(8, in_channels=1)))):
    with mc.no_grad():
        feats = transfer.FeatureExtractor(net.eval(), "avgpool", flatten=True)(
            mc.Tensor(pca_images)).numpy()
    half = n_pca // 2
    means = np.stack([feats[:half][pca_labels[:half] == c].mean(0) for c in range(10)])
    nearest = np.argmin(((feats[half:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    print(f"{title}: nearest-class-mean accuracy on the features "
          f"{100 * (nearest == pca_labels[half:]).mean():.1f}%")
    feats = feats - feats.mean(0)
    _, _, vt = np.linalg.svd(feats, full_matrices=False)
    xy = feats @ vt[:2].T
    for c, name in enumerate(entries["resnet8"]["classes"]):
        ax.scatter(*xy[pca_labels == c].T, color=plt.cm.tab10(c), s=4, label=name)
    ax.set_title(f"{title}: avgpool features, PCA", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
axes[1].legend(fontsize=7, markerscale=3, loc="center left", bbox_to_anchor=(1, 0.5))
plt.show()

# %% [markdown]
# The pre-trained features separate the classes well enough that assigning each image to the
# nearest class mean gets 87.5% of them right, against 31.0% with a random network's features
# (chance: 10%). These weights were trained on all ten classes, so this is not yet transfer; the
# experiment below asks whether features learned on five classes help with the other five.

# %% [markdown]
# ## Frozen steps are cheaper (measured)
#
# A frozen parameter gets no gradient, and minicnn skips the work: no weight-gradient product for
# a frozen conv or linear layer, no graph at all for a frozen prefix whose input needs no
# gradient, and no input-gradient product for the first trainable layer after it. One training
# step (forward, backward, Adam) of ResNet-8 on a batch of 128, three ways, run interleaved round
# after round (so that other jobs on the machine slow all three alike), median per step:

# %%
def step_fn(which):
    mc.manual_seed(0)
    net = mc.models.cifar_resnet(8, in_channels=1, pretrained=True)
    if which != "all trainable":
        transfer.freeze(net)
        transfer.unfreeze(net, *(("layer3", "head") if which == "layer3 + head" else ("head",)))
    opt = mc.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    xb = mc.Tensor(rng.standard_normal((128, 1, 28, 28)).astype(np.float32))
    yb = mc.Tensor(rng.integers(0, 10, 128))

    def step():
        loss = F.cross_entropy(net(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step, transfer.report(net).trainable


variants = {w: step_fn(w) for w in ("all trainable", "layer3 + head", "head only")}
times = {w: [] for w in variants}
for step, _ in variants.values():
    step()                                    # warm-up
for _ in range(2 if FAST else 8):
    for w, (step, _) in variants.items():
        started = time.perf_counter()
        step()
        times[w].append(1000 * (time.perf_counter() - started))
base = np.median(times["all trainable"])
for w, (_, trainable) in variants.items():
    print(f"{w:14s} {trainable:>7,} trainable parameters: {np.median(times[w]):6.1f} ms per "
          f"step ({np.median(times[w]) / base:.2f} x all trainable)")

# %%
with open(EXPERIMENTS / "bench_frozen.json") as f:
    bench = json.load(f)
print(f"committed benchmark ({bench['command']}; {bench['machine']}):")
for w, v in bench["resnet20_step_ms"].items():
    print(f"  ResNet-20 step, batch 128, {w:14s} {v['ms']:7.1f} ms  ({v['trainable']:,} "
          "trainable)")
for section in ("linear_4096_backward_ms", "conv_64x64_14x14_backward_ms"):
    print(f"  {section}: " + "; ".join(f"{k}: {v} ms" for k, v in bench[section].items()))

# %% [markdown]
# Measured above: training only `layer3` and the head costs about half of a full step, training
# only the head about a third. Freezing everything but the head does not make a step free: the
# forward pass through the whole network still runs; what goes is the backward through the
# frozen part. And parameters are not compute: `layer3` holds 74% of ResNet-8's parameters, but
# it works on 7x7 maps, while the frozen stem and `layer1` work on 28x28 — skipping their
# backward is what saves the time.
#
# ## The transfer experiment, small version
#
# `finetune.run_experiment` (`minicnn.experiments.finetune`, also `minicnn finetune`) is the
# lecture's experiment on Fashion-MNIST, offline: pre-train LeNet-5 (ReLU, max pooling) on five
# classes (T-shirt, trouser, pullover, dress, coat), then learn the *other* five (sandal, shirt,
# sneaker, bag, ankle boot) from a few labels per class, four ways, each trained on exactly the
# same images for the same number of steps:
#
# 1. **from scratch** (Adam 2e-3);
# 2. **frozen features + linear classifier**: the pre-trained conv part (S4, 400 features)
#    frozen, a new linear classifier on top (Adam 2e-2: a linear model on fixed features is a
#    convex problem that takes larger steps);
# 3. **fine-tune the deepest stage + head** (C5, F6 and a new head; the convs frozen);
# 4. **fine-tune everything**, the backbone with a tenth of the head's learning rate.
#
# (The shipped `lenet5` weights cannot be used here: they were trained on all ten classes,
# the target classes included. The experiment pre-trains its own net on the source classes.)

# %%
out = os.path.join(workdir.name, "finetune")
if FAST:
    small = dict(labels=(10,), seeds=(0,), pretrain_epochs=1, min_steps=20, epochs=1,
                 subset="bundled")
else:
    small = dict(labels=(10, 100), seeds=(0, 1, 2), pretrain_epochs=2)
started = time.perf_counter()
records = finetune.run_experiment(out=out, model="lenet5", log=print, **small)
print(f"({time.perf_counter() - started:.0f} s)")

# %%
display(Image(filename=os.path.join(out, "accuracy_vs_labels.png")))

# %% [markdown]
# ## The committed full run
#
# `experiments/transfer/` holds the full experiment (10, 100 and 1000 labels per class, three
# label draws each) for LeNet-5 and for ResNet-8 (`--model resnet8`: its frozen features are the
# 64 numbers of the global average pool, its deepest stage is `layer3`); its README has the
# commands and the reading:

# %%
runs = sorted(p.parent for p in EXPERIMENTS.glob("*/results.json")
              if (p.parent / "accuracy_vs_labels.png").exists())
for folder in runs:
    with open(folder / "results.json") as f:
        full = json.load(f)
    c = full["config"]
    print(f"experiments/transfer/{folder.name}: model {c['model']}, {c['data']}, pre-trained "
          f"{c['pretrain'].get('steps')} steps (source test accuracy "
          f"{100 * c['pretrain'].get('source_test_accuracy', float('nan')):.1f}%), "
          f"{c['minutes']} minutes")
    print(finetune.results_table(full["records"], c))
    display(Image(filename=str(folder / "accuracy_vs_labels.png")))
if not runs:
    print(f"no full run is committed in {EXPERIMENTS}: only the small run above is shown")

# %% [markdown]
# What the committed full runs say, from their tables. **LeNet-5** (the small run above
# reproduces its 10- and 100-label columns to within 0.2 points — same seeds, same steps):
#
# - **With few labels, transfer wins.** At 10 labels per class the frozen conv features + a
#   linear classifier reach 86.6% and fine-tuning the deepest stage 86.4%, against 83.5% from
#   scratch; even their worst label draw (86.1%, 85.8%) beats the best scratch draw (84.8%). At
#   100 labels the lead shrinks to 1.5-1.7 points (92.7%, 92.5% vs 91.0%).
# - **With 1000 labels per class it is gone**: from scratch 94.8%, the deepest stage 94.7%, the
#   frozen features 94.2%. 5,000 labelled images are enough for a net this small to learn its own
#   features.
# - **Fine-tuning everything (backbone at a tenth of the head's learning rate) was never better
#   than training from scratch** here: 83.7% vs 83.5% at 10 labels (the draws overlap), 89.0%
#   vs 91.0% at 100 and 93.5% vs 94.8% at 1000. This disagrees with the usual advice that full
#   fine-tuning is the best choice once there are enough labels. The table itself points at the
#   cause: 58,284 of LeNet-5's 61,281 parameters sit in C5 and F6, the fully connected layers
#   most specific to the source classes, and at 2e-4 they barely move in 100-395 steps;
#   "fine-tune the deepest stage" trains exactly those layers at the full 2e-3 (with the convs
#   frozen) and does 2.7 / 3.5 / 1.2 points better. A small backbone learning rate protects
#   pre-trained layers that are already right for the new task; these are not.
# - **Where you cut matters.** The frozen features are LeNet-5's conv output (S4, 400 numbers).
#   An earlier run that cut after F6, the last hidden layer (84 numbers, already specialised to
#   the five source classes) and trained its linear classifier with a tenth of the learning rate
#   reached only 59.0% at 10 labels (`experiments/transfer/first_run_f6_features/`;
#   `experiments/transfer/README.md` separates the two causes with a probe of every layer).
#
# **ResNet-8** (pre-trained to 89.9% on the source classes) tells a partly different story:
#
# - **Fine-tuning wins at every label count.** The deepest stage + head: 85.2% at 10 labels
#   against 79.0% from scratch, 94.7% against 86.9% at 1000; fine-tuning everything with the
#   small backbone learning rate beats scratch too (81.7 / 88.6 / 94.4%) — the lecture's picture,
#   which LeNet-5, with nearly all its parameters in source-specific fully connected layers,
#   did not show.
# - **The frozen features are the worst method** (76.4 / 80.4 / 86.0%), below scratch at 10 and
#   100 labels: ResNet-8's 64 pooled features come after its last stage, the most specific to
#   the source classes — the same lesson as LeNet-5's F6.
# - From scratch, ResNet-8 is unstable in this budget: at 1000 labels its three draws range from
#   81.5% to 91.7%.
#
# ## Loading torchvision's weights
#
# A user with torchvision's ImageNet weights on disk (`resnet18-f37072fd.pth`, from
# `torchvision.models.resnet18(weights="IMAGENET1K_V1")` or downloaded from PyTorch's site)
# loads them like this — no renaming, because the zoo builds every network with torchvision's
# attribute names, so the state dict keys are the same:
#
# ```python
# model = mc.models.resnet18()                          # 1000 classes, as the file
# print(weights.load(model, "resnet18-f37072fd.pth"))   # through torch.load(weights_only=True)
# transfer.replace_head(model, num_classes=5)           # then fine-tune as above
# ```
#
# The inputs must then be prepared as the weights were trained: 3-channel images normalised with
# ImageNet's per-channel mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).
#
# `.pth` files are read through PyTorch (`torch.load(weights_only=True)`, which refuses pickled
# code), so torch must be installed; `.safetensors` and `.npz` need no torch. No torchvision
# weights exist on this machine (and torchvision is not installed), so we show the mapping on a
# stand-in: a randomly initialised **torch twin** of ResNet-18 written with torch.nn in
# torchvision's module structure, saved with `torch.save(state_dict)` like torchvision's files,
# loaded into minicnn's ResNet-18, and the two nets' outputs compared. It runs only when torch is
# importable.

# %%
try:
    import torch
except ImportError:
    torch = None
    print("torch is not installed: .pth files cannot be read here (pip install torch); "
          ".safetensors and .npz files load without it")

if torch is not None:
    tnn = torch.nn

    class TorchBasicBlock(tnn.Module):
        """torchvision.models.resnet.BasicBlock's attribute names and computation."""

        def __init__(self, inplanes, planes, stride=1):
            super().__init__()
            self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or inplanes != planes:
                self.downsample = tnn.Sequential(tnn.Conv2d(inplanes, planes, 1, stride,
                                                            bias=False), tnn.BatchNorm2d(planes))

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class TorchResNet18(tnn.Module):
        """torchvision.models.resnet18's module structure (7x7 stem, 4 stages of 2 blocks)."""

        def __init__(self, num_classes=1000):
            super().__init__()
            self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = tnn.BatchNorm2d(64)
            self.relu = tnn.ReLU()
            self.maxpool = tnn.MaxPool2d(3, 2, 1)
            inplanes = 64
            for i, planes in enumerate((64, 128, 256, 512)):
                stride = 1 if i == 0 else 2
                setattr(self, f"layer{i + 1}", tnn.Sequential(
                    TorchBasicBlock(inplanes, planes, stride), TorchBasicBlock(planes, planes)))
                inplanes = planes
            self.avgpool = tnn.AdaptiveAvgPool2d(1)
            self.fc = tnn.Linear(512, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    torch.manual_seed(0)
    twin = TorchResNet18().eval()
    with torch.no_grad():   # random running statistics too, so that every tensor matters
        for m in twin.modules():
            if isinstance(m, tnn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    pth = os.path.join(workdir.name, "resnet18-twin.pth")
    torch.save(twin.state_dict(), pth)
    keys = list(twin.state_dict())
    print(f"{os.path.basename(pth)}: {len(keys)} tensors, "
          f"{os.path.getsize(pth) / 1e6:.1f} MB; first keys {keys[:3]}, last {keys[-2:]}")

    mc_model = mc.models.resnet18()
    missing_before = sorted(set(mc_model.state_dict()) ^ set(keys))
    print(f"keys in one state dict but not the other: {missing_before or 'none'}")
    print(weights.load(mc_model, pth))
    x_in = np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = twin(torch.from_numpy(x_in)).numpy()
    with mc.no_grad():
        got = mc_model.eval()(mc.Tensor(x_in)).numpy()
    print(f"logits {got.shape}: max |minicnn - torch| = {np.abs(got - expected).max():.2e} "
          f"(logits up to {np.abs(expected).max():.2f})")

# %% [markdown]
# A file that does not fit is refused with every problem listed, and nothing is loaded;
# `strict=False` loads what fits, and `exclude=("fc.",)` leaves a new head alone — what you
# want after `replace_head`:

# %%
if torch is not None:
    small_head = mc.models.resnet18(num_classes=5)
    try:
        weights.load(small_head, pth)
    except nn.StateDictError as err:
        print("StateDictError:", err)
    print(weights.load(small_head, pth, exclude=("fc.",)))
workdir.cleanup()   # the small experiment's files and the 47 MB .pth

# %% [markdown]
# **Summary.** The shipped weights load offline, checksum-verified, and measure exactly the
# accuracy their manifest records (87.40%, 88.74% and 85.52% on the 10,000 test images).
# `minicnn.transfer` freezes by stage (frozen batch norms keep their statistics), replaces the
# head, cuts a network after any named layer, gives the backbone its own learning rate and
# reports what trains; a frozen backbone makes a ResNet-8 step 2-3 times cheaper. On
# Fashion-MNIST, features learned on five classes help to learn the other five: for LeNet-5 by
# about 3 points at 10 labels per class and 1.6 at 100, nothing at 1000; for ResNet-8,
# fine-tuning beats training from scratch at every label count (by 6 points at 10 labels with
# the deepest stage). Which layers you reuse matters: the last features before the head transfer
# worst, and fine-tuning everything at a small learning rate failed for LeNet-5, whose fully
# connected layers were the ones that needed to change. Weights trained by torchvision load by
# name into the zoo's models (checked here on a random torch twin of ResNet-18: all 122 tensors,
# logits equal to 3e-7).
