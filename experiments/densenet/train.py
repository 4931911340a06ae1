"""DenseNet vs ResNet on Fashion-MNIST over three seeds, and the trained DenseNets' weights for
the feature-reuse map of notebook 07 (Huang, Liu, van der Maaten, Weinberger 2017, Fig. 5).

Run from the repository root (a few minutes per seed on a 2-core CPU):

    nice -n 5 .venv/bin/python experiments/densenet/train.py

For each seed and each net (``densenet_small``, ResNet-8, ResNet-20) it trains on the same
training images, watches a validation part held out of the TRAINING set, and evaluates the test
images once, after the last epoch. It writes, next to this file:

- ``results.json``: the recipe, and per (net, seed) the parameter count, the history (training
  and validation loss/accuracy per epoch) and the test accuracy; rewritten after every run, and
  runs already in it are skipped, so the same command continues a stopped study;
- ``densenet_seed{S}.npz``: the trained DenseNet's state dict (``mc.load`` reads it), from which
  the notebook computes the heat map itself.
"""
import json
import pathlib
import sys
import time

import numpy as np

import minicnn as mc
from minicnn.gradflow import save_json

HERE = pathlib.Path(__file__).resolve().parent
RESULTS = HERE / "results.json"

RECIPE = {
    "data": "Fashion-MNIST, full set; 10% of the training set held out for validation "
            "(mc.data.hold_out_validation, split seed 0); a fixed random subset of the rest is "
            "trained on (data seed 1), a fixed subset of the held-out part is the validation set",
    "n_train": 6000,
    "n_val": 2000,
    "n_test": 10000,
    "epochs": 3,
    "batch_size": 128,
    "optimizer": "Adam, lr 2e-3, cosine schedule over the epochs",
    "seeds": [0, 1, 2],
    "inputs": "pixels in [0, 1], no normalisation, no augmentation",
}

NETS = {
    "DenseNet-BC small (k=12)": lambda: mc.models.densenet_small(),
    "ResNet-8": lambda: mc.models.cifar_resnet(8, in_channels=1),
    "ResNet-20": lambda: mc.models.resnet20(in_channels=1),
}


def data():
    train_full, test_set = mc.data.load_fashion_mnist()
    train_part, val_part = mc.data.hold_out_validation(train_full, 0.1)
    pick = np.random.default_rng(1)
    train = mc.data.Subset(train_part, pick.permutation(len(train_part))[:RECIPE["n_train"]])
    val = mc.data.Subset(val_part, pick.permutation(len(val_part))[:RECIPE["n_val"]])
    return train, val, test_set


def record(history, test_accuracy, seconds):
    """What results.json keeps of one run: the numeric history, the last validation accuracy,
    the test accuracy (measured once) and the wall time."""
    return {"history": {k: [float(v) for v in vals] for k, vals in history.items()
                        if isinstance(vals, list) and vals
                        and all(isinstance(v, (int, float)) for v in vals)},
            "val_acc": float(history["val_acc"][-1]), "test_acc": float(test_accuracy),
            "train_seconds_on_a_shared_cpu": round(seconds, 1)}


def main():
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"runs": {}}
    results["recipe"] = RECIPE
    results["command"] = "nice -n 5 .venv/bin/python experiments/densenet/train.py"
    train, val, test_set = data()
    print(f"data: {len(train):,} train / {len(val):,} validation / {len(test_set):,} test images")
    epochs = RECIPE["epochs"]
    for seed in RECIPE["seeds"]:
        for name, build in NETS.items():
            key = f"{name} | seed {seed}"
            if key in results["runs"]:
                continue
            mc.manual_seed(seed)
            net = build()
            optimizer = mc.optim.Adam(net.parameters(), lr=2e-3)
            started = time.perf_counter()
            history = mc.fit(
                net, optimizer,
                mc.data.DataLoader(train, batch_size=RECIPE["batch_size"], shuffle=True,
                                   seed=seed),
                epochs, val_loader=mc.data.DataLoader(val, batch_size=500),
                scheduler=mc.optim.CosineAnnealingLR(optimizer, epochs), progress=False,
                log=lambda line, key=key: print(f"{key}: {line}", flush=True))
            seconds = time.perf_counter() - started
            # the test images: once, after the last epoch
            test_accuracy = mc.evaluate(net, mc.data.DataLoader(test_set, batch_size=500))[1]
            results["runs"][key] = {"net": name, "seed": seed,
                                    "params": int(sum(p.size for p in net.parameters())),
                                    **record(history, test_accuracy, seconds)}
            if name.startswith("DenseNet"):
                mc.save(net.state_dict(), HERE / f"densenet_seed{seed}.npz")
            save_json(results, RESULTS)  # atomically: a stopped run keeps the last one
            print(f"{key}: validation {100 * results['runs'][key]['val_acc']:.2f}%, "
                  f"test {100 * test_accuracy:.2f}% ({seconds:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
