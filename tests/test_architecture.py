"""The house rules of docs/architecture.md, read from the code: imports point down, files stay short.

The rules and the import parser live in docs/architecture.py (``python docs/architecture.py``
prints the layers and every broken rule).
"""
import ast
import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("architecture", ROOT / "docs" / "architecture.py")
architecture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(architecture)

#: line budgets: every module 500; the two files that hold one whole idea by design get more
LINE_LIMITS = {"minicnn/autograd.py": 650, "minicnn/nn/module.py": 550}


@pytest.fixture(scope="module")
def graph():
    return architecture.import_graph()


def test_the_parser_sees_imports_inside_functions_and_relative_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("from . import b\n"
                      "def f():\n    from minicnn.ops.conv import Conv2d\n"
                      "    import minicnn.nn as nn\n    from minicnn import Tensor\n")
    known = {"minicnn", "minicnn.pkg.b", "minicnn.ops.conv", "minicnn.nn"}
    found = architecture.imports_of("minicnn.pkg.m", source, known)
    assert found == {"minicnn.pkg.b", "minicnn.ops.conv", "minicnn.nn", "minicnn"}


def test_the_cycle_finder_finds_a_three_module_cycle_and_allows_autograd_ops():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"},
             "minicnn.autograd": {"minicnn.ops"}, "minicnn.ops": {"minicnn.ops.conv"},
             "minicnn.ops.conv": {"minicnn.autograd"}}
    assert architecture.cycles(graph) == [["a", "b", "c"], ["minicnn.autograd", "minicnn.ops",
                                                          "minicnn.ops.conv"]]
    assert architecture.forbidden_cycles(graph) == [["a", "b", "c"]]


def test_every_module_belongs_to_a_layer(graph):
    for module in graph:
        architecture.layer_of(module)  # raises naming the module and where to add it


def test_the_only_import_cycle_is_autograd_with_ops(graph):
    assert architecture.forbidden_cycles(graph) == []


def test_imports_point_down_the_layers(graph):
    assert architecture.upward_imports(graph) == []


def test_no_library_module_imports_the_cli(graph):
    users = sorted(m for m, targets in graph.items() if "minicnn.cli" in targets)
    assert users == ["minicnn.__main__"]


def test_library_imports_sit_at_the_top_of_modules():
    """A minicnn import inside a function hides an arrow; only heavy optional packages (cupy,
    torch, matplotlib, safetensors) are imported lazily, and those are not minicnn modules."""
    lazy = []
    for name, path in architecture.module_files().items():
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                module = (node.module if isinstance(node, ast.ImportFrom) else
                          node.names[0].name if isinstance(node, ast.Import) else None)
                if module and (module == "minicnn" or module.startswith("minicnn.")):
                    lazy.append(f"{path.relative_to(ROOT)}:{node.lineno} {module}")
    assert lazy == []


def test_files_stay_within_their_line_budget():
    too_long = {}
    for path in sorted(list((ROOT / "minicnn").rglob("*.py")) + list((ROOT / "kernels").rglob(
            "*.py"))):
        rel = str(path.relative_to(ROOT))
        lines = len(path.read_text().splitlines())
        if lines > LINE_LIMITS.get(rel, 500):
            too_long[rel] = lines
    assert too_long == {}


def test_the_convolution_lesson_comes_first_in_a_short_file():
    path = ROOT / "minicnn" / "ops" / "conv.py"
    tree = ast.parse(path.read_text())
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    assert {"Conv2d", "ConvTranspose2d"} <= set(classes)
    assert all(classes[name].end_lineno <= 250 for name in ("Conv2d", "ConvTranspose2d"))
    assert len(path.read_text().splitlines()) < 400
