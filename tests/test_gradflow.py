"""mc.gradflow: the recorder's numbers against hand-computed ones, the plain/residual difference
on small depths, the Jacobian of a residual block, and the gradflow command."""
import argparse
import json

import numpy as np
import pytest

import minicnn as mc
import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn import gradflow
from minicnn.experiments import gradflow as gradflow_experiment
from minicnn.data import FashionMNIST
from minicnn.data import transforms as T
from minicnn.models.resnet_cifar import CifarBasicBlock, cifar_resnet


@pytest.fixture(scope="module")
def batch():
    """8 real Fashion-MNIST images from the bundled subset, normalised as the CLI does."""
    train = FashionMNIST(subset=True, transform=T.Normalize((0.2860,), (0.3530,)))
    return gradflow.fixed_batch(train, size=8, seed=0)


# ---- the recorder ----------------------------------------------------------------------------

def test_recorder_numbers_equal_hand_computed_norms():
    """Linear -> ReLU -> Linear with cross entropy, backpropagated by hand in NumPy (float64)."""
    mc.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    t = np.array([0, 2, 1, 2])
    snap = gradflow.record(model, mc.Tensor(x), mc.Tensor(t))

    W1, b1 = (model[0].weight.data.astype(np.float64), model[0].bias.data.astype(np.float64))
    W2, b2 = (model[2].weight.data.astype(np.float64), model[2].bias.data.astype(np.float64))
    h = x @ W1.T + b1                       # layer 1 output
    a = np.maximum(h, 0)
    z = a @ W2.T + b2                       # layer 2 output (logits)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    loss = -np.log(p[np.arange(4), t]).mean()
    gz = (p - np.eye(3)[t]) / 4             # dL/dz
    gW2 = gz.T @ a
    gh = (gz @ W2) * (h > 0)                # dL/dh
    gW1 = gh.T @ x

    assert snap["name"] == ["0", "2"] and snap["type"] == ["Linear", "Linear"]
    assert snap["block"] == [None, None] and snap["step"] == 0
    assert snap["loss"] == pytest.approx(loss, rel=1e-5)
    expected = {
        "weight_grad_norm": [np.linalg.norm(gW1), np.linalg.norm(gW2)],
        "weight_grad_mean_abs": [np.abs(gW1).mean(), np.abs(gW2).mean()],
        "weight_grad_max_abs": [np.abs(gW1).max(), np.abs(gW2).max()],
        "output_grad_norm": [np.linalg.norm(gh), np.linalg.norm(gz)],
        "response_std": [h.std(), z.std()],
    }
    for field, values in expected.items():
        np.testing.assert_allclose(snap[field], values, rtol=1e-5, err_msg=field)
    # the model keeps this batch's gradients, as after any backward
    np.testing.assert_allclose(model[0].weight.grad, gW1, rtol=1e-5, atol=1e-7)


def test_recorder_takes_the_response_after_batch_norm_and_the_conv_output_gradient():
    mc.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                          nn.Flatten(), nn.Linear(3 * 5 * 5, 4))
    x = mc.Tensor(np.random.default_rng(0).standard_normal((2, 1, 5, 5)).astype(np.float32))
    t = mc.Tensor(np.array([1, 3]))
    snap = gradflow.record(model, x, t)

    model.zero_grad()  # the same step again, measured by hand
    h = model[0](x)
    h.retain_grad()
    bn = model[1](h)
    F.cross_entropy(model[4](model[3](model[2](bn))), t).backward()
    assert snap["name"] == ["0", "4"]
    assert snap["response_std"][0] == pytest.approx(float(bn.data.astype(np.float64).std()))
    assert snap["response_std"][0] != pytest.approx(float(h.data.std()), rel=1e-2)
    assert snap["output_grad_norm"][0] == pytest.approx(np.linalg.norm(h.grad), rel=1e-5)
    assert snap["weight_grad_norm"][0] == pytest.approx(np.linalg.norm(model[0].weight.grad),
                                                        rel=1e-5)


