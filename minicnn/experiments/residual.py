"""The residual-learning study and ``minicnn residual``: He et al. 2016 ("Deep residual learning
for image recognition", https://arxiv.org/abs/1512.03385) Fig. 6 and 7 and Li et al. 2018
("Visualizing the loss landscape of neural nets", https://arxiv.org/abs/1712.09913) on
Fashion-MNIST, plain vs residual at depths 20 and 56, several seeds.

    minicnn residual --out experiments/residual --seeds 0 1 2 --workers 2

Every net is trained with one recipe (:data:`RECIPE`), then measured at its final weights:

- the final training error (eval mode, on all its training images) and the test error (once);
- the largest Hessian eigenvalue of the training loss (:func:`minicnn.landscape.top_hessian_eigenvalue`);
- for the first seed, the 1-D and 2-D slices of the loss along filter-normalised random
  directions and the layer responses (He et al. Fig. 7; :func:`minicnn.landscape.layer_responses`).

Each net is one task, run in its own single-threaded worker process (two workers keep two cores
busy with no thread contention). A task writes ``runs/NAME_seedS.json`` atomically when it ends
and checkpoints training after every epoch, so a stopped study continues where it stopped when
the same command runs again. ``summary.json`` and the pictures (:mod:`.residual_plots`) are
written from the finished tasks.
"""
import concurrent.futures
import json
import math
import multiprocessing
import os
import pathlib
import time

import numpy as np

from minicnn import landscape
from minicnn.data.dataset import ArrayDataset, Subset
from minicnn.data.loader import DataLoader
from minicnn.data.presets import load_data
from minicnn.experiments.landscape import fixed_batches
from minicnn.experiments.residual_plots import (LABEL, load_runs, plot_landscapes,
                                                plot_responses, plot_training)
from minicnn.models.resnet_cifar import cifar_resnet
from minicnn.optim import SGD, LambdaLR
from minicnn.random import manual_seed
from minicnn.serialization import atomic_write
from minicnn.stats import compare, describe, spread
from minicnn.training import evaluate, fit
from minicnn.weights import load as load_weights_file, save as save_weights_file

__all__ = ["RECIPE", "MODELS", "WarmupCosine", "build", "train_task", "run", "summarize",
           "nonconvex_fraction", "results_markdown", "register"]

#: The one recipe every net of the study trains with (He et al. 2016 Section 4.2 where it fits a
#: 2-core budget; the differences are named in experiments/residual/README.md).
RECIPE = {
    "data": "fashion-mnist", "train_images": 5000, "test_images": 2000, "data_seed": 0,
    "augmentation": None, "epochs": 12, "batch_size": 128, "optimizer": "SGD",
    "momentum": 0.9, "weight_decay": 1e-4, "peak_lr": 0.05, "warmup_lr": 0.01,
    "warmup_epochs": 1, "schedule": "warm-up at warmup_lr, then cosine from peak_lr to 0",
    "norm": "batch norm", "init": "he (kaiming_fan_out)", "shortcut": "option A (zero padding)",
    "zero_init_residual": True, "measure_images": 256, "hessian_iterations": 20,
    "landscape_steps_1d": 21, "landscape_steps_2d": 13,
}

#: name -> (depth, plain): the four nets of the study
MODELS = {"plain20": (20, True), "plain56": (56, True), "resnet20": (20, False),
          "resnet56": (56, False)}
#: the ablation of the study's one change to the paper's initialisation: the ResNets with every
#: residual branch initialised as the paper does (no zero-initialised BN weight); trained and
#: evaluated only (no curvature or landscape)
ABLATION = {"resnet20_nozero": (20, False), "resnet56_nozero": (56, False)}
NETS = {**MODELS, **ABLATION}


