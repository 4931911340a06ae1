"""The ``minicnn`` command line.

    minicnn info          version, backend, device, BLAS and numba status
"""
import argparse
import os
import platform
import sys


def _blas_description():
    """Which BLAS NumPy uses (its GEMM does the heavy lifting on the CPU)."""
    import numpy as np
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception as exc:  # older NumPy without mode="dicts"
        return f"unknown ({type(exc).__name__})"


def _numba_description():
    try:
        import numba
    except Exception as exc:
        return f"not importable ({type(exc).__name__}: {exc}); the NumPy kernels are used"
    if os.environ.get("NUMBA_DISABLE_JIT") == "1":
        return f"{numba.__version__}, JIT disabled by NUMBA_DISABLE_JIT=1 (kernels run as Python)"
    return f"{numba.__version__}, {numba.config.NUMBA_NUM_THREADS} threads"


def info_lines():
    """The facts ``minicnn info`` prints, as (label, value) pairs."""
    import numpy as np

    import minicnn
    from minicnn import backend, cuda

    try:
        device = backend.default_device()
    except Exception as exc:  # e.g. MINICNN_DEVICE=cuda without a GPU: say so, don't crash
        device = f"error: {exc}"
    gpu = "available" if cuda.is_available() else f"not available ({cuda.why_unavailable()})"
    return [
        ("minicnn", f"{minicnn.__version__} ({os.path.dirname(minicnn.__file__)})"),
        ("python", f"{platform.python_version()} on {platform.system()} {platform.machine()}"),
        ("numpy", np.__version__),
        ("BLAS", _blas_description()),
        ("numba", _numba_description()),
        ("CUDA GPU", gpu),
        ("MINICNN_DEVICE", os.environ.get("MINICNN_DEVICE", "(unset: auto)")),
        ("device", device),
        ("default dtype", "float32"),
        ("CPU cores", str(os.cpu_count())),
    ]


def cmd_info(args):
    lines = info_lines()
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        print(f"{label:<{width}}  {value}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="minicnn", description="minicnn: modern CNNs from scratch, for teaching.")
    import minicnn
    parser.add_argument("--version", action="version", version=f"minicnn {minicnn.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command")
    info = sub.add_parser("info", help="print version, backend, device, BLAS and numba status")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
