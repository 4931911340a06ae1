"""Train the weights that ship inside minicnn (``minicnn/models/weights/``) and write their manifest.

    MINICNN_NUM_THREADS=1 nice -n 5 .venv/bin/python experiments/pretrained/train.py

trains, one after another, on the FULL Fashion-MNIST (60,000 training images; the test accuracy
is measured on the 10,000 test images):

    name          factory call                         epochs  optimiser
    lenet5        lenet5()                              5      Adam 1e-3, cosine
    vgg_small     vgg_small()  (VGG-11, width 16)       4      Adam 1e-3, cosine
    resnet20      resnet20(in_channels=1)               2      Adam 1e-3, cosine

with the command line's engine (``minicnn.cli.train_model``: the normalisation of ``minicnn
train``, mean 0.2860 / std 0.3530, seed 0). Each run's checkpoint, history and curves go to
``runs/pretrained/<name>/``; its weights are copied to ``minicnn/models/weights/<name>.npz`` and
its entry (arguments, test accuracy, SHA-256, size, the command) is written into
``minicnn/models/weights/manifest.json`` atomically. ``--only NAME`` retrains one model.
"""
import argparse
import datetime
import hashlib
import json
import os
import pathlib
import shutil
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from minicnn.checkpoint import atomic_write  # noqa: E402
from minicnn.cli import train_model  # noqa: E402

WEIGHTS = ROOT / "minicnn" / "models" / "weights"
COMMAND = "MINICNN_NUM_THREADS=1 nice -n 5 .venv/bin/python experiments/pretrained/train.py"

#: name -> (factory name, factory keyword arguments, epochs). The keyword arguments are what
#: ``pretrained=True`` checks a call against; train_model adds in_channels=1 (and input_size=28
#: for LeNet-5), which the manifest records too.
CONFIGS = {
    "lenet5": ("lenet5", {}, 5),
    "vgg_small": ("vgg_small", {}, 4),
    "resnet20": ("resnet20", {}, 2),
}


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def train_one(name, runs):
    factory, kwargs, epochs = CONFIGS[name]
    out = runs / name
    started = time.perf_counter()
    model, history, test_accuracy = train_model(
        factory, "fashion-mnist", epochs=epochs, batch_size=128, lr=1e-3, optimizer="adam",
        schedule="cosine", out=str(out), seed=0, subset="full", progress=False,
        model_kwargs=kwargs)
    minutes = (time.perf_counter() - started) / 60
    target = WEIGHTS / f"{name}.npz"
    tmp = target.with_suffix(".npz.part")
    shutil.copyfile(out / "weights.npz", tmp)
    os.replace(tmp, target)
    call_kwargs = {"num_classes": 10, "in_channels": 1, **kwargs}
    if factory == "lenet5":
        call_kwargs["input_size"] = 28
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
    args = parser.parse_args(argv)
    manifest_path = WEIGHTS / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.setdefault("models", {})
    manifest["about"] = ("Weights trained by minicnn on Fashion-MNIST by "
                         "experiments/pretrained/train.py; loaded by "
                         "minicnn.models.<factory>(pretrained=True).")
    for name in args.only or list(CONFIGS):
        entry = train_one(name, pathlib.Path(args.runs))
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
