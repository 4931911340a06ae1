"""Tests of minicnn.nn: Module bookkeeping, state_dict, hooks, containers and the basic layers,
compared with PyTorch wherever PyTorch defines the answer (names, key order, repr, values)."""
import copy
import pickle
from collections import OrderedDict

import numpy as np
import pytest

import minicnn as mc
import minicnn.nn as nn
import minicnn.nn.functional as F


def torch_or_skip():
    return pytest.importorskip("torch", reason="PyTorch is the reference for this test")


def mlp():
    """A small nested network used by several tests."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Sequential(nn.Linear(12, 8), nn.ReLU()),
        nn.Linear(8, 3),
    )


class Block(nn.Module):
    """Registers parameters, buffers and a child in an interleaved order: PyTorch's key order
    (parameters, then buffers, then children) is not the registration order."""

    def __init__(self, lin=nn.Linear, param=nn.Parameter, tensor=np.asarray):
        super().__init__()
        self.register_buffer("running", tensor(np.zeros(3, dtype=np.float32)))
        self.scale = param(tensor(np.ones(3, dtype=np.float32)))
        self.fc = lin(3, 3)
        self.register_buffer("scratch", tensor(np.zeros(2, dtype=np.float32)), persistent=False)
        self.shift = param(tensor(np.zeros(3, dtype=np.float32)))
        self.register_buffer("count", tensor(np.zeros((), dtype=np.int64)))

    def forward(self, x):
        return self.fc(x) * self.scale + self.shift


def torch_block_class():
    torch = torch_or_skip()

    class TorchBlock(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("running", torch.zeros(3))
            self.scale = torch.nn.Parameter(torch.ones(3))
            self.fc = torch.nn.Linear(3, 3)
            self.register_buffer("scratch", torch.zeros(2), persistent=False)
            self.shift = torch.nn.Parameter(torch.zeros(3))
            self.register_buffer("count", torch.zeros((), dtype=torch.int64))

    return TorchBlock


# ---- Parameter --------------------------------------------------------------------------------

def test_parameter_is_a_leaf_tensor_requiring_grad_with_float32_default():
    p = nn.Parameter([1.0, 2.0])
    assert isinstance(p, mc.Tensor) and p.requires_grad and p.is_leaf
    assert p.dtype == np.float32
    assert nn.Parameter(np.zeros(2)).dtype == np.float64  # NumPy arrays keep their dtype
    assert not nn.Parameter([1.0], requires_grad=False).requires_grad
    assert nn.Parameter().shape == (0,)
    assert repr(p).startswith("Parameter containing:\nTensor(")


def test_parameter_shares_the_array_of_a_tensor():
    t = mc.Tensor(np.arange(3.0, dtype=np.float32))
    p = nn.Parameter(t)
    assert p.data is t.data


# ---- registration ---------------------------------------------------------------------------

def test_attribute_assignment_registers_parameters_modules_and_buffers():
    m = Block()
    assert [n for n, _ in m.named_parameters()] == ["scale", "shift", "fc.weight", "fc.bias"]
    assert [n for n, _ in m.named_buffers()] == ["running", "scratch", "count"]
    assert [n for n, _ in m.named_children()] == ["fc"]
    assert isinstance(m.running, mc.Tensor) and not m.running.requires_grad
    assert "scale" not in m.__dict__  # one source of truth: the registry
    m.plain = mc.Tensor([1.0])  # a plain Tensor is an ordinary attribute
    assert "plain" not in dict(m.named_parameters()) and "plain" not in dict(m.named_buffers())


def test_assigning_to_registered_names():
    m = Block()
    m.running = np.ones(3, dtype=np.float32)  # a buffer stays a buffer (wrapped in a Tensor)
    assert isinstance(m.running, mc.Tensor) and "running" in dict(m.named_buffers())
    with pytest.raises(TypeError, match="parameter 'scale'"):
        m.scale = np.ones(3)
    m.scale = None
    assert m.scale is None and "scale" not in dict(m.named_parameters())
    with pytest.raises(TypeError, match="child module 'fc'"):
        m.fc = 3
    m.other = 1
    m.other = nn.Parameter([1.0])  # a plain attribute may become a parameter
    assert "other" in dict(m.named_parameters())
    m.shift = nn.Parameter(np.ones(3, dtype=np.float32))  # replacing keeps the key's place
    m.scale = nn.Parameter(np.ones(3, dtype=np.float32))
    assert list(m.state_dict())[:3] == ["scale", "shift", "other"]
    m.register_buffer("empty", None)  # a None buffer is allowed and not saved
    assert m.empty is None and "empty" not in m.state_dict()
    with pytest.raises(TypeError, match="register_parameter"):
        m.register_buffer("p", nn.Parameter([1.0]))


def test_delattr_unregisters():
    m = Block()
    del m.scale, m.running, m.fc
    assert [n for n, _ in m.named_parameters()] == ["shift"]
    assert [n for n, _ in m.named_buffers()] == ["scratch", "count"]
    assert list(m.children()) == []
    with pytest.raises(AttributeError, match="'Block' object has no attribute 'scale'"):
        m.scale


def test_registration_errors_are_clear():
    class Forgot(nn.Module):
        def __init__(self):
            self.w = nn.Parameter([1.0])

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        Forgot()
    m = nn.Module()
    with pytest.raises(TypeError, match="nn.Parameter or None"):
        m.register_parameter("w", mc.Tensor([1.0]))
    with pytest.raises(KeyError, match="'.'"):
        m.register_parameter("a.b", nn.Parameter([1.0]))
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("train", np.zeros(1))
    with pytest.raises(TypeError, match="not a Module"):
        m.add_module("x", 3)
    with pytest.raises(TypeError, match=r"create one first, ReLU\(...\)"):
        nn.Sequential(nn.ReLU)
    with pytest.raises(NotImplementedError, match="forward"):
        m(1)


def test_state_dict_keys_and_order_equal_pytorch():
    torch = torch_or_skip()
    TorchBlock = torch_block_class()
    ours = nn.Sequential(nn.Linear(3, 3), nn.Sequential(Block(), nn.ReLU(), Block()))
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 3),
                                 torch.nn.Sequential(TorchBlock(), torch.nn.ReLU(), TorchBlock()))
    sd = ours.state_dict()
    assert isinstance(sd, OrderedDict)
    assert list(sd.keys()) == list(theirs.state_dict().keys())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert "1.0.scratch" not in sd  # non-persistent buffer


def test_state_dict_values_are_ndarray_copies():
    m = Block()
    sd = m.state_dict()
    assert all(type(v) is np.ndarray for v in sd.values())
    np.testing.assert_array_equal(sd["fc.weight"], m.fc.weight.data)
    assert sd["fc.weight"].dtype == np.float32 and sd["count"].dtype == np.int64
    m.fc.weight.data += 1  # training after saving does not change the saved state...
    assert not np.array_equal(sd["fc.weight"], m.fc.weight.data)
    sd["shift"][:] = 5  # ...and editing the state does not change the model
    assert np.all(m.shift.data == 0)
    kept = m.state_dict(keep_vars=True)
    assert kept["scale"] is m.scale and kept["running"] is m.running


def test_pytorch_weights_load_by_name_and_give_pytorch_outputs():
    torch = torch_or_skip()
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Flatten(),
                                 torch.nn.Sequential(torch.nn.Linear(12, 8), torch.nn.ReLU()),
                                 torch.nn.Linear(8, 3))
    ours = mlp()
    result = ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    x = np.random.default_rng(0).standard_normal((5, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(ours(mc.Tensor(x)).numpy(),
                               theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_load_state_dict_round_trip_keeps_identity_dtype_and_accepts_tensors():
    mc.manual_seed(1)
    a = mlp()
    mc.manual_seed(2)
    b = mlp()
    weight = b[1][0].weight
    array = weight.data
    assert not np.array_equal(a[1][0].weight.data, array)
    sd = {k: v.astype(np.float64) for k, v in a.state_dict().items()}  # float64 checkpoint
    sd["2.bias"] = mc.Tensor(sd["2.bias"])  # a Tensor value
    sd["2.weight"] = sd["2.weight"].tolist()  # anything np.asarray takes
    b.load_state_dict(sd)
    assert b[1][0].weight is weight and weight.data is array  # copied in place
    assert weight.dtype == np.float32  # the model's dtype wins
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(va, vb, err_msg=k)


def test_strict_load_lists_every_problem_and_loads_nothing():
    m = mlp()
    before = m.state_dict()
    sd = m.state_dict()
    del sd["1.0.bias"], sd["2.weight"]
    sd["2.extra"] = np.zeros(1)
    sd["layer9.weight"] = np.zeros(1)
    sd["1.0.weight"] = np.ones((8, 13), dtype=np.float32)
    sd["2.bias"] = np.ones((4,), dtype=np.float32)
    with pytest.raises(nn.StateDictError) as info:
        m.load_state_dict(sd)
    err = info.value
    message = str(err)
    assert isinstance(err, RuntimeError)
    for name in ('"1.0.bias"', '"2.weight"', '"2.extra"', '"layer9.weight"'):
        assert name in message
    assert "Missing key(s)" in message and "Unexpected key(s)" in message
    assert "size mismatch for 1.0.weight" in message and "(8, 13)" in message \
        and "(8, 12)" in message
    assert "size mismatch for 2.bias" in message and "(4,)" in message and "(3,)" in message
    assert "Sequential" in message
    assert err.missing_keys == ["1.0.bias", "2.weight"]
    assert err.unexpected_keys == ["2.extra", "layer9.weight"]
    assert err.mismatched == [("1.0.weight", (8, 13), (8, 12)), ("2.bias", (4,), (3,))]
    for k, v in m.state_dict().items():  # nothing was loaded
        np.testing.assert_array_equal(v, before[k])


def test_non_strict_load_returns_missing_and_unexpected_and_loads_the_rest():
    m = mlp()
    sd = {k: np.full_like(v, 0.5) for k, v in m.state_dict().items()}
    del sd["2.bias"]
    sd["junk"] = np.zeros(2)
    result = m.load_state_dict(sd, strict=False)
    assert result == (["2.bias"], ["junk"])
    assert result.missing_keys == ["2.bias"] and result.unexpected_keys == ["junk"]
    assert np.all(m[2].weight.data == 0.5) and not np.all(m[2].bias.data == 0.5)
    sd["2.weight"] = np.zeros((3, 9))
    with pytest.raises(nn.StateDictError, match="size mismatch for 2.weight"):
        m.load_state_dict(sd, strict=False)


def test_load_rejects_non_numeric_values():
    m = nn.Linear(2, 2)
    with pytest.raises(nn.StateDictError, match="weight is not numeric"):
        m.load_state_dict({"weight": np.array([["a", "b"], ["c", "d"]]), "bias": np.zeros(2)})


# ---- walking the tree -----------------------------------------------------------------------

def test_named_modules_names():
    m = mlp()
    assert [n for n, _ in m.named_modules()] == ["", "0", "1", "1.0", "1.1", "2"]
    assert [type(x).__name__ for x in m.modules()] == [
        "Sequential", "Flatten", "Sequential", "Linear", "ReLU", "Linear"]
    assert [n for n, _ in m.named_modules(prefix="net")][:2] == ["net", "net.0"]
    assert [n for n, _ in m.named_parameters(prefix="net")][0] == "net.1.0.weight"
    assert [n for n, _ in m[1].named_parameters(recurse=False)] == []
    assert m.get_submodule("1.0") is m[1][0] and m.get_submodule("") is m
    with pytest.raises(AttributeError, match="'7'"):
        m.get_submodule("1.7")


def test_shared_parameter_and_module_are_counted_once():
    torch = torch_or_skip()
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    b.weight = a.weight  # tied weights
    m = nn.Sequential(a, b, a)  # and a module used twice
    ta, tb = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
    tb.weight = ta.weight
    tm = torch.nn.Sequential(ta, tb, ta)
    assert len(list(m.parameters())) == 3
    assert [n for n, _ in m.named_parameters()] == [n for n, _ in tm.named_parameters()]
    assert [n for n, _ in m.named_modules()] == [n for n, _ in tm.named_modules()]
    assert list(m.state_dict()) == list(tm.state_dict())  # state_dict keeps every name
    assert len(list(m.children())) == 2


def test_apply_visits_children_first():
    m = mlp()
    seen = []
    assert m.apply(lambda mod: seen.append(type(mod).__name__)) is m
    assert seen == ["Flatten", "Linear", "ReLU", "Sequential", "Linear", "Sequential"]


def test_train_and_eval_propagate_to_all_descendants():
    m = mlp()
    assert all(x.training for x in m.modules())
    assert m.eval() is m
    assert not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())
    m[1].train(False)
    assert m.training and not m[1].training and not m[1][0].training and m[2].training
    with pytest.raises(ValueError):
        m.train("yes")


# ---- hooks ------------------------------------------------------------------------------------

def test_forward_hook_sees_inputs_and_output_and_can_be_removed():
    m = mlp()
    calls = []
    handle = m[1].register_forward_hook(lambda mod, inputs, out: calls.append((mod, inputs, out)))
    x = mc.Tensor(np.ones((2, 12), dtype=np.float32))
    y = m(x)
    assert len(calls) == 1
    mod, inputs, out = calls[0]
    assert mod is m[1] and isinstance(inputs, tuple) and len(inputs) == 1
    assert out.shape == (2, 8) and np.all(out.numpy() >= 0)  # after the ReLU
    np.testing.assert_array_equal(m[2](out).numpy(), y.numpy())
    handle.remove()
    m(x)
    assert len(calls) == 1
    handle.remove()  # removing twice is harmless


def test_forward_hook_returning_a_value_replaces_the_output():
    m = nn.Linear(3, 2)
    m.register_forward_hook(lambda mod, inputs, out: out * 0)
    assert np.all(m(mc.Tensor(np.ones((1, 3), dtype=np.float32))).numpy() == 0)
    plain = nn.Identity()
    with plain.register_forward_hook(lambda mod, inputs, out: "replaced"):
        assert plain(1) == "replaced"
    assert plain(1) == 1


def test_forward_pre_hook_can_replace_the_input():
    m = nn.Identity()
    handle = m.register_forward_pre_hook(lambda mod, args: args[0] + 1)
    assert m(1) == 2
    handle.remove()
    assert m(1) == 1


# ---- gradients, dtypes, devices ---------------------------------------------------------------

def test_zero_grad_and_requires_grad():
    m = nn.Linear(3, 2)
    m(mc.Tensor(np.ones((4, 3), dtype=np.float32))).sum().backward()
    assert m.weight.grad is not None
    m.zero_grad(set_to_none=False)
    assert m.weight.grad is not None and np.all(m.weight.grad == 0)
    m.zero_grad()
    assert m.weight.grad is None and m.bias.grad is None
    assert m.requires_grad_(False) is m
    assert not any(p.requires_grad for p in m.parameters())


def test_to_dtype_casts_in_place_and_keeps_parameter_identity():
    m = Block()
    params = list(m.parameters())
    m(mc.Tensor(np.ones((2, 3), dtype=np.float32))).sum().backward()
    assert m.to(dtype=np.float64) is m
    assert [id(p) for p in m.parameters()] == [id(p) for p in params]
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in params)
    assert m.running.dtype == np.float64 and m.count.dtype == np.int64  # ints stay ints
    m.to(np.float32)
    assert all(p.dtype == np.float32 for p in params)
    m.double()
    assert m.fc.weight.dtype == np.float64
    assert m.to("cpu") is m and m.fc.weight.device == "cpu"
    with pytest.raises(TypeError, match="floating-point"):
        m.to(np.int32)
    with pytest.raises(TypeError, match="device"):
        m.to(object())


@pytest.mark.skipif(mc.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_to_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match="no usable GPU"):
        nn.Linear(2, 2).to("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not mc.cuda.is_available(), reason="needs a CUDA GPU with CuPy")
def test_to_cuda_moves_in_place_and_state_dict_comes_back_to_the_host():
    m = Block()
    params = list(m.parameters())
    sd_cpu = m.state_dict()
    m.to("cuda")
    assert all(p.device == "cuda" for p in params) and m.running.device == "cuda"
    assert [id(p) for p in m.parameters()] == [id(p) for p in params]
    sd = m.state_dict()
    assert all(type(v) is np.ndarray for v in sd.values())
    m.load_state_dict({k: v + 1 for k, v in sd_cpu.items()})
    assert m.fc.weight.device == "cuda"
    np.testing.assert_array_equal(m.fc.weight.numpy(), sd_cpu["fc.weight"] + 1)
    y = m(mc.Tensor(np.ones((2, 3), dtype=np.float32), device="cuda"))
    assert y.device == "cuda"


def test_deepcopy_and_pickle_give_independent_equal_models():
    m = mlp()
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert clone[1][0].weight is not m[1][0].weight
        for (k, a), (_, b) in zip(m.state_dict().items(), clone.state_dict().items()):
            np.testing.assert_array_equal(a, b, err_msg=k)
        assert [n for n, _ in clone.named_modules()] == [n for n, _ in m.named_modules()]


# ---- repr -------------------------------------------------------------------------------------

def test_repr_equals_pytorch():
    torch = torch_or_skip()
    tnn = torch.nn
    ours = nn.Sequential(
        nn.Flatten(), nn.Linear(4, 3), nn.ReLU(inplace=True), nn.Identity(),
        nn.Sequential(nn.Linear(3, 3, bias=False), nn.Tanh(), nn.Sigmoid()),
        nn.ModuleList([nn.Linear(3, 3), nn.Linear(3, 3), nn.Linear(3, 3), nn.ReLU()]),
        nn.Softmax(dim=1), nn.LogSoftmax(dim=-1), nn.ReLU(),
    )
    theirs = tnn.Sequential(
        tnn.Flatten(), tnn.Linear(4, 3), tnn.ReLU(inplace=True), tnn.Identity(),
        tnn.Sequential(tnn.Linear(3, 3, bias=False), tnn.Tanh(), tnn.Sigmoid()),
        tnn.ModuleList([tnn.Linear(3, 3), tnn.Linear(3, 3), tnn.Linear(3, 3), tnn.ReLU()]),
        tnn.Softmax(dim=1), tnn.LogSoftmax(dim=-1), tnn.ReLU(),
    )
    assert repr(ours) == repr(theirs)
    assert repr(nn.ModuleList()) == repr(tnn.ModuleList())
    assert repr(nn.CrossEntropyLoss()) == repr(tnn.CrossEntropyLoss())
    assert repr(nn.MSELoss()) == repr(tnn.MSELoss())
    assert repr(nn.Sequential()) == repr(tnn.Sequential())


def test_custom_module_repr_uses_extra_repr():
    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Linear(2, 2)

        def extra_repr(self):
            return "factor=2"

    assert repr(Scale()) == ("Scale(\n  factor=2\n  (inner): Linear(in_features=2, "
                             "out_features=2, bias=True)\n)")


# ---- containers -------------------------------------------------------------------------------

def test_sequential_indexing_slicing_and_append():
    layers = [nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2)]
    s = nn.Sequential(*layers)
    assert len(s) == 3 and list(s) == layers
    assert s[0] is layers[0] and s[-1] is layers[2]
    with pytest.raises(IndexError):
        s[3]
    tail = s[1:]
    assert isinstance(tail, nn.Sequential) and list(tail) == layers[1:]
    assert [n for n, _ in tail.named_children()] == ["1", "2"]  # names kept, as in PyTorch
    extra = nn.Tanh()
    assert s.append(extra) is s and s[3] is extra
    s[1] = nn.Sigmoid()
    assert isinstance(s[1], nn.Sigmoid)
    del s[1]
    assert [n for n, _ in s.named_children()] == ["0", "1", "2"] and s[1] is layers[2]


def test_sequential_from_ordered_dict_names_its_children():
    s = nn.Sequential(OrderedDict([("conv", nn.Linear(2, 3)), ("act", nn.ReLU())]))
    assert list(s.state_dict()) == ["conv.weight", "conv.bias"]
    assert s.conv is s[0]
    x = mc.Tensor(np.array([[1.0, -2.0]], dtype=np.float32))
    np.testing.assert_allclose(s(x).numpy(), np.maximum(s.conv(x).numpy(), 0))


def test_module_list():
    a, b, c = nn.Linear(1, 1), nn.Linear(1, 1), nn.Linear(1, 1)
    ml = nn.ModuleList([a])
    ml.append(b)
    ml.extend([c])
    assert list(ml) == [a, b, c] and len(ml) == 3
    d = nn.Linear(1, 1)
    ml.insert(1, d)
    assert list(ml) == [a, d, b, c] and ml[1] is d and ml[-1] is c
    assert [n for n, _ in ml.named_children()] == ["0", "1", "2", "3"]
    assert list(ml[1:3]) == [d, b] and isinstance(ml[1:3], nn.ModuleList)
    del ml[0]
    assert list(ml) == [d, b, c] and list(ml.state_dict())[0] == "0.weight"
    ml += [a]
    assert ml[3] is a
    assert len(list(ml.parameters())) == 8
    holder = nn.Module()
    holder.blocks = ml
    assert list(holder.state_dict())[0] == "blocks.0.weight"
    with pytest.raises(NotImplementedError):
        ml(1)


def test_module_dict():
    md = nn.ModuleDict({"b": nn.Linear(1, 2), "a": nn.ReLU()})
    assert list(md) == ["b", "a"] and len(md) == 2 and "a" in md
    md["c"] = nn.Linear(2, 1)
    assert list(md.keys()) == ["b", "a", "c"]
    assert list(md.state_dict()) == ["b.weight", "b.bias", "c.weight", "c.bias"]
    assert isinstance(md.pop("a"), nn.ReLU) and list(md) == ["b", "c"]
    del md["b"]
    assert list(md.items())[0][0] == "c"
    md.update([("z", nn.Tanh())])
    assert isinstance(md["z"], nn.Tanh)
    md.clear()
    assert len(md) == 0


# ---- layers -----------------------------------------------------------------------------------

def test_linear_forward_equals_numpy_and_keeps_float32():
    mc.manual_seed(0)
    m = nn.Linear(5, 4)
    x = np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32)
    y = m(mc.Tensor(x, requires_grad=True))
    assert m.weight.shape == (4, 5) and m.bias.shape == (4,)
    assert m.weight.dtype == m.bias.dtype == y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), x @ m.weight.data.T + m.bias.data, rtol=1e-6)
    y.sum().backward()
    assert m.weight.grad.dtype == m.bias.grad.dtype == np.float32
    batched = m(mc.Tensor(np.stack([x, x])))  # (..., in_features)
    assert batched.shape == (2, 3, 4)
    no_bias = nn.Linear(5, 4, bias=False)
    assert no_bias.bias is None and list(no_bias.state_dict()) == ["weight"]
    np.testing.assert_allclose(no_bias(mc.Tensor(x)).numpy(), x @ no_bias.weight.data.T,
                               rtol=1e-6)
    assert nn.Linear(2, 2, dtype=np.float64).weight.dtype == np.float64


def test_linear_gradients_equal_pytorch():
    torch = torch_or_skip()
    mc.manual_seed(3)
    m = nn.Linear(6, 4)
    tm = torch.nn.Linear(6, 4)
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((7, 6)).astype(np.float32)
    g = np.random.default_rng(3).standard_normal((7, 4)).astype(np.float32)
    xt = mc.Tensor(x, requires_grad=True)
    m(xt).backward(g)
    xtt = torch.tensor(x, requires_grad=True)
    tm(xtt).backward(torch.from_numpy(g))
    np.testing.assert_allclose(m.weight.grad, tm.weight.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.bias.grad, tm.bias.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(xt.grad, xtt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_linear_default_init_follows_the_one_over_sqrt_fan_in_rule():
    mc.manual_seed(0)
    fan_in = 1000
    m = nn.Linear(fan_in, 1000)
    bound = 1 / np.sqrt(fan_in)
    w, b = m.weight.data, m.bias.data
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.999 * bound
    np.testing.assert_allclose(w.std(), bound / np.sqrt(3), rtol=0.01)  # uniform: b / sqrt(3)
    assert abs(w.mean()) < 0.01 * bound
    assert np.abs(b).max() <= bound and np.abs(b).max() > 0.9 * bound
    assert np.abs(b).std() > 0.2 * bound  # not all the same value


def test_manual_seed_makes_linear_init_repeatable():
    mc.manual_seed(42)
    a = nn.Linear(8, 8)
    mc.manual_seed(42)
    b = nn.Linear(8, 8)
    mc.manual_seed(43)
    c = nn.Linear(8, 8)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.bias.data, b.bias.data)
    assert not np.array_equal(a.weight.data, c.weight.data)
    d = nn.Linear(8, 8)  # the next layer draws new values
    assert not np.array_equal(c.weight.data, d.weight.data)


def test_linear_rejects_bad_sizes():
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(-1, 3)
    with pytest.raises(ValueError, match="out_features"):
        nn.Linear(3, 2.5)


def test_activation_layers_compute_their_functions():
    x = np.array([[-2.0, -0.5, 0.3, 1.5], [0.1, 0.2, -3.0, 4.0]], dtype=np.float32)
    t = mc.Tensor(x)
    np.testing.assert_allclose(nn.ReLU()(t).numpy(), np.maximum(x, 0))
    np.testing.assert_allclose(nn.ReLU(inplace=True)(t).numpy(), np.maximum(x, 0))
    assert np.array_equal(t.numpy(), x)  # inplace is ignored: the input is unchanged
    np.testing.assert_allclose(nn.Tanh()(t).numpy(), np.tanh(x), rtol=1e-6)
    np.testing.assert_allclose(nn.Sigmoid()(t).numpy(), 1 / (1 + np.exp(-x)), rtol=1e-6)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    soft = e / e.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(nn.Softmax()(t).numpy(), soft, rtol=1e-6)  # dim=None: last
    np.testing.assert_allclose(nn.Softmax(dim=0)(t).numpy().sum(axis=0), 1, rtol=1e-6)
    np.testing.assert_allclose(nn.LogSoftmax(dim=1)(t).numpy(), np.log(soft), rtol=1e-5)
    assert nn.Identity(3, foo=4)(t) is t


def test_flatten_layer_and_function_keep_the_batch_axis():
    t = mc.Tensor(np.zeros((2, 3, 4, 5), dtype=np.float32))
    assert nn.Flatten()(t).shape == (2, 60)
    assert nn.Flatten(0, 1)(t).shape == (6, 4, 5)
    assert nn.Flatten(1, 2)(t).shape == (2, 12, 5)
    assert F.flatten(t).shape == (2, 60)
    assert F.flatten(t, 0).shape == (120,)


def test_losses_equal_pytorch():
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 4)).astype(np.float32)
    target = np.array([0, 3, -100, 1, 2, 3])
    for reduction in ("mean", "sum", "none"):
        ours = nn.CrossEntropyLoss(reduction=reduction)(mc.Tensor(logits), target)
        theirs = torch.nn.CrossEntropyLoss(reduction=reduction)(torch.from_numpy(logits),
                                                               torch.from_numpy(target))
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)
    ours = nn.CrossEntropyLoss(ignore_index=3)(mc.Tensor(logits), np.abs(target) % 4)
    theirs = torch.nn.CrossEntropyLoss(ignore_index=3)(torch.from_numpy(logits),
                                                       torch.from_numpy(np.abs(target) % 4))
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-5)
    pred, goal = rng.standard_normal((2, 3, 5)).astype(np.float32)
    for reduction in ("mean", "sum", "none"):
        ours = nn.MSELoss(reduction=reduction)(mc.Tensor(pred), mc.Tensor(goal))
        theirs = torch.nn.MSELoss(reduction=reduction)(torch.from_numpy(pred),
                                                       torch.from_numpy(goal))
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5)


def test_cross_entropy_loss_takes_weight_and_label_smoothing_like_pytorch():
    torch = torch_or_skip()
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((6, 3)).astype(np.float32)
    target = np.array([0, 2, 1, 1, -100, 2])
    weight = np.array([0.5, 2.0, 1.0], np.float32)
    for kw in (dict(weight=weight), dict(label_smoothing=0.1),
               dict(weight=weight, label_smoothing=0.2)):
        criterion = nn.CrossEntropyLoss(**kw)
        ours = criterion(mc.Tensor(logits), target)
        kw = {k: torch.from_numpy(v) if k == "weight" else v for k, v in kw.items()}
        theirs = torch.nn.CrossEntropyLoss(**kw)(torch.from_numpy(logits),
                                                 torch.from_numpy(target))
        np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-5)
    criterion = nn.CrossEntropyLoss(weight=weight)
    assert "weight" in criterion.state_dict()    # a buffer, as in PyTorch


def test_loss_layers_reject_bad_options():
    with pytest.raises(ValueError, match="label_smoothing"):
        nn.CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(ValueError, match="one entry per class"):
        nn.CrossEntropyLoss(weight=np.ones(3))(mc.Tensor(np.zeros((2, 4), np.float32)),
                                               np.array([0, 1]))
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match="reduction"):
        nn.CrossEntropyLoss(reduction="avg")


def test_functional_uses_pytorch_keywords():
    torch = torch_or_skip()
    x = np.random.default_rng(4).standard_normal((3, 4, 2)).astype(np.float32)
    t = mc.Tensor(x)
    tx = torch.from_numpy(x)
    np.testing.assert_allclose(F.softmax(t, dim=1).numpy(),
                               torch.softmax(tx, dim=1).numpy(), rtol=1e-5)
    np.testing.assert_allclose(F.log_softmax(t, dim=0).numpy(),
                               torch.log_softmax(tx, dim=0).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(F.relu(t, inplace=True).numpy(), np.maximum(x, 0))
    target = np.array([[0, 1], [3, 2], [1, 1]])
    np.testing.assert_allclose(
        F.cross_entropy(t, target, ignore_index=1).item(),
        torch.nn.functional.cross_entropy(tx, torch.from_numpy(target), ignore_index=1).item(),
        rtol=1e-5)
    weight = np.array([1.0, 0.5, 2.0, 1.5], np.float32)
    np.testing.assert_allclose(
        F.cross_entropy(t, target, weight=weight, label_smoothing=0.1).item(),
        torch.nn.functional.cross_entropy(tx, torch.from_numpy(target),
                                          weight=torch.from_numpy(weight),
                                          label_smoothing=0.1).item(), rtol=1e-5)
    np.testing.assert_allclose(F.pad(t, (1, 1)).numpy(),
                               torch.nn.functional.pad(tx, (1, 1)).numpy())
    w = np.ones((5, 2), dtype=np.float32)
    np.testing.assert_allclose(F.linear(t, w).numpy(), x @ w.T, rtol=1e-6)
    for name in ("tanh", "sigmoid", "mse_loss"):
        assert callable(getattr(F, name))


def test_training_a_small_network_reduces_the_loss():
    mc.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)  # XOR-like: needs the hidden layer
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    criterion = nn.CrossEntropyLoss()
    losses = []
    for _ in range(200):
        model.zero_grad()
        loss = criterion(model(mc.Tensor(x)), y)
        loss.backward()
        for p in model.parameters():
            p.data -= 0.5 * p.grad
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
