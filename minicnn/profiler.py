"""Where does a training step spend its time? A per-op profiler.

    with mc.profile() as prof:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
    print(prof.table())

Inside the ``with`` block every op's ``forward`` and ``backward`` is timed (wall clock; on the GPU
after a device synchronisation, since kernels run asynchronously) and the times are summed per
(op, phase). Outside it nothing is timed and nothing costs anything: entering the block wraps
the ``forward``/``backward`` methods of every ``Function`` class, leaving it puts them back.

What the table shows is what the lecture measures by hand: in a CNN almost all the time goes to
the convolutions (their GEMMs), and the element-wise ops (ReLU, batch norm, additions) are
bounded by memory traffic, not arithmetic.
"""
import contextlib
import functools
import time

from minicnn import backend
from minicnn.autograd import Function


class Profile:
    """Summed wall-clock seconds and call counts per ``(op name, 'forward' | 'backward')``."""

    def __init__(self):
        self.records = {}  # (op, phase) -> [calls, seconds]

    def add(self, op, phase, seconds):
        entry = self.records.setdefault((op, phase), [0, 0.0])
        entry[0] += 1
        entry[1] += seconds

    def total(self, phase=None):
        """Seconds spent inside ops (of one phase, or both)."""
        return sum(s for (_, p), (_, s) in self.records.items() if phase in (None, p))

    def rows(self):
        """``(op, phase, calls, seconds)`` from the most expensive down."""
        return sorted(((op, phase, calls, seconds)
                       for (op, phase), (calls, seconds) in self.records.items()),
                      key=lambda row: -row[3])

    def table(self, top=15, per=1):
        """The most expensive ``top`` rows as text; times divided by ``per`` (e.g. the number of
        steps profiled, to show the time per step)."""
        total = self.total() or 1e-12
        lines = [f"{'op':<24}{'phase':<10}{'calls':>7}{'ms':>10}{'share':>8}"]
        for op, phase, calls, seconds in self.rows()[:top]:
            lines.append(f"{op:<24}{phase:<10}{calls // per:>7}{seconds / per * 1e3:>10.2f}"
                         f"{seconds / total:>8.1%}")
        lines.append(f"{'all ops':<24}{'':<10}{'':>7}{total / per * 1e3:>10.2f}{1:>8.0%}")
        return "\n".join(lines)


def _function_classes(cls=Function):
    for sub in cls.__subclasses__():
        yield sub
        yield from _function_classes(sub)


def _synchronize(arrays):
    """Wait for queued GPU work, so that the clock measures the kernels and not their launch."""
    for a in arrays:
        if backend.device_of(a) == "cuda":
            backend.get_array_module(a).cuda.get_current_stream().synchronize()
            return


def _timed(method, op, phase, prof, depth):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if depth[0]:  # a method called from another timed one (super().forward): counted there
            return method(self, *args, **kwargs)
        depth[0] += 1
        try:
            _synchronize(args)
            start = time.perf_counter()
            result = method(self, *args, **kwargs)
            _synchronize(result if isinstance(result, tuple) else (result,))
            prof.add(op, phase, time.perf_counter() - start)
            return result
        finally:
            depth[0] -= 1
    return wrapper


@contextlib.contextmanager
def profile():
    """Time every op's forward and backward inside the block; yields a :class:`Profile`."""
    prof, depth, saved = Profile(), [0], []
    for cls in set(_function_classes()):
        for phase in ("forward", "backward"):
            method = cls.__dict__.get(phase)
            if method is not None:
                saved.append((cls, phase, method))
                setattr(cls, phase, _timed(method, cls.__name__, phase, prof, depth))
    try:
        yield prof
    finally:
        for cls, phase, method in saved:
            setattr(cls, phase, method)
