"""The pictures of the gradient-flow experiments (:mod:`minicnn.experiments.gradflow`, on the
measurements of :mod:`minicnn.gradflow`), drawn with matplotlib's Agg renderer on figures of
their own (no ``pyplot``: no window opens, a notebook's backend is left alone), saved atomically
as PNG when given a path. Each function returns the ``Figure`` (a notebook displays it).

- :func:`plot_grad_norms`: per-layer weight-gradient norm, output-gradient norm and response
  std (He et al. 2016, Fig. 7) vs layer index on a log axis, plain and residual side by side,
  one line per depth;
- :func:`plot_grad_bars`: the bar chart of mean and max |grad| per layer known from the PyTorch
  forums;
- :func:`plot_degradation`: training curves in the style of He et al. 2016, Fig. 6: dashed
  training error, solid validation error, plain nets left, ResNets right;
- :func:`plot_jacobian_spectra`: the singular values of the input-output Jacobian of plain and
  residual stacks, per depth.
"""
import io

import numpy as np

from minicnn.serialization import atomic_write

__all__ = ["plot_grad_norms", "plot_grad_bars", "plot_degradation", "plot_jacobian_spectra"]


def _figure(rows, cols, width=5.5, height=3.8):
    # NOTE: matplotlib is imported when a picture is drawn, not at the top: it takes 0.4-0.7 s,
    # and the command line imports this module to register `minicnn gradflow`
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    figure = Figure(figsize=(width * cols, height * rows), layout="constrained")
    FigureCanvasAgg(figure)  # the Agg renderer for this figure only
    return figure, figure.subplots(rows, cols, squeeze=False)


def _finish(figure, path, title=None, dpi=90):
    if title:
        figure.suptitle(title)
    if path is not None:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi)
        with atomic_write(path) as f:
            f.write(_palette_png(buffer.getvalue()))
    return figure


def _palette_png(png):
    """The PNG with at most 256 colours (2-3x smaller for line plots; these pictures are
    committed with the experiments), or unchanged when Pillow is missing."""
    try:
        from PIL import Image
    except ImportError:  # matplotlib brings Pillow, but it is not needed for correctness
        return png
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _positive(values):
    """Values for a log axis: None and exact zeros become NaN (a gap in the line); the zeros
    are drawn separately as crosses at the bottom of the panel."""
    array = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    zeros = array == 0
    array[zeros] = np.nan
    return array, zeros


def _twins(runs):
    """{'plain': [runs by depth], 'residual': [...]} from :func:`minicnn.gradflow.sweep`'s list."""
    return {net: sorted((r for r in runs if r["net"] == net), key=lambda r: r["depth"])
            for net in ("plain", "residual")}


_FIELD_LABELS = {"weight_grad_norm": ("||dL/dW|| (weight gradient)", "summary"),
                 "output_grad_norm": ("||dL/dy|| (gradient into the layer output)",
                                      "output_summary"),
                 "response_std": ("std of the layer response", None)}


def plot_grad_norms(runs, path=None, fields=("weight_grad_norm", "output_grad_norm",
                                              "response_std"), title=None):
    """Per layer, each of ``fields`` (a row each, log axis) vs layer index; plain left,
    residual right, a line per depth, the same y range on both sides. Layers whose gradient is
    exactly 0 are marked x on the bottom edge. ``runs``: :func:`minicnn.gradflow.sweep`'s list
    (one configuration)."""
    figure, axes = _figure(len(fields), 2, width=5.5, height=3.4)
    for row, field in enumerate(fields):
        ylabel, summary_key = _FIELD_LABELS[field]
        for ax, (net, net_runs) in zip(axes[row], _twins(runs).items()):
            for i, run in enumerate(net_runs):
                values, zeros = _positive(run["record"][field])
                x = np.arange(len(values))
                label = f"{'plain' if net == 'plain' else 'ResNet'}-{run['depth']}"
                if summary_key:
                    s = run[summary_key]
                    if s["spread"] is None:
                        label += ": every layer exactly 0"
                    else:
                        label += f": spread {s['spread']:.1f} decades"
                        if s["any_zero"]:
                            label += f", {s['zero_layers']} exactly 0"
                ax.plot(x, values, "-", color=f"C{i}", linewidth=1.2, label=label,
                        marker="." if len(x) <= 30 else None, markersize=3)
                if zeros.any():
                    ax.plot(x[zeros], np.zeros(zeros.sum()), "x", color=f"C{i}",
                            clip_on=False, transform=ax.get_xaxis_transform())
            ax.set_yscale("log")
            ax.set_ylabel(ylabel, fontsize=9)
            ax.set_title("plain" if net == "plain" else "residual", fontsize=10)
            ax.grid(True, which="major", alpha=0.3)
            ax.legend(fontsize=7)
        _share_y(axes[row])
    for ax in axes[-1]:
        ax.set_xlabel("layer (Conv2d / Linear, forward order)")
    return _finish(figure, path, title)


def _share_y(axes):
    """The same y range on the panels of a row, so plain and residual compare at a glance."""
    lows, highs = zip(*(ax.get_ylim() for ax in axes))
    for ax in axes:
        ax.set_ylim(min(lows), max(highs))


