#!/usr/bin/env bash
# The GPU path, checked and timed on a machine with an NVIDIA GPU, in one command:
#
#     bash benchmarks/gpu_all.sh       # from anywhere; results under $OUT (default ./gpu_results)
#
# Made for the lent GPU machines (image with python3 holding numpy, cupy-cuda13x, numba, torch,
# pytest; nothing can be downloaded there), so it installs nothing from the network:
#   1. installs minicnn from this working tree into that python3 (pip --no-deps --no-index
#      --no-build-isolation, editable; if pip cannot, it runs from a copy of the package instead);
#   2. says whether minicnn sees the GPU (and why not), and compiles the kernels with nvcc;
#   3. runs the gpu-marked tests (`pytest -m gpu tests`: every op and gradient GPU vs CPU in
#      float32 and float64, the kernels vs the NumPy references, ResNet training steps on both
#      devices) and the no-GPU kernel checks (tests/test_cuda_kernels.py);
#   4. runs benchmarks/bench_gpu.py (minicnn vs PyTorch CUDA in the same process).
# Everything it prints goes to $OUT/gpu_all.log too; it writes $OUT/pytest_gpu.xml,
# $OUT/bench_gpu.json and $OUT/gpu.md (the benchmark table). Exit status: non-zero when any step
# failed (later steps still run, so one failure does not hide the rest).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_results}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
status=0
step() { echo; echo "=== $* ==="; }

main() {
    step "machine"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || echo "(no nvidia-smi)"
    "$PY" -c "import sys, numpy, cupy, numba, torch; print(sys.version.split()[0], 'numpy',
numpy.__version__, 'cupy', cupy.__version__, 'numba', numba.__version__, 'torch',
torch.__version__, 'torch.cuda', torch.cuda.is_available())" || status=1

    step "install minicnn from the working tree (no network)"
    if "$PY" -m pip install -q --no-deps --no-index --no-build-isolation -e .; then
        RUN=("$PY")
    else
        echo "pip could not install it; running from a copy of the package instead"
        site="$(mktemp -d)"
        cp -r minicnn "$site/minicnn" && cp -r kernels "$site/minicnn/kernels"
        export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
        RUN=("$PY" -P)  # -P: the checkout's minicnn/ (without kernels/) must not shadow the copy
    fi
    "${RUN[@]}" -c "import minicnn; print('minicnn', minicnn.__file__); \
print('cuda available:', minicnn.cuda.is_available(), minicnn.cuda.why_unavailable())" || status=1

    step "nvcc compile check"
    "${RUN[@]}" -m minicnn.kernels.nvcc_check || status=1

    step "pytest -m gpu (and the kernel checks that need no GPU)"
    # (a test module that cannot be imported there must not stop the GPU tests of the others)
    timeout 360 "${RUN[@]}" -m pytest -q -ra -p no:cacheprovider -m gpu tests \
        --continue-on-collection-errors --junitxml="$OUT/pytest_gpu.xml" || status=1
    timeout 120 "${RUN[@]}" -m pytest -q -ra -p no:cacheprovider tests/test_cuda_kernels.py \
        || status=1

    step "benchmark: minicnn vs PyTorch CUDA"
    if timeout 300 "${RUN[@]}" benchmarks/bench_gpu.py --json "$OUT/bench_gpu.json"; then
        cp benchmarks/results/gpu.md "$OUT/gpu.md"
    else
        status=1
    fi
    step "done: exit status $status"
    return $status
}

main 2>&1 | tee "$OUT/gpu_all.log"
exit "${PIPESTATUS[0]}"