class WarmupCosine:
    """The learning-rate factor of epoch ``t`` for :class:`~minicnn.optim.LambdaLR` with base lr
    ``peak_lr``: ``warmup_lr / peak_lr`` for the first ``warmup`` epochs, then a cosine from 1 to 0
    over the rest. A callable object, so a checkpoint keeps its settings."""

    def __init__(self, epochs, warmup, warmup_factor):
        self.epochs, self.warmup, self.warmup_factor = epochs, warmup, warmup_factor

    def __call__(self, t):
        if t < self.warmup:
            return self.warmup_factor
        return 0.5 * (1 + math.cos(math.pi * (t - self.warmup) / max(self.epochs - self.warmup, 1)))


def build(name, recipe=RECIPE, in_channels=1):
    """The net ``name`` of :data:`MODELS` as the recipe builds it."""
    depth, plain = NETS[name]
    zero = recipe["zero_init_residual"] and not plain and name not in ABLATION
    return cifar_resnet(depth, 10, in_channels, plain=plain, zero_init_residual=zero)


def datasets(recipe=RECIPE, log=None):
    """``(train, test)``: the recipe's fixed subsets, normalised, held in memory."""
    train, test, _, _ = load_data(recipe["data"], "auto", False, None, log)
    rng = np.random.default_rng(recipe["data_seed"])
    picked = [Subset(split, np.sort(rng.choice(len(split), min(n, len(split)), replace=False)))
              for split, n in ((train, recipe["train_images"]), (test, recipe["test_images"]))]
    return [ArrayDataset(*split.get_batch(np.arange(len(split)))) for split in picked]


def _paths(out, name, seed):
    runs = pathlib.Path(out) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    stem = runs / f"{name}_seed{seed}"
    return (stem.with_suffix(".json"), stem.with_name(stem.name + "_checkpoint.npz"),
            stem.with_name(stem.name + "_weights.npz"), stem.with_name(stem.name + ".log"))


def train_task(name, seed, out, recipe=RECIPE, landscape_too=False):
    """Train net ``name`` with ``seed`` (resuming its checkpoint), measure it, write its json.
    Returns the json's dict. Runs in a worker process; logs to ``runs/NAME_seedS.log``."""
    result_path, checkpoint, weights, log_path = _paths(out, name, seed)
    if result_path.exists():
        return json.loads(result_path.read_text())
    log_file = open(log_path, "a")

    def log(line):
        log_file.write(f"{time.strftime('%H:%M:%S')} {line}\n")
        log_file.flush()

    started = time.perf_counter()
    train, test = datasets(recipe)
    manual_seed(seed)
    model = build(name, recipe)
    opt = SGD(model.parameters(), lr=recipe["peak_lr"], momentum=recipe["momentum"],
              weight_decay=recipe["weight_decay"])
    scheduler = LambdaLR(opt, WarmupCosine(recipe["epochs"], recipe["warmup_epochs"],
                                           recipe["warmup_lr"] / recipe["peak_lr"]))
    loader = DataLoader(train, batch_size=recipe["batch_size"], shuffle=True, seed=seed)
    history = fit(model, opt, loader, recipe["epochs"], scheduler=scheduler,
                  checkpoint_path=checkpoint, resume=True, progress=False,
                  log=lambda line: log(f"{name} seed {seed} {line}"))
    save_weights_file(weights, model)
    _, train_acc = evaluate(model, DataLoader(train, batch_size=500))
    _, test_acc = evaluate(model, DataLoader(test, batch_size=500))   # the one look at test
    log(f"train error {1 - train_acc:.4f}, test error {1 - test_acc:.4f}")
    result = {"name": name, "seed": seed, "train_error": 1 - train_acc,
              "test_error": 1 - test_acc, "history": history,
              "train_seconds": time.perf_counter() - started}
    if name not in ABLATION:
        result.update(measure(model, train, seed, recipe, out if landscape_too else None, name,
                              log))
    result["seconds"] = time.perf_counter() - started
    with atomic_write(result_path, "w") as f:
        json.dump(result, f)
    log(f"done in {result['seconds']:.0f} s")
    log_file.close()
    return result


