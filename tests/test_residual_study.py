"""The residual-learning study (minicnn.experiments.residual): the recipe's pieces, one real task
end to end, the summary's schema, and the committed results agreeing with their README."""
import json
import math
import pathlib

import numpy as np
import pytest

import minicnn as mc
from minicnn.cli import main
from minicnn.experiments import residual as study
from minicnn.models.resnet_cifar import cifar_resnet

ROOT = pathlib.Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "experiments" / "residual"


def test_zero_init_residual_makes_every_block_the_identity_at_initialisation():
    mc.manual_seed(0)
    net = cifar_resnet(20, 10, 1, zero_init_residual=True).eval()
    x = mc.Tensor(np.abs(np.random.default_rng(0).normal(size=(2, 16, 12, 12))).astype(np.float32))
    for block in net.blocks():
        shortcut = x if block.downsample is None else block.downsample(x)
        y = block(x)
        # F(x) = 0, so the block returns relu(shortcut(x)) = shortcut(x) for x >= 0
        np.testing.assert_array_equal(y.numpy(), shortcut.numpy())
        x = y
    trained_like = cifar_resnet(20, 10, 1)
    assert all(float(b.bn2.weight.data.min()) == 1.0 for b in trained_like.blocks())


def test_zero_init_residual_is_refused_where_it_has_no_meaning():
    with pytest.raises(ValueError, match="plain block would start as the zero function"):
        cifar_resnet(20, plain=True, zero_init_residual=True)
    with pytest.raises(ValueError, match="without BN"):
        cifar_resnet(20, norm=False, zero_init_residual=True)


def test_warmup_cosine_holds_the_warmup_factor_then_falls_from_one_towards_zero():
    f = study.WarmupCosine(epochs=12, warmup=1, warmup_factor=0.2)
    assert f(0) == 0.2
    assert f(1) == 1.0
    assert f(6) == pytest.approx(0.5 * (1 + math.cos(math.pi * 5 / 11)))
    assert 0 < f(11) < 0.03
    assert all(f(t) > f(t + 1) for t in range(1, 11))


def test_nonconvex_fraction_is_zero_on_a_bowl_and_one_on_a_saddle():
    s = np.linspace(-1, 1, 9)
    x, y = np.meshgrid(s, s, indexing="ij")
    assert study.nonconvex_fraction(x ** 2 + 3 * y ** 2) == 0.0
    assert study.nonconvex_fraction(x ** 2 - y ** 2) == 1.0
    assert study.nonconvex_fraction(x * y) == 1.0          # a rotated saddle: only dxy
    with pytest.raises(ValueError, match="3x3"):
        study.nonconvex_fraction(np.zeros((2, 5)))


TINY = dict(study.RECIPE, train_images=64, test_images=32, epochs=2, batch_size=32,
            measure_images=32, hessian_iterations=2, landscape_steps_1d=3,
            landscape_steps_2d=3)


def test_one_task_trains_measures_writes_and_is_not_rerun(tmp_path):
    result = study.train_task("resnet20", 0, str(tmp_path), TINY, landscape_too=True)
    for key in ("train_error", "test_error", "top_hessian_eigenvalue", "responses", "history",
                "landscape"):
        assert key in result
    assert len(result["history"]["train_acc"]) == 2
    assert len(result["responses"]["std"]) == 19 and len(result["responses"]["ratio"]) == 9
    saved = tmp_path / "runs" / "resnet20_seed0.json"
    assert json.loads(saved.read_text())["train_error"] == result["train_error"]
    with np.load(tmp_path / "landscape_resnet20.npz") as z:
        assert z["slice_2d_loss"].shape == (3, 3)
    stamp = saved.stat().st_mtime_ns
    again = study.train_task("resnet20", 0, str(tmp_path), TINY, landscape_too=True)
    assert again["train_error"] == result["train_error"] and saved.stat().st_mtime_ns == stamp


