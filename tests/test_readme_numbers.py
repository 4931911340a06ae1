"""The README's measured numbers are the committed outputs' numbers.

Each claim the README makes from a run is read back here from the file that run wrote, so a
rerun that changes a result, or a number typed by hand, fails until the two agree again:

- the demo and the tanh LeNet-5 (``docs/run_logs/*.log``: the programs' own output, saved by the
  commands at the top of each log);
- the gradient-flow sweep (``experiments/gradflow/sweep/sweep_summary.csv``);
- the transfer experiment (``experiments/transfer/lenet5/results.json``);
- the training-speed table (``benchmarks/results/training.md``, rows copied verbatim), and the
  step A/B and per-op tables (``step_ab.md``, ``per_op.md``, the same way).

The residual-learning study has its own check in ``tests/test_residual_study.py``.
"""
import csv
import json
import pathlib
import re
import statistics

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
RUNS = ROOT / "docs" / "run_logs"


def _find(pattern, text, what):
    """The groups of ``pattern`` in ``text`` (any whitespace, line breaks included, matches
    ``\\s+``)."""
    match = re.search(pattern.replace(" ", r"\s+"), text, re.S)
    assert match, f"{what}: no match for {pattern!r}"
    return match.groups()


def _log(name):
    return (RUNS / name).read_text()


def _last_validation_accuracy(log):
    return re.findall(r"val loss [\d.]+ acc ([\d.]+)%", log)[-1]


def _test_accuracy(log):
    return re.findall(r"test accuracy ([\d.]+)%", log)[-1]


def test_demo_numbers_are_the_committed_runs():
    full, subset, tanh = _log("demo.log"), _log("demo_subset.log"), _log("train_lenet5.log")
    assert "data: 54,000 train / 6,000 validation / 10,000 test images" in full
    assert "data: 5,400 train / 600 validation / 1,000 test images" in subset
    test, val = _find(r"\*\*([\d.]+)% test accuracy after 5 epochs\*\*.*?last epoch's "
                      r"validation accuracy was ([\d.]+)%\)", README, "demo")
    assert (test, val) == (_test_accuracy(full), _last_validation_accuracy(full))
    (subset_test,) = _find(r"the same command reaches ([\d.]+)%", README, "demo --subset")
    assert subset_test == _test_accuracy(subset)
    (tanh_test,) = _find(r"The paper's LeNet-5 \(tanh, average pooling\) gets ([\d.]+)% the same "
                         r"way", README, "lenet5 tanh")
    assert tanh_test == _test_accuracy(tanh)


def test_gradient_flow_numbers_are_the_sweeps():
    with open(ROOT / "experiments" / "gradflow" / "sweep" / "sweep_summary.csv") as f:
        rows = {(r["norm"], r["activation"], r["init"], r["depth"], r["net"]): r
                for r in csv.DictReader(f)}
    quoted = _find(r"spread over ([\d.]+) decades at depth 56 and ([\d.]+) at depth 110, while "
                   r"their residual twins \(the same weights\) stay within ([\d.]+) and "
                   r"([\d.]+);", README, "gradient flow")
    measured = [f"{float(rows[('True', 'relu', 'he', depth, net)]['spread']):.1f}"
                for net in ("plain", "residual") for depth in ("56", "110")]
    assert list(quoted) == measured
    assert "every weight gradient of plain-56 and plain-110 is exactly zero, and the residual " \
           "twins' are not" in " ".join(README.split())
    for depth in ("56", "110"):
        plain = rows[("False", "relu", "normal", depth, "plain")]
        residual = rows[("False", "relu", "normal", depth, "residual")]
        assert plain["zero_layers"] == plain["layers"] and residual["zero_layers"] == "0"


def test_transfer_numbers_are_the_experiments():
    records = json.loads((ROOT / "experiments" / "transfer" / "lenet5" / "results.json")
                         .read_text())["records"]

    def mean(method, labels):
        values = [r["test_accuracy"] for r in records
                  if r["method"] == method and r["labels_per_class"] == labels]
        assert len(values) == 3  # "mean of 3 label draws"
        return f"{100 * statistics.mean(values):.1f}"

    quoted = _find(r"from 10 labels per class with ([\d.]+)% test accuracy as a frozen feature "
                   r"extractor .*? and ([\d.]+)% fine-tuning its deepest stage, against ([\d.]+)% "
                   r"from scratch \(mean of 3 label draws\); at 1000 labels per class scratch "
                   r"catches up \(([\d.]+)%\)", README, "transfer")
    assert list(quoted) == [mean("linear", 10), mean("deepest", 10), mean("scratch", 10),
                            mean("scratch", 1000)]


def test_speed_table_rows_are_the_benchmarks():
    results = (ROOT / "benchmarks" / "results" / "training.md").read_text().splitlines()
    header = next(i for i, line in enumerate(README.splitlines())
                  if line.startswith("| model (batch) | minicnn img/s | PyTorch img/s"))
    rows = []
    for line in README.splitlines()[header + 2:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    assert len(rows) == 4, "the four models of benchmarks/bench_training.py"
    for row in rows:
        assert row in results, f"not a row of benchmarks/results/training.md: {row}"
    processor = _find(r"Processor: ([^,]+?(?:\([^)]*\))?),", "\n".join(results), "processor")[0]
    assert processor in " ".join(README.split()), "the README names the processor measured on"


def _rows_after(header_start):
    """The table rows under the README header line that starts with ``header_start``."""
    lines = README.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[header + 2:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def test_step_ab_and_per_op_tables_are_the_benchmarks():
    results = ROOT / "benchmarks" / "results"
    step_ab = (results / "step_ab.md").read_text().splitlines()
    rows = _rows_after("| change | model | A: on, ms")
    assert {row.split("|")[1].strip() for row in rows} == {"fusion", "dispatch", "chunk"}
    for row in rows:
        assert row in step_ab, f"not a row of benchmarks/results/step_ab.md: {row}"
    per_op = (results / "per_op.md").read_text()
    resnet = per_op[per_op.index("**ResNet-20, option A**"):per_op.index("**plain-20**")]
    rows = _rows_after("| category | minicnn ms | PyTorch ms")
    assert rows and all(row in resnet.splitlines() for row in rows), \
        "the README's per-op rows are benchmarks/results/per_op.md's ResNet-20 rows"
