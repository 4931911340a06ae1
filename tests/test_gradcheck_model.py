"""Whole-network gradient checks (``gradcheck_model``) and the per-op profiler (``mc.profile``)."""
import numpy as np
import pytest

import minicnn as mc
import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn.gradcheck import gradcheck_model
from minicnn.models import alexnet_small, lenet5, resnet20
from minicnn.ops import activation


@pytest.mark.parametrize("factory, shape", [(lenet5, (2, 1, 28, 28)),
                                            (resnet20, (2, 3, 12, 12)),
                                            (alexnet_small, (2, 1, 28, 28))])  # with dropout
def test_zoo_models_pass_and_are_left_untouched(factory, shape):
    mc.manual_seed(0)
    model = factory()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    rows = gradcheck_model(model, x, n_directions=1)
    names = {r["name"] for r in rows}
    assert names == {"input"} | {n for n, _ in model.named_parameters()}
    assert all(r["ok"] for r in rows), [r for r in rows if not r["ok"]][:3]
    for key, value in model.state_dict().items():  # a float32 model stays float32 and unchanged
        assert value.dtype == before[key].dtype
        np.testing.assert_array_equal(value, before[key])


def test_a_wrong_backward_is_caught(monkeypatch):
    """ReLU's backward scaled by 0.9: every parameter below the first ReLU gets a wrong
    gradient, and the rows say so; the last layer (after every ReLU) stays right."""
    original = activation.ReLU.backward
    monkeypatch.setattr(activation.ReLU, "backward", lambda self, gy: 0.9 * original(self, gy))
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    rows = gradcheck_model(model, np.random.default_rng(1).standard_normal((4, 6)))
    verdict = {r["name"]: r["ok"] for r in rows}
    assert verdict["0.weight"] is False and verdict["0.bias"] is False
    assert verdict["input"] is False
    assert verdict["2.weight"] is True and verdict["2.bias"] is True


def test_profile_counts_every_op_once_and_restores_the_methods():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    x = mc.Tensor(np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32))
    forward = activation.ReLU.forward
    with mc.profile() as prof:
        for _ in range(3):
            loss = F.cross_entropy(model(x), mc.Tensor(np.array([0, 2])))
            loss.backward()
    assert activation.ReLU.forward is forward  # put back on exit
    calls = {(op, phase): n for op, phase, n, _ in prof.rows()}
    assert calls[("ReLU", "forward")] == 3 and calls[("ReLU", "backward")] == 3
    assert calls[("Conv2d", "forward")] == 3 and calls[("Conv2d", "backward")] == 3
    assert prof.total() == pytest.approx(prof.total("forward") + prof.total("backward"))
    assert prof.total() > 0
    table = prof.table(per=3)
    assert "Conv2d" in table and "all ops" in table
