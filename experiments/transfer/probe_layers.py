"""Why does the frozen-feature linear classifier do poorly here? Probe each layer of the
pre-trained LeNet-5.

    MINICNN_NUM_THREADS=1 .venv/bin/python experiments/transfer/probe_layers.py \
        experiments/transfer/lenet5/pretrained.npz

For 10 and 100 labels per target class (seed 0, the same images as the experiment), the
features of one layer of the network pre-trained on classes 0-4 are computed once (frozen,
:class:`minicnn.transfer.FeatureExtractor`) and a linear classifier is trained on them with
Adam (lr 1e-2, full batch, 300 steps: enough to converge on a few hundred vectors), then
measured on 5,000 VALIDATION images: target-class training images in neither draw, picked with
seed 0. The test images are not looked at: which layer the experiment cuts at is chosen from
this table, and a choice made on the test set would make its test accuracy optimistic. The same
for an untrained (randomly initialised) LeNet-5 as the baseline. Layers: S4 (``features``,
400 numbers), C5 (``classifier.1``, 120 after ReLU), F6 (``classifier.3``, 84 after ReLU; what
the experiment's first run used as its "frozen features", see README.md).
Writes ``probe_layers.md`` next to this file.
"""
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import minicnn as mc  # noqa: E402
import minicnn.nn as nn  # noqa: E402
import minicnn.nn.functional as F  # noqa: E402
from minicnn import transfer, weights  # noqa: E402
from minicnn.experiments import finetune  # noqa: E402
from minicnn.serialization import atomic_write  # noqa: E402

LAYERS = [("S4 (features, 400)", "features"), ("C5 (classifier.1, 120)", "classifier.1"),
          ("F6 (classifier.3, 84)", "classifier.3")]


def features_of(model, layer, x):
    extractor = transfer.FeatureExtractor(model, layer, flatten=True).eval()
    with mc.no_grad():
        return np.concatenate([extractor(mc.Tensor(x[i:i + 1000])).data
                               for i in range(0, len(x), 1000)])


#: validation images held out of the target classes' training images
VAL_SIZE = 5000


def validation_indices(labels, picks, size=VAL_SIZE, seed=0):
    """``size`` indices of ``labels`` in none of ``picks`` (the labelled draws), drawn with
    ``seed``: validation images no probe trains on."""
    rest = np.setdiff1d(np.arange(len(labels)), np.concatenate(picks))
    return np.sort(np.random.default_rng(seed).choice(rest, size, replace=False))


def probe(train_f, train_y, val_f, val_y, steps=300):
    """Validation accuracy of a linear classifier trained on the features ``train_f``."""
    mean, std = train_f.mean(0), train_f.std(0) + 1e-6     # standardise: one lr fits all layers
    train_f, val_f = (train_f - mean) / std, (val_f - mean) / std
    mc.manual_seed(0)
    head = nn.Linear(train_f.shape[1], 5)
    opt = mc.optim.Adam(head.parameters(), lr=1e-2)
    x, y = mc.Tensor(train_f.astype(np.float32)), mc.Tensor(train_y)
    for _ in range(steps):
        loss = F.cross_entropy(head(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with mc.no_grad():
        return float((head(mc.Tensor(val_f.astype(np.float32))).data.argmax(1) == val_y)
                     .mean())


def main(path):
    x_train, y_train, _, _, source = finetune._fashion_mnist("full")
    tgt_idx, tgt_y = finetune._select(y_train, [5, 6, 7, 8, 9])
    x_tgt = x_train[tgt_idx]
    picks = {k: finetune._few_labels(tgt_y, k, seed=0) for k in (10, 100)}
    val = validation_indices(tgt_y, list(picks.values()))
    pre = finetune._build("lenet5", 5)
    weights.load(pre, path)
    mc.manual_seed(0)
    random = finetune._build("lenet5", 5)
    rows = []
    for per_class, pick in picks.items():
        for label, layer in LAYERS:
            accs = []
            for model in (pre, random):
                accs.append(probe(features_of(model, layer, x_tgt[pick]), tgt_y[pick],
                                  features_of(model, layer, x_tgt[val]), tgt_y[val]))
            rows.append((per_class, label, *accs))
            print(f"{per_class:>4} labels/class  {label:<24} pre-trained {100 * accs[0]:5.1f}%"
                  f"   untrained {100 * accs[1]:5.1f}%", flush=True)
    lines = ["Linear classifier on frozen features of each LeNet-5 layer (target classes 5-9, "
             "seed 0; standardised features, Adam lr 1e-2, 300 full-batch steps). Validation "
             f"accuracy (%) on {len(val):,} target-class training images in neither draw (the "
             "test images are not used: the layer is chosen from this table).", "",
             "    MINICNN_NUM_THREADS=1 .venv/bin/python experiments/transfer/probe_layers.py "
             "experiments/transfer/lenet5/pretrained.npz", "",
             "| labels/class | layer | pre-trained on classes 0-4 | untrained (random) |",
             "| ---: | --- | ---: | ---: |"]
    lines += [f"| {k} | {label} | {100 * a:.1f} | {100 * b:.1f} |" for k, label, a, b in rows]
    with atomic_write(pathlib.Path(__file__).with_name("probe_layers.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "experiments/transfer/lenet5/pretrained.npz")
