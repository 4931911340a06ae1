"""Where data sets are looked for, and how they are fetched when asked to.

Search order (../shared/DESIGN.md, "Data without the internet"), for a data set called ``name``:

1. ``root``, when given,
2. ``$MINICNN_DATA``,
3. the system folder, ``/usr/share/datasets/<name>`` (Debian's ``dataset-fashion-mnist`` package
   installs the original Fashion-MNIST files there),
4. ``~/.cache/minicnn`` (where ``download=True`` puts the files).

Each of ``root``, ``$MINICNN_DATA`` and the cache may hold the files directly or in a sub-folder
``<name>`` (so ``MINICNN_DATA=/data`` finds ``/data/fashion-mnist/`` and ``/data/mnist/``), or in
torchvision's layout ``<Name>/raw``.

Downloads go through :func:`fetch`: the file is written to a temporary name in the target folder,
its SHA-256 is checked, and only then is it renamed into place (``os.replace``), so an interrupted
or corrupted download never leaves a file that looks finished.
"""
import hashlib
import os
import sys
import tempfile
import urllib.request
from pathlib import Path

from minicnn.data.errors import ChecksumError, DataError

#: Folders that system packages install data sets into, tried after root and $MINICNN_DATA
SYSTEM_DIRS = (Path("/usr/share/datasets"),)

ENV_VAR = "MINICNN_DATA"


def cache_dir():
    """``~/.cache/minicnn``: where downloads go when no ``root`` is given."""
    return Path.home() / ".cache" / "minicnn"


def candidate_dirs(name, root=None, system=True, aliases=()):
    """The folders searched for data set ``name``, in order, without duplicates.

    ``aliases`` are other sub-folder names to try (torchvision's ``FashionMNIST/raw``...).
    ``system=False`` skips ``/usr/share/datasets`` (no system package ships that data set).
    """
    def around(base):
        base = Path(base).expanduser()
        return [base, base / name] + [base / a for a in aliases]

    dirs = []
    if root is not None:
        dirs += around(root)
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        dirs += around(env)
    if system:
        dirs += [Path(d) / name for d in SYSTEM_DIRS]
    dirs += [cache_dir() / name]
    seen, unique = set(), []
    for d in dirs:
        if d not in seen:
            seen.add(d)
            unique.append(d)
    return unique


def sha256_of(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(urls, dest, sha256, timeout=60, quiet=False):
    """Download the first of ``urls`` that answers into ``dest``, verifying its SHA-256.

    Written to a temporary file beside ``dest`` and renamed into place only when the checksum
    matches; on any failure the temporary file is removed and nothing is left at ``dest``.
    Raises :class:`ChecksumError` on a mismatch and :class:`DataError` when no URL answers.
    """
    if isinstance(urls, str):
        urls = [urls]
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in urls:
        if not quiet:
            print(f"minicnn: downloading {url} -> {dest}", file=sys.stderr)
        fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                try:
                    response = urllib.request.urlopen(url, timeout=timeout)
                except OSError as exc:  # URLError, HTTPError, timeouts are all OSErrors
                    failures.append(f"{url}: {exc}")
                    continue
                with response:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
            actual = digest.hexdigest()
            if actual != sha256:
                raise ChecksumError(
                    f"{url}: the downloaded file's SHA-256 is {actual}, but the published one is "
                    f"{sha256}. The file was not kept. The download was corrupted or the server "
                    "sent something else (an error page?); try again later, or get the files "
                    f"another way and point {ENV_VAR} at their folder")
            os.replace(tmp, dest)
            return dest
        except OSError as exc:  # the connection broke mid-way: try the next mirror
            failures.append(f"{url}: {exc}")
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    raise DataError(f"could not download {dest.name}:\n  " + "\n  ".join(failures) +
                    f"\nCheck the internet connection, or get the file another way and point "
                    f"{ENV_VAR} at its folder")