def measure(model, train, seed, recipe, landscape_out, name, log):
    """The top Hessian eigenvalue and layer responses; with ``landscape_out`` also the 1-D and
    2-D loss slices, written to ``landscape_out/landscape_NAME.npz``."""
    batches = fixed_batches(train, recipe["measure_images"], seed=0)
    value, dominant, history = landscape.top_hessian_eigenvalue(
        model, batches, iterations=recipe["hessian_iterations"], seed=seed, progress=False)
    log(f"top Hessian eigenvalue {value:.4g} (dominant {dominant:.4g}) after {len(history)} "
        f"iterations")
    responses = landscape.layer_responses(model, batches[0][0])
    result = {"top_hessian_eigenvalue": value, "dominant_hessian_eigenvalue": dominant,
              "power_iteration": list(map(float, history)),
              "loss_on_measure_images": landscape.batch_loss(model.eval(), batches),
              "responses": responses}
    if landscape_out is not None:
        one = landscape.loss_slice_1d(model, batches,
                                      np.linspace(-1, 1, recipe["landscape_steps_1d"]), seed=0,
                                      progress=False)
        two = landscape.loss_slice_2d(model, batches,
                                      np.linspace(-1, 1, recipe["landscape_steps_2d"]), seed=0,
                                      progress=False)
        path = pathlib.Path(landscape_out) / f"landscape_{name}.npz"
        with atomic_write(path) as f:
            np.savez(f, slice_1d_steps=one["steps"], slice_1d_loss=one["loss"],
                     slice_2d_steps=two["steps"], slice_2d_loss=two["loss"])
        result["landscape"] = path.name
        log(f"landscape written to {path}")
    return result


def complete_curvature(name, seed, out, recipe=RECIPE):
    """For a finished task measured when only the dominant Hessian eigenvalue was recorded (the
    first runs of the committed study): record it as ``dominant_hessian_eigenvalue`` and, when
    it is negative, measure the largest eigenvalue by the shifted power iteration from the saved
    weights. Rewrites ``runs/NAME_seedS.json`` atomically; returns its dict."""
    result_path, _, weights, log_path = _paths(out, name, seed)
    result = json.loads(result_path.read_text())
    if "dominant_hessian_eigenvalue" in result or name not in MODELS:
        return result
    dominant = result["top_hessian_eigenvalue"]
    result["dominant_hessian_eigenvalue"] = dominant
    if dominant < 0:
        train, _ = datasets(recipe)
        model = build(name, recipe)
        load_weights_file(model, weights)
        batches = fixed_batches(train, recipe["measure_images"], seed=0)
        largest, _, history = landscape.top_hessian_eigenvalue(
            model, batches, iterations=recipe["hessian_iterations"], seed=seed,
            progress=False, dominant=dominant)
        result["top_hessian_eigenvalue"] = largest
        result["power_iteration_shifted"] = list(map(float, history))
        with open(log_path, "a") as log_file:
            log_file.write(f"{time.strftime('%H:%M:%S')} dominant eigenvalue {dominant:.4g} < 0: "
                           f"largest eigenvalue {largest:.4g} after {len(history)} shifted "
                           f"iterations\n")
    with atomic_write(result_path, "w") as f:
        json.dump(result, f)
    return result


def complete_responses(name, seed, out, recipe=RECIPE):
    """Add the layer responses to a finished ablation task (trained and evaluated only), from
    its saved weights: the control for the zero-initialised branches of the main nets."""
    result_path, _, weights, _ = _paths(out, name, seed)
    result = json.loads(result_path.read_text())
    if "responses" in result:
        return result
    train, _ = datasets(recipe)
    model = build(name, recipe)
    load_weights_file(model, weights)
    result["responses"] = landscape.layer_responses(
        model, fixed_batches(train, recipe["measure_images"], seed=0)[0][0])
    with atomic_write(result_path, "w") as f:
        json.dump(result, f)
    return result


