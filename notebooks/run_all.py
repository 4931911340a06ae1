"""Pair, execute and time the lecture notebooks.

Each notebook is written as a jupytext percent-format script (``NN_name.py``, the file to edit and
review) paired with its ``NN_name.ipynb`` (what a student opens, committed with the outputs of a
normal-mode run). This script keeps the pairs in step and runs them::

    python notebooks/run_all.py --sync            # .py -> .ipynb (cell sources only; outputs kept)
    python notebooks/run_all.py                   # sync, then run every notebook in normal mode and
                                                  # save it WITH its outputs (the committed state)
    python notebooks/run_all.py --fast            # MINICNN_FAST=1: tiny data, one short epoch;
                                                  # executes every notebook, writes nothing
    python notebooks/run_all.py 02 04             # only the notebooks whose names start so

It prints the run time of each notebook and fails (exit status 1) when any cell raises.
Needs ``jupytext``, ``nbclient``, ``nbformat`` and ``ipykernel`` (setup.cfg's ``notebooks`` extra).
"""
import argparse
import os
import pathlib
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent


def notebook_scripts(names=()):
    """The paired scripts ``NN_*.py`` in lecture order, optionally only those starting with a
    prefix in ``names``."""
    scripts = sorted(p for p in HERE.glob("[0-9][0-9]_*.py"))
    if names:
        scripts = [p for p in scripts if any(p.name.startswith(n) for n in names)]
    return scripts


def read_script(script):
    """The notebook a script describes (cell sources only, no outputs)."""
    import jupytext
    return jupytext.read(script, fmt="py:percent")


def synced(script):
    """The ``.ipynb`` of ``script`` with the script's cells, keeping the outputs of the cells of
    the existing ``.ipynb`` whose source did not change."""
    import nbformat
    from jupytext.combine import combine_inputs_with_outputs
    notebook = read_script(script)
    ipynb = script.with_suffix(".ipynb")
    if ipynb.exists():
        notebook = combine_inputs_with_outputs(notebook, nbformat.read(ipynb, as_version=4),
                                               fmt="py:percent")
    return notebook


def write_atomically(notebook, path):
    """Write ``notebook`` to ``path`` through a temporary file and a rename: an interrupted run
    never leaves a half-written notebook behind."""
    import nbformat
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            nbformat.write(notebook, f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def execute(notebook, fast, timeout=1800):
    """Run every cell of ``notebook`` (in place) in a fresh kernel started in ``notebooks/``."""
    from nbclient import NotebookClient
    os.environ["MINICNN_FAST"] = "1" if fast else "0"   # the kernel inherits the environment
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(HERE)}})
    client.execute()
    return notebook


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="run only notebooks whose names start so (00 02)")
    parser.add_argument("--fast", action="store_true",
                        help="MINICNN_FAST=1 (as CI runs them); the notebooks are not written")
    parser.add_argument("--sync", action="store_true",
                        help="only write each .ipynb from its .py (outputs of unchanged cells kept)")
    args = parser.parse_args(argv)
    scripts = notebook_scripts(args.names)
    if not scripts:
        parser.error(f"no notebook matches {args.names}")
    failed, total = [], 0.0
    for script in scripts:
        ipynb = script.with_suffix(".ipynb")
        notebook = synced(script)
        if args.sync:
            write_atomically(notebook, ipynb)
            print(f"synced {ipynb.name}")
            continue
        started = time.perf_counter()
        try:
            execute(notebook, args.fast)
        except Exception as exc:   # nbclient's CellExecutionError carries the cell's traceback
            failed.append(script.name)
            print(f"FAILED {ipynb.name} after {time.perf_counter() - started:.0f} s:\n{exc}",
                  file=sys.stderr)
            continue
        seconds = time.perf_counter() - started
        total += seconds
        if not args.fast:
            write_atomically(notebook, ipynb)
        print(f"{ipynb.name:28s} {'fast' if args.fast else 'normal'} mode  {seconds:6.1f} s",
              flush=True)
    if not args.sync:
        print(f"total {total:.1f} s" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
