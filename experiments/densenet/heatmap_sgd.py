"""DenseNets trained with the paper's optimiser for notebook 07's feature-reuse map (Huang et
al. 2017, Fig. 5; their Section 4.2: SGD with Nesterov momentum 0.9, weight decay 1e-4, batches
of 64, learning rate 0.1), on the same Fashion-MNIST images as ``train.py``, for 10 epochs (the
paper: 300) with a cosine schedule (the paper: divided by 10 at 50% and 75% of training).

Run from the repository root (a few minutes per seed on a 2-core CPU):

    nice -n 5 .venv/bin/python experiments/densenet/heatmap_sgd.py

Writes ``results_sgd.json`` (recipe, per seed the history, validation accuracy and the test
accuracy, evaluated once after the last epoch) and ``densenet_sgd_seed{S}.npz`` (the trained
state dicts), skipping seeds already in ``results_sgd.json``.
"""
import json
import pathlib
import sys
import time

import minicnn as mc
from minicnn.gradflow import save_json

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from train import HERE, data, record  # noqa: E402  (the same images as the three-seed comparison)

RESULTS = HERE / "results_sgd.json"
RECIPE = {"net": "densenet_small()", "epochs": 10, "batch_size": 64,
          "optimizer": "SGD, Nesterov momentum 0.9, weight decay 1e-4, lr 0.1, cosine schedule",
          "seeds": [0, 1, 2], "data": "the same subsets as train.py (see results.json)"}


def main():
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"runs": {}}
    results["recipe"] = RECIPE
    results["command"] = "nice -n 5 .venv/bin/python experiments/densenet/heatmap_sgd.py"
    train, val, test_set = data()
    epochs = RECIPE["epochs"]
    for seed in RECIPE["seeds"]:
        key = f"seed {seed}"
        if key in results["runs"]:
            continue
        mc.manual_seed(seed)
        net = mc.models.densenet_small()
        optimizer = mc.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4,
                                 nesterov=True)
        started = time.perf_counter()
        history = mc.fit(
            net, optimizer,
            mc.data.DataLoader(train, batch_size=RECIPE["batch_size"], shuffle=True, seed=seed),
            epochs, val_loader=mc.data.DataLoader(val, batch_size=500),
            scheduler=mc.optim.CosineAnnealingLR(optimizer, epochs), progress=False,
            log=lambda line, key=key: print(f"SGD {key}: {line}", flush=True))
        seconds = time.perf_counter() - started
        test_accuracy = mc.evaluate(net, mc.data.DataLoader(test_set, batch_size=500))[1]
        results["runs"][key] = {"seed": seed, **record(history, test_accuracy, seconds)}
        mc.save(net.state_dict(), HERE / f"densenet_sgd_seed{seed}.npz")
        save_json(results, RESULTS)
        print(f"SGD {key}: validation {100 * history['val_acc'][-1]:.2f}%, test "
              f"{100 * test_accuracy:.2f}% ({seconds:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
