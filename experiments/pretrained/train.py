"""Train the weights that ship inside minicnn (``minicnn/models/weights/``), write the manifest.

    MINICNN_NUM_THREADS=1 nice -n 5 .venv/bin/python experiments/pretrained/train.py

trains, one after another, on the FULL Fashion-MNIST (60,000 training images; the test accuracy
is measured on the 10,000 test images):

    name          factory call                         epochs  optimiser
    lenet5        lenet5()                              5      Adam 1e-3, cosine
    vgg_small     vgg_small()  (VGG-11, width 16)       2      Adam 1e-3, cosine
    resnet8       cifar_resnet(8, in_channels=1)        2      Adam 1e-3, cosine

with ``minicnn train``'s recipe, :func:`minicnn.training.train_model` given the factory (the
normalisation mean 0.2860 / std 0.3530 of :func:`minicnn.data.load_data`; seed 0; Adam, cosine
schedule, batch 128; on the CPU; ``val_fraction=0``: the recipe is fixed, nothing is chosen
during training, so no validation part is held out). Each run's checkpoint, weights, history
and curves go to ``runs/pretrained/<name>/``; its weights are copied to
``minicnn/models/weights/<name>.npz`` and its entry (arguments, test accuracy, SHA-256, size,
the command) is written into ``minicnn/models/weights/manifest.json`` atomically. ``--only
NAME`` retrains one model.
"""
import argparse
import datetime
import functools
import json
import pathlib
import shutil
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import minicnn as mc  # noqa: E402
from minicnn.data.download import sha256_of  # noqa: E402
from minicnn.serialization import atomic_write  # noqa: E402
from minicnn.training import train_model  # noqa: E402

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


def _recording(factory, call):
    """``factory``, also writing the arguments it is called with into the dict ``call`` (they
    go into the manifest). NOTE: functools.wraps keeps the factory's signature visible, so
    train_model still sees that lenet5 takes ``input_size``."""
    @functools.wraps(factory)
    def build(**arguments):
        call.update(arguments)
        return factory(**arguments)
    return build


def train_one(name, runs, weights_dir=WEIGHTS):
    factory, kwargs, epochs = CONFIGS[name]
    out = runs / name
    started = time.perf_counter()
    call_kwargs = {}
    model, history, test_accuracy = train_model(
        _recording(getattr(mc.models, factory), call_kwargs), "fashion-mnist", epochs,
        batch_size=128, lr=1e-3, optimizer="adam", schedule="cosine", device="cpu", out=out,
        seed=0, subset="full", progress=False, model_kwargs=kwargs,
        # NOTE: a fixed recipe, nothing is chosen while it trains, so it trains on all 60,000
        # training images (no validation part), as the shipped weights were; the test set is
        # evaluated once, at the end
        val_fraction=0.0)
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
        "parameters": int(sum(p.numel() for p in model.parameters())),
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
