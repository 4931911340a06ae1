"""The pictures of the residual-learning study (:mod:`minicnn.experiments.residual`), drawn from
its per-run results (``runs/NAME_seedS.json``) and landscape files, each saved atomically:

- :func:`plot_training`: He et al. Fig. 6, the training error per epoch (mean of the seeds, the
  band from the lowest to the highest seed) and the final training and test errors per seed;
- :func:`plot_responses`: He et al. Fig. 7, the std of each 3x3 layer's response by layer and
  sorted, and ``||F(x)|| / ||x||`` per block;
- :func:`plot_landscapes`: Li et al. 2018, the 1-D and 2-D loss slices and the top Hessian
  eigenvalue per seed.
"""
import json
import pathlib

import numpy as np

from minicnn.serialization import atomic_write

__all__ = ["load_runs", "plot_training", "plot_responses", "plot_landscapes", "STYLE"]

#: colour and line per net: depth 20 thin, depth 56 thick; plain dashed, residual solid
STYLE = {"plain20": ("tab:blue", "--", 1.2), "plain56": ("tab:blue", "--", 2.4),
         "resnet20": ("tab:red", "-", 1.2), "resnet56": ("tab:red", "-", 2.4),
         "resnet20_nozero": ("tab:gray", ":", 1.2), "resnet56_nozero": ("tab:gray", ":", 2.4)}
LABEL = {"plain20": "plain-20", "plain56": "plain-56", "resnet20": "ResNet-20",
         "resnet56": "ResNet-56", "resnet20_nozero": "ResNet-20, paper init",
         "resnet56_nozero": "ResNet-56, paper init"}


def load_runs(folder):
    """``{name: [run dicts sorted by seed]}`` from ``folder/runs/*_seed*.json``."""
    runs = {}
    for path in sorted(pathlib.Path(folder, "runs").glob("*_seed*.json")):
        r = json.loads(path.read_text())
        runs.setdefault(r["name"], []).append(r)
    return {name: sorted(rs, key=lambda r: r["seed"]) for name, rs in runs.items()}


def _pyplot():
    # NOTE: matplotlib is imported on first use: it adds ~0.5 s to `import minicnn`
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path):
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=110)


def _band(ax, x, rows, name):
    colour, line, width = STYLE[name]
    rows = np.asarray(rows, dtype=np.float64)
    ax.plot(x, rows.mean(0), line, color=colour, linewidth=width,
            label=f"{LABEL[name]} ({len(rows)} seeds)")
    ax.fill_between(x, rows.min(0), rows.max(0), color=colour, alpha=0.15, linewidth=0)


def plot_training(runs, path=None):
    """Fig. 6: running training error per epoch for the plain and the residual nets (mean line,
    min-max band over seeds), then the final errors per seed. Returns the figure."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, kind in zip(axes[:2], ("plain", "resnet")):
        for name in (n for n in STYLE if n.startswith(kind) and n in runs):
            rows = [100 * (1 - np.asarray(r["history"]["train_acc"])) for r in runs[name]]
            _band(ax, np.arange(1, len(rows[0]) + 1), rows, name)
        ax.set_xlabel("epoch")
        ax.set_ylabel("training error, running (%)")
        ax.set_title("plain nets" if kind == "plain" else "residual nets")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    ax = axes[2]
    names = [n for n in STYLE if n in runs]
    for k, name in enumerate(names):
        for offset, key, marker in ((-0.12, "train_error", "o"), (0.12, "test_error", "s")):
            values = [100 * r[key] for r in runs[name]]
            ax.plot(np.full(len(values), k + offset), values, marker, color=STYLE[name][0],
                    fillstyle="none" if key == "test_error" else "full", markersize=6)
            ax.hlines(np.mean(values), k + offset - 0.1, k + offset + 0.1, color="k")
    ax.set_xticks(range(len(names)), [LABEL[n].replace(", ", "\n") for n in names], fontsize=7)
    ax.set_ylabel("final error (%)")
    ax.set_title("final: training (filled) and test (open)\none mark per seed, bar = mean",
                 fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    if path is not None:
        _save(fig, path)
    return fig


def plot_responses(runs, path=None):
    """Fig. 7: the std of each 3x3 layer's response (after BN, before the addition and ReLU) by
    layer and sorted by magnitude, mean over seeds; and ``||F(x)|| / ||x||`` per block."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for name in (n for n in STYLE if n in runs and all("responses" in r for r in runs[n])):
        std = [r["responses"]["std"] for r in runs[name]]
        _band(axes[0], np.arange(1, len(std[0]) + 1), std, name)
        _band(axes[1], np.arange(1, len(std[0]) + 1), [sorted(s, reverse=True) for s in std],
              name)
        ratio = [r["responses"]["ratio"] for r in runs[name]]
        _band(axes[2], np.arange(1, len(ratio[0]) + 1), ratio, name)
    axes[0].set_xlabel("3x3 layer (forward order)")
    axes[1].set_xlabel("3x3 layer (sorted by std)")
    for ax in axes[:2]:
        ax.set_ylabel("std of the response")
    axes[0].set_title("layer responses (after BN)")
    axes[1].set_title("sorted, as He et al. Fig. 7")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("block")
    axes[2].set_ylabel("||F(x)|| / ||x||")
    axes[2].set_title("how far each block is from the identity")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    if path is not None:
        _save(fig, path)
    return fig


