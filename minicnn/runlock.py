"""The output folder of a training run: one run at a time, writable, and tidy.

    with prepare_run_folder("runs/train", log=print) as folder:
        ...                              # train; checkpoints go into folder

- ONE RUN PER FOLDER. Two runs writing the same ``checkpoint.npz`` would silently overwrite each
  other's epochs, so a run holds an exclusive lock on ``run.lock`` in its folder for as long as
  it trains. The file names the holder (PID, host, start time, command), so a second run can
  say which run is in its way (:class:`RunFolderBusy`). The lock itself is the operating
  system's (``fcntl.flock``): it disappears with the process, even after SIGKILL, so a lock
  left by a dead run can never block a folder; the next run finds the dead run's name in the
  file and says that it takes over.
- WRITABLE FIRST. A read-only or missing folder is found before the first epoch, not after it;
  :class:`RunFolderError` names the folder and the reason.
- TIDY. ``atomic_write`` leaves a ``.<name>.<8 hex>.tmp`` file behind only when its process is
  killed outright; once the lock is held, nobody else writes here, so such files are stale and
  removed.
"""
import contextlib
import datetime
import errno
import json
import os
import re
import socket
import sys

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: an O_EXCL lock file with a PID check instead
    fcntl = None

__all__ = ["LOCK_NAME", "RunFolderBusy", "RunFolderError", "RunLock", "prepare_run_folder",
           "remove_stale_temporaries"]

#: the lock file inside a run's output folder
LOCK_NAME = "run.lock"
#: the temporary files of :func:`minicnn.serialization.atomic_write`
_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")


class RunFolderBusy(RuntimeError):
    """Another run, still alive, holds the output folder. ``holder``: what its lock file says
    (``pid``, ``host``, ``started``, ``command``)."""

    def __init__(self, message, holder):
        super().__init__(message)
        self.holder = holder


class RunFolderError(OSError):
    """The output folder cannot be created or written; the message names it and the reason."""


def _describe(holder):
    """``PID 123 on host h (started 2025-01-01T10:00:00, `minicnn train ...`)``."""
    command = f", `{holder['command']}`" if holder.get("command") else ""
    return (f"PID {holder.get('pid', '?')} on host {holder.get('host', '?')} (started "
            f"{holder.get('started', '?')}{command})")


def _read_holder(path):
    """What a lock file says, or {} when it is empty or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            holder = json.loads(f.read() or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _alive(pid):
    """True when a process with this PID exists on this machine."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, OverflowError):
        return True  # it exists but is someone else's; or a PID we cannot judge: assume alive
    return True


class RunLock:
    """The exclusive lock of one output folder; see the module docstring. ``acquire()`` raises
    :class:`RunFolderBusy` when a live run holds it; ``release()`` removes the lock file."""

    def __init__(self, folder, command=None):
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, LOCK_NAME)
        self.command = command if command is not None else " ".join(
            [os.path.basename(sys.argv[0] or "python")] + sys.argv[1:])
        self.fd = None
        self.previous = {}   # the holder named in a stale lock file that was taken over

    def _me(self):
        return {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.datetime.now().isoformat(timespec="seconds"),
                "command": self.command}

    def _busy(self, holder):
        return RunFolderBusy(
            f"the output folder {self.folder} is in use by another run: {_describe(holder)}. "
            "Wait for it to finish, or choose another --out.", holder)

    def acquire(self):
        if fcntl is None:  # pragma: no cover
            return self._acquire_exclusive_file()
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                raise self._busy(_read_holder(self.path)) from None
            # NOTE: the holder before us may have unlinked the file between our open() and our
            # flock(): then we locked a file nobody else can see. Lock the one on disk instead.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.fd = fd
        self.previous = _read_holder(self.path)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(self._me()).encode("utf-8"), 0)
        return self

    def _acquire_exclusive_file(self):  # pragma: no cover - only where fcntl is missing
        for _ in range(2):
            try:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                holder = _read_holder(self.path)
                if holder.get("host") == socket.gethostname() and not _alive(holder.get("pid")):
                    self.previous = holder
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(self.path)
                    continue
                raise self._busy(holder) from None
            os.write(self.fd, json.dumps(self._me()).encode("utf-8"))
            return self
        raise self._busy(_read_holder(self.path))

    def release(self):
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.remove(self.path)   # while still locked: nobody can take a file being removed
        os.close(self.fd)
        self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()


def _check_writable(folder):
    """Create, write, flush and remove a small file in ``folder``: a read-only folder or file
    system, or a disk already full, shows up now instead of after the first epoch."""
    probe = os.path.join(folder, f".minicnn-write-check.{os.getpid()}")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            os.write(fd, b"minicnn checks that this folder is writable\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise RunFolderError(exc.errno, f"cannot write into the output folder {folder}: "
                             f"{exc.strerror or exc}. Choose another --out, or free some "
                             "space / fix its permissions", folder) from None


def remove_stale_temporaries(folder):
    """Remove the ``.*.tmp`` files an outright-killed ``atomic_write`` left in ``folder``
    (only call this while holding the folder's lock). Returns the names removed."""
    removed = []
    for name in sorted(os.listdir(folder)):
        if _TEMPORARY.match(name) and os.path.isfile(os.path.join(folder, name)):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(folder, name))
                removed.append(name)
    return removed


@contextlib.contextmanager
def prepare_run_folder(folder, log=print, command=None):
    """Create ``folder``, check it is writable, take its lock (:class:`RunLock`), remove its
    stale temporary files; yield the folder; release the lock at the end, whatever happens."""
    folder = os.fspath(folder)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise RunFolderError(exc.errno, f"cannot create the output folder {folder}: "
                             f"{exc.strerror or exc}. Choose another --out", folder) from None
    _check_writable(folder)
    lock = RunLock(folder, command)
    try:
        lock.acquire()
    except PermissionError as exc:
        raise RunFolderError(exc.errno, f"cannot lock the output folder {folder}: "
                             f"{exc.strerror}", folder) from None
    try:
        if lock.previous and log is not None and lock.previous.get("pid") != os.getpid():
            log(f"{folder}: a stale lock of a run that is gone was taken over "
                f"({_describe(lock.previous)})")
        removed = remove_stale_temporaries(folder)
        if removed and log is not None:
            log(f"{folder}: removed {len(removed)} stale temporary file(s) of a killed run: "
                f"{', '.join(removed)}")
        yield folder
    finally:
        lock.release()
