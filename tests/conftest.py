"""Shared pytest setup: the ``gpu`` marker, the ``device`` fixture, a seeded ``rng`` and the
hypothesis profiles.

Every test that takes ``device`` runs once per device. The ``cuda`` run carries the ``gpu`` marker
and, on a machine without a usable GPU, is SKIPPED with the reason ``minicnn.cuda`` gives, so it
shows up in the summary (``-ra``) instead of silently vanishing.
"""
import os
import pathlib
import sys

import numpy as np
import pytest
from hypothesis import settings

import minicnn
import minicnn.autograd

# ``import optest`` from the test modules, whatever pytest's import mode
_TESTS = str(pathlib.Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)


# Hypothesis draws new examples on every run: on a developer's machine that keeps finding new
# corner cases. CI (``.ci/run`` sets HYPOTHESIS_PROFILE=ci) draws the same examples every time,
# so a submission is judged on a fixed set and a corner found later is a new test, not chance.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "gpu: needs a CUDA GPU with CuPy (skipped with a reason elsewhere)")


def _gpu_skip_reason():
    return f"no usable CUDA GPU: {minicnn.cuda.why_unavailable() or 'unknown reason'}"


#: Parameters for ``device``; use ``@pytest.mark.parametrize("device", DEVICES)`` directly
#: where a fixture does not fit.
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.gpu,
                                pytest.mark.skipif(not minicnn.cuda.is_available(),
                                                   reason=_gpu_skip_reason())]),
]


@pytest.fixture(params=DEVICES)
def device(request):
    """``"cpu"``, then ``"cuda"`` (skipped with a reason where no GPU works)."""
    return request.param


@pytest.fixture
def rng():
    """A fresh, seeded NumPy generator: every test sees the same numbers on every run."""
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _grad_mode_is_restored():
    """A test that leaves gradient recording switched off would poison every later test."""
    minicnn.autograd._grad_enabled = True
    yield
    enabled = minicnn.autograd.is_grad_enabled()
    minicnn.autograd._grad_enabled = True
    assert enabled, "the test left gradient recording disabled (an unbalanced no_grad())"
