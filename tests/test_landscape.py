"""minicnn.landscape: filter normalisation, Hessian-vector products, power iteration, slices and
layer responses, each against a case whose answer is known."""
import numpy as np
import pytest

import minicnn as mc
import minicnn.nn as nn
from minicnn import landscape


def _filter_norms(a):
    return np.sqrt((np.asarray(a, np.float64) ** 2).reshape(len(a), -1).sum(axis=1))


def test_filter_normalize_gives_each_filter_the_weights_filter_norm():
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((6, 3, 3, 3)) * np.arange(1, 7)[:, None, None, None]
    direction = landscape.filter_normalize(rng.standard_normal(weight.shape), weight)
    np.testing.assert_allclose(_filter_norms(direction), _filter_norms(weight), rtol=1e-12)
    # a direction scaled as a whole (not per filter) would fail this: the norms differ 1..6
    assert np.ptp(_filter_norms(direction)) > 1


def test_filter_normalize_leaves_one_dimensional_tensors_fixed_and_checks_shapes():
    assert not landscape.filter_normalize(np.ones(5), np.ones(5)).any()
    with pytest.raises(ValueError, match="differ in shape"):
        landscape.filter_normalize(np.ones((2, 3)), np.ones((3, 2)))


def test_random_direction_of_a_model_is_filter_normalised_and_zero_on_batch_norm():
    mc.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 3))
    d = landscape.random_direction(model, seed=1)
    w = landscape.parameter_arrays(model)
    assert set(d) == set(w)
    for name in ("0.weight", "3.weight"):
        np.testing.assert_allclose(_filter_norms(d[name]), _filter_norms(w[name]), rtol=1e-5)
    for name in ("0.bias", "1.weight", "1.bias", "3.bias"):
        assert not d[name].any(), name
    assert all(d[k].dtype == w[k].dtype for k in d)


def test_hvp_central_is_exact_on_a_quadratic_with_a_known_hessian():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((7, 7))
    hessian = a @ a.T + np.diag(np.arange(7.0))
    b = rng.standard_normal(7)
    grad = lambda theta: hessian @ theta + b  # noqa: E731  (gradient of 0.5 t'Ht + b't)
    v = rng.standard_normal(7)
    np.testing.assert_allclose(landscape.hvp_central(grad, rng.standard_normal(7), v, 1e-3),
                               hessian @ v, rtol=1e-9, atol=1e-9)


def test_power_iteration_finds_the_largest_eigenvalue_of_a_known_matrix():
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    eigenvalues = np.array([9.0, 4.0, 3.0, 2.0, 1.0, 0.5, 0.2, -0.1, -1.0, -2.0])
    matrix = q @ np.diag(eigenvalues) @ q.T
    value, vector, history = landscape.power_iteration(lambda v: matrix @ v, 10,
                                                       iterations=500, tol=1e-12)
    assert value == pytest.approx(9.0, rel=1e-8)
    assert abs(vector @ q[:, 0]) == pytest.approx(1.0, rel=1e-6)
    assert len(history) > 2


