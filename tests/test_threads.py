"""The CPU threading policy (minicnn/threads.py), checked in a fresh interpreter."""
import json
import subprocess
import sys

import pytest


def _policy_in_child(env_extra):
    import os
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "MINICNN_NUM_THREADS")}
    env.update(env_extra)
    code = ("import json, os, minicnn\n"
            "from minicnn import threads\n"
            "print(json.dumps({'wait': os.environ.get('OMP_WAIT_POLICY'),\n"
            "                  'blas': threads.blas and threads.blas[1](),\n"
            "                  'has_blas': threads.blas is not None}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_policy_on_import_two_threads():
    got = _policy_in_child({"MINICNN_NUM_THREADS": "2"})
    assert got["wait"] == "PASSIVE"
    if not got["has_blas"]:
        pytest.skip("NumPy does not use OpenBLAS here")
    assert got["blas"] == 1


def test_user_settings_win():
    got = _policy_in_child({"OMP_WAIT_POLICY": "ACTIVE", "MINICNN_NUM_THREADS": "1",
                            "OPENBLAS_NUM_THREADS": "2"})
    assert got["wait"] == "ACTIVE"
    if got["has_blas"]:
        assert got["blas"] == 2   # one minicnn thread: BLAS keeps its own
