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
# # 02 · LeNet-5
#
# *Modern CNNs with minicnn, lecture notebook 2.*
#
# LeCun, Bottou, Bengio and Haffner (1998), "Gradient-based learning applied to document
# recognition": two convolution + subsampling stages and three fully connected layers, trained
# end to end with backpropagation — the template of every network in this course. Here it learns
# Fashion-MNIST (70,000 28x28 images of clothing, 10 classes). We follow the shapes through the
# network, train the paper's version (tanh, average pooling) and the modern one (ReLU, max
# pooling), ask with several seeds whether their difference is real, and look inside: the
# learned filters and the feature maps.
#
# How we measure, here and in every notebook: part of the training set is held out as a
# **validation** set, and everything we choose or compare is judged on it. The **test** set is
# used once, at the very end.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from tqdm import tqdm

import minicnn as mc
import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn.data import transforms as T
from minicnn.plots import plot_history
from minicnn.stats import compare, describe

FAST = os.environ.get("MINICNN_FAST", "0") == "1"   # tiny data and short runs (CI)
mc.manual_seed(0)
rng = np.random.default_rng(0)
print(f"minicnn {mc.__version__}; mode: {'FAST (MINICNN_FAST=1)' if FAST else 'normal'}")

# %% [markdown]
# ## The data: training, validation and test
#
# A seeded permutation of the 60,000 training images holds out one in ten as the validation set;
# the network never trains on them. The inputs are normalised with the mean and standard
# deviation of the training images (`mc.data.NORMALIZE`, the same as `minicnn train` and
# `minicnn demo` use): pixel values in [0, 1] become values with mean 0 and standard deviation 1.
# Whether that matters for LeNet is measured below.

# %%
full_train, test_set = mc.data.load_fashion_mnist()
if FAST:
    full_train = mc.data.Subset(full_train, np.arange(1200))
    test_set = mc.data.Subset(test_set, np.arange(500))
order = np.random.default_rng(0).permutation(len(full_train))   # the split's own seed
n_val = len(full_train) // 10
val_set = mc.data.Subset(full_train, order[:n_val])
train_set = mc.data.Subset(full_train, order[n_val:])
print(f"data: {len(train_set):,} train / {len(val_set):,} validation / {len(test_set):,} test "
      "images")
mean, std = mc.data.NORMALIZE["fashion-mnist"]
normalize = T.Normalize(mean, std)
print(f"normalised with the training images' mean {mean[0]} and std {std[0]}")
classes = full_train.classes
images, labels = train_set.get_batch(np.arange(20))
print("a batch of images", images.shape, images.dtype, "labels", labels.shape)
fig, axes = plt.subplots(2, 10, figsize=(10, 2.4))
for ax, img, lab in zip(axes.ravel(), images, labels):
    ax.imshow(img[0], cmap="gray")
    ax.set_title(classes[lab], fontsize=7)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## The network, layer by layer
#
#     C1 conv 5x5, 6 maps -> S2 2x2 subsampling -> C3 conv 5x5, 16 maps -> S4 2x2 subsampling
#     -> C5 120 units -> F6 84 units -> 10 outputs
#
# The paper's input is 32x32; a 28x28 image gets a padding of 2 in C1, so every later shape is the
# paper's. A random batch of two images through each layer in turn:

# %%
model = mc.models.lenet5()          # the paper's: tanh, average pooling
x = mc.Tensor(rng.random((2, 1, 28, 28), dtype=np.float32))
print(f"{'input':28s} {x.shape}")
for layer in model.features:
    x = layer(x)
    print(f"{type(layer).__name__ + ' ' + str(getattr(layer, 'kernel_size', '')):28s} {x.shape}")
x = x.flatten(1)
print(f"{'flatten':28s} {x.shape}")
for layer in model.classifier:
    x = layer(x)
    print(f"{type(layer).__name__:28s} {x.shape}")

# %% [markdown]
# `mc.summary` gives the same walk with parameters and multiply-adds. C3 here is connected to all
# six maps of S2 (the paper's sparse connection table had fewer parameters). Where the parameters
# and where the multiply-adds sit is printed below the table.