def test_flat_loss_gradient_and_hvp_match_pytorch_double_backward():
    torch = pytest.importorskip("torch", reason="PyTorch is the reference for the Hessian")
    mc.manual_seed(4)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
    rng = np.random.default_rng(4)
    batches = [(rng.standard_normal((8, 5)), rng.integers(0, 3, 8)),
               (rng.standard_normal((4, 5)), rng.integers(0, 3, 4))]
    flat = landscape.FlatLoss(model, batches)
    v = rng.standard_normal(flat.theta.size)

    sd = model.state_dict()
    names = ["0.weight", "0.bias", "2.weight", "2.bias"]
    params = [torch.tensor(np.asarray(sd[n], np.float64), requires_grad=True) for n in names]

    def loss_of(*ps):
        total = 0
        for x, y in batches:
            h = torch.tanh(torch.tensor(x) @ ps[0].T + ps[1])
            out = h @ ps[2].T + ps[3]
            total = total + torch.nn.functional.cross_entropy(out, torch.tensor(y)) * len(x)
        return total / 12

    pieces, offset = [], 0
    for p in params:
        pieces.append(torch.tensor(v[offset:offset + p.numel()]).reshape(p.shape))
        offset += p.numel()
    grads = torch.autograd.grad(loss_of(*params), params, create_graph=True)
    hv = torch.autograd.grad(grads, params, grad_outputs=pieces)
    np.testing.assert_allclose(flat.gradient(flat.theta),
                               np.concatenate([g.detach().numpy().ravel() for g in grads]),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(flat.hvp(v), np.concatenate([h.numpy().ravel() for h in hv]),
                               rtol=1e-5, atol=1e-7)


def _tiny_resnet_batches():
    mc.manual_seed(5)
    model = mc.models.resnet20(num_classes=3, in_channels=1)
    rng = np.random.default_rng(5)
    batches = [(rng.standard_normal((4, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, 4))]
    return model, batches


def test_slices_pass_through_the_trained_weights_and_leave_the_model_unchanged():
    model, batches = _tiny_resnet_batches()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    at_theta = landscape.batch_loss(model.eval(), batches)
    one = landscape.loss_slice_1d(model, batches, steps=[-0.5, 0.0, 0.5], progress=False)
    two = landscape.loss_slice_2d(model, batches, steps=[-0.5, 0.0, 0.5], progress=False)
    assert one["loss"][1] == pytest.approx(at_theta, rel=1e-5)
    assert two["loss"][1, 1] == pytest.approx(at_theta, rel=1e-5)
    assert one["loss"][0] != pytest.approx(at_theta, rel=1e-3)  # the direction moves something
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_layer_responses_read_every_batch_norm_and_every_block():
    model, batches = _tiny_resnet_batches()
    out = landscape.layer_responses(model, batches[0][0])
    assert len(out["std"]) == 19 and len(out["ratio"]) == 9  # 1 + 2*9 norms, 9 blocks
    assert all(s > 0 for s in out["std"]) and all(r > 0 for r in out["ratio"])
    assert out["blocks"][0] == "layer1.0"
    with pytest.raises(ValueError, match="no BatchNorm2d"):
        landscape.layer_responses(nn.Sequential(nn.Conv2d(1, 2, 3)), batches[0][0])


def test_top_hessian_eigenvalue_of_a_tiny_net_is_positive_at_a_random_point_of_a_convex_loss():
    # softmax regression: the cross-entropy is convex in the weights, so H is positive semi-
    # definite and its largest eigenvalue is positive
    mc.manual_seed(6)
    model = nn.Sequential(nn.Linear(4, 3))
    rng = np.random.default_rng(6)
    batches = [(rng.standard_normal((16, 4)), rng.integers(0, 3, 16))]
    value, dominant, history = landscape.top_hessian_eigenvalue(
        model, batches, iterations=200, tol=1e-10, progress=False)
    flat = landscape.FlatLoss(model, batches)
    hessian = np.stack([flat.hvp(e) for e in np.eye(flat.theta.size)])
    assert value == pytest.approx(np.linalg.eigvalsh((hessian + hessian.T) / 2).max(), rel=1e-4)
    assert value > 0 and dominant == value


def test_largest_eigenvalue_shifts_past_a_dominant_negative_one():
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    eigenvalues = np.array([3.0, 2.0, 1.0, 0.5, -0.5, -1.0, -4.0, -9.0])
    matrix = q @ np.diag(eigenvalues) @ q.T
    dominant, _, _ = landscape.power_iteration(lambda v: matrix @ v, 8, 2000, 1e-13)
    assert dominant == pytest.approx(-9.0, rel=1e-8)
    largest, measured, history = landscape.largest_eigenvalue(lambda v: matrix @ v, 8, 2000,
                                                              1e-13)
    assert measured == pytest.approx(-9.0, rel=1e-8)
    assert largest == pytest.approx(3.0, rel=1e-6) and history[-1] == pytest.approx(largest)
    # a known dominant eigenvalue is not measured again; a positive one is the largest
    assert landscape.largest_eigenvalue(lambda v: matrix @ v, 8, 2000, 1e-13,
                                        dominant=-9.0)[0] == pytest.approx(3.0, rel=1e-6)
    assert landscape.largest_eigenvalue(lambda v: -matrix @ v, 8, 2000, 1e-13)[:2] == \
        pytest.approx((9.0, 9.0), rel=1e-8)


def test_the_landscape_command_measures_a_saved_net(tmp_path, capsys):
    from minicnn import cli
    from minicnn.training import build_model
    mc.manual_seed(7)
    model, _ = build_model("resnet20", 10, 1, 28, None)
    mc.weights.save(tmp_path / "weights.npz", model)
    out = tmp_path / "landscape"
    assert cli.main(["landscape", "resnet20", "--checkpoint", str(tmp_path / "weights.npz"),
                     "--subset", "bundled", "--images", "8", "--steps", "3", "--steps-2d", "2",
                     "--hessian-iterations", "2", "--out", str(out)]) == 0
    arrays = np.load(out / "landscape.npz")
    assert arrays["slice_1d_loss"].shape == (3,) and arrays["slice_2d_loss"].shape == (2, 2)
    assert arrays["response_std"].shape == (19,) and arrays["block_ratio"].shape == (9,)
    assert len(arrays["power_iteration"]) == 2
    assert (out / "landscape.png").stat().st_size > 0
    assert "top Hessian eigenvalue" in capsys.readouterr().out


def test_landscape_help_names_its_checkpoint_option():
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-m", "minicnn", "landscape", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--checkpoint" in done.stdout
