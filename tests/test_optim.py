"""Tests of minicnn.optim: the update rules and schedules against PyTorch's, step by step.

Each rule is run for a few steps on a handful of parameters with fixed random gradients; the
same gradients are fed to the PyTorch optimiser and the two trajectories must agree (1e-10 in
float64, 1e-6 in float32). Without PyTorch those comparisons skip with a reason, and the
hand-computed checks at the top still test the rules.
"""
import math
import pickle

import numpy as np
import pytest

import minicnn.optim as optim
from minicnn import backend
from minicnn.autograd import Tensor
from minicnn.optim import lr_scheduler

SHAPES = [(3, 4), (5,), (2, 1, 3)]
STEPS = 10


def _torch():
    return pytest.importorskip("torch", reason="PyTorch is not installed: the comparisons "
                                               "with torch.optim are skipped")


def make_problem(dtype, steps=STEPS, seed=0):
    """Initial parameter values and one gradient per parameter per step.

    Gradients are large for the first three steps and small afterwards, so that v (Adam's second
    moment) falls below its running maximum and amsgrad changes the result.
    """
    rng = np.random.default_rng(seed)
    init = [rng.normal(size=s).astype(dtype) for s in SHAPES]
    grads = [[(rng.normal(size=s) * (3.0 if t < 3 else 0.3)).astype(dtype) for s in SHAPES]
             for t in range(steps)]
    return init, grads


def make_params(init, device="cpu"):
    return [Tensor(a.copy(), requires_grad=True, device=device) for a in init]


def run_minicnn(make_opt, init, grads, device="cpu"):
    """Parameter values after every step (NumPy copies)."""
    params = make_params(init, device)
    opt = make_opt(params)
    trajectory = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = None if g is None else backend.to_device(g.copy(), device)
        opt.step()
        trajectory.append([p.numpy().copy() for p in params])
    return params, opt, trajectory


def run_torch(make_opt, init, grads):
    torch = _torch()
    params = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt = make_opt(params)
    trajectory = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = None if g is None else torch.tensor(g.copy())
        opt.step()
        trajectory.append([p.detach().numpy().copy() for p in params])
    return trajectory


def assert_same_trajectory(ours, theirs, atol):
    for step, (a_step, b_step) in enumerate(zip(ours, theirs)):
        for i, (a, b) in enumerate(zip(a_step, b_step)):
            np.testing.assert_allclose(a, b, rtol=0, atol=atol,
                                       err_msg=f"parameter {i} after step {step + 1}")


# (class name, keyword arguments): each line tests one part of a rule
CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, weight_decay=0.05)),
    ("SGD", dict(lr=0.1, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.8, weight_decay=0.02, nesterov=True, maximize=True)),
    ("Adam", dict(lr=0.05)),
    ("Adam", dict(lr=0.05, weight_decay=0.1)),
    ("Adam", dict(lr=0.05, amsgrad=True)),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.1, amsgrad=True)),
    ("Adam", dict(lr=0.05, maximize=True)),
    ("AdamW", dict(lr=0.05)),
    ("AdamW", dict(lr=0.05, weight_decay=0.3, amsgrad=True)),
]
CONFIG_IDS = [f"{name}-" + "-".join(f"{k}={v}" for k, v in kw.items()) for name, kw in CONFIGS]


# ---------------------------------------------------------------------------------------------
# Without PyTorch: the rules by hand
# ---------------------------------------------------------------------------------------------