# %%
summary = mc.summary(model, (1, 1, 28, 28))
leaves = [r for r in summary.rows if r.leaf and r.params]
conv_macs = sum(r.macs for r in leaves if r.type == "Conv2d")
c5 = next(r for r in leaves if r.type == "Linear")
print(f"{summary.total_params:,} parameters, {summary.macs_per_image / 1e6:.2f} M multiply-adds "
      f"per image; the fully connected C5 holds {c5.params:,} parameters "
      f"({c5.params / summary.total_params:.0%}); the two convolutions do "
      f"{conv_macs / summary.total_macs:.0%} of the multiply-adds")

# %% [markdown]
# ## Training: the 1998 network and its modern twin
#
# Same data, same optimiser (Adam, learning rate 3e-3 with a cosine schedule, batch 128), same
# seed; only the activation and the pooling differ. Both train for five epochs on the training
# split; the curves show training (measured during each epoch) and validation accuracy.

# %%
epochs = 1 if FAST else 5
variants = {"tanh + avg pool (1998)": dict(activation="tanh", pool="avg"),
            "ReLU + max pool": dict(activation="relu", pool="max")}
val_loader = mc.data.DataLoader(val_set, batch_size=500, transform=normalize)
histories, models = {}, {}
for name, kwargs in variants.items():
    mc.manual_seed(0)
    net = mc.models.lenet5(**kwargs)
    optimizer = mc.optim.Adam(net.parameters(), lr=3e-3)
    scheduler = mc.optim.CosineAnnealingLR(optimizer, epochs)
    train_loader = mc.data.DataLoader(train_set, batch_size=128, shuffle=True, seed=0,
                                      transform=normalize)
    print(f"--- {name}: {len(train_set):,} training images, {epochs} epochs")
    started = time.perf_counter()
    histories[name] = mc.fit(net, optimizer, train_loader, epochs, val_loader=val_loader,
                             scheduler=scheduler, progress=True)
    print(f"    {time.perf_counter() - started:.0f} s")
    models[name] = net

# %%
plot_history(histories, title="LeNet-5 on Fashion-MNIST (dashed: training, solid: validation)")
for name, history in histories.items():
    print(f"{name:24s} validation accuracy {100 * history['val_acc'][-1]:.2f}%  "
          f"(training, during the last epoch: {100 * history['train_acc'][-1]:.2f}%)")

# %% [markdown]
# One run of each is one draw: a different seed (initial weights and the order of the batches)
# gives a different number. Is the difference between the two nets larger than that?
#
# ## Three seeds: is the difference real?
#
# Each setting below trains with three seeds, on a random subset of the training split (its size
# is printed below; small, so that the nine runs fit the notebook's time budget), for the same
# five epochs, and is judged on the same validation set. Besides the two nets, the ReLU net
# trains once more on raw pixels in [0, 1], without the normalisation, to measure what the
# normalisation does. `minicnn.stats.compare` calls a difference real only when the three seeds
# of one setting all lie above those of the other; otherwise it says "within noise".

# %%
seeds = (0, 1, 2)
n_seed_train = 500 if FAST else 10_000
seed_train = mc.data.Subset(train_set, np.random.default_rng(1).permutation(len(train_set))
                            [:n_seed_train])
settings = {"tanh + avg pool (1998)": (dict(activation="tanh", pool="avg"), normalize),
            "ReLU + max pool": (dict(activation="relu", pool="max"), normalize),
            "ReLU + max pool, raw pixels": (dict(activation="relu", pool="max"), None)}
print(f"{len(seed_train):,} training images (a seeded subset of the training split), "
      f"{len(val_set):,} validation images, {epochs} epochs, seeds {seeds}")
