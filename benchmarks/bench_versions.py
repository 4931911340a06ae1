"""Training throughput of this checkout against an earlier commit, same machine, alternating runs.

    python benchmarks/bench_versions.py be84c80                    # ResNet-20 and LeNet-5
    python benchmarks/bench_versions.py HEAD~5 --models lenet5 --rounds 6

The earlier commit is exported with ``git archive`` into a temporary folder laid out as the
installed package (``kernels/`` becomes ``minicnn/kernels``) and put first on ``PYTHONPATH``; the
current checkout runs through the normal import. Each round runs one process per version (old,
then new, then the order swapped in the next round, so drift in the machine's speed falls on both)
of ``bench_training.py --child minicnn MODEL``; the table gives each version's median images/s
over the rounds, their min-max, and the ratio new / old per round.
"""
import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "bench_training.py"


def export(revision, folder):
    """The package of ``revision`` under ``folder/minicnn`` (kernels inside it)."""
    archive = folder / "src.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), revision,
                    "minicnn", "kernels"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder / "src", filter="data")
    shutil.move(str(folder / "src" / "minicnn"), str(folder / "minicnn"))
    shutil.move(str(folder / "src" / "kernels"), str(folder / "minicnn" / "kernels"))
    return folder


def run(model, steps, pythonpath=None):
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, str(BENCH), "--child", "minicnn", model, "--steps",
                          str(steps)], capture_output=True, text=True, env=env, cwd="/",
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision", help="the earlier commit (anything git rev-parse takes)")
    parser.add_argument("--models", nargs="+", default=["resnet20", "lenet5"])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old_path = export(args.revision, pathlib.Path(tmp))
        print(f"old = {args.revision}, new = this checkout; {args.rounds} alternating rounds, "
              f"median of {args.steps} steps each")
        print("| model | old img/s (min-max) | new img/s (min-max) | new / old per round |")
        print("| --- | --- | --- | --- |")
        for model in args.models:
            old, new = [], []
            for r in range(args.rounds):
                order = [("old", old_path), ("new", None)]
                for name, path in (order if r % 2 == 0 else order[::-1]):
                    (old if name == "old" else new).append(run(model, args.steps, path))
            ratios = [n / o for n, o in zip(new, old)]
            print(f"| {model} | {statistics.median(old):,.0f} ({min(old):,.0f}-{max(old):,.0f})"
                  f" | {statistics.median(new):,.0f} ({min(new):,.0f}-{max(new):,.0f}) | "
                  + ", ".join(f"{x:.2f}" for x in ratios) + " |", flush=True)


if __name__ == "__main__":
    main()