def test_sgd_matches_hand_computed_rule():
    lr, mu, damp, wd = 0.1, 0.9, 0.25, 0.01
    p0 = np.array([1.0, -2.0, 0.5])
    grads = [np.array([0.5, 1.0, -1.0]), np.array([-0.2, 0.3, 0.4]), np.array([1.0, 1.0, 1.0])]

    for nesterov, dampening in [(False, damp), (True, 0.0)]:
        p = Tensor(p0.copy(), requires_grad=True)
        opt = optim.SGD([p], lr=lr, momentum=mu, dampening=dampening, weight_decay=wd,
                        nesterov=nesterov)
        expected, buf = p0.copy(), None
        for t, g in enumerate(grads):
            p.grad = g.copy()
            opt.step()
            d = g + wd * expected
            buf = d.copy() if t == 0 else mu * buf + (1 - dampening) * d
            expected = expected - lr * (d + mu * buf if nesterov else buf)
            np.testing.assert_allclose(p.data, expected, rtol=0, atol=1e-15)
        np.testing.assert_allclose(opt.state[p]["momentum_buffer"], buf, rtol=0, atol=1e-15)


def test_sgd_written_out_numbers():
    # lr 0.5, momentum 0.5: buf = 2 -> p = 1 - 1 = 0; buf = 0.5*2 + 2 = 3 -> p = 0 - 1.5
    p = Tensor(np.array([1.0]), requires_grad=True)
    opt = optim.SGD([p], lr=0.5, momentum=0.5)
    p.grad = np.array([2.0])
    opt.step()
    assert p.data[0] == 0.0
    p.grad = np.array([2.0])
    opt.step()
    assert p.data[0] == -1.5


def test_adam_first_step_is_lr_times_sign():
    # after one step m_hat = g and v_hat = g**2, so the update is lr * g / (|g| + eps)
    g = np.array([0.3, -2.0, 1e-3])
    p = Tensor(np.zeros(3), requires_grad=True)
    opt = optim.Adam([p], lr=0.01, eps=1e-8)
    p.grad = g.copy()
    opt.step()
    np.testing.assert_allclose(p.data, -0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12, atol=0)
    assert opt.state[p]["step"] == 1


def test_adamw_decays_the_parameter_not_the_gradient():
    # a zero gradient leaves Adam's moments at zero, so AdamW only shrinks p by (1 - lr*wd)
    p = Tensor(np.array([2.0, -4.0]), requires_grad=True)
    opt = optim.AdamW([p], lr=0.1, weight_decay=0.5)
    p.grad = np.zeros(2)
    opt.step()
    np.testing.assert_array_equal(p.data, [2.0 * 0.95, -4.0 * 0.95])
    assert optim.AdamW([Tensor(np.zeros(1))]).defaults["weight_decay"] == 1e-2


def test_closure_is_evaluated_and_its_loss_returned():
    p = Tensor(np.array([1.0]), requires_grad=True)
    opt = optim.SGD([p], lr=0.5)

    def closure():
        p.grad = np.array([1.0])
        return 42.0

    assert opt.step(closure) == 42.0
    assert p.data[0] == 0.5


# ---------------------------------------------------------------------------------------------
# Against PyTorch
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=CONFIG_IDS)
def test_trajectory_matches_torch_float64(name, kwargs):
    torch = _torch()
    init, grads = make_problem(np.float64)
    _, _, ours = run_minicnn(lambda ps: getattr(optim, name)(ps, **kwargs), init, grads)
    theirs = run_torch(lambda ps: getattr(torch.optim, name)(ps, **kwargs), init, grads)
    assert_same_trajectory(ours, theirs, atol=1e-10)
    # the parameters really moved (a no-op optimiser would not match, but say so plainly)
    assert not np.allclose(ours[-1][0], init[0])


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=CONFIG_IDS)
def test_trajectory_matches_torch_float32_and_stays_float32(name, kwargs):
    torch = _torch()
    init, grads = make_problem(np.float32)
    params, opt, ours = run_minicnn(lambda ps: getattr(optim, name)(ps, **kwargs), init, grads)
    theirs = run_torch(lambda ps: getattr(torch.optim, name)(ps, **kwargs), init, grads)
    for p in params:
        assert p.data.dtype == np.float32
        for value in opt.state.get(p, {}).values():
            if isinstance(value, np.ndarray):
                assert value.dtype == np.float32
    assert_same_trajectory(ours, theirs, atol=1e-6)


