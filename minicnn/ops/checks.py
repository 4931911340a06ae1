"""Argument checks shared by the ops: one function per kind of mistake, one wording for each.

Every check runs before any array work and raises an error that names the op, what it expected
and what it got.
"""


def check_images(op, x):
    """Raise a clear error unless ``x`` is a batch of images, a 4-D ``(N, C, H, W)`` tensor."""
    if x.ndim != 4:
        hint = " (add the batch axis with x.reshape(1, *x.shape))" if x.ndim == 3 else ""
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got a {x.ndim}-D input of "
                         f"shape {tuple(x.shape)}{hint}")
