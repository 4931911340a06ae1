"""The README's quick-start commands are what CI runs, and they mean what they say."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", quick, flags=re.S)


def test_quick_start_has_exactly_two_one_line_commands():
    commands = _readme_commands()
    assert len(commands) == 2, commands
    assert all("\n" not in c for c in commands)
    assert commands[0].endswith("minicnn info") or "minicnn demo" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _readme_commands()[1] in ci


def test_ci_installs_the_pinned_torch_oracle():
    assert 'torch==2.13.0' in (ROOT / ".ci" / "run").read_text()


def test_readme_python_example_runs():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)\n```", text, flags=re.S)
    assert blocks
    namespace = {}
    exec(compile(blocks[0], "README.md example", "exec"), namespace)
    assert namespace["loss"].item() < 1.0  # it learned: chance level is log(3) = 1.0986


def test_readme_links_every_notebook():
    text = (ROOT / "README.md").read_text()
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert len(notebooks) == 10  # one per section of the lecture, 00 to 09
    for notebook in notebooks:
        assert f"](notebooks/{notebook.name})" in text, notebook.name