def test_recorder_saves_json_and_csv(tmp_path):
    mc.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    recorder = gradflow.GradFlowRecorder(model)
    with recorder:
        for _ in range(2):
            F.cross_entropy(model(mc.Tensor(np.ones((2, 3), np.float32))),
                            mc.Tensor(np.array([0, 1]))).backward()
    recorder.save(tmp_path / "flow.json")
    recorder.save(tmp_path / "flow.csv")
    assert json.loads((tmp_path / "flow.json").read_text()) == recorder.snapshots
    lines = (tmp_path / "flow.csv").read_text().splitlines()
    assert lines[0].split(",")[:4] == ["step", "index", "name", "type"]
    assert len(lines) == 1 + 2 * 2  # 2 snapshots x 2 layers
    assert float(lines[-1].split(",")[5]) == pytest.approx(
        recorder.snapshots[-1]["weight_grad_norm"][-1])


def test_recorder_every_k_steps_during_training_and_detach():
    mc.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    opt = mc.optim.SGD(model.parameters(), lr=0.1)
    rng = np.random.default_rng(0)
    x = mc.Tensor(rng.standard_normal((6, 4)).astype(np.float32))
    t = mc.Tensor(rng.integers(0, 3, 6))
    recorder = gradflow.GradFlowRecorder(model, every=2)
    with recorder:
        for _ in range(5):
            loss = F.cross_entropy(model(x), t)
            opt.zero_grad()
            loss.backward()
            last_grads = [np.linalg.norm(model[i].weight.grad) for i in (0, 2)]
            opt.step()
            with mc.no_grad():  # an evaluation: not a training step, not measured
                model(x)
    for _ in range(3):  # detached: nothing more is measured
        F.cross_entropy(model(x), t).backward()
    snaps = recorder.snapshots
    assert [s["step"] for s in snaps] == [0, 2, 4]
    assert all(None not in s[f] for s in snaps for f in gradflow.LAYER_FIELDS)
    np.testing.assert_allclose(snaps[-1]["weight_grad_norm"], last_grads, rtol=1e-6)
    assert snaps[0]["weight_grad_norm"] != snaps[-1]["weight_grad_norm"]  # the weights moved
    assert not model[0]._forward_hooks and not model[0].weight._hooks


def test_recorder_leaves_the_weight_columns_of_a_frozen_layer_empty():
    mc.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)
    snap = gradflow.record(model, mc.Tensor(np.ones((2, 3), np.float32)),
                           mc.Tensor(np.array([0, 1])))
    assert snap["weight_grad_norm"][0] is None and snap["weight_grad_norm"][1] > 0
    assert snap["output_grad_norm"][0] > 0


def test_layers_of_a_cifar_resnet_carry_their_block_number():
    snap = gradflow.record(cifar_resnet(8, in_channels=1),
                           mc.Tensor(np.ones((2, 1, 8, 8), np.float32)),
                           mc.Tensor(np.array([0, 1])))
    assert snap["name"] == ["conv1", "layer1.0.conv1", "layer1.0.conv2", "layer2.0.conv1",
                            "layer2.0.conv2", "layer3.0.conv1", "layer3.0.conv2", "fc"]
    assert snap["block"] == [0, 1, 1, 2, 2, 3, 3, 4]


def test_summarize_counts_exact_zeros_and_measures_the_spread():
    s = gradflow.summarize({"weight_grad_norm": [1e-3, 0.0, 1e-1, 1.0, 0.0]})
    assert s["spread"] == pytest.approx(3.0)
    assert s["zero_layers"] == 2 and s["any_zero"] and s["layers"] == 5
    assert s["first_over_median"] == pytest.approx(1e-3 / 1e-3)
    s = gradflow.summarize({"weight_grad_norm": [0.0, 0.0]})
    assert s["spread"] is None and s["first_over_median"] is None and s["zero_layers"] == 2


# ---- the sweep: plain and residual twins differ ---------------------------------------------

def test_sweep_twins_share_their_weights(batch):
    plain, residual = gradflow.build_twins(8, norm=False, init="normal")
    for (name, p), (_, r) in zip(plain.named_parameters(), residual.named_parameters()):
        np.testing.assert_array_equal(p.data, r.data, err_msg=name)


