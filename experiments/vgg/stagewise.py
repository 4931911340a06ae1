"""Stage-wise training of VGG, measured (notebook 04; the command is in README.md beside this file).

Simonyan and Zisserman (2015, section 3.1) initialised their weights from N(0, 0.01^2), trained
the 11-layer net A first ("shallow enough to be trained with random initialisation") and started
the deeper nets from its layers; after submission they found that Glorot and Bengio's (2010)
initialisation trains the deep nets from scratch. The lecture: "VGG-11 -> VGG-13 -> VGG-16; we
need a better initialisation". Per seed this script trains, on the same Fashion-MNIST images:

- the chain, every net initialised N(0, 0.01^2) (biases 0), as in the paper: VGG-11 from scratch
  for E epochs; VGG-13 started from it (``vgg_grow`` copies every layer VGG-11 has; the new
  layers keep N(0, 0.01^2)) for E epochs; VGG-16 started from that VGG-13 for E epochs;
- VGG-16 from scratch for 3E epochs (the chain's total) under N(0, 0.01^2), under Glorot
  (``xavier_uniform_``, biases 0) and under He (``vgg_small``'s own initialisation: Kaiming
  normal, fan-out for the convs, fan-in for the linear layers; biases 0).

Every epoch is judged on validation images held out of the training split; each trained net
meets the test images once, at the end of its run. Two input scalings (``--inputs``, see
``RECIPES``). One JSON file per seed goes to ``OUT/runs/seedS.json``; ``--summarize-only``
merges them into ``OUT/results.json``.
"""
import argparse
import json
import pathlib
import sys
import time

import numpy as np

import minicnn as mc
import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn.data import transforms as T
from minicnn.gradflow import save_json
from minicnn.models.vgg import vgg_grow

RECIPE = {"width": 8, "train_size": 2000, "val_size": 1000, "test_size": 2000,
          "epochs_per_stage": 6, "batch_size": 64, "optimizer": "Adam", "lr": 1e-3,
          "dropout": 0.5, "data_seed": 0, "val_fraction": 0.1, "inputs": "normalised"}
#: the two input scalings studied: ``normalised`` (the training images' mean and std, as every
#: other notebook) and ``paper`` (the VGG paper's only preprocessing: the mean pixel value
#: subtracted from pixel values in 0..255, so the inputs' std is about 90 instead of 1)
RECIPES = {"normalised": RECIPE, "paper": dict(RECIPE, inputs="paper")}


def input_transform(recipe):
    """The batch transform of ``recipe["inputs"]`` (a recipe without the key: normalised)."""
    (mean,), (std,) = mc.data.NORMALIZE["fashion-mnist"]
    if recipe.get("inputs", "normalised") == "paper":
        return T.Normalize((mean,), (1 / 255,))      # 255 * x - 255 * mean
    return T.Normalize((mean,), (std,))


def paper_init(model):
    """The VGG paper's initialisation: every weight N(0, 0.01^2), every bias 0."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
    return model


def glorot_init(model):
    """Glorot and Bengio (2010): weights U(-a, a), a = sqrt(6 / (fan_in + fan_out)); biases 0."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def he_init(model):
    """He et al. (2015): ``vgg_small`` is built with it (Kaiming normal, biases 0)."""
    return model


INITS = {"paper": paper_init, "glorot": glorot_init, "he": he_init}
INIT_NAMES = {"paper": "N(0, 0.01^2)", "glorot": "Glorot", "he": "He"}


def load_splits(recipe, log=print):
    """``(train, val, test)``: seeded subsets of the training part, of the validation part held
    out of the training set (``hold_out_validation``), and of the test set; the same images for
    every net and seed."""
    full_train, test = mc.data.load_fashion_mnist(verbose=log is not None)
    train, val = mc.data.hold_out_validation(full_train, recipe["val_fraction"])
    rng = np.random.default_rng(recipe["data_seed"])
    parts = []
    for data, size in ((train, recipe["train_size"]), (val, recipe["val_size"]),
                       (test, recipe["test_size"])):
        parts.append(mc.data.Subset(data, rng.permutation(len(data))[:min(size, len(data))]))
    return tuple(parts)


def at_init(model, images, labels):
    """The std of the logits and the gradient norm of the first conv's weights, on one batch."""
    model.train()
    logits = model(mc.Tensor(images))
    loss = F.cross_entropy(logits, mc.Tensor(labels))
    model.zero_grad()
    loss.backward()
    first = next(m for m in model.features if isinstance(m, nn.Conv2d))
    grad = float(np.linalg.norm(first.weight.grad))
    model.zero_grad()
    return float(logits.numpy().std()), grad


