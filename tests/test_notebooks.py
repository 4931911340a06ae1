"""The lecture notebooks (notebooks/): each jupytext script ``NN_name.py`` (the source that is
edited and reviewed) and its ``NN_name.ipynb`` (what a student opens) must say the same thing,
every notebook must read ``MINICNN_FAST`` in its first code cell (so that CI can run it fast), and
the committed ``.ipynb`` must carry the outputs of a complete, error-free normal-mode run.

Executing the notebooks is CI's separate step (``pytest --nbmake notebooks/`` with
MINICNN_FAST=1, or ``python notebooks/run_all.py --fast``); these checks only read files.
"""
import json
import pathlib

import pytest

NOTEBOOKS = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
SCRIPTS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
IPYNBS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def _load_ipynb(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _source(cell):
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else source


def _code_cells(notebook):
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def test_there_are_notebooks():
    assert SCRIPTS, f"no notebook scripts NN_*.py in {NOTEBOOKS}"


def test_every_script_has_its_notebook_and_back():
    scripts = {p.stem for p in SCRIPTS}
    notebooks = {p.stem for p in IPYNBS}
    assert scripts - notebooks == set(), \
        f"scripts without a .ipynb (run python notebooks/run_all.py): {sorted(scripts - notebooks)}"
    assert notebooks - scripts == set(), \
        f"notebooks without their jupytext .py: {sorted(notebooks - scripts)}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_script_and_notebook_are_in_sync(script):
    jupytext = pytest.importorskip("jupytext", reason="jupytext reads the paired .py scripts")
    ipynb = script.with_suffix(".ipynb")
    if not ipynb.exists():
        pytest.fail(f"{ipynb.name} is missing")
    expected = [(c.cell_type, c.source.strip())
                for c in jupytext.read(script, fmt="py:percent").cells]
    actual = [(c["cell_type"], _source(c).strip()) for c in _load_ipynb(ipynb)["cells"]]
    for i, (want, got) in enumerate(zip(expected, actual)):
        assert want == got, (
            f"{ipynb.name} differs from {script.name} at cell {i} ({want[0]} in the script, "
            f"{got[0]} in the notebook). Edit the .py, then run: python notebooks/run_all.py "
            f"{script.name[:2]}\n--- script:\n{want[1][:400]}\n--- notebook:\n{got[1][:400]}")
    assert len(expected) == len(actual), (
        f"{script.name} has {len(expected)} cells, {ipynb.name} {len(actual)}: run "
        f"python notebooks/run_all.py {script.name[:2]}")


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.stem)
def test_first_code_cell_reads_fast_mode(ipynb):
    cells = _code_cells(_load_ipynb(ipynb))
    assert cells, f"{ipynb.name} has no code cell"
    assert "MINICNN_FAST" in _source(cells[0]), (
        f"{ipynb.name}: the first code cell must read the MINICNN_FAST environment variable "
        "(CI runs every notebook with MINICNN_FAST=1)")


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.stem)
def test_committed_outputs_come_from_a_complete_normal_run(ipynb):
    cells = _code_cells(_load_ipynb(ipynb))
    counts = [cell.get("execution_count") for cell in cells]
    assert counts == list(range(1, len(cells) + 1)), (
        f"{ipynb.name} was not run top to bottom in one kernel (execution counts {counts}); "
        f"run: python notebooks/run_all.py {ipynb.name[:2]}")
    for i, cell in enumerate(cells):
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", (
                f"{ipynb.name}: code cell {i} holds an error output: "
                f"{output.get('ename')}: {output.get('evalue')}")
    first = "".join("".join(o.get("text", "")) for o in cells[0].get("outputs", []))
    assert "mode: normal" in first, (
        f"{ipynb.name}: the committed outputs must come from a normal-mode run (the first cell "
        f"prints 'mode: normal'), but it printed {first.strip()!r}")


def test_notebooks_readme_links_every_notebook():
    readme = (NOTEBOOKS / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in IPYNBS if f"({p.name})" not in readme]
    assert not missing, f"notebooks/README.md does not link {missing}"