def test_sweep_without_bn_small_init_plain_gradient_vanishes_residual_does_not(batch):
    """No BN, N(0, 0.01^2) convs: each plain layer shrinks the backward signal ~10x, so the
    gradient reaching the first layer falls by orders of magnitude per block; the shortcuts
    carry it past the blocks. A 'plain' net with its shortcuts silently left in fails this."""
    images, labels = batch
    runs = {(r["net"], r["depth"]): r
            for r in gradflow.sweep(images, labels, depths=(8, 14), norm=False, init="normal",
                                    log=None)}
    for depth in (8, 14):
        plain, residual = runs["plain", depth], runs["residual", depth]
        assert plain["output_summary"]["spread"] > 0.4 * depth     # 7 / 13 decades measured
        assert residual["output_summary"]["spread"] < 4            # 2.6 measured
        assert plain["output_summary"]["first_over_median"] < 1e-3
        assert residual["output_summary"]["first_over_median"] > 0.1
        first = [r["record"]["weight_grad_norm"][0] for r in (plain, residual)]
        assert first[0] < 1e-4 * first[1]
    # deeper plain net: the gradient at its input is smaller still, the residual one's is not
    assert runs["plain", 14]["output_summary"]["spread"] > \
        runs["plain", 8]["output_summary"]["spread"] + 3
    assert abs(runs["residual", 14]["output_summary"]["spread"] -
               runs["residual", 8]["output_summary"]["spread"]) < 1


def test_sweep_plain_56_without_bn_gets_exactly_zero_gradients(batch):
    images, labels = batch
    runs = gradflow.sweep(images[:4], labels[:4], depths=(56,), norm=False, init="normal",
                          log=None)
    plain, residual = runs
    assert plain["net"] == "plain" and plain["summary"]["any_zero"]
    assert plain["summary"]["zero_layers"] >= 50
    assert residual["summary"]["zero_layers"] == 0


def test_sweep_with_bn_he_init_plain_spreads_more_than_residual(batch):
    """The lecture's main configuration at depth 32: with BN the plain net's gradients grow
    towards the input (first layer >> median), the residual twin's much less."""
    images, labels = batch
    plain, residual = gradflow.sweep(images, labels, depths=(32,), log=None)
    # measured with 8 images, seeds 0-2: spread 1.8-1.9 vs 1.0-1.2 decades, first/median
    # 8.6-17.6 vs 3.2-6.0
    assert plain["summary"]["spread"] > residual["summary"]["spread"] + 0.5
    assert plain["summary"]["first_over_median"] > 1.5 * residual["summary"]["first_over_median"]


# ---- Jacobians -------------------------------------------------------------------------------