seed_runs = {name: [] for name in settings}
with tqdm(total=len(settings) * len(seeds), desc="seed runs", unit="run") as bar:
    for name, (kwargs, transform) in settings.items():
        for seed in seeds:
            mc.manual_seed(seed)
            net = mc.models.lenet5(**kwargs)
            optimizer = mc.optim.Adam(net.parameters(), lr=3e-3)
            loader = mc.data.DataLoader(seed_train, batch_size=128, shuffle=True, seed=seed,
                                        transform=transform)
            checker = mc.data.DataLoader(val_set, batch_size=500, transform=transform)
            seed_runs[name].append(mc.fit(
                net, optimizer, loader, epochs, val_loader=checker, log=None, progress=False,
                scheduler=mc.optim.CosineAnnealingLR(optimizer, epochs)))
            bar.update()

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.6))
for k, (name, runs) in enumerate(seed_runs.items()):
    acc = 100 * np.array([run["val_acc"] for run in runs])          # (seeds, epochs)
    epoch_axis = np.arange(1, acc.shape[1] + 1)
    ax.plot(epoch_axis, acc.mean(0), "-o", color=f"C{k}", label=f"{name} (mean)")
    ax.fill_between(epoch_axis, acc.min(0), acc.max(0), color=f"C{k}", alpha=0.25)
ax.set_xlabel("epoch")
ax.set_ylabel("validation accuracy (%)")
ax.set_title(f"LeNet-5, {len(seed_train):,} training images, {len(seeds)} seeds "
             "(band: min to max)", fontsize=9)
ax.legend(fontsize=8)
plt.show()


def final_val(name, epoch=-1):
    return [run["val_acc"][epoch] for run in seed_runs[name]]


print("validation accuracy after the last epoch:")
print(" ", compare(final_val("ReLU + max pool"), final_val("tanh + avg pool (1998)"),
                   "ReLU + max pool", "tanh + avg pool", "{:.2%}"))
print(" ", compare(final_val("ReLU + max pool"), final_val("ReLU + max pool, raw pixels"),
                   "normalised", "raw pixels", "{:.2%}"))
print("validation accuracy after the first epoch (which learns faster?):")
print(" ", compare(final_val("ReLU + max pool", 0), final_val("tanh + avg pool (1998)", 0),
                   "ReLU + max pool", "tanh + avg pool", "{:.2%}"))

# %% [markdown]
# The sentences above are the measurement; read them before the prose. What to expect, and why:
# LeNet is shallow (two conv layers) and its tanh units rarely saturate at this depth, so the
# advantage in training speed the AlexNet paper claims for ReLU (notebook 03) has little room
# here. Normalising the inputs is the usual recipe (LeCun, Bottou, Orr and Müller, "Efficient
# BackProp", 1998: inputs that are all positive make every weight of a first-layer unit move in
# the same direction at each step, which slows learning); whether it matters for this net and
# this optimiser (Adam) is what the second sentence says. Fashion-MNIST is much
# harder than the handwritten digits LeNet was made for (on MNIST the paper's LeNet-5 reached
# 0.95% test error): a shirt, a T-shirt and a pullover look alike at 28x28.
#
# ## Where it goes wrong
#
# The confusion matrix of the ReLU model of the five-epoch run counts, for each true class (row),
# what the network predicted (column) on the **validation** images.

# %%
def predict(net, dataset):
    """Predicted and true classes of every image of ``dataset`` (normalised, evaluation mode)."""
    net.eval()
    predictions, truth = [], []
    with mc.no_grad():
        for images, labels in mc.data.DataLoader(dataset, batch_size=500, transform=normalize):
            predictions.append(net(images).numpy().argmax(1))
            truth.append(labels.numpy())
    return np.concatenate(predictions), np.concatenate(truth)


net = models["ReLU + max pool"]
predictions, truth = predict(net, val_set)
confusion = np.zeros((10, 10), dtype=int)
np.add.at(confusion, (truth, predictions), 1)
fig, ax = plt.subplots(figsize=(6, 5))
ax.imshow(confusion, cmap="Blues")
for i in range(10):
    for j in range(10):
        ax.text(j, i, confusion[i, j], ha="center", va="center", fontsize=7,
                color="white" if confusion[i, j] > confusion.max() / 2 else "black")
