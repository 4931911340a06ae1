"""minicnn.stats: the mean and spread over seeds, and the sentence a lecture may say."""
import math

import pytest

from minicnn.stats import compare, describe, separated, spread


def test_spread_is_mean_min_max_and_sample_std():
    s = spread([1.0, 2.0, 4.0])
    assert s["mean"] == pytest.approx(7 / 3)
    assert (s["min"], s["max"], s["n"]) == (1.0, 4.0, 3)
    assert s["std"] == pytest.approx(math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2
                                                + (4 - 7 / 3) ** 2) / 2))
    assert spread([5.0])["std"] == 0.0


def test_describe_prints_the_range_and_the_seed_count():
    assert describe([0.5, 0.25, 0.75], "{:.1%}") == "50.0% (min 25.0%, max 75.0%, 3 seeds)"
    assert "1 seed: no spread measured" in describe([0.5], "{:.1%}")


@pytest.mark.parametrize("a, b, side", [([3, 4, 5], [0, 1, 2], 1), ([0, 1, 2], [3, 4, 5], -1),
                                        ([0, 1, 3], [2, 4, 5], 0), ([0, 1, 2], [2, 3, 4], 0)])
def test_separated_needs_the_ranges_apart(a, b, side):
    assert separated(a, b) == side


def test_compare_says_within_noise_when_the_ranges_overlap():
    text = compare([0.8685, 0.861, 0.872], [0.862, 0.866, 0.858], "DenseNet", "ResNet", "{:.2%}")
    assert "within noise" in text and "higher" not in text
    text = compare([0.80, 0.81, 0.82], [0.85, 0.86, 0.87], "tanh", "ReLU", "{:.2%}")
    assert "ReLU is higher by 5.00%" in text and "within noise" not in text


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [float("inf")]])
def test_bad_values_are_refused(bad):
    with pytest.raises(ValueError):
        spread(bad)


def test_compare_needs_two_seeds_each():
    with pytest.raises(ValueError, match="2 seeds"):
        compare([1.0], [2.0, 3.0])