def train_run(model, name, epochs, seed, splits, recipe, progress=True, evaluate_test=True,
              **info):
    """Train ``model`` for ``epochs`` epochs (validation every epoch), then evaluate the test
    images once (unless ``evaluate_test=False``). Returns the run's record (plain data)."""
    train, val, test = splits
    normalize = input_transform(recipe)
    images, labels = train.get_batch(np.arange(min(256, len(train))))
    logit_std, grad = at_init(model, normalize(images), labels)
    loader = mc.data.DataLoader(train, batch_size=recipe["batch_size"], shuffle=True, seed=seed,
                                transform=normalize)
    val_loader = mc.data.DataLoader(val, batch_size=500, transform=normalize)
    optimizer = mc.optim.Adam(model.parameters(), lr=recipe["lr"])
    started = time.perf_counter()
    history = mc.fit(model, optimizer, loader, epochs, val_loader=val_loader, log=None,
                     progress=progress)
    seconds = time.perf_counter() - started
    test_loss = test_acc = None
    if evaluate_test:
        test_loss, test_acc = mc.evaluate(model, mc.data.DataLoader(test, batch_size=500,
                                                                    transform=normalize))
    return dict(name=name, seed=seed, epochs=epochs, history=history, test_acc=test_acc,
                test_loss=test_loss, init_logit_std=logit_std, init_first_conv_grad=grad,
                seconds=seconds, **info)


def run_seed(seed, splits, recipe=RECIPE, progress=True, log=print):
    """All runs of one seed: the chain and the three scratch VGG-16s. A list of records."""
    width, e = recipe["width"], recipe["epochs_per_stage"]

    def small(depth):
        return mc.models.vgg_small(depth, width=width, dropout=recipe["dropout"])

    records = []
    mc.manual_seed(seed)
    previous = None
    for stage, depth in enumerate((11, 13, 16), start=1):
        net = paper_init(small(depth))
        copied = []
        if previous is not None:
            report = vgg_grow(previous, net, conv_layers=None)
            copied = [dst for _, _, dst in report.copied]
        name = f"VGG-{depth}, stage {stage} of the chain"
        if log:
            log(f"seed {seed}: {name}")
        records.append(train_run(net, name, e, seed, splits, recipe, progress, route="chain",
                                 depth=depth, init="paper", stage=stage, copied=copied))
        previous = net
    for init in INITS:
        mc.manual_seed(seed)
        net = INITS[init](small(16))
        name = f"VGG-16 from scratch, {INIT_NAMES[init]}"
        if log:
            log(f"seed {seed}: {name}")
        records.append(train_run(net, name, 3 * e, seed, splits, recipe, progress,
                                 route="scratch", depth=16, init=init))
    return records


def summarize(out):
    """Merge ``out/runs/seed*.json`` into ``out/results.json``; returns the merged dict."""
    out = pathlib.Path(out)
    files = sorted((out / "runs").glob("seed*.json"))
    if not files:
        raise FileNotFoundError(f"no runs in {out / 'runs'}")
    seeds = [json.loads(f.read_text()) for f in files]
    recipes = {json.dumps(s["recipe"], sort_keys=True) for s in seeds}
    if len(recipes) != 1:
        raise ValueError("the seeds' files were made with different recipes")
    merged = {"recipe": seeds[0]["recipe"], "seeds": [s["seed"] for s in seeds],
              "runs": [r for s in seeds for r in s["runs"]]}
    save_json(merged, out / "results.json")
    return merged


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", choices=sorted(RECIPES), default="paper",
                        help="the input scaling (see RECIPES); default: the paper's")
    parser.add_argument("--out", default=None,
                        help="the study's folder (default: experiments/vgg/INPUTS)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--summarize-only", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    recipe = RECIPES[args.inputs]
    out = pathlib.Path(args.out or pathlib.Path(__file__).resolve().parent / args.inputs)
    if not args.summarize_only:
        splits = load_splits(recipe)
        print(f"data: {len(splits[0]):,} train / {len(splits[1]):,} validation / "
              f"{len(splits[2]):,} test images", flush=True)
        (out / "runs").mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            records = run_seed(seed, splits, recipe, progress=not args.no_progress)
            path = out / "runs" / f"seed{seed}.json"
            save_json({"recipe": recipe, "seed": seed, "runs": records}, path)
            print(f"wrote {path}", flush=True)
    merged = summarize(out)
    print(f"wrote {out / 'results.json'}: {len(merged['runs'])} runs, seeds {merged['seeds']}")


if __name__ == "__main__":
    sys.exit(main())