ax.set_xticks(range(10), classes, rotation=60, fontsize=8)
ax.set_yticks(range(10), classes, fontsize=8)
ax.set_xlabel("predicted")
ax.set_ylabel("true")
ax.set_title("validation images", fontsize=9)
plt.show()
per_class = confusion.diagonal() / np.maximum(confusion.sum(1), 1)
worst = np.argsort(per_class)[:3]
print("hardest classes:", ", ".join(f"{classes[k]} {100 * per_class[k]:.1f}%" for k in worst))
off = confusion - np.diag(confusion.diagonal())
i, j = np.unravel_index(off.argmax(), off.shape)
print(f"most frequent confusion: {classes[i]} taken for {classes[j]} ({off[i, j]} times)")

# %% [markdown]
# ## Inside the network
#
# ### The six C1 filters
#
# Each 5x5 filter of C1 is a small template the first layer matches at every position.

# %%
c1 = net.features[0].weight.numpy()                 # (6, 1, 5, 5)
print("C1 weight", c1.shape)
fig, axes = plt.subplots(1, 6, figsize=(8, 1.6))
for k, ax in enumerate(axes):
    limit = np.abs(c1[k, 0]).max()
    ax.imshow(c1[k, 0], cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_title(f"filter {k}", fontsize=8)
    ax.axis("off")
plt.show()

# %% [markdown]
# ### Feature maps
#
# Forward hooks record what every layer outputs for one validation image: C1's six 28x28 maps
# (edges and regions of the garment), and C3's sixteen 10x10 maps, each mixing all six of C1's.

# %%
recorded = {}
hooks = [net.features[i].register_forward_hook(
    lambda module, args, output, i=i: recorded.__setitem__(i, output.numpy()))
    for i in (1, 4)]                                # after the ReLUs of C1 and C3
image, label = val_set[0]
with mc.no_grad():
    scores = net(mc.Tensor(normalize(image[None])))
for hook in hooks:
    hook.remove()
print("image", image.shape, "-> C1 maps", recorded[1].shape, ", C3 maps", recorded[4].shape,
      "| predicted:", classes[int(scores.numpy().argmax())], "| true:", classes[label])
fig = plt.figure(figsize=(10, 3.3), layout="constrained")
grid = fig.add_gridspec(2, 9)
ax = fig.add_subplot(grid[:, 0])
ax.imshow(image[0], cmap="gray")
ax.set_title("input", fontsize=8)
ax.axis("off")
for k in range(6):
    ax = fig.add_subplot(grid[0, 1 + k])
    ax.imshow(recorded[1][0, k], cmap="viridis")
    ax.set_title(f"C1 map {k}", fontsize=7)
    ax.axis("off")
for k in range(0, 16, 2):
    ax = fig.add_subplot(grid[1, 1 + k // 2])
    pair = np.concatenate([recorded[4][0, k], recorded[4][0, k + 1]], axis=1)
    ax.imshow(pair, cmap="viridis")
    ax.set_title(f"C3 maps {k},{k + 1}", fontsize=7)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## The test set, once
#
# Nothing above looked at the test images. Now, at the end, both five-epoch nets are evaluated on
# them, once. (Each is one seed: the spread of the three-seed runs above says how far a single
# run may move.)

# %%
test_loader = mc.data.DataLoader(test_set, batch_size=500, transform=normalize)
test_accuracy = {}
for name, net in models.items():
    test_accuracy[name] = mc.evaluate(net, test_loader)[1]
    validation = histories[name]["val_acc"][-1]
    print(f"{name:24s} test accuracy {100 * test_accuracy[name]:.2f}% on {len(test_set):,} "
          f"test images (validation {100 * validation:.2f}%)")

# %% [markdown]
# **Summary.** LeNet-5 is convolution, subsampling, convolution, subsampling and three fully
# connected layers, with the parameter and multiply-add counts `mc.summary` printed above. Trained
# for five epochs on a CPU it reaches the test accuracies printed just above; whether ReLU and
# max pooling beat the 1998 choices here, and whether normalising the inputs helps, is what the
# three-seed sentences say.
# Its first layer learns edge and blob detectors. What changed in the fourteen years to AlexNet
# is scale — data, depth, GPUs — and the tricks that made scale trainable (notebook 03).