@pytest.mark.parametrize("name, kwargs", [("SGD", dict(momentum=0.9, weight_decay=0.01)),
                                          ("Adam", dict(weight_decay=0.01)),
                                          ("AdamW", dict())])
def test_parameter_groups_with_their_own_lr_match_torch(name, kwargs):
    torch = _torch()
    init, grads = make_problem(np.float64)

    def groups(ps):  # a "backbone" with a 10x smaller lr, and a "head" on the default lr
        return [{"params": ps[:2], "lr": 0.01}, {"params": ps[2:]}]

    _, opt, ours = run_minicnn(lambda ps: getattr(optim, name)(groups(ps), lr=0.1, **kwargs),
                               init, grads)
    theirs = run_torch(lambda ps: getattr(torch.optim, name)(groups(ps), lr=0.1, **kwargs),
                       init, grads)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.1]
    assert_same_trajectory(ours, theirs, atol=1e-10)


def test_group_lr_is_used_for_its_own_parameters():
    a, b = Tensor(np.array([1.0]), requires_grad=True), Tensor(np.array([1.0]), requires_grad=True)
    opt = optim.SGD([{"params": [a], "lr": 0.01}, {"params": b}], lr=0.1)
    a.grad, b.grad = np.array([1.0]), np.array([1.0])
    opt.step()
    assert a.data[0] == 1.0 - 0.01 and b.data[0] == 1.0 - 0.1
    # a group's 'params' given as one Tensor became a list
    assert isinstance(opt.param_groups[1]["params"], list)
    assert len(opt.param_groups[1]["params"]) == 1 and opt.param_groups[1]["params"][0] is b


@pytest.mark.parametrize("name, kwargs", [("SGD", dict(lr=0.1, momentum=0.9)),
                                          ("Adam", dict(lr=0.05, weight_decay=0.1)),
                                          ("AdamW", dict(lr=0.05, amsgrad=True))])
def test_parameter_without_grad_is_untouched(name, kwargs):
    init, grads = make_problem(np.float64, steps=3)
    for step_grads in grads:
        step_grads[1] = None  # the second parameter is frozen
    params, opt, _ = run_minicnn(lambda ps: getattr(optim, name)(ps, **kwargs), init, grads)
    np.testing.assert_array_equal(params[1].data, init[1])
    assert params[1] not in opt.state or not opt.state[params[1]]
    assert not np.array_equal(params[0].data, init[0])


@pytest.mark.parametrize("name, kwargs", [("SGD", dict(lr=0.1, momentum=0.9)),
                                          ("Adam", dict(lr=0.05, amsgrad=True))])
def test_grad_missing_on_some_steps_matches_torch(name, kwargs):
    # a parameter used only on every other step keeps its own step count and buffers
    torch = _torch()
    init, grads = make_problem(np.float64)
    for t, step_grads in enumerate(grads):
        if t % 2:
            step_grads[0] = None
    _, _, ours = run_minicnn(lambda ps: getattr(optim, name)(ps, **kwargs), init, grads)
    theirs = run_torch(lambda ps: getattr(torch.optim, name)(ps, **kwargs), init, grads)
    assert_same_trajectory(ours, theirs, atol=1e-10)


