"""The one random number generator behind initialisation, dropout and shuffling.

``mc.manual_seed(n)`` makes a run repeatable: every random draw in minicnn comes from
:func:`get_generator` (a NumPy ``Generator``), whose state can be saved and restored for an exact
resume from a checkpoint. On the GPU, dropout masks are drawn on the CPU generator too, so a run
is repeatable on both devices from the same seed.
"""
import numpy as np

_generator = np.random.default_rng(0)


def manual_seed(seed):
    """Seed minicnn's generator (and NumPy's legacy global one, for user code that uses it)."""
    global _generator
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"manual_seed: the seed must be a non-negative integer, got {seed}")
    _generator = np.random.default_rng(seed)
    np.random.seed(seed % 2**32)
    return _generator


def get_generator():
    """The generator every random draw in minicnn uses."""
    return _generator


def get_rng_state():
    """A picklable snapshot of the generator (for checkpoints)."""
    return _generator.bit_generator.state


def set_rng_state(state):
    """Restore a snapshot taken by :func:`get_rng_state`."""
    _generator.bit_generator.state = state
