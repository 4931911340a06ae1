"""No code of minicnn passes a test set where a validation set belongs.

The test set is evaluated once, at the end; whatever is watched during training or used to
choose something (an epoch, a learning rate, a head) is a validation part held out of the
training images. This test reads the Python sources (with ``ast``, so comments and strings in
prose do not count) of:

- ``minicnn/`` and ``experiments/`` (every ``.py`` file);
- the lecture notebooks ``notebooks/NN_*.py``, but only those that have a
  ``notebooks/facts/<stem>.json`` file: those are the notebooks already brought up to issue 13
  (their numbers checked by tests/test_notebook_numbers.py); the others are being rewritten,
  and each joins this check when its facts file is added.

and fails on

- a keyword argument named like a validation set (``val_loader=``, ``val_set=``,
  ``validation_data=``...) whose value is test data, and
- an assignment to such a name (``val_loader = ...``) whose value is test data.

"Test data" follows the data down the expression: a name or attribute with a word ``test``
(``test_loader``, ``x_test``, ``self.test_set``, ``testset``), a subscript by ``"test"``, an
element of a tuple or list (``(x_test, y_test)``), and for a call its first argument, the one
that carries the data (``DataLoader(test_subset, ...)``, ``Subset(test_set, idx)``). Other
arguments are not data: ``hold_out_validation(train, 0.1, test.transform)`` borrows the test
split's transform and is fine.
"""
import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: words of a name that say "validation"
VALIDATION_WORDS = {"val", "valid", "validation"}
#: last words of a keyword/variable that hold data (``val_size`` is a count, not data)
DATA_WORDS = {"loader", "loaders", "set", "sets", "data", "dataset", "subset", "split"}


def _words(name):
    return [w for w in re.split(r"_+", name.lower()) if w]


def _is_validation_name(name):
    words = _words(name)
    if not words or not VALIDATION_WORDS & set(words):
        return False
    return name.lower() in VALIDATION_WORDS or words[-1] in DATA_WORDS


def _is_test_word(name):
    return any(w in ("test", "tst", "t10k") or w.startswith("test") for w in _words(name))


def _is_test_data(node):
    """Does the data of this expression come from a test set? (see the module docstring)"""
    if isinstance(node, ast.Name):
        return _is_test_word(node.id)
    if isinstance(node, ast.Attribute):
        return _is_test_word(node.attr) or _is_test_data(node.value)
    if isinstance(node, ast.Subscript):
        key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str) and \
                _is_test_word(key.value):
            return True
        return _is_test_data(node.value)
    if isinstance(node, ast.Call):
        if node.args:
            return _is_test_data(node.args[0])
        data = [k.value for k in node.keywords if k.arg in ("dataset", "data", "loader")]
        return any(_is_test_data(value) for value in data)
    if isinstance(node, ast.IfExp):
        return _is_test_data(node.body) or _is_test_data(node.orelse)
    if isinstance(node, ast.Starred):
        return _is_test_data(node.value)
    if isinstance(node, (ast.Tuple, ast.List)):       # (images, labels), Keras style
        return any(_is_test_data(element) for element in node.elts)
    return False


def _pairs(target, value):
    """(name, value) pairs of an assignment, element by element for ``a, b = x, y``."""
    if isinstance(target, ast.Name):
        yield target.id, value
    elif isinstance(target, ast.Attribute):
        yield target.attr, value
    elif isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)) \
            and len(target.elts) == len(value.elts):
        for t, v in zip(target.elts, value.elts):
            yield from _pairs(t, v)


def findings(source, filename="<source>"):
    """``["file:line: what"]`` for every test set passed or assigned as a validation set."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg and _is_validation_name(keyword.arg) and \
                        _is_test_data(keyword.value):
                    found.append(f"{filename}:{keyword.value.lineno}: {keyword.arg}="
                                 f"{ast.unparse(keyword.value)}")
        targets = []
        if isinstance(node, ast.Assign):
            targets = [(t, node.value) for t in node.targets]
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [(node.target, node.value)]
        for target, value in targets:
            for name, part in _pairs(target, value):
                if _is_validation_name(name) and _is_test_data(part):
                    found.append(f"{filename}:{part.lineno}: {name} = {ast.unparse(part)}")
    return found


def checked_files():
    files = sorted((ROOT / "minicnn").rglob("*.py")) + sorted((ROOT / "experiments").rglob("*.py"))
    facts = ROOT / "notebooks" / "facts"
    files += [path for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
              if (facts / f"{path.stem}.json").exists()]
    return files


def test_no_test_set_is_used_as_a_validation_set():
    files = checked_files()
    assert any(p.parts[-2] == "experiments" for p in files) and \
        any(p.name == "training.py" for p in files)
    found = [line for path in files
             for line in findings(path.read_text(encoding="utf-8"),
                                  str(path.relative_to(ROOT)))]
    assert not found, ("a test set is used where a validation set belongs (hold a validation "
                       "part out of the training images: mc.data.random_split, "
                       "load_data(val_fraction=...)):\n" + "\n".join(found))


PLANTED = '''
history = mc.fit(net, opt, train_loader, 3, val_loader=test_loader)
history = mc.fit(net, opt, train_loader, 3, val_loader=mc.data.DataLoader(test_subset, 500))
val_loader = DataLoader(Subset(test_set, idx), batch_size=500)
self.val_set = self.test_set
train_loader, val_loader = make(train), loaders["test"]
run(validation_data=(x_test, y_test))
run(val_data=ArrayDataset(x_tst, y_tst))
fit(model, opt, loader, 1, val_loader=test_loader if quick else other)
'''

CLEAN = '''
history = mc.fit(net, opt, train_loader, 3, val_loader=val_loader)
train, val = hold_out_validation(train, 0.1, test.transform)
val_part = Subset(with_transform(train, test.transform), idx)
val_loader = DataLoader(val, batch_size=1000) if val is not None else None
result = degradation(val_size=test_size)
test_loader = DataLoader(test, batch_size=1000)
accuracy = evaluate(model, test_loader)       # the test set, once, at the end
'''


@pytest.mark.parametrize("line", [line for line in PLANTED.strip().splitlines()])
def test_it_catches_each_planted_example(line):
    assert len(findings(line)) == 1, line


def test_it_leaves_validation_parts_and_a_final_test_evaluation_alone():
    assert findings(CLEAN) == []
