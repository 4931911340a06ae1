"""Training curves, drawn as in the ResNet paper's figures (He et al., 2016, Fig. 1 and 4,
https://arxiv.org/abs/1512.03385): training curves dashed, validation curves solid, one colour
per run, so "the deeper plain net is worse even on its training data" is visible at a glance.

    mc.plot_history(history, "run/curves.png")                       # one run
    mc.plot_history({"plain-20": h1, "resnet-20": h2}, "cmp.png")     # several, compared

:func:`epoch_line` is the same history in words: the one line :func:`minicnn.fit` prints per
epoch. A run shows "val"/"validation" only for what it measured on a validation split (its
``val_loader``); without one the line and the curves show training alone.

Drawn with matplotlib's Agg renderer on a figure of its own (no ``pyplot``, so no window opens,
nothing changes the backend of a notebook, and no figure is left open), and saved atomically.
"""
from minicnn.serialization import atomic_write

__all__ = ["plot_history", "epoch_line", "percent"]


def percent(accuracy):
    """``0.8512`` -> ``'85.12%'``; None (nothing was classified) -> ``'-'``."""
    return "-" if accuracy is None else f"{100 * accuracy:.2f}%"


def epoch_line(record, epochs):
    """One epoch's line: ``epoch 3/10  train loss 0.4123 acc 85.12%  val loss ... img/s``
    (``record``: one epoch of a history; the val part only when it was measured)."""
    line = (f"epoch {record['epoch']:>{len(str(epochs))}}/{epochs}  train loss "
            f"{record['train_loss']:.4f} acc {percent(record['train_acc'])}  ")
    if record["val_loss"] is not None:
        line += f"val loss {record['val_loss']:.4f} acc {percent(record['val_acc'])}  "
    return line + (f"lr {record['lr']:.4g}  {record['seconds']:.1f} s  "
                   f"{record['images_per_s'] or 0:,.0f} img/s")


def _runs(history):
    """``{label: history}`` from one history or from a dict of them."""
    if not isinstance(history, dict):
        raise TypeError(f"plot_history expects a history (dict of lists, as fit returns) or a "
                        f"dict of them, but got {type(history).__name__}")
    if "train_loss" in history:
        return {"": history}
    if history and all(isinstance(run, dict) and "train_loss" in run
                       for run in history.values()):
        return history
    raise ValueError("plot_history expects a history with a 'train_loss' list (as fit returns), "
                     f"or a dict label -> history; got keys {sorted(map(str, history))}")


def _points(epochs, values, scale):
    """The (epoch, value) pairs that were measured (None marks 'not measured')."""
    pairs = [(e, v * scale) for e, v in zip(epochs, values) if v is not None]
    return [e for e, _ in pairs], [v for _, v in pairs]


def plot_history(history, path=None, title=None, dpi=120):
    """Draw loss and accuracy per epoch; save a PNG to ``path`` (atomically) when given.

    ``history``: what :func:`minicnn.training.fit` returns, or ``{label: history}`` to compare
    runs. Returns the matplotlib ``Figure`` (a notebook displays it).
    """
    # NOTE: imported here, not at the top: matplotlib's Figure and Agg canvas take 0.4-0.7 s to
    # import (pyplot 0.6-0.85 s, measured on the 2-core CI machine), more than the rest of
    # `import minicnn`; only a run that draws pays for them.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    runs = _runs(history)
    has_accuracy = any(v is not None for run in runs.values()
                       for key in ("train_acc", "val_acc") for v in run.get(key, []))
    panels = [("loss", "loss", 1)] + ([("acc", "accuracy (%)", 100)] if has_accuracy else [])

    figure = Figure(figsize=(5 * len(panels), 3.8), layout="constrained")
    FigureCanvasAgg(figure)  # attaches the Agg renderer to this figure only
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, ylabel, scale) in zip(axes, panels):
        for i, (label, run) in enumerate(runs.items()):
            epochs = run.get("epoch") or list(range(1, len(run["train_loss"]) + 1))
            for split, style, width in (("train", "--", 1.0), ("val", "-", 2.0)):
                x, y = _points(epochs, run.get(f"{split}_{key}", []), scale)
                if y:
                    name = "train" if split == "train" else "validation"
                    ax.plot(x, y, style, color=f"C{i}", linewidth=width, marker=".",
                            label=f"{label} {name}".strip())
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs 1, 2, 3, not 1.5
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        figure.suptitle(title)
    if path is not None:
        with atomic_write(path) as f:
            figure.savefig(f, format="png", dpi=dpi)
    return figure