def _single_threaded():
    for var in ("MINICNN_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                "NUMBA_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


def run(out, seeds=(0, 1, 2), names=tuple(MODELS), workers=2, recipe=RECIPE, log=print):
    """Every (net, seed) task of the study on ``workers`` single-threaded processes, deepest
    nets first; then :func:`summarize`. Finished tasks are skipped, stopped ones resumed."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "recipe.json", "w") as f:
        json.dump(recipe, f, indent=1)
    tasks = sorted(((name, seed) for seed in seeds for name in names),
                   key=lambda t: (t[1], -NETS[t[0]][0]))
    saved = dict(os.environ)
    _single_threaded()          # the workers inherit this environment
    try:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = {pool.submit(train_task, name, seed, str(out), recipe,
                                   seed == seeds[0]): (name, seed) for name, seed in tasks}
            for future in concurrent.futures.as_completed(futures):
                name, seed = futures[future]
                r = future.result()
                if log:
                    log(f"{name} seed {seed}: train error {100 * r['train_error']:.2f}%, test "
                        f"error {100 * r['test_error']:.2f}%, top Hessian eigenvalue "
                        f"{r['top_hessian_eigenvalue']:.3g} ({r['seconds']:.0f} s)")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return summarize(out, recipe)


def summarize(out, recipe=None):
    """``summary.json`` from the finished tasks in ``out/runs``: per net, one entry per seed
    (sorted by seed) of the final training error, the test error and the top Hessian
    eigenvalue, and the landscape file of the first seed."""
    out = pathlib.Path(out)
    if recipe is None:
        recipe = json.loads((out / "recipe.json").read_text())
    runs = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*_seed*.json"))]
    models = {}
    for name in NETS:
        mine = sorted((r for r in runs if r["name"] == name), key=lambda r: r["seed"])
        if not mine:
            continue
        models[name] = {"seeds": [r["seed"] for r in mine],
                        "train_error": [r["train_error"] for r in mine],
                        "test_error": [r["test_error"] for r in mine]}
        if name in MODELS:
            models[name]["top_hessian_eigenvalue"] = [r["top_hessian_eigenvalue"] for r in mine]
            models[name]["dominant_hessian_eigenvalue"] = [
                r.get("dominant_hessian_eigenvalue", r["top_hessian_eigenvalue"]) for r in mine]
        files = [r["landscape"] for r in mine if "landscape" in r]
        if files:
            models[name]["landscape"] = files[0]
    summary = {"recipe": recipe, "models": models}
    for name, m in models.items():
        if "landscape" in m:
            m["nonconvex_fraction_2d"] = nonconvex_fraction(
                np.load(out / m["landscape"])["slice_2d_loss"])
    with atomic_write(out / "summary.json", "w") as f:
        json.dump(summary, f, indent=1)
    runs = load_runs(out)
    if runs:
        plot_training(runs, out / "training.png")
        plot_responses(runs, out / "responses.png")
        plot_landscapes(out, runs, out / "landscapes.png")
        text = results_markdown(summary, runs)
        with atomic_write(out / "results.md", "w") as f:
            f.write(text)
        _update_readme(out / "README.md", text)
    return summary


def _update_readme(readme, text, begin="<!-- results -->\n", end="<!-- /results -->\n"):
    """Put ``text`` between the markers of ``readme`` (when it exists and has them)."""
    if not readme.exists():
        return
    old = readme.read_text()
    if begin not in old or end not in old:
        return
    head, rest = old.split(begin, 1)
    with atomic_write(readme, "w") as f:
        f.write(head + begin + text + end + rest.split(end, 1)[1])


def nonconvex_fraction(loss_2d):
    """The fraction of the interior points of a 2-D loss slice where the slice is not locally
    convex: the 2x2 finite-difference Hessian (second differences along both axes and the
    mixed one) has a negative eigenvalue. 0 for a bowl; Li et al.'s "chaotic" landscapes have
    many such points."""
    z = np.asarray(loss_2d, dtype=np.float64)
    if z.ndim != 2 or min(z.shape) < 3:
        raise ValueError(f"nonconvex_fraction: a 2-D grid of at least 3x3 expected, got {z.shape}")
    dxx = z[2:, 1:-1] - 2 * z[1:-1, 1:-1] + z[:-2, 1:-1]
    dyy = z[1:-1, 2:] - 2 * z[1:-1, 1:-1] + z[1:-1, :-2]
    dxy = (z[2:, 2:] - z[2:, :-2] - z[:-2, 2:] + z[:-2, :-2]) / 4
    # the smaller eigenvalue of [[dxx, dxy], [dxy, dyy]]
    smallest = (dxx + dyy) / 2 - np.sqrt(((dxx - dyy) / 2) ** 2 + dxy ** 2)
    return float(np.mean(smallest < 0))


def _mean_std(run):
    return float(np.mean(run["responses"]["std"]))


def results_markdown(summary, runs):
    """The results of a finished study as markdown: the table and the sentences the README
    states, every number computed here from ``summary`` and the per-run results."""
    models = summary["models"]
    pct = "{:.2%}"
    lines = ["| net | seeds | final training error | test error | top Hessian eigenvalue | "
             "mean response std | non-convex points of the 2-D slice |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, m in models.items():
        responses = [_mean_std(r) for r in runs.get(name, []) if "responses" in r]
        hessian = m.get("top_hessian_eigenvalue")
        lines.append(
            f"| {LABEL[name]} | {len(m['seeds'])} | {describe(m['train_error'], pct)} | "
            f"{describe(m['test_error'], pct)} | "
            f"{describe(hessian, '{:.3g}') if hessian else '-'} | "
            f"{describe(responses, '{:.3f}') if responses else '-'} | "
            f"{pct.format(m['nonconvex_fraction_2d']) if 'nonconvex_fraction_2d' in m else '-'}"
            f" |")
    lines.append("")
    pairs = [("plain56", "plain20", "train_error", "final training error"),
             ("resnet56", "resnet20", "train_error", "final training error"),
             ("plain56", "plain20", "test_error", "test error"),
             ("resnet56", "resnet20", "test_error", "test error"),
             ("plain20", "resnet20", "top_hessian_eigenvalue", "top Hessian eigenvalue"),
             ("plain56", "resnet56", "top_hessian_eigenvalue", "top Hessian eigenvalue"),
             ("resnet56_nozero", "resnet20_nozero", "train_error",
              "final training error, paper initialisation"),
             ("plain20", "resnet20_nozero", "train_error", "final training error, depth 20"),
             ("plain56", "resnet56_nozero", "train_error", "final training error, depth 56"),
             ("resnet20", "resnet20_nozero", "train_error", "final training error, ResNet-20"),
             ("resnet56", "resnet56_nozero", "train_error", "final training error, ResNet-56")]
    for a, b, key, what in pairs:
        if (a in models and b in models and key in models[a] and key in models[b]
                and min(len(models[a][key]), len(models[b][key])) > 1):
            fmt = pct if key.endswith("error") else "{:.3g}"
            lines.append(f"- {what}: {compare(models[a][key], models[b][key], LABEL[a], LABEL[b], fmt)}")
    if all(n in models for n in MODELS):
        mean = {n: spread(models[n]["train_error"])["mean"] for n in MODELS}
        plain = mean["plain56"] > mean["plain20"]
        residual = mean["resnet56"] < mean["resnet20"]
        lines.append(f"- He et al. Fig. 6 in the means of the seeds: plain-56 above plain-20 in "
                     f"final training error: **{'yes' if plain else 'no'}**; ResNet-56 below "
                     f"ResNet-20: **{'yes' if residual else 'no'}**.")
    if all(n in models and len(models[n]["seeds"]) >= 3 for n in ABLATION):
        mean = {n: spread(models[n]["train_error"])["mean"] for n in ABLATION}
        below = mean["resnet56_nozero"] < mean["resnet20_nozero"]
        lines.append(f"- The same with the paper's initialisation of the residual branches (the "
                     f"ablation), means of the seeds: ResNet-56 below ResNet-20 in final "
                     f"training error: **{'yes' if below else 'no'}**.")
    iterations = summary["recipe"]["hessian_iterations"]
    for name in MODELS:
        if name in runs and all("power_iteration" in r for r in runs[name]):
            done = [len(r.get("power_iteration_shifted", r["power_iteration"])) < iterations
                    for r in runs[name]]
            lines.append(f"- {LABEL[name]}: the power iteration for the largest eigenvalue met its "
                         f"tolerance (relative change < 1e-3) within {iterations} iterations in "
                         f"{sum(done)} of {len(done)} seeds; where it did not, the value is the "
                         f"last Rayleigh quotient, a lower bound on the largest eigenvalue.")
    for name, m in models.items():
        negative = [d for d in m.get("dominant_hessian_eigenvalue", []) if d < 0]
        if negative:
            lines.append(f"- {LABEL[name]}: in {len(negative)} of {len(m['seeds'])} seeds the "
                         f"power iteration on the Hessian was drawn to negative curvature "
                         f"(Rayleigh quotients {', '.join(f'{d:.3g}' for d in negative)}), so the "
                         f"Hessian has an eigenvalue at least that negative: the net ends on a "
                         f"slope, not in a minimum. The largest eigenvalue in the table is then "
                         f"measured by a power iteration shifted by that amount.")
    for name in ("resnet20", "resnet56", "resnet20_nozero", "resnet56_nozero"):
        if name in runs and all("responses" in r for r in runs[name]):
            ratios = np.concatenate([r["responses"]["ratio"] for r in runs[name]])
            lines.append(f"- {LABEL[name]}: ||F(x)|| / ||x|| over its blocks and seeds: median "
                         f"{np.median(ratios):.3f}, range {ratios.min():.3f} to "
                         f"{ratios.max():.3f}.")
    early = {n: [1 - r["history"]["train_acc"][1] for r in rs] for n, rs in runs.items()
             if all(len(r["history"]["train_acc"]) > 1 for r in rs)}
    if early:
        lines.append("- running training error after two epochs (mean of the seeds): " + ", ".join(
            f"{LABEL[n]} {pct.format(np.mean(v))}" for n, v in early.items()) + ".")
    seconds = [r["seconds"] for rs in runs.values() for r in rs if "seconds" in r]
    if seconds:
        lines.append(f"- compute: {len(seconds)} tasks, {sum(seconds) / 3600:.2f} hours of one "
                     f"core in all (training and measurements; each task single-threaded, two at "
                     f"a time on a 2-core machine shared with other work).")
    return "\n".join(lines) + "\n"


def register(subparsers):
    """Add ``minicnn residual`` to the command line's subparsers."""
    p = subparsers.add_parser(
        "residual", help="the residual-learning study: plain vs residual nets at depths 20 and "
                         "56, several seeds; training error, test error, curvature, landscapes")
    p.add_argument("--out", default="runs/residual", help="output folder (resumes what is there)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(NETS),
                   help="the nets to train (default: the four of the study; the ablation "
                        "resnet20_nozero resnet56_nozero trains the ResNets with the paper's "
                        "initialisation of every residual branch)")
    p.add_argument("--workers", type=int, default=2, help="single-threaded processes (default 2)")
    p.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    p.add_argument("--train-images", type=int, default=RECIPE["train_images"])
    p.add_argument("--summarize-only", action="store_true",
                   help="only rewrite summary.json and the pictures from finished runs")
    p.set_defaults(func=_cmd_residual)
    return p


def _cmd_residual(args):
    recipe = dict(RECIPE, epochs=args.epochs, train_images=args.train_images)
    if args.summarize_only:
        summary = summarize(args.out)
    else:
        summary = run(args.out, tuple(args.seeds), tuple(args.models), args.workers, recipe)
    for name, m in summary["models"].items():
        print(f"{name}: train error {np.mean(m['train_error']):.4f} (seeds {m['seeds']}: "
              f"{', '.join(f'{e:.4f}' for e in m['train_error'])}), test error "
              f"{np.mean(m['test_error']):.4f}")
    print(f"wrote {args.out}/summary.json")
    return 0
