"""minicnn against PyTorch on the same arrays: an op's outputs and gradients, a model's outputs."""
import numpy as np

import minicnn as mc
from minicnn import Tensor


def close_to_torch(ours, theirs, what):
    """``ours`` (a float32 array) equals the torch tensor ``theirs`` within float32 rounding of
    sums: rtol 1e-4, and atol 1e-4 of the largest magnitude (values cross zero)."""
    theirs = theirs.detach().numpy()
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape}, torch {theirs.shape}"
    assert ours.dtype == np.float32, f"{what} is {ours.dtype}"
    scale = max(1.0, float(np.abs(theirs).max(initial=0)))
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * scale, err_msg=what)


def run_both(fn, torch_fn, arrays, rng):
    """``fn`` on minicnn tensors and ``torch_fn`` on torch tensors made from ``arrays``, both
    backward from the same random output gradient; outputs and gradients compared. Returns
    minicnn's output."""
    import torch  # the callers skip without it; importing here keeps this module importable

    ts = [Tensor(a, requires_grad=True) for a in arrays]
    y = fn(*ts)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(gy)
    tts = [torch.tensor(a, requires_grad=True) for a in arrays]
    ty = torch_fn(*tts)
    ty.backward(torch.from_numpy(gy))
    close_to_torch(y.numpy(), ty, "output")
    for i, (t, tt) in enumerate(zip(ts, tts)):
        close_to_torch(t.grad, tt.grad, f"gradient of input {i}")
    return y


def assert_eval_output_matches(model, x, expected):
    """``model`` in eval mode on ``x`` gives PyTorch's ``expected`` (rtol 1e-4, atol 1e-4 of the
    largest output), and ``expected`` is not degenerate (a constant output would match anything
    loaded wrongly)."""
    model.eval()
    with mc.no_grad():
        got = model(mc.Tensor(x)).numpy()
    scale = np.abs(expected).max()
    assert np.std(expected) > 1e-3 * scale       # the outputs are not degenerate
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * scale)
