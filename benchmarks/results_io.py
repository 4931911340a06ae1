"""Where benchmark tables go: ``benchmarks/results/<name>.md``, written atomically (a temporary
file, then a rename), so an interrupted run never leaves half a table."""
import os
import pathlib

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def write_results(name, text):
    """Print ``text`` and save it as ``benchmarks/results/<name>.md``; return the path."""
    print(text)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.md"
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, out)
    return out
