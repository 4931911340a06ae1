"""The CPU threading policy (minicnn/threads.py), checked in a fresh interpreter."""
import json
import os
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


def test_blas_control_goes_through_threadpoolctl():
    from threadpoolctl import threadpool_info
    from minicnn import threads
    if threads.blas is None:
        pytest.skip("no BLAS with thread control here")
    seen = {info["filepath"]: info["num_threads"] for info in threadpool_info()
            if info["user_api"] == "blas"}
    assert {lib.filepath for lib in threads.blas_libraries} <= set(seen)
    assert seen[threads.blas_libraries[0].filepath] == threads.get_blas_threads()
    before = threads.get_blas_threads()
    try:
        threads.set_blas_threads(2)
        assert threads.get_blas_threads() == 2
    finally:
        threads.set_blas_threads(before)
    assert threads.get_blas_threads() == before


def test_describe_says_what_was_set():
    from minicnn import threads
    got = threads.describe()
    assert got["threads"] == threads.num_threads
    assert got["OMP_WAIT_POLICY"] == os.environ.get("OMP_WAIT_POLICY")
    assert got["blas"] and all(isinstance(line, str) for line in got["blas"])
    if threads.blas is not None:
        assert f"{threads.get_blas_threads()} thread" in got["blas"][0]
    assert got["malloc_tuning"] in ("mmap threshold 32 MB, no trim", "off")


def test_matmul_large_products_use_all_blas_threads_then_restore(monkeypatch):
    import numpy as np
    from minicnn import threads
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((6, 5)).astype(np.float32), rng.standard_normal((5, 4))
    b = b.astype(np.float32)
    np.testing.assert_allclose(threads.matmul(a, b), a @ b, rtol=1e-6)
    if threads.blas is None or threads.num_threads <= 1:
        return
    seen = []
    real = threads.blas
    monkeypatch.setattr(threads, "blas", (lambda n: (seen.append(n), real[0](n)), real[1]))
    monkeypatch.setattr(threads, "blas_parallel_min_flops", 2 * 6 * 5 * 4)
    np.testing.assert_allclose(threads.matmul(a, b), a @ b, rtol=1e-6)
    assert seen == [threads.num_threads, 1] and real[1]() == 1
    seen.clear()
    monkeypatch.setattr(threads, "blas_parallel_min_flops", 2 * 6 * 5 * 4 + 1)
    threads.matmul(a, b)
    assert seen == []