def test_zero_grad():
    p, q = Tensor(np.ones(3), requires_grad=True), Tensor(np.ones(2), requires_grad=True)
    opt = optim.SGD([p, q], lr=0.1)
    p.grad = np.ones(3)
    grad = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is grad and not p.grad.any()  # zeroed in place
    assert q.grad is None
    opt.zero_grad()
    assert p.grad is None


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, kwargs", [
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("Adam", dict(lr=0.05, amsgrad=True, weight_decay=0.01)),
    ("AdamW", dict(lr=0.05)),
])
def test_state_dict_round_trip_continues_exactly(name, kwargs):
    n, m = 4, 5
    init, grads = make_problem(np.float32, steps=n + m)

    def make_opt(ps):  # two groups, so indices run across groups
        return getattr(optim, name)([{"params": ps[:1], "lr": 0.01}, {"params": ps[1:]}],
                                    **kwargs)

    _, _, uninterrupted = run_minicnn(make_opt, init, grads)

    params, opt, _ = run_minicnn(make_opt, init, grads[:n])
    checkpoint = pickle.dumps({"params": [p.numpy() for p in params],
                               "optim": opt.state_dict()})
    saved = opt.state_dict()
    # the saved dict is a snapshot: later steps do not change it
    before = pickle.dumps(saved)
    for p, g in zip(params, grads[n]):
        p.grad = g.copy()
    opt.step()
    assert pickle.dumps(saved) == before

    # a new process: fresh parameters and optimiser, restored from the bytes
    loaded = pickle.loads(checkpoint)
    params2 = make_params(loaded["params"])
    opt2 = make_opt(params2)
    opt2.param_groups[0]["lr"] = 123.0  # restored from the checkpoint below
    opt2.load_state_dict(loaded["optim"])
    assert opt2.param_groups[0]["lr"] == 0.01
    assert opt2.param_groups[0]["params"][0] is params2[0]
    resumed = []
    for step_grads in grads[n:]:
        for p, g in zip(params2, step_grads):
            p.grad = g.copy()
        opt2.step()
        resumed.append([p.numpy().copy() for p in params2])
    for a_step, b_step in zip(uninterrupted[n:], resumed):
        for a, b in zip(a_step, b_step):
            np.testing.assert_array_equal(a, b)
            assert b.dtype == np.float32


def test_state_dict_layout_is_pytorchs():
    init, grads = make_problem(np.float64, steps=2)
    _, opt, _ = run_minicnn(lambda ps: optim.SGD([{"params": ps[:2]}, {"params": ps[2:]}],
                                                 lr=0.1, momentum=0.9), init, grads)
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert sorted(sd["state"]) == [0, 1, 2]
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert set(sd["state"][2]) == {"momentum_buffer"}
    assert type(sd["state"][2]["momentum_buffer"]) is np.ndarray
    assert sd["param_groups"][0]["momentum"] == 0.9


def test_load_state_dict_into_torch_shaped_keys_matches_torch_state():
    # the buffers we save are the ones torch keeps, under the same names
    torch = _torch()
    init, grads = make_problem(np.float64, steps=4)
    _, opt, _ = run_minicnn(lambda ps: optim.Adam(ps, lr=0.05, amsgrad=True), init, grads)
    tparams = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    topt = torch.optim.Adam(tparams, lr=0.05, amsgrad=True)
    for step_grads in grads:
        for p, g in zip(tparams, step_grads):
            p.grad = torch.tensor(g)
        topt.step()
    ours, theirs = opt.state_dict()["state"], topt.state_dict()["state"]
    assert sorted(ours) == sorted(theirs)
    for i in ours:
        assert set(ours[i]) == set(theirs[i])
        assert ours[i]["step"] == int(theirs[i]["step"])
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            np.testing.assert_allclose(ours[i][key], theirs[i][key].numpy(), rtol=1e-12)


def test_load_state_dict_errors_name_the_mismatch():
    init, grads = make_problem(np.float64, steps=1)
    _, opt, _ = run_minicnn(lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), init, grads)
    sd = opt.state_dict()

    two_groups = optim.SGD([{"params": make_params(init)[:1]}, {"params": make_params(init)[1:]}])
    with pytest.raises(ValueError, match="1 parameter groups but the optimizer has 2"):
        two_groups.load_state_dict(sd)
    with pytest.raises(ValueError, match=r"sizes \[3\] but .* sizes \[2\]"):
        optim.SGD(make_params(init)[:2]).load_state_dict(sd)
    wrong_shape = make_params([init[0], np.zeros(7), init[2]])
    with pytest.raises(ValueError, match=r"param 1 'momentum_buffer': saved \(5,\), parameter "
                                         r"\(7,\)"):
        optim.SGD(wrong_shape, momentum=0.9).load_state_dict(sd)
    with pytest.raises(ValueError, match="exactly the keys 'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})


# ---------------------------------------------------------------------------------------------
# Devices: the same update on the GPU (skipped with a reason without one)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, kwargs", [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True,
                                                       weight_decay=0.01)),
                                          ("Adam", dict(lr=0.05, amsgrad=True)),
                                          ("AdamW", dict(lr=0.05))])
