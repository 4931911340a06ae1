"""Ctrl-C, honoured at the next step boundary.

Python's own Ctrl-C handler raises ``KeyboardInterrupt`` wherever the main thread happens to
be. Most of the time that is fine, but when it is inside a weak-reference callback or a
``__del__`` (the garbage collector runs them at any moment) Python prints "Exception ignored"
and carries on, so the interrupt is lost and the run goes on to the end. Training is made of
steps, so :func:`fit` notes a Ctrl-C instead and raises it itself between two steps, where it
always lands (a second Ctrl-C raises at once, for a step that never ends)::

    with interrupts.at_step_boundaries():
        for batch in loader:
            interrupts.check()     # raises KeyboardInterrupt if Ctrl-C was pressed
            ...
"""
import contextlib
import signal
import threading

_pending = False


def _note_interrupt(signum, frame):
    global _pending
    if _pending:  # the second Ctrl-C: the user wants out now
        raise KeyboardInterrupt
    _pending = True


def check():
    """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed since the last check."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt


@contextlib.contextmanager
def at_step_boundaries():
    """Within the block, Ctrl-C only sets a flag that :func:`check` turns into
    ``KeyboardInterrupt``. Does nothing outside the main thread or when the program installed
    its own SIGINT handler; the previous handler is back on exit."""
    global _pending
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    _pending = False
    previous = signal.signal(signal.SIGINT, _note_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _pending = False
