"""The measurement of ``minicnn bench``: seconds per training step of a classifier, and where
the time goes (:func:`time_training_steps`; also importable from :mod:`minicnn.training`)."""
import statistics
import time

import numpy as np

from minicnn.autograd import Tensor
from minicnn.nn import functional as F
from minicnn.optim import SGD
from minicnn.profiler import profile

__all__ = ["NotAClassifier", "time_training_steps"]

class NotAClassifier(ValueError):
    """:func:`time_training_steps` was given a model whose output is not class scores."""


def time_training_steps(model, input_shape, steps=5, seed=0):
    """Seconds per training step of a classifier: forward on a random batch of ``input_shape``
    (N, C, H, W), cross-entropy against random labels, backward, SGD with momentum.

    One warm-up step first (numba compilation, workspaces), then ``steps`` timed ones, then one
    more under :func:`minicnn.profile`. Returns ``(seconds, median_seconds, profile)``. A model
    whose output is not ``(N, classes)`` (U-Net) raises :class:`NotAClassifier`.
    """
    rng = np.random.default_rng(seed)
    x = Tensor(rng.standard_normal(input_shape).astype(np.float32))
    model.train()

    def logits():  # GoogLeNet with aux heads returns a tuple, the main logits first
        out = model(x)
        return out[0] if isinstance(out, tuple) else out

    out = logits()
    if out.ndim != 2:
        raise NotAClassifier(f"{type(model).__name__} does not output class scores (N, classes): "
                             "only classifiers are benchmarked")
    target = Tensor(rng.integers(0, out.shape[1], input_shape[0]))
    optimizer = SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        loss = F.cross_entropy(logits(), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up: numba compilation, workspaces
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    with profile() as prof:
        step()
    return seconds, statistics.median(seconds), prof