def test_update_on_device_equals_cpu(device, name, kwargs):
    init, grads = make_problem(np.float32, steps=5)
    make_opt = lambda ps: getattr(optim, name)(ps, **kwargs)  # noqa: E731
    params, opt, on_device = run_minicnn(make_opt, init, grads, device=device)
    _, _, on_cpu = run_minicnn(make_opt, init, grads)
    assert all(p.device == device and p.dtype == np.float32 for p in params)
    assert_same_trajectory(on_device, on_cpu, atol=1e-6)
    for p_state in opt.state_dict()["state"].values():  # checkpoints hold host arrays
        assert all(type(v) is np.ndarray for v in p_state.values() if hasattr(v, "shape"))


# ---------------------------------------------------------------------------------------------
# Bad arguments
# ---------------------------------------------------------------------------------------------

def _p(n=2):
    return Tensor(np.zeros(n), requires_grad=True)


@pytest.mark.parametrize("make, error, message", [
    (lambda: optim.SGD([]), ValueError, "empty parameter list"),
    (lambda: optim.SGD(_p()), TypeError, "wrap it in a list"),
    (lambda: optim.SGD([np.zeros(2)]), TypeError, "can only optimize Tensors.*ndarray"),
    (lambda: optim.SGD({_p()}), TypeError, "not a set"),
    (lambda: optim.SGD([{"params": {_p()}}]), TypeError, "not a set"),
    (lambda: optim.SGD([_p()], lr=-0.1), ValueError, "invalid learning rate lr=-0.1"),
    (lambda: optim.SGD([{"params": [_p()], "lr": -1.0}]), ValueError,
     "lr=-1.0 in parameter group 0"),
    (lambda: optim.SGD([_p()], momentum=-0.5), ValueError, "invalid momentum"),
    (lambda: optim.SGD([_p()], weight_decay=-1), ValueError, "invalid weight_decay"),
    (lambda: optim.SGD([_p()], nesterov=True), ValueError, "Nesterov momentum requires momentum"),
    (lambda: optim.SGD([_p()], momentum=0.9, dampening=0.1, nesterov=True), ValueError,
     "zero|dampening = 0"),
    (lambda: optim.Adam([_p()], betas=(1.0, 0.999)), ValueError, r"invalid betas=\(1.0, 0.999\)"),
    (lambda: optim.Adam([_p()], betas=(0.9, -0.1)), ValueError, "invalid betas"),
    (lambda: optim.Adam([_p()], betas=0.9), ValueError, "expected a pair"),
    (lambda: optim.Adam([_p()], betas=(0.9, 0.99, 0.9)), ValueError, "expected a pair"),
    (lambda: optim.Adam([_p()], eps=-1e-8), ValueError, "invalid eps"),
    (lambda: optim.AdamW([_p()], lr=float("nan")), ValueError, "invalid learning rate"),
    (lambda: optim.Adam([{"params": [_p()], "betas": (0.9, 1.5)}]), ValueError,
     "in parameter group 0"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_arguments_are_clear_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_parameter_in_two_groups_is_an_error():
    p, q = _p(), _p()
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [p, q]}, {"params": [q]}])
    opt = optim.SGD([p])
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": p})
    with pytest.raises(ValueError, match="same parameter twice"):
        optim.SGD([q, q])


def test_add_param_group_takes_defaults_and_own_options():
    p, q = _p(), _p()
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": q, "lr": 0.5})
    assert opt.param_groups[1]["params"][0] is q
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["momentum"] == 0.9
    with pytest.raises(ValueError, match="invalid momentum"):
        opt.add_param_group({"params": [_p()], "momentum": -1})


