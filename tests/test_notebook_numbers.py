"""Numbers in a notebook's prose come from its code: every measured-looking number typed in a
markdown cell (a percentage, a decimal, a ratio such as 4.7x, a grouped integer such as 2,000, a
count of steps, epochs, images or seconds) must appear in the committed outputs of the same
notebook, or be a fact from the literature listed with its source in ``notebooks/facts/NN.json``:

    {"facts": {"15.3%": "Krizhevsky et al. 2012, top-5 test error of the 7-CNN ensemble", ...}}

A notebook is checked once it has a facts file (an empty ``{"facts": {}}`` is fine when its
prose quotes no literature numbers). A typed number that no output prints fails here: the
lecturer either prints the sentence from the results or copies the number exactly.
"""
import json
import pathlib
import re

import pytest

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
FACTS = NOTEBOOKS / "facts"

#: what looks measured: 88.16%, 0.01, 4.7x, 2,000, 96 steps / 10 epochs / 5000 images / 12 s
NUMBER = re.compile(
    r"(?<![\w.^])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?\s?(?:%|x\b|×)"     # percent or ratio
    r"|(?<![\w.^])\d+\.\d+(?![\w.])"                                      # a decimal
    r"|(?<![\w.^])\d{1,3}(?:,\d{3})+(?![\w.])"                            # a grouped integer
    r"|(?<![\w.^])\d+\s(?:steps|epochs|images|seconds|minutes|s\b)")      # a count with a unit


def _text(source):
    return source if isinstance(source, str) else "".join(source)


def _strip_code(markdown):
    """Markdown without code spans, code blocks, links' targets and LaTeX exponents: numbers in
    code (``lr=0.01``) and in URLs are not claims."""
    markdown = re.sub(r"```.*?```", " ", markdown, flags=re.S)
    markdown = re.sub(r"`[^`]*`", " ", markdown)
    markdown = re.sub(r"\]\([^)]*\)", "]", markdown)
    markdown = re.sub(r"https?://\S+", " ", markdown)
    return markdown


def _outputs_text(cell):
    parts = []
    for output in cell.get("outputs", []):
        if "text" in output:
            parts.append(_text(output["text"]))
        for kind in ("text/plain", "text/markdown", "text/html"):
            if kind in output.get("data", {}):
                parts.append(_text(output["data"][kind]))
    return "\n".join(parts)


def numbers_in_prose(notebook):
    """``[(cell index, number as typed)]`` for every measured-looking number in markdown."""
    found = []
    for i, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "markdown":
            for m in NUMBER.finditer(_strip_code(_text(cell["source"]))):
                found.append((i, m.group(0)))
    return found


def _core(number):
    """The digits of a typed number: '4.7x' -> '4.7', '88.16 %' -> '88.16', '96 steps' -> '96'."""
    return re.match(r"[\d,]+(?:\.\d+)?", number).group(0)


def unexplained_numbers(notebook, facts):
    """The typed numbers that neither an output of the notebook prints nor the facts list."""
    printed = "\n".join(_outputs_text(c) for c in notebook["cells"] if c["cell_type"] == "code")
    printed_plain = printed.replace(",", "")
    missing = []
    for i, number in numbers_in_prose(notebook):
        core = _core(number)
        if number in facts or core in facts:
            continue
        if core in printed or core.replace(",", "") in printed_plain:
            continue
        missing.append((i, number))
    return missing


def _checked():
    return sorted(p.stem for p in FACTS.glob("*.json")) if FACTS.exists() else []


def test_the_matcher_finds_typed_numbers_and_skips_code():
    notebook = {"cells": [
        {"cell_type": "markdown", "source": "tanh reached 77.5% at 4.7x the cost in 94 steps "
                                            "on 2,000 images; `lr=0.01` is code; N(0, 0.01^2)"},
        {"cell_type": "code", "source": "", "outputs": [
            {"output_type": "stream", "text": "accuracy 77.50%, 2000 images, ratio 4.70\n"}]}]}
    assert [n for _, n in numbers_in_prose(notebook)] == ["77.5%", "4.7x", "94 steps",
                                                          "2,000", "0.01"]
    assert [n for _, n in unexplained_numbers(notebook, {})] == ["94 steps", "0.01"]
    assert unexplained_numbers(notebook, {"94": "a source", "0.01": "the paper's init"}) == []


@pytest.mark.parametrize("name", _checked())
def test_prose_numbers_are_printed_by_the_code_or_cited(name):
    notebook = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    facts = json.loads((FACTS / f"{name}.json").read_text())["facts"]
    assert all(isinstance(v, str) and v.strip() for v in facts.values()), \
        "every fact names its source"
    missing = unexplained_numbers(notebook, facts)
    assert not missing, (f"{name}: numbers typed in the prose that no output prints and no fact "
                         f"in notebooks/facts/{name}.json cites: {missing}")
