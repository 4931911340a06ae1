"""Argument checks shared by the ops: one function per kind of mistake, one wording for each.

Every check runs before any array work and raises an error that names the op, what it expected
and what it got.
"""


def check_images(op, x):
    """Raise a clear error unless ``x`` is a batch of images, a 4-D ``(N, C, H, W)`` tensor (the
    ops that call this take one ``(C, H, W)`` image too: :func:`add_batch_axis` comes first)."""
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W) or one 3-D image (C, H, W), "
                         f"got a {x.ndim}-D input of shape {tuple(x.shape)}")


def add_batch_axis(op, x, batched_ndim=4):
    """``(x, added)``: PyTorch takes one example (``(C, H, W)`` for image ops) wherever it takes a
    batch; such an ``x`` gets a batch axis of 1 (``added`` is True) and the op's result loses it
    again through :func:`remove_batch_axis`. Other ranks are left for the op's own check."""
    if x.ndim == batched_ndim - 1:
        return x.reshape((1,) + tuple(x.shape)), True
    return x, False


def remove_batch_axis(y, added):
    """The result of an op on one example, without the batch axis :func:`add_batch_axis` added."""
    return y.reshape(tuple(y.shape[1:])) if added else y