def plot_grad_bars(snapshots, path=None, title=None):
    """The forum chart, a row per snapshot (``{label: snapshot}``): per layer a bar of max
    |grad| and in front of it a bar of mean |grad| of the weights (log axis); layers whose
    gradient is exactly 0 get a red x."""
    n = max(len(s["name"]) for s in snapshots.values())
    figure, axes = _figure(len(snapshots), 1, width=min(16.0, max(6.0, 0.16 * n + 2)),
                           height=3.6)
    for ax, (label, snapshot) in zip(axes[:, 0], snapshots.items()):
        max_abs, _ = _positive(snapshot["weight_grad_max_abs"])
        mean_abs, zeros = _positive(snapshot["weight_grad_mean_abs"])
        x = np.arange(len(max_abs))
        ax.bar(x, max_abs, width=0.9, color="c", alpha=0.7, label="max |grad|")
        ax.bar(x, mean_abs, width=0.9, color="b", alpha=0.7, label="mean |grad|")
        if zeros.any():
            ax.plot(x[zeros], np.zeros(zeros.sum()), "x", color="r", clip_on=False,
                    transform=ax.get_xaxis_transform(), label="exactly 0")
        ax.set_yscale("log")
        every = max(1, len(x) // 60)  # at most ~60 names on the axis
        ax.set_xticks(x[::every])
        ax.set_xticklabels(snapshot["name"][::every], rotation=90, fontsize=6)
        ax.set_xlim(-1, len(x))
        ax.set_ylabel("|weight gradient|")
        ax.set_title(label, fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    _share_y(axes[:, 0])
    return _finish(figure, path, title)


def plot_degradation(result, path=None, title=None):
    """Fig. 6 of the ResNet paper: error (%) and loss per epoch, dashed training, solid
    validation (``history['val_*']``; in runs recorded before the validation split, such as the
    committed ``experiments/gradflow/degradation.json``, those keys held the test images);
    plain nets on the left, ResNets on the right, a colour per depth."""
    figure, axes = _figure(2, 2)
    depths = result["recipe"]["depths"]
    for col, kind in enumerate(("plain", "resnet")):
        for i, depth in enumerate(depths):
            run = result["runs"].get(f"{kind}-{depth}")
            if run is None:
                continue
            h = run["history"]
            name = f"{'plain' if kind == 'plain' else 'ResNet'}-{depth}"
            for row, (train_key, test_key, scale) in enumerate((("train_acc", "val_acc", 100),
                                                                ("train_loss", "val_loss", 1))):
                ax = axes[row][col]
                for key, style, width, split in ((train_key, "--", 1.0, "train"),
                                                 (test_key, "-", 2.0, "validation")):
                    values = np.array(h[key], dtype=np.float64)
                    y = (1 - values) * 100 if scale == 100 else values
                    ax.plot(h["epoch"], y, style, color=f"C{i}", linewidth=width,
                            label=f"{name} {split}")
    from matplotlib.ticker import MaxNLocator
    for row, ylabel in enumerate(("error (%)", "loss")):
        for col, kind in enumerate(("plain", "ResNet")):
            ax = axes[row][col]
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs 1, 2, 3, not 1.5
            ax.set_xlabel("epoch")
            ax.set_ylabel(ylabel)
            if row == 1:  # a deep net's first-epoch loss can be 1000x the others': log scale
                ax.set_yscale("log")
            ax.set_title(f"{kind} nets")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
        _share_y(axes[row])
    recipe = result["recipe"]
    default = (f"{recipe['data']}, {recipe['train_images']} training images, {recipe['epochs']} "
               f"epochs, SGD lr {recipe['lr']} (dashed: training, solid: validation)")
    return _finish(figure, path, title or default)


def plot_jacobian_spectra(spectra, path=None, title=None):
    """Singular values of the input-output Jacobian (log axis), largest first, a line per
    depth; plain left, residual right, a row per (init, activation) found in ``spectra`` (see
    :func:`minicnn.gradflow.jacobian_spectra`). The dotted line is 1: a stack that keeps every
    direction of its input at its size. Values near 1e-10 and below are zeros up to the
    finite-difference noise (directions the stack loses entirely, such as ReLU's dead units)."""
    settings = list(dict.fromkeys((s["init"], s["activation"]) for s in spectra))
    figure, axes = _figure(len(settings), 2, width=5.5, height=3.4)
    for row, (init, activation) in enumerate(settings):
        for col, net in enumerate(("plain", "residual")):
            ax = axes[row][col]
            chosen = sorted((s for s in spectra if (s["init"], s["activation"], s["net"]) ==
                             (init, activation, net)), key=lambda s: s["depth"])
            for i, s in enumerate(chosen):
                values, _ = _positive(s["singular_values"])
                ax.plot(np.arange(1, len(values) + 1), values, "-", color=f"C{i}",
                        label=f"{s['depth']} block{'s' if s['depth'] > 1 else ''}: median "
                              f"{s['median']:.2g}")
            ax.axhline(1.0, color="k", linewidth=0.8, linestyle=":")
            ax.set_yscale("log")
            ax.set_ylabel("singular value", fontsize=9)
            ax.set_title(f"{net} stack, {activation}, init {init}", fontsize=10)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
        _share_y(axes[row])
    for ax in axes[-1]:
        ax.set_xlabel("index (largest first)")
    return _finish(figure, path, title)
