"""Train the weights that ship inside minicnn (``minicnn/models/weights/``), write the manifest.

    MINICNN_NUM_THREADS=1 nice -n 5 .venv/bin/python experiments/pretrained/train.py

trains, one after another, on the FULL Fashion-MNIST (60,000 training images; the test accuracy
is measured on the 10,000 test images):

    name          factory call                         epochs  optimiser
    lenet5        lenet5()                              5      Adam 1e-3, cosine
    vgg_small     vgg_small()  (VGG-11, width 16)       2      Adam 1e-3, cosine
    resnet8       cifar_resnet(8, in_channels=1)        2      Adam 1e-3, cosine

as ``minicnn train`` does (``minicnn.cli.load_data``: the normalisation mean 0.2860 / std 0.3530;
seed 0; Adam, cosine schedule, batch 128). Each run's checkpoint and history go to
``runs/pretrained/<name>/``; its weights are copied to ``minicnn/models/weights/<name>.npz`` and
its entry (arguments, test accuracy, SHA-256, size, the command) is written into
``minicnn/models/weights/manifest.json`` atomically. ``--only NAME`` retrains one model.
"""
import argparse
import datetime
import json
import pathlib
import shutil
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import minicnn as mc  # noqa: E402
from minicnn.checkpoint import atomic_write, save_weights  # noqa: E402
from minicnn.cli import load_data  # noqa: E402
from minicnn.data.download import sha256_of  # noqa: E402
from minicnn.training import evaluate, fit, save_history  # noqa: E402

WEIGHTS = ROOT / "minicnn" / "models" / "weights"
COMMAND = "MINICNN_NUM_THREADS=1 nice -n 5 .venv/bin/python experiments/pretrained/train.py"

#: name -> (factory name, factory keyword arguments, epochs). The keyword arguments are what
#: ``pretrained=True`` checks a call against; train_model adds in_channels=1 (and input_size=28
#: for LeNet-5), which the manifest records too.
CONFIGS = {
    "lenet5": ("lenet5", {}, 5),
    "vgg_small": ("vgg_small", {}, 2),
    "resnet8": ("cifar_resnet", {"depth": 8}, 2),
}


def train_one(name, runs, weights_dir=WEIGHTS):
    factory, kwargs, epochs = CONFIGS[name]
    out = runs / name
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # what minicnn.cli.train_model does, for any factory (cifar_resnet is not in MODELS)
    mc.manual_seed(0)
    train, test, channels, size = load_data("fashion-mnist", subset="full")
    call_kwargs = {"num_classes": 10, "in_channels": channels, **kwargs}
    if factory == "lenet5":
        call_kwargs["input_size"] = size
    model = getattr(mc.models, factory)(**call_kwargs)
    opt = mc.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = mc.optim.CosineAnnealingLR(opt, epochs)
    train_loader = mc.data.DataLoader(train, batch_size=128, shuffle=True)
    test_loader = mc.data.DataLoader(test, batch_size=1000)
    print(f"{name}: {factory}({call_kwargs}), {sum(p.size for p in model.parameters()):,} "
          f"parameters, {epochs} epochs", flush=True)
    history = fit(model, opt, train_loader, epochs, val_loader=test_loader, scheduler=scheduler,
                  checkpoint_path=out / "checkpoint.npz", progress=False)
    save_weights(out / "weights.npz", model)
    save_history(history, out / "history.json")
    _, test_accuracy = evaluate(model, test_loader)
    minutes = (time.perf_counter() - started) / 60
    target = weights_dir / f"{name}.npz"
    with open(out / "weights.npz", "rb") as source, atomic_write(target) as f:
        shutil.copyfileobj(source, f)
    return {
        "factory": factory,
        "kwargs": call_kwargs,
        "file": target.name,
        "sha256": sha256_of(target),
        "bytes": target.stat().st_size,
        "parameters": int(sum(p.size for p in model.parameters())),
        "dataset": "Fashion-MNIST, full: 60,000 training / 10,000 test images",
        "normalize": {"mean": [0.2860], "std": [0.3530]},
        "classes": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                    "Sneaker", "Bag", "Ankle boot"],
        "test_accuracy": round(float(test_accuracy), 4),
        "train": {"epochs": epochs, "optimizer": "adam", "lr": 1e-3, "schedule": "cosine",
                  "batch_size": 128, "seed": 0,
                  "final_train_accuracy": round(float(history["train_acc"][-1]), 4)},
        "minutes": round(minutes, 1),
        "command": f"{COMMAND} --only {name}",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=sorted(CONFIGS), action="append",
                        help="train only this model (repeatable); the others keep their entry")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "pretrained"))
    parser.add_argument("--weights-dir", default=str(WEIGHTS),
                        help="where the .npz files and manifest.json go (default: inside the "
                             "package; another folder to check a reproduction)")
    args = parser.parse_args(argv)
    weights_dir = pathlib.Path(args.weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = weights_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.setdefault("models", {})
    manifest["about"] = ("Weights trained by minicnn on Fashion-MNIST by "
                         "experiments/pretrained/train.py; loaded by "
                         "minicnn.models.<factory>(pretrained=True).")
    for name in args.only or list(CONFIGS):
        entry = train_one(name, pathlib.Path(args.runs), weights_dir)
        manifest["models"][name] = entry
        with atomic_write(manifest_path, "w") as f:   # after every model: a crash loses none
            json.dump(manifest, f, indent=2)
            f.write("\n")
        print(f"{name}: test accuracy {100 * entry['test_accuracy']:.2f}%, "
              f"{entry['bytes']:,} bytes, sha256 {entry['sha256'][:12]}..., "
              f"{entry['minutes']} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
