"""The package installs whole: a wheel carries every sub-package, the top-level kernels/ folder
as ``minicnn.kernels`` (with its CUDA sources), and imports from there."""
import configparser
import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _listed_packages():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return set(cfg["options"]["packages"].split())


def test_setup_cfg_lists_every_subpackage():
    on_disk = {"minicnn"} | {
        "minicnn." + ".".join(p.parent.relative_to(ROOT / "minicnn").parts)
        for p in (ROOT / "minicnn").rglob("__init__.py") if p.parent != ROOT / "minicnn"}
    on_disk.add("minicnn.kernels")
    assert on_disk == _listed_packages()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                             str(out), str(ROOT)], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{result.stdout}\n{result.stderr}")
    return next(out.glob("minicnn-*.whl"))


def test_wheel_contains_kernels_and_all_packages(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "minicnn/kernels/__init__.py" in names
    for source in (ROOT / "kernels").glob("*"):
        if source.suffix in (".py", ".cu"):
            assert f"minicnn/kernels/{source.name}" in names, source.name
    for package in _listed_packages():
        assert package.replace(".", "/") + "/__init__.py" in names, package
    # data files: the bundled Fashion-MNIST subset and the shipped pre-trained weights
    for folder in (ROOT / "minicnn" / "data" / "bundled", ROOT / "minicnn" / "models" / "weights"):
        for data_file in folder.glob("*"):
            if data_file.suffix in (".npz", ".json", ".txt", ".md"):
                relative = data_file.relative_to(ROOT).as_posix()
                assert relative in names, relative


def test_installed_wheel_finds_its_kernels(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, timeout=300)
    code = ("import minicnn, minicnn.kernels as k; "
            "print(minicnn.__file__); print(k.KERNEL_DIR)")
    env = dict(os.environ, PYTHONPATH=str(target))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    package_file, kernel_dir = result.stdout.split()
    assert package_file.startswith(str(target))
    assert kernel_dir == str(target / "minicnn" / "kernels")
