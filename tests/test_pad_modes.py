"""F.pad's modes (constant, reflect, replicate, circular) and negative widths (crops): the shared
op checks against NumPy's own ``np.pad``, PyTorch's results over hypothesis-drawn shapes, widths
and modes (empty batches included), the memory layout kept, and PyTorch's argument errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn as mc
import minicnn.nn.functional as F
from minicnn.ops import shape
from optest import OpCase, inputs, normal, torch

if torch is not None:
    import torch.nn.functional as TF

NUMPY_MODE = {"constant": "constant", "reflect": "reflect", "replicate": "edge",
              "circular": "wrap"}


def pad_ref(x, widths, mode="constant", value=0.0):
    """PyTorch's padding from NumPy's ``np.pad``. ``widths`` in PyTorch's order, (before, after)
    from the last axis backwards. A negative width crops: after padding for constant, reflect and
    replicate; BEFORE padding for circular (PyTorch wraps what is left after the crop)."""
    pairs = [(0, 0)] * x.ndim
    for k in range(len(widths) // 2):
        pairs[x.ndim - 1 - k] = (widths[2 * k], widths[2 * k + 1])
    crop_first = mode == "circular"

    def crop(a):
        return a[tuple(slice(max(-b, 0), a.shape[i] - max(-e, 0))
                       for i, (b, e) in enumerate(pairs))]

    if crop_first:
        x = crop(x)
    grow = [(max(b, 0), max(e, 0)) for b, e in pairs]
    kwargs = dict(constant_values=value) if mode == "constant" else {}
    y = np.pad(x, grow, mode=NUMPY_MODE[mode], **kwargs)
    return y if crop_first else crop(y)


def _torch(fn):
    return fn if torch is not None else None


CASES = []
for in_shape, widths, mode in [
    ((2, 3, 5), (2, 1), "reflect"),
    ((2, 3, 4, 5), (1, 3, 2, 0), "reflect"),
    ((3, 5), (4, 4), "reflect"),                 # unbatched (C, W): the widest reflection
    ((1, 2, 3, 4, 5), (1, 1, 2, 1, 1, 2), "reflect"),
    ((1, 3, 4, 4), (-1, 1, -2, 1), "reflect"),   # PyTorch's own sample: crop and pad at once
    ((2, 3, 5), (3, 6), "replicate"),
    ((2, 2, 4, 5), (2, 1, 1, 3), "replicate"),
    ((2, 4, 4), (-3, 2, 1, -2), "replicate"),
    ((2, 3, 5), (2, 3), "circular"),
    ((2, 2, 4, 5), (5, 0, 1, 4), "circular"),   # widths up to the whole axis
    ((1, 3, 4, 4), (-1, 1, -2, 1), "circular"),
    ((1, 2, 2, 3, 4), (1, 2, 0, 3, 2, 1), "circular"),
]:
    CASES.append(OpCase(
        f"pad {mode} {in_shape} {widths}",
        lambda x, w=widths, m=mode: F.pad(x, w, mode=m),
        lambda x, w=widths, m=mode: pad_ref(x, w, m), inputs(normal(*in_shape)),
        (shape.CopyPad,), _torch(lambda x, w=widths, m=mode: TF.pad(x, w, mode=m))))
for in_shape, widths, value in [((5, 3), (-1, -2, 1, 1), 1.0),      # PyTorch's own sample
                                ((2, 3, 4, 5), (-2, 1, 0, -3), 0.0),
                                ((2, 3, 4), (-4, 0), 0.5)]:         # cropped to nothing
    CASES.append(OpCase(
        f"pad constant {in_shape} {widths} value={value}",
        lambda x, w=widths, v=value: F.pad(x, w, value=v),
        lambda x, w=widths, v=value: pad_ref(x, w, "constant", v), inputs(normal(*in_shape)),
        (shape.Pad,), _torch(lambda x, w=widths, v=value: TF.pad(x, w, value=v))))


# (the four shared checks run over these CASES in tests/test_ops.py)


def test_the_index_maps_spell_out_each_mode():
    index = shape.copy_pad_index
    assert list(index(4, 2, 2, "reflect")) == [2, 1, 0, 1, 2, 3, 2, 1]
    assert list(index(4, 2, 2, "replicate")) == [0, 0, 0, 1, 2, 3, 3, 3]
    assert list(index(4, 2, 2, "circular")) == [2, 3, 0, 1, 2, 3, 0, 1]
    # reflect crops after padding, circular before: (2, -1) on 0 1 2 3 4
    assert list(index(5, 2, -1, "reflect")) == [2, 1, 0, 1, 2, 3]
    assert list(index(5, 2, -1, "circular")) == [2, 3, 0, 1, 2, 3]


# ---- many configurations against PyTorch -------------------------------------------------------

@st.composite
def pad_configs(draw):
    mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
    axes = draw(st.integers(1, 3))
    if mode == "constant":
        ndim = draw(st.integers(axes, 5))
    else:
        ndim = axes + draw(st.sampled_from([1, 2]))  # unbatched or batched
    in_shape = [draw(st.integers(1, 5)) for _ in range(ndim)]
    if ndim == axes + 2 and draw(st.integers(0, 3)) == 0:
        in_shape[0] = 0  # an empty batch
    widths = []
    for n in reversed(in_shape[ndim - axes:]):
        limit = {"reflect": n - 1, "circular": n}.get(mode, 4)
        before = draw(st.integers(-n // 2, limit))
        after = draw(st.integers(-n // 2, limit))
        if mode == "circular":  # what is left after cropping bounds the wrap
            kept = n + min(before, 0) + min(after, 0)
            before, after = min(before, kept), min(after, kept)
        widths += [before, after]
    return tuple(in_shape), tuple(widths), mode


@settings(max_examples=200, deadline=None)
@given(pad_configs(), st.sampled_from([np.float32, np.float64]))
def test_pad_equals_torch(config, dtype):
    pytest.importorskip("torch", reason="PyTorch is not installed: no comparison with it")
    in_shape, widths, mode = config
    rng = np.random.default_rng(0)
    x = rng.standard_normal(in_shape).astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    try:
        ty = TF.pad(tx, widths, mode=mode)
        # NOTE: PyTorch's reflect padding of an empty batch that crops an axis below 0 returns a
        # tensor with a NEGATIVE size ((0, 1, -1, 1)) instead of refusing: a PyTorch bug
        refused = min(ty.shape) < 0
    except (RuntimeError, NotImplementedError, ValueError):
        refused = True
    if refused:  # PyTorch refuses it: so does minicnn, in its own words
        with pytest.raises(ValueError):
            F.pad(mc.Tensor(x), widths, mode=mode)
        return
    t = mc.Tensor(x, requires_grad=True)
    y = F.pad(t, widths, mode=mode)
    assert y.shape == tuple(ty.shape) and y.dtype == dtype
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())  # copies: exact
    gy = rng.standard_normal(y.shape).astype(dtype)
    y.backward(gy)
    assert t.grad.shape == x.shape and t.grad.dtype == dtype
    if y.data.size == 0:
        # NOTE: PyTorch's reflect/replicate backward of an empty output returns memory it never
        # wrote (reflection_pad3d: values like 6.9e-310); nothing flows back: zeros
        assert (t.grad == 0).all()
        return
    ty.backward(torch.tensor(gy))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(t.grad, tx.grad.numpy(), rtol=tol, atol=tol)


# ---- memory layout -------------------------------------------------------------------------------

@pytest.mark.parametrize("mode, widths", [("reflect", (1, 2, 2, 1)), ("circular", (1, 2, 2, 1)),
                                          ("constant", (-1, 2, 1, -2))])
def test_channels_last_stays_channels_last(mode, widths):
    x = np.random.default_rng(1).standard_normal((2, 3, 5, 4)).astype(np.float32)
    last = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    t = mc.Tensor(last, requires_grad=True)
    y = F.pad(t, widths, mode=mode)
    assert y.data.transpose(0, 2, 3, 1).flags.c_contiguous
    y.backward(np.ones(y.shape, np.float32))
    assert t.grad.transpose(0, 2, 3, 1).flags.c_contiguous
    np.testing.assert_array_equal(y.numpy(), pad_ref(x, widths, mode))


# ---- errors: PyTorch refuses these too -----------------------------------------------------------

X3 = mc.Tensor(np.zeros((2, 3, 5), np.float32))
X4 = mc.Tensor(np.zeros((2, 3, 4, 5), np.float32))


@pytest.mark.parametrize("call, error, message", [
    (lambda: F.pad(X3, (1, 1), mode="mirror"), ValueError, "unknown mode 'mirror'"),
    (lambda: F.pad(X3, (1, 1, 1)), ValueError, "even number of widths"),
    (lambda: F.pad(X3, (1,) * 8), ValueError, "at most 2 per axis"),
    (lambda: F.pad(X3, (1.0, 1)), TypeError, "tuple of ints"),
    (lambda: F.pad(X3, (5, 0), mode="reflect"), ValueError,
     r"reflect padding must be smaller than the axis .* \(5, 0\) on an axis of 5"),
    (lambda: F.pad(X3, (6, 0), mode="circular"), ValueError, "wraps around more than once"),
    (lambda: F.pad(X3, (3, -3), mode="circular"), ValueError,
     "wraps around more than once: at most 2 for an axis of 5 after cropping"),
    (lambda: F.pad(X4, (1, 1), mode="reflect"), ValueError, r"2 widths need a 2-D or 3-D input"),
    (lambda: F.pad(X3, (1,) * 6, mode="replicate"), ValueError, "6 widths need a 4-D or 5-D"),
    (lambda: F.pad(X3, (1, 1), mode="reflect", value=2.0), ValueError, "takes no value"),
    (lambda: F.pad(X3, (-3, -3)), ValueError, "crop more than the 5 elements"),
    (lambda: F.pad(X3, (-6, 2)), ValueError, "crop more than the 5 elements"),
    (lambda: F.pad(X3, (-3, -2), mode="replicate"), ValueError, "leave nothing"),
    (lambda: F.pad(mc.Tensor(np.zeros((2, 0, 3))), (1, 1), mode="reflect"), ValueError,
     "non-empty input"),
])
def test_bad_arguments_give_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()