def plot_landscapes(folder, runs, path=None):
    """The 1-D slices of the four nets, their 2-D slices (contours of log10 loss, the same
    levels for all four) and the top Hessian eigenvalue per seed."""
    plt = _pyplot()
    folder = pathlib.Path(folder)
    names = [n for n in STYLE if (folder / f"landscape_{n}.npz").exists()]
    data = {n: np.load(folder / f"landscape_{n}.npz") for n in names}
    fig = plt.figure(figsize=(12.5, 7))
    grid = fig.add_gridspec(2, 3)
    ax = fig.add_subplot(grid[0, 0])
    for n in names:
        colour, line, width = STYLE[n]
        ax.semilogy(data[n]["slice_1d_steps"], data[n]["slice_1d_loss"], line, color=colour,
                    linewidth=width, label=LABEL[n])
    ax.set_xlabel("step along a filter-normalised direction")
    ax.set_ylabel("training loss")
    ax.set_title("1-D slices (seed 0)")
    ax.legend(fontsize=7)
    ax = fig.add_subplot(grid[1, 0])
    measured = [n for n in STYLE if n in runs and "top_hessian_eigenvalue" in runs[n][0]]
    for k, n in enumerate(measured):
        values = [r["top_hessian_eigenvalue"] for r in runs[n]]
        ax.plot(np.full(len(values), k), values, "o", color=STYLE[n][0])
        ax.hlines(np.mean(values), k - 0.2, k + 0.2, color="k")
    ax.set_xticks(range(len(measured)), [LABEL[n] for n in measured], fontsize=8)
    ax.set_yscale("symlog", linthresh=1)
    ax.set_ylabel("top Hessian eigenvalue")
    ax.set_title("curvature at the end (per seed)")
    if names:
        logs = {n: np.log10(np.maximum(data[n]["slice_2d_loss"], 1e-12)) for n in names}
        levels = np.linspace(min(v.min() for v in logs.values()),
                             max(v.max() for v in logs.values()), 25)
        for k, n in enumerate(names):
            ax = fig.add_subplot(grid[k // 2, 1 + k % 2])
            steps = data[n]["slice_2d_steps"]
            filled = ax.contourf(steps, steps, logs[n].T, levels=levels, cmap="viridis")
            ax.contour(steps, steps, logs[n].T, levels=levels, colors="k", linewidths=0.3)
            ax.plot([0], [0], "w+")
            ax.set_title(f"{LABEL[n]}: log10 loss (2-D slice)", fontsize=9)
            ax.set_aspect("equal")
        fig.colorbar(filled, cax=fig.add_axes([0.93, 0.15, 0.012, 0.7]),
                     label="log10 training loss (same levels in all four)")
    fig.subplots_adjust(left=0.07, right=0.9, wspace=0.35, hspace=0.45)
    if path is not None:
        _save(fig, path)
    return fig
