"""The layers of minicnn, read from its own imports: checked by a test, drawn for docs/architecture.md.

    python docs/architecture.py            # print each layer's modules and every rule broken
    python docs/architecture.py --draw     # also redraw docs/images/architecture.png

Every module of the package (``minicnn/`` and ``kernels/``, installed as ``minicnn.kernels``) is
parsed with ``ast``; every import counts, the ones inside function bodies too, and
``from minicnn import x`` counts as an import of the module ``minicnn.x`` when ``x`` is one. Each
module belongs to one layer (``LAYERS``, lowest first) and may import its own layer and the
layers below it, never a layer above. The one cycle allowed is ``autograd`` <-> ``ops``: a tensor
method such as ``x.sum()`` needs the op, and the op needs ``Tensor``.
"""
import ast
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: (layer, what lives there, module-name prefixes), lowest first. The first matching prefix wins.
LAYERS = [
    ("runtime", "arrays, devices, kernel lanes, threads, the random generator, file formats",
     ["minicnn.backend", "minicnn.cuda", "minicnn.threads", "minicnn.random", "minicnn.version",
      "minicnn.serialization", "minicnn.interrupts"]),
    ("kernels", "the hand-written kernels: NumPy reference, numba twin, CUDA twin",
     ["minicnn.kernels"]),
    ("engine", "what makes an op fast: buffers, chunks, threads, special cases",
     ["minicnn.engine"]),
    ("autograd + ops", "Tensor, Function, backward; each op's forward and backward",
     ["minicnn.autograd", "minicnn.ops", "minicnn.tensor_methods", "minicnn.creation"]),
    ("nn + optim", "layers, modules, initialisation; optimisers and schedules",
     ["minicnn.nn", "minicnn.optim", "minicnn.gradcheck", "minicnn.profiler"]),
    ("models + data", "the model zoo; data sets, loaders, transforms, presets",
     ["minicnn.models", "minicnn.data", "minicnn.summary"]),
    ("training", "fit, evaluate, checkpoints, weights files, plots of a run",
     ["minicnn.training", "minicnn.checkpoint", "minicnn.weights", "minicnn.plots",
      "minicnn.saving", "minicnn.runlock", "minicnn.run_settings", "minicnn.step_timing",
      "minicnn.metrics"]),
    ("tools", "measurement tools: gradient flow, transfer learning, landscapes",
     ["minicnn.gradflow", "minicnn.transfer", "minicnn.landscape", "minicnn.stats"]),
    ("package", "`import minicnn as mc`: the public names", ["minicnn"]),
    ("experiments", "the lecture's experiments: runners, their pictures, their commands",
     ["minicnn.experiments"]),
    ("cli", "the `minicnn` command: parses arguments and calls", ["minicnn.cli",
                                                                  "minicnn.cli_errors",
                                                                  "minicnn.__main__"]),
]

ALLOWED_CYCLE = {"minicnn.autograd", "minicnn.ops"}


def module_files():
    """``{module name: path}`` for every module of the installed package."""
    files = {}
    for base, package in ((ROOT / "minicnn", "minicnn"), (ROOT / "kernels", "minicnn.kernels")):
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files[".".join([package] + parts)] = path
    return files


def imports_of(name, path, known):
    """The package modules that module ``name`` imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from minicnn import backend` imports the module minicnn.backend; `from minicnn
            # import Tensor` imports the package's __init__ (the name is stripped below)
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `minicnn.ops.conv.Conv2d` -> the module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph():
    files = module_files()
    return {name: imports_of(name, path, files) for name, path in files.items()}


def layer_of(module):
    """Index into ``LAYERS`` of the layer that holds ``module``."""
    best = None
    for index, (_, _, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    if best is None:
        raise KeyError(f"{module} belongs to no layer: add it to LAYERS in docs/architecture.py")
    return best[0]


def _group(module):
    """A module's unit for the cycle rule: ``minicnn.ops.conv`` counts as ``minicnn.ops``."""
    for unit in ALLOWED_CYCLE:
        if module == unit or module.startswith(unit + "."):
            return unit
    return module