def _input(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def test_jacobian_of_a_residual_block_is_identity_plus_jacobian_of_its_branch():
    block = gradflow.block_stack(1, channels=2, init="he")[0]
    x = _input((1, 2, 3, 3))
    J = gradflow.numerical_jacobian(block, x)
    J_F = gradflow.numerical_jacobian(block.branch, x)
    assert J.shape == (18, 18)
    np.testing.assert_allclose(J, np.eye(18) + J_F, atol=1e-8)
    assert np.abs(J_F).max() > 0.1  # F is not negligible: the identity is not trivially met
    # and backward computes the same Jacobian
    np.testing.assert_allclose(gradflow.backward_jacobian(block, x), J, atol=1e-7)


def test_jacobian_of_the_zoo_residual_block():
    """The CIFAR block is act(x + F(x)): its Jacobian is diag(act'(x + F(x))) (I + J_F)."""
    mc.manual_seed(0)
    block = CifarBasicBlock(2, 2, norm=False, activation="tanh").to(np.float64)
    x = _input((1, 2, 3, 3), seed=1)

    def branch(z):
        return block.conv2(block.act(block.conv1(z)))

    J = gradflow.numerical_jacobian(block, x)
    J_F = gradflow.numerical_jacobian(branch, x)
    with mc.no_grad():
        y = block(mc.Tensor(x)).data.ravel()
    np.testing.assert_allclose(J, np.diag(1 - y ** 2) @ (np.eye(18) + J_F), atol=1e-8)


def test_jacobian_spectra_near_one_for_residual_stacks_vanishing_for_plain():
    spectra = {(s["net"], s["depth"]): s
               for s in gradflow.jacobian_spectra(depths=(1, 4), inits=("normal",),
                                                  channels=2, size=3)}
    for depth in (1, 4):
        residual = np.array(spectra["residual", depth]["singular_values"])
        assert np.abs(residual - 1).max() < 0.02
    assert spectra["plain", 1]["max"] < 1e-2
    assert spectra["plain", 4]["max"] < 1e-3 * spectra["plain", 1]["max"]


# ---- the command -----------------------------------------------------------------------------

def _gradflow_cli(argv):
    parser = argparse.ArgumentParser(prog="minicnn")
    gradflow_experiment.register(parser.add_subparsers())
    args = parser.parse_args(["gradflow", *argv])
    return args.func(args)


def test_cli_sweep_writes_data_and_pictures(tmp_path, capsys):
    assert _gradflow_cli(["--depths", "8", "--no-bn", "--act", "relu", "--init", "normal",
                          "--batch-size", "4", "--no-jacobian", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "sweep.json").read_text())
    assert {(r["net"], r["depth"], r["norm"], r["init"]) for r in data["runs"]} == \
        {("plain", 8, False, "normal"), ("residual", 8, False, "normal")}
    assert len(data["runs"][0]["record"]["weight_grad_norm"]) == 8
    for name in ("sweep_summary.csv", "sweep_layers.csv", "grad_norms_nobn-relu-normal.png",
                 "grad_bars_nobn-relu-normal.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert not (tmp_path / "jacobian.json").exists()  # --no-jacobian
    assert len((tmp_path / "sweep_layers.csv").read_text().splitlines()) == 1 + 2 * 8
    assert "plain-8" in capsys.readouterr().out


def test_cli_degradation_writes_curves(tmp_path):
    assert _gradflow_cli(["--degradation", "--depths", "8", "--epochs", "1", "--train-size",
                          "32", "--test-size", "16", "--batch-size", "16", "--record-every",
                          "1", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "degradation.json").read_text())
    assert set(result["runs"]) == {"plain-8", "resnet-8"}
    run = result["runs"]["resnet-8"]
    assert len(run["history"]["train_loss"]) == 1 and 0 <= run["final"]["test_error"] <= 1
    assert [s["step"] for s in run["gradflow"]] == [0, 1]
    assert (tmp_path / "degradation.png").stat().st_size > 0


def test_degradation_validates_on_held_out_training_images_and_tests_once():
    """The per-epoch curve is measured on training images that were not trained on (never on
    the test images); the training and test images are the ones drawn before the validation
    part existed, so the committed runs stay reproducible."""
    from minicnn.data.dataset import ArrayDataset
    from minicnn.experiments.gradflow import _pick
    train = ArrayDataset(np.zeros((100, 2, 2), np.uint8), np.arange(100))
    test = ArrayDataset(np.zeros((40, 2, 2), np.uint8), np.arange(40))
    part, val, test_part = _pick(train, test, 60, 30, 20, seed=3)
    assert not set(part.indices) & set(val.indices) and len(val) == 30
    rng = np.random.default_rng(3)                 # the draws of the runs made before
    assert np.array_equal(part.indices, np.sort(rng.choice(100, 60, replace=False)))
    assert np.array_equal(test_part.indices, np.sort(rng.choice(40, 20, replace=False)))
    assert _pick(train, test, 100, 30, 20, seed=3)[1] is None   # nothing left to hold out
    assert len(_pick(train, test, 90, 30, 20, seed=3)[1]) == 10


def test_degradation_records_validation_per_epoch_and_the_test_error_at_the_end():
    result = gradflow_experiment.degradation(depths=(8,), epochs=1, train_size=32, test_size=16,
                                             val_size=24, batch_size=16, record_every=100,
                                             log=None)
    assert result["recipe"]["val_images"] == 24 and result["recipe"]["test_images"] == 16
    run = result["runs"]["plain-8"]
    assert run["history"]["val_acc"][0] is not None
    assert run["final"]["val_error"] == pytest.approx(1 - run["history"]["val_acc"][-1])
    assert 0 <= run["final"]["test_error"] <= 1
