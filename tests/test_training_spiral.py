"""End to end: a two-layer MLP learns the classic three-arm spiral with SGD and with Adam.

The spiral is not linearly separable, so a broken backward, optimiser or initialisation shows as
a training accuracy far below the >= 95% that a working stack reaches in a few hundred steps.
"""
import numpy as np
import pytest

import minicnn as mc
import minicnn.nn as nn
import minicnn.nn.functional as F


def spiral(points_per_class=100, classes=3, seed=0):
    """CS231n-style spiral: arm k winds from the centre with a little noise on the angle."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for k in range(classes):
        r = np.linspace(0.0, 1.0, points_per_class)
        t = np.linspace(k * 4.0, (k + 1) * 4.0, points_per_class) + rng.normal(0, 0.2, points_per_class)
        xs.append(np.stack([r * np.sin(t), r * np.cos(t)], axis=1))
        ys.append(np.full(points_per_class, k))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)


def train(make_optimizer, steps=400, seed=0):
    mc.manual_seed(seed)
    x, y = spiral()
    x, y = mc.Tensor(x), mc.Tensor(y)
    model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 3))
    opt = make_optimizer(model.parameters())
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with mc.no_grad():
        accuracy = float((model(x).argmax(axis=1) == y).data.mean())
    return accuracy, losses, model


@pytest.mark.parametrize("name, make_optimizer", [
    ("sgd", lambda p: mc.optim.SGD(p, lr=0.5, momentum=0.9)),
    ("adam", lambda p: mc.optim.Adam(p, lr=0.02)),
])
def test_mlp_separates_the_spiral(name, make_optimizer):
    accuracy, losses, model = train(make_optimizer)
    assert accuracy >= 0.95, f"{name}: train accuracy {accuracy:.3f}"
    assert losses[-1] < 0.25 * losses[0]
    assert all(p.dtype == np.float32 and p.grad.dtype == np.float32 for p in model.parameters())


def test_a_linear_model_cannot_separate_it():
    """The check above is meaningful: without the hidden layer the spiral stays unsolved."""
    mc.manual_seed(0)
    x, y = spiral()
    x, y = mc.Tensor(x), mc.Tensor(y)
    model = nn.Linear(2, 3)
    opt = mc.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(300):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with mc.no_grad():
        accuracy = float((model(x).argmax(axis=1) == y).data.mean())
    assert accuracy < 0.7


def test_training_is_repeatable_with_manual_seed():
    make = lambda p: mc.optim.SGD(p, lr=0.5, momentum=0.9)  # noqa: E731
    _, first, _ = train(make, steps=30)
    _, second, _ = train(make, steps=30)
    assert first == second
