"""``minicnn landscape``: the loss landscape, curvature and layer responses of a trained net.

    minicnn train --model resnet20 --epochs 3 --out runs/r20
    minicnn landscape resnet20 --checkpoint runs/r20/weights.npz --out runs/r20/landscape

The measurements are :mod:`minicnn.landscape`'s; this module loads the net, picks the fixed
training batches they are taken on, draws the pictures and writes ``landscape.npz`` (the slices,
the eigenvalue's power-iteration history, the layer responses) and ``landscape.json`` (the
summary numbers) atomically.
"""
import json
import pathlib

import numpy as np

from minicnn import landscape
from minicnn.data.presets import DATASETS, load_data
from minicnn.models import MODELS
from minicnn.random import manual_seed
from minicnn.serialization import atomic_write
from minicnn.training import build_model
from minicnn.weights import load as load_weights_file


def fixed_batches(dataset, images=256, batch_size=128, seed=0):
    """``images`` training examples drawn once with ``seed``, as ``(x, y)`` NumPy batches."""
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(dataset), min(images, len(dataset)), replace=False))
    batches = []
    for start in range(0, len(picked), batch_size):
        xs, ys = zip(*(dataset[int(i)] for i in picked[start:start + batch_size]))
        batches.append((np.stack([np.asarray(x, np.float32) for x in xs]),
                        np.asarray(ys, np.int64)))
    return batches


def measure(model, batches, steps_1d=21, steps_2d=0, hessian_iterations=20, seed=0,
            progress=True):
    """Every measurement of :mod:`minicnn.landscape` on ``model`` at its weights; a dict."""
    result = {"loss": landscape.batch_loss(model.eval(), batches)}
    result["slice_1d"] = landscape.loss_slice_1d(
        model, batches, np.linspace(-1, 1, steps_1d), seed, progress=progress)
    if steps_2d:
        result["slice_2d"] = landscape.loss_slice_2d(
            model, batches, np.linspace(-1, 1, steps_2d), seed, progress=progress)
    if hessian_iterations:
        value, dominant, history = landscape.top_hessian_eigenvalue(
            model, batches, iterations=hessian_iterations, seed=seed, progress=progress)
        result["top_hessian_eigenvalue"], result["power_iteration"] = value, history
        result["dominant_hessian_eigenvalue"] = dominant
    if any(type(m).__name__ == "BatchNorm2d" for m in model.modules()):
        result["responses"] = landscape.layer_responses(model, batches[0][0])
    return result


def plot(result, path, title=""):
    """The 1-D slice, the 2-D contours (when measured) and the sorted layer responses."""
    # NOTE: matplotlib is imported here, not at the top: it adds ~0.5 s to `import minicnn`
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 1 + ("slice_2d" in result) + ("responses" in result)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.6))
    axes = np.atleast_1d(axes)
    one = result["slice_1d"]
    axes[0].plot(one["steps"], one["loss"], marker=".")
    axes[0].set_xlabel("step along a filter-normalised direction")
    axes[0].set_ylabel("training loss")
    axes[0].set_title("1-D slice")
    k = 1
    if "slice_2d" in result:
        two = result["slice_2d"]
        contours = axes[k].contour(two["steps"], two["steps"], np.log10(two["loss"]).T, 20)
        axes[k].clabel(contours, fontsize=6)
        axes[k].set_xlabel("direction 1")
        axes[k].set_ylabel("direction 2")
        axes[k].set_title("2-D slice (log10 loss)")
        k += 1
    if "responses" in result:
        std = np.asarray(result["responses"]["std"])
        axes[k].plot(np.arange(1, len(std) + 1), std, label="layer index")
        axes[k].plot(np.arange(1, len(std) + 1), np.sort(std)[::-1], label="sorted")
        axes[k].set_xlabel("3x3 layer")
        axes[k].set_ylabel("std of the response")
        axes[k].set_title("layer responses (after BN)")
        axes[k].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def save(result, folder):
    """``landscape.npz`` with every array and ``landscape.json`` with the summary numbers."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"slice_1d_steps": result["slice_1d"]["steps"],
              "slice_1d_loss": result["slice_1d"]["loss"]}
    if "slice_2d" in result:
        arrays["slice_2d_steps"] = result["slice_2d"]["steps"]
        arrays["slice_2d_loss"] = result["slice_2d"]["loss"]
    if "power_iteration" in result:
        arrays["power_iteration"] = np.asarray(result["power_iteration"])
    if "responses" in result:
        arrays["response_std"] = np.asarray(result["responses"]["std"])
        arrays["block_ratio"] = np.asarray(result["responses"]["ratio"])
    with atomic_write(folder / "landscape.npz") as f:
        np.savez(f, **arrays)
    summary = {"loss": result["loss"],
               "top_hessian_eigenvalue": result.get("top_hessian_eigenvalue"),
               "responses": result.get("responses")}
    with atomic_write(folder / "landscape.json", "w") as f:
        json.dump(summary, f, indent=1)


def register(subparsers):
    """Add ``minicnn landscape`` to the command line's subparsers."""
    p = subparsers.add_parser(
        "landscape", help="loss landscape (filter-normalised slices), top Hessian eigenvalue and "
                          "layer responses of a trained net")
    p.add_argument("model", choices=sorted(MODELS), metavar="MODEL", help="a name of the zoo")
    p.add_argument("--checkpoint", required=True,
                   help="its weights: weights.npz or checkpoint.npz of `minicnn train`, a "
                        ".safetensors or a PyTorch .pth file")
    p.add_argument("--data", default="fashion-mnist", choices=DATASETS)
    p.add_argument("--subset", default="auto", choices=("auto", "full", "bundled"))
    p.add_argument("--images", type=int, default=256,
                   help="training images the loss is measured on (default 256)")
    p.add_argument("--steps", type=int, default=21, help="points of the 1-D slice (default 21)")
    p.add_argument("--steps-2d", type=int, default=0,
                   help="points per side of the 2-D slice (default 0: none; 11 takes 121 losses)")
    p.add_argument("--hessian-iterations", type=int, default=20,
                   help="power iterations for the top Hessian eigenvalue (0: skip)")
    p.add_argument("--seed", type=int, default=0, help="images and directions (default 0)")
    p.add_argument("--out", default="runs/landscape", help="output folder")
    p.set_defaults(func=_cmd_landscape)
    return p


def _cmd_landscape(args):
    manual_seed(args.seed)
    train, _, channels, size = load_data(args.data, args.subset, log=print)
    model, _ = build_model(args.model, 10, channels, size, None)
    report = load_weights_file(model, args.checkpoint)
    print(f"{args.model}: weights from {args.checkpoint} ({report})")
    batches = fixed_batches(train, args.images, seed=args.seed)
    result = measure(model, batches, args.steps, args.steps_2d, args.hessian_iterations,
                     args.seed)
    save(result, args.out)
    plot(result, pathlib.Path(args.out) / "landscape.png", f"{args.model} ({args.checkpoint})")
    print(f"training loss {result['loss']:.4f} on {args.images} images")
    if "top_hessian_eigenvalue" in result:
        print(f"top Hessian eigenvalue {result['top_hessian_eigenvalue']:.4g}")
    print(f"wrote {args.out}/landscape.npz, landscape.json, landscape.png")
    return 0
