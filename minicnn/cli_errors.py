"""How the ``minicnn`` command ends: clean messages and exit statuses instead of tracebacks.

    status   meaning
    0        done
    1        an expected error: missing or damaged data, a bad checkpoint or state dict, training
             that diverged, a file-system problem (read-only folder, full disk)
    2        bad usage: impossible arguments, a resume whose settings differ from the
             checkpoint's, an output folder in use by another run
    130      interrupted by Ctrl-C (128 + SIGINT, the shell's convention)

An expected error prints one or two lines naming the problem and the fix, never a traceback;
``--debug`` (anywhere on the command line) or ``MINICNN_DEBUG=1`` lets the exception through
with its traceback. An UNEXPECTED exception (a bug) always keeps its traceback.
"""
import os
import shlex
import sys

from minicnn.data.errors import DataError
from minicnn.engine.parallel import parallel
from minicnn.nn.module import StateDictError
from minicnn.run_settings import UsageError
from minicnn.runlock import RunFolderBusy
from minicnn.serialization import CheckpointError
from minicnn.training import TrainingDiverged, TrainingInterrupted

__all__ = ["EXIT_ERROR", "EXIT_USAGE", "EXIT_INTERRUPTED", "debug_requested", "run_command",
           "resume_command"]

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
#: the commands that take ``--resume``
RESUMABLE = ("train", "demo")

#: (exception classes, exit status, what kind of problem), the first match wins
EXPECTED = [
    ((UsageError, RunFolderBusy), EXIT_USAGE, None),
    ((DataError,), EXIT_ERROR, "data"),
    ((CheckpointError, StateDictError), EXIT_ERROR, "checkpoint"),
    ((TrainingDiverged,), EXIT_ERROR, None),
    ((OSError,), EXIT_ERROR, "file system"),
]


def debug_requested(argv):
    """``(debug, argv without --debug)``: ``--debug`` may stand anywhere on the line."""
    debug = "--debug" in argv or os.environ.get("MINICNN_DEBUG", "") not in ("", "0")
    return debug, [arg for arg in argv if arg != "--debug"]


def resume_command(argv):
    """The command line that continues this run: the same arguments plus ``--resume``."""
    argv = list(argv)
    if "--resume" not in argv:
        argv.append("--resume")
    return shlex.join(["minicnn"] + argv)


def _interrupted_message(exc, command, argv):
    if isinstance(exc, TrainingInterrupted):
        resumable = exc.saved_epoch and command in RESUMABLE
        how = (f"resume with: {resume_command(argv)}" if resumable
               else f"start again with: {shlex.join(['minicnn'] + list(argv))}")
        return f"minicnn {command}: {exc}; {how}"
    return f"minicnn {command}: interrupted (Ctrl-C) before any epoch finished; nothing was saved"


def _oneline(exc):
    """An OSError's message without its errno prefix, naming the file when it has one."""
    if isinstance(exc, OSError) and exc.strerror:
        name = f" ({exc.filename})" if exc.filename and str(exc.filename) not in exc.strerror \
            else ""
        return f"{exc.strerror}{name}"
    return str(exc).strip() or type(exc).__name__


def run_command(func, args, command, argv, debug):
    """``func(args)`` with the endings of the module docstring; returns the exit status."""
    try:
        return func(args)
    except KeyboardInterrupt as exc:
        parallel.shutdown()   # the convolution's worker threads: no new chunks start
        if debug:
            raise
        print(_interrupted_message(exc, command, argv), file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except Exception as exc:
        for classes, status, kind in EXPECTED:
            if isinstance(exc, classes):
                break
        else:
            raise  # a bug: its traceback is the most useful thing to show
        if debug:
            raise
        prefix = f"{kind} error: " if kind else ""
        print(f"minicnn {command}: {prefix}{_oneline(exc)}", file=sys.stderr)
        if status == EXIT_ERROR:
            print("(the traceback: run again with --debug or MINICNN_DEBUG=1)",
                  file=sys.stderr, flush=True)
        return status