def _fake_run(folder, name, seed, train_error):
    depth = study.NETS[name][0]
    layers, blocks = depth - 1, (depth - 2) // 2
    run = {"name": name, "seed": seed, "train_error": train_error,
           "test_error": train_error + 0.05, "top_hessian_eigenvalue": 10.0 + seed,
           "history": {"train_acc": [0.5, 1 - train_error]},
           "responses": {"std": [0.5] * layers, "ratio": [0.1] * blocks}}
    if seed == 0:
        s = np.linspace(-1, 1, 5)
        np.savez(folder / f"landscape_{name}.npz", slice_1d_steps=s, slice_1d_loss=s ** 2,
                 slice_2d_steps=s, slice_2d_loss=np.add.outer(s ** 2, s ** 2))
        run["landscape"] = f"landscape_{name}.npz"
    (folder / "runs" / f"{name}_seed{seed}.json").write_text(json.dumps(run))


def test_summarize_writes_the_issue_schema_and_states_fig6_from_the_means(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "recipe.json").write_text(json.dumps(TINY))
    errors = {"plain20": 0.10, "plain56": 0.20, "resnet20": 0.08, "resnet56": 0.06}
    for name, e in errors.items():
        for seed in range(3):
            _fake_run(tmp_path, name, seed, e + 0.001 * seed)
    for seed in range(3):      # the ablation: trained and evaluated only
        for name, error in (("resnet20_nozero", 0.03), ("resnet56_nozero", 0.05)):
            (tmp_path / "runs" / f"{name}_seed{seed}.json").write_text(json.dumps(
                {"name": name, "seed": seed, "train_error": error, "test_error": 0.1,
                 "history": {"train_acc": [0.5, 1 - error]}}))
    summary = study.summarize(tmp_path)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["recipe"]["epochs"] == 2
    for name, e in errors.items():
        m = on_disk["models"][name]
        assert m["train_error"] == pytest.approx([e, e + 0.001, e + 0.002])
        assert len(m["test_error"]) == len(m["top_hessian_eigenvalue"]) == 3
        assert m["landscape"] == f"landscape_{name}.npz" and m["nonconvex_fraction_2d"] == 0.0
    assert on_disk["models"]["resnet20_nozero"]["train_error"] == [0.03] * 3
    assert "top_hessian_eigenvalue" not in on_disk["models"]["resnet20_nozero"]
    text = (tmp_path / "results.md").read_text()
    assert "ResNet-20, paper init" in text
    assert ("paper's initialisation of the residual branches (the ablation), means of the seeds: "
            "ResNet-56 below ResNet-20 in final training error: **no**") in text
    assert "plain-56 above plain-20 in final training error: **yes**" in text
    assert "ResNet-56 below ResNet-20: **yes**" in text
    assert "ResNet-20 is higher by 2.00%" in text          # 8% vs 6%, ranges apart
    for picture in ("training.png", "responses.png", "landscapes.png"):
        assert (tmp_path / picture).stat().st_size > 10_000


@pytest.mark.parametrize("command", ["residual", "landscape"])
def test_the_commands_have_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: minicnn " + command in capsys.readouterr().out


@pytest.mark.skipif(not (COMMITTED / "summary.json").exists(),
                    reason="the study's committed results are not in this checkout")
def test_committed_summary_has_three_seeds_per_net_and_the_readme_quotes_it():
    summary = json.loads((COMMITTED / "summary.json").read_text())
    assert set(study.MODELS) <= set(summary["models"]) <= set(study.NETS)
    for name, m in summary["models"].items():
        assert len(m["seeds"]) >= 3
        assert len(m["train_error"]) == len(m["test_error"]) == len(m["seeds"])
        assert all(0 <= e <= 1 for e in m["train_error"] + m["test_error"])
        if name in study.MODELS:
            assert (COMMITTED / m["landscape"]).exists() and len(m["top_hessian_eigenvalue"]) >= 3
    generated = study.results_markdown(summary, study.load_runs(COMMITTED))
    assert (COMMITTED / "results.md").read_text() == generated
    readme = (COMMITTED / "README.md").read_text()
    assert generated in readme, "README.md must quote results.md verbatim (rerun the summary)"


@pytest.mark.skipif(not (COMMITTED / "results.md").exists(),
                    reason="the study's committed results are not in this checkout")
def test_the_project_readme_quotes_the_study_verbatim():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- residual -->\n", 1)[1].split("<!-- /residual -->", 1)[0]
    quoted = [line for line in block.splitlines() if line.strip()]
    assert quoted, "the README's residual block is empty"
    results = (COMMITTED / "results.md").read_text().splitlines()
    for line in quoted:
        assert line in results, f"README.md quotes a line results.md does not have: {line}"