def cycles(graph):
    """Strongly connected groups of more than one module (Tarjan), each as a sorted list."""
    index, low, stack, on_stack, result = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def forbidden_cycles(graph):
    """Every import cycle except the one between autograd and ops (inside ops counts as one)."""
    found = []
    for component in cycles(graph):
        if {_group(m) for m in component} <= ALLOWED_CYCLE:
            continue
        found.append(component)
    return found


def upward_imports(graph):
    """``(importer, imported)`` pairs where a module imports a layer above its own."""
    return sorted((a, b) for a, targets in graph.items() for b in targets
                  if layer_of(b) > layer_of(a))


def layer_matrix(graph):
    """``counts[a][b]``: imports from modules of layer ``a`` into modules of layer ``b``."""
    counts = [[0] * len(LAYERS) for _ in LAYERS]
    for importer, targets in graph.items():
        for target in targets:
            counts[layer_of(importer)][layer_of(target)] += 1
    return counts


def draw(graph, path):
    """The layers as a stack (lowest at the bottom) and beside it the matrix of imports between
    them: row = the importing layer, column = the imported one. Arrows that point down fill the
    lower triangle; an upward import would show in red above the diagonal."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = layer_matrix(graph)
    n = len(LAYERS)
    fig, (stack, grid) = plt.subplots(1, 2, figsize=(12, 0.5 * n + 1.4),
                                      gridspec_kw={"width_ratios": [1.25, 1]})
    for i, (title, what, _) in enumerate(LAYERS):
        members = sum(layer_of(m) == i for m in graph)
        stack.add_patch(plt.Rectangle((0, i - 0.42), 1, 0.84, facecolor="#e8eef7",
                                      edgecolor="#4a6fa5"))
        stack.text(0.02, i + 0.14, f"{title}  ({members} module{'s' * (members != 1)})", fontsize=9.5,
                   weight="bold", va="center")
        stack.text(0.02, i - 0.2, what, fontsize=7.5, va="center", color="#333333")
    stack.set_xlim(0, 1)
    stack.set_ylim(-0.6, n - 0.4)
    stack.axis("off")
    stack.set_title("layers, lowest first", fontsize=10)
    for a in range(n):
        for b in range(n):
            k = counts[a][b]
            colour = "#c0392b" if (k and b > a) else ("#4a6fa5" if k else "#f4f4f4")
            alpha = 1.0 if b > a else (0.25 + 0.75 * min(k, 30) / 30 if k else 1.0)
            grid.add_patch(plt.Rectangle((b - 0.45, a - 0.45), 0.9, 0.9, facecolor=colour,
                                         alpha=alpha, edgecolor="none"))
            if k:
                grid.text(b, a, str(k), ha="center", va="center", fontsize=7,
                          color="white" if (b > a or k > 12) else "black")
    grid.set_xticks(range(n), [t for t, _, _ in LAYERS], rotation=60, ha="right", fontsize=7.5)
    grid.set_yticks(range(n), [t for t, _, _ in LAYERS], fontsize=7.5)
    grid.set_xlim(-0.6, n - 0.4)
    grid.set_ylim(-0.6, n - 0.4)
    grid.set_aspect("equal")
    grid.set_xlabel("imported layer")
    grid.set_ylabel("importing layer")
    grid.set_title("imports between modules, by layer (all below or on the diagonal)",
                   fontsize=10)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    tmp.replace(path)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    graph = import_graph()
    for i, (title, _, _) in enumerate(LAYERS):
        members = sorted(m for m in graph if layer_of(m) == i)
        print(f"{i:2d} {title:16s} {len(members):3d}  " + ", ".join(
            m.replace("minicnn.", "") for m in members[:8]) + (" ..." if len(members) > 8 else ""))
    bad = forbidden_cycles(graph)
    up = upward_imports(graph)
    for component in bad:
        print("cycle:", " <-> ".join(component))
    for a, b in up:
        print(f"upward import: {a} -> {b}")
    if "--draw" in argv:
        draw(graph, ROOT / "docs" / "images" / "architecture.png")
    return 1 if bad or up else 0


if __name__ == "__main__":
    sys.exit(main())
