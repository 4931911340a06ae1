"""Several seeds, stated honestly: the mean and the spread of a measurement repeated over seeds,
and the sentence a lecture may say about two of them.

    from minicnn.stats import describe, compare
    relu, tanh = [0.871, 0.866, 0.874], [0.862, 0.869, 0.858]      # accuracy per seed
    print(describe(relu, "{:.2%}"))      # 87.03% (min 86.60%, max 87.40%, 3 seeds)
    print(compare(relu, tanh, "ReLU", "tanh", "{:.2%}"))

The rule :func:`compare` applies is the conservative one for a handful of seeds: two settings
differ only when their seed ranges (min to max) do not overlap; otherwise the difference of the
means is "within noise". With 3 seeds each, non-overlapping ranges happen by chance for two
identical settings with probability 2 * 3! * 3! / 6! = 0.1 (every ordering of the 6 values is
equally likely, and 2 of the 20 ways to split them put one setting's values all above the
other's), so a lecture should read a "differs" from 3 seeds as a finding worth repeating, not
as a proof.
"""
import numpy as np

__all__ = ["spread", "describe", "separated", "compare"]


def spread(values):
    """``{"mean", "min", "max", "std", "n"}`` of a measurement over seeds (std with ddof=1;
    0.0 for one value)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("spread: no values (one per seed expected)")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"spread: the values must be finite, got {v.tolist()}")
    return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()),
            "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size)}


def describe(values, fmt="{:.4g}"):
    """``'mean (min ..., max ..., n seeds)'`` with each number formatted by ``fmt``."""
    s = spread(values)
    if s["n"] == 1:
        return f"{fmt.format(s['mean'])} (1 seed: no spread measured)"
    return (f"{fmt.format(s['mean'])} (min {fmt.format(s['min'])}, max {fmt.format(s['max'])}, "
            f"{s['n']} seeds)")


def separated(a, b):
    """+1 when every value of ``a`` is above every value of ``b``, -1 when below, 0 when the two
    seed ranges overlap (or touch)."""
    sa, sb = spread(a), spread(b)
    if sa["min"] > sb["max"]:
        return 1
    if sa["max"] < sb["min"]:
        return -1
    return 0


def compare(a, b, name_a="A", name_b="B", fmt="{:.4g}", unit_of_difference=None):
    """One sentence comparing two measurements over seeds: both described, then either which is
    higher (the ranges do not overlap) or "within noise" (they do).

    ``unit_of_difference``: the format of the difference of the means (``fmt`` by default; use
    e.g. ``"{:.2f} points"`` with ``fmt="{:.2%}"`` values scaled by 100 first if wanted)."""
    if min(spread(a)["n"], spread(b)["n"]) < 2:
        raise ValueError("compare: at least 2 seeds per setting are needed to see the noise "
                         "(3 or more for a conclusion)")
    side = separated(a, b)
    diff = spread(a)["mean"] - spread(b)["mean"]
    diff_text = (unit_of_difference or fmt).format(abs(diff))
    head = f"{name_a}: {describe(a, fmt)}; {name_b}: {describe(b, fmt)}"
    if side == 0:
        return (f"{head}. The difference of the means ({diff_text}) is within noise: the seed "
                f"ranges overlap.")
    higher, lower = (name_a, name_b) if side > 0 else (name_b, name_a)
    return (f"{head}. {higher} is higher by {diff_text} (difference of the means), and every "
            f"seed of {higher} is above every seed of {lower}.")