def test_non_leaf_tensor_is_rejected():
    pytest.importorskip("minicnn.ops")
    p = _p()
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([p * 2.0])


# ---------------------------------------------------------------------------------------------
# Learning-rate schedules
# ---------------------------------------------------------------------------------------------

SCHEDULES = [
    ("StepLR", dict(step_size=7, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[5, 12, 12, 20], gamma=0.3)),
    ("CosineAnnealingLR", dict(T_max=10, eta_min=1e-4)),
    ("CosineAnnealingLR", dict(T_max=30)),
    ("LambdaLR", dict(lr_lambda=lambda epoch: 0.95 ** epoch)),
    ("LambdaLR", dict(lr_lambda=[lambda e: 1.0 / (1 + e), lambda e: 0.9 ** (e // 3)])),
    ("LinearLR", dict(start_factor=0.25, end_factor=0.9, total_iters=8)),
    ("LinearLR", dict()),
]


def _lr_sequence(scheduler_class, optimizer, kwargs, epochs=30):
    scheduler = scheduler_class(optimizer, **kwargs)
    lrs = [scheduler.get_last_lr()]
    for _ in range(epochs):
        optimizer.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr())
        assert lrs[-1] == [g["lr"] for g in optimizer.param_groups]
    return np.array(lrs)


@pytest.mark.parametrize("name, kwargs", SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_schedule_matches_torch_for_two_groups(name, kwargs):
    torch = _torch()
    ours = _lr_sequence(getattr(lr_scheduler, name),
                        optim.SGD([{"params": [_p()], "lr": 0.01}, {"params": [_p()]}], lr=0.1),
                        kwargs)
    tparams = [torch.zeros(2, requires_grad=True) for _ in range(2)]
    theirs = _lr_sequence(getattr(torch.optim.lr_scheduler, name),
                          torch.optim.SGD([{"params": tparams[:1], "lr": 0.01},
                                           {"params": tparams[1:]}], lr=0.1),
                          kwargs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
    if callable(kwargs.get("lr_lambda", len)) and not kwargs.get("eta_min"):
        # one shared rule: the backbone stays 10x below the head at every epoch
        np.testing.assert_allclose(ours[:, 1], 10 * ours[:, 0], rtol=1e-12)


def test_schedules_by_formula():
    def lrs(make, epochs=12):
        opt = optim.SGD([_p()], lr=1.0)
        sched = make(opt)
        out = [sched.get_last_lr()[0]]
        for _ in range(epochs):
            sched.step()
            out.append(opt.param_groups[0]["lr"])
        return np.array(out)

    t = np.arange(13)
    np.testing.assert_allclose(lrs(lambda o: lr_scheduler.StepLR(o, 4, gamma=0.5)),
                               0.5 ** (t // 4))
    np.testing.assert_allclose(lrs(lambda o: lr_scheduler.MultiStepLR(o, [3, 8])),
                               0.1 ** ((t >= 3).astype(int) + (t >= 8)))
    np.testing.assert_allclose(lrs(lambda o: lr_scheduler.CosineAnnealingLR(o, 12, 0.1)),
                               0.1 + 0.9 * (1 + np.cos(np.pi * t / 12)) / 2)
    np.testing.assert_allclose(lrs(lambda o: lr_scheduler.LambdaLR(o, lambda e: e * e)), t ** 2)
    np.testing.assert_allclose(lrs(lambda o: lr_scheduler.LinearLR(o, 0.5, 1.0, 4)),
                               0.5 + 0.5 * np.minimum(t, 4) / 4)


def test_scheduler_drives_the_optimizer_lr():
    p = Tensor(np.array([0.0]), requires_grad=True)
    opt = optim.SGD([p], lr=1.0)
    sched = lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(3):  # lrs 1, 0.5, 0.25 with gradient 1
        p.grad = np.array([1.0])
        opt.step()
        sched.step()
    assert p.data[0] == -1.75
    assert opt.param_groups[0]["initial_lr"] == 1.0


@pytest.mark.parametrize("name, kwargs", SCHEDULES[:4] + SCHEDULES[6:],
                         ids=[s[0] for s in SCHEDULES[:4] + SCHEDULES[6:]])
def test_scheduler_state_dict_resumes_the_schedule(name, kwargs):
    cls = getattr(lr_scheduler, name)

    def fresh():
        return optim.SGD([{"params": [_p()], "lr": 0.01}, {"params": [_p()]}], lr=0.1)

    opt = fresh()
    full = _lr_sequence(cls, opt, kwargs, epochs=25)

    opt = fresh()
    sched = cls(opt, **kwargs)
    for _ in range(12):
        sched.step()
    saved_sched, saved_opt = pickle.dumps(sched.state_dict()), pickle.dumps(opt.state_dict())

    opt2 = fresh()
    opt2.load_state_dict(pickle.loads(saved_opt))
    sched2 = cls(opt2, **kwargs, last_epoch=11)  # resuming needs the saved 'initial_lr'
    sched2.load_state_dict(pickle.loads(saved_sched))
    assert sched2.last_epoch == 12 and sched2.base_lrs == [0.01, 0.1]
    resumed = [sched2.get_last_lr()]
    for _ in range(13):
        sched2.step()
        resumed.append(sched2.get_last_lr())
    np.testing.assert_allclose(np.array(resumed), full[12:], rtol=1e-15)


def test_lambda_lr_saves_callable_objects_not_functions():
    class Decay:
        def __init__(self, rate):
            self.rate = rate

        def __call__(self, epoch):
            return self.rate ** epoch

    opt = optim.SGD([{"params": [_p()]}, {"params": [_p()]}], lr=1.0)
    sched = lr_scheduler.LambdaLR(opt, [Decay(0.5), lambda e: 1.0])
    sd = pickle.loads(pickle.dumps(sched.state_dict()))
    assert sd["lr_lambdas"] == [{"rate": 0.5}, None]
    other = lr_scheduler.LambdaLR(opt, [Decay(0.9), lambda e: 1.0])
    other.load_state_dict(sd)
    assert other.lr_lambdas[0].rate == 0.5


@pytest.mark.parametrize("make, error, message", [
    (lambda o: lr_scheduler.StepLR(o, step_size=0), ValueError, "step_size must be an integer"),
    (lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=0), ValueError, "T_max"),
    (lambda o: lr_scheduler.MultiStepLR(o, [3, -1]), ValueError, "milestone"),
    (lambda o: lr_scheduler.LinearLR(o, start_factor=0), ValueError, "start_factor"),
    (lambda o: lr_scheduler.LinearLR(o, end_factor=1.5), ValueError, "end_factor"),
    (lambda o: lr_scheduler.LambdaLR(o, [lambda e: 1, lambda e: 1]), ValueError,
     "Expected 1 lr_lambdas"),
    (lambda o: lr_scheduler.LambdaLR(o, 0.5), TypeError, "must be callable"),
    (lambda o: lr_scheduler.StepLR("not an optimizer", 3), TypeError, "needs an Optimizer"),
    (lambda o: lr_scheduler.StepLR(o, 3, last_epoch=5), KeyError, "initial_lr"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_scheduler_bad_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make(optim.SGD([_p()], lr=0.1))


def test_exports():
    for name in ["Optimizer", "SGD", "Adam", "AdamW", "StepLR", "MultiStepLR",
                 "CosineAnnealingLR", "LambdaLR", "LinearLR"]:
        assert hasattr(optim, name), name
    assert optim.lr_scheduler is lr_scheduler
    assert math.isclose(lr_scheduler.LinearWarmup(optim.SGD([_p()], lr=0.3)).get_last_lr()[0],
                        0.1)
