"""Ctrl-C lands between two training steps (minicnn.interrupts), never inside a garbage
collector callback where Python would swallow it."""
import os
import signal

import numpy as np
import pytest

import minicnn as mc
from minicnn import interrupts
from minicnn.training import TrainingInterrupted


def _ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)


def test_a_ctrl_c_is_held_until_the_next_check():
    with interrupts.at_step_boundaries():
        _ctrl_c()                       # noted, not raised here
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
        interrupts.check()              # raised once only
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_raises_at_once():
    with interrupts.at_step_boundaries():
        _ctrl_c()
        with pytest.raises(KeyboardInterrupt):
            _ctrl_c()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_outside_the_block_nothing_is_pending():
    with interrupts.at_step_boundaries():
        _ctrl_c()
    interrupts.check()                  # the note did not outlive the block


class _PressesCtrlC:
    """Six batches of a tiny problem; Ctrl-C is pressed while batch ``at`` is being made."""

    def __init__(self, at):
        self.at = at
        rng = np.random.default_rng(0)
        self.batches = [(rng.normal(size=(4, 3)).astype(np.float32), rng.integers(0, 2, 4))
                        for _ in range(6)]

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        for index, batch in enumerate(self.batches, start=1):
            if index == self.at:
                _ctrl_c()
            yield batch


def test_fit_stops_before_the_step_during_which_ctrl_c_came(tmp_path):
    model = mc.nn.Linear(3, 2)
    optimizer = mc.optim.SGD(model.parameters(), lr=0.1)
    before = model.weight.data.copy()
    with pytest.raises(TrainingInterrupted) as caught:
        mc.fit(model, optimizer, _PressesCtrlC(at=1), epochs=2, progress=False, log=None,
               checkpoint_path=str(tmp_path / "c.npz"))
    assert (caught.value.epoch, caught.value.step, caught.value.saved_epoch) == (1, 1, 0)
    np.testing.assert_array_equal(model.weight.data, before)   # no step was taken
    assert not (tmp_path / "c.npz").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
