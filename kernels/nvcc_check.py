"""Compile every CUDA kernel with nvcc, warnings as errors: the GPU code's check where no GPU is.

    python -m minicnn.kernels.nvcc_check            # what .ci/run runs
    python -m minicnn.kernels.nvcc_check --arch sm_80 --arch sm_90 --keep /tmp/cubins

For every ``kernels/*.cu`` and every architecture (default: sm_80, the A100, and sm_90, the
H100) it compiles the file to a cubin with ``-Werror all-warnings``, together with exactly the
template instantiations the runtime asks CuPy for (``cuda_kernels.name_expressions``: a
template that is never instantiated is never compiled, so without them nvcc would check almost
nothing). Then it looks for every instantiation's mangled name in the cubin. It fails on a
compiler error or warning, on a ``__global__`` template in a ``.cu`` file that the runtime's
table (``cuda_kernels.KERNELS``) does not know, on a table entry whose file has no such kernel,
and when nvcc is missing (a check that silently does not run is no check).

The runtime compiles the same sources with NVRTC (through ``cupy.RawModule``), not with nvcc.
So with ``--nvrtc`` the check also does what CuPy does, with NVRTC itself (the library of the
``nvidia-cuda-nvrtc`` wheel, or CUDA's ``libnvrtc.so``; no GPU needed): it compiles every
``.cu`` for compute_80 and compute_90 with ``cuda_kernels.NVRTC_OPTIONS``, registers every name
expression, fails on an error or a warning in NVRTC's log, and checks that each name expression
lowers to a kernel entry of the PTX (the name CuPy's ``get_function`` looks up).
"""
import argparse
import ctypes
import ctypes.util
import glob
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

from minicnn.kernels import KERNEL_DIR, cuda_kernels, cuda_sources

DEFAULT_ARCHS = ("sm_80", "sm_90")


def find_nvcc():
    """Path of nvcc: ``$NVCC``, then PATH, then /usr/local/cuda/bin; None when there is none."""
    for candidate in (os.environ.get("NVCC"), shutil.which("nvcc"),
                      "/usr/local/cuda/bin/nvcc"):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def mangled_prefix(kernel, ctype):
    """The start of the Itanium-mangled name of ``kernel<ctype>`` (``_Z11im2col_nhwcIfE``)."""
    return f"_Z{len(kernel)}{kernel}I{ {'float': 'f', 'double': 'd'}[ctype]}E"


def instantiation_source(cu_file):
    """A translation unit that includes ``cu_file`` and instantiates the runtime's kernels of it
    (taking their addresses in a host array makes nvcc compile each one for the device)."""
    lines = [f'#include "{cu_file}"', "", "// the instantiations cuda_kernels asks NVRTC for",
             "void* minicnn_instantiations[] = {"]
    for expression in cuda_kernels.name_expressions(cu_file.name):
        lines.append(f"    reinterpret_cast<void*>(&{expression}),")
    lines.append("};")
    return "\n".join(lines) + "\n"


def check_table():
    """Problems between the .cu sources and ``cuda_kernels.KERNELS`` (a list of sentences)."""
    problems = []
    in_sources = {}
    for cu in cuda_sources():
        for name, args in cuda_kernels.parse_signatures(cu.read_text()).items():
            in_sources[name] = (cu.name, args)
    for name, (file, args) in in_sources.items():
        spec = cuda_kernels.KERNELS.get(name)
        if spec is None:
            problems.append(f"{file}: kernel {name} is not in cuda_kernels.KERNELS (the runtime "
                            "would never load it and this check would never compile it)")
        elif spec.file != file or tuple(spec.args) != args:
            problems.append(f"{file}: kernel {name}{args} differs from cuda_kernels.KERNELS "
                            f"({spec.file}: {spec.args})")
    for name, spec in cuda_kernels.KERNELS.items():
        if name not in in_sources:
            problems.append(f"cuda_kernels.KERNELS names {name} in {spec.file}, which has no "
                            "such template <typename T> __global__ kernel")
    return problems


def compile_one(nvcc, cu, arch, workdir, keep=None):
    """Compile ``cu`` for ``arch``; returns a list of problems (empty when all is well)."""
    unit = workdir / f"{cu.stem}_{arch}_check.cu"
    unit.write_text(instantiation_source(cu))
    cubin = workdir / f"{cu.stem}_{arch}.cubin"
    command = [nvcc, "-cubin", f"-arch={arch}", "-Werror", "all-warnings",
               "-Xptxas", "-Werror", "-I", str(KERNEL_DIR), "-o", str(cubin), str(unit)]
    result = subprocess.run(command, capture_output=True, text=True)
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        return [f"{cu.name} [{arch}]: nvcc failed (exit {result.returncode}):\n{output}\n"
                f"command: {' '.join(command)}"]
    if "warning" in output.lower():
        return [f"{cu.name} [{arch}]: nvcc warned:\n{output}"]
    binary = cubin.read_bytes()
    problems = []
    for kernel, ctype, expression in cuda_kernels.instantiations(cu.name):
        if mangled_prefix(kernel, ctype).encode() not in binary:
            problems.append(f"{cu.name} [{arch}]: {expression} is missing from the cubin")
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(cubin, keep / cubin.name)
    return problems


# ---------------------------------------------------------------------------------------------
# NVRTC, as CuPy uses it
# ---------------------------------------------------------------------------------------------

def find_nvrtc():
    """Path of libnvrtc: ``$NVRTC_LIBRARY``, the ``nvidia-cuda-nvrtc`` wheel, the CUDA toolkit,
    the system's library path; None when there is none."""
    candidates = [os.environ.get("NVRTC_LIBRARY")]
    try:
        import nvidia  # optional: the nvidia-cuda-nvrtc wheel, only where it is installed
        for root in nvidia.__path__:
            candidates += sorted(glob.glob(os.path.join(root, "*", "lib", "libnvrtc.so*")))
    except ImportError:
        pass
    candidates += sorted(glob.glob("/usr/local/cuda/lib64/libnvrtc.so*"))
    candidates.append(ctypes.util.find_library("nvrtc"))
    for path in candidates:
        if path and os.path.exists(path) and "builtins" not in os.path.basename(path):
            return path
    return None


class NVRTC:
    """The few NVRTC calls CuPy's ``RawModule(code, options, name_expressions)`` makes."""

    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        self.lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._call("nvrtcVersion", ctypes.byref(major), ctypes.byref(minor))
        self.version = f"{major.value}.{minor.value}"

    def _call(self, name, *args):
        result = getattr(self.lib, name)(*args)
        if result != 0:
            raise RuntimeError(f"{name}: {self.lib.nvrtcGetErrorString(result).decode()}")

    def compile(self, text, filename, arch, options, name_expressions):
        """Compile ``text`` for ``arch`` (``compute_80``); returns ``(log, ptx, {name expression:
        lowered name})``; raises RuntimeError (with the log) when NVRTC fails."""
        program = ctypes.c_void_p()
        self._call("nvrtcCreateProgram", ctypes.byref(program), text.encode(), filename.encode(),
                   0, None, None)
        try:
            for expression in name_expressions:
                self._call("nvrtcAddNameExpression", program, expression.encode())
            opts = [f"--gpu-architecture={arch}".encode(), *(o.encode() for o in options)]
            array = (ctypes.c_char_p * len(opts))(*opts)
            result = self.lib.nvrtcCompileProgram(program, len(opts), array)
            size = ctypes.c_size_t()
            self._call("nvrtcGetProgramLogSize", program, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            self._call("nvrtcGetProgramLog", program, log)
            log = log.value.decode(errors="replace").strip()
            if result != 0:
                raise RuntimeError(f"NVRTC failed: {self.lib.nvrtcGetErrorString(result).decode()}"
                                   f"\n{log}")
            self._call("nvrtcGetPTXSize", program, ctypes.byref(size))
            ptx = ctypes.create_string_buffer(size.value)
            self._call("nvrtcGetPTX", program, ptx)
            lowered = {}
            for expression in name_expressions:
                name = ctypes.c_char_p()
                self._call("nvrtcGetLoweredName", program, expression.encode(), ctypes.byref(name))
                lowered[expression] = name.value.decode()
            return log, ptx.value.decode(), lowered
        finally:
            self._call("nvrtcDestroyProgram", ctypes.byref(program))


def nvrtc_check_one(nvrtc, cu, arch):
    """Compile ``cu`` with NVRTC as the runtime does; returns a list of problems."""
    expressions = cuda_kernels.name_expressions(cu.name)
    try:
        log, ptx, lowered = nvrtc.compile(cu.read_text(), cu.name, arch,
                                          cuda_kernels.NVRTC_OPTIONS, expressions)
    except RuntimeError as exc:
        return [f"{cu.name} [NVRTC {arch}]: {exc}"]
    problems = [f"{cu.name} [NVRTC {arch}]: NVRTC warned:\n{log}"] if log else []
    for expression, name in lowered.items():
        if f".entry {name}(" not in ptx:
            problems.append(f"{cu.name} [NVRTC {arch}]: {expression} lowers to {name}, which is "
                            "not a kernel entry of the PTX")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", action="append", help="sm_XX (repeatable; default sm_80, "
                        "sm_90)")
    parser.add_argument("--keep", type=pathlib.Path, help="copy the cubins into this folder")
    parser.add_argument("--nvrtc", action="store_true", help="also compile with NVRTC as CuPy "
                        "does (fails when no libnvrtc is found: pip install nvidia-cuda-nvrtc)")
    args = parser.parse_args(argv)
    archs = args.arch or list(DEFAULT_ARCHS)
    nvcc = find_nvcc()
    if nvcc is None:
        print("nvcc_check: FAILED: nvcc not found (looked at $NVCC, PATH and "
              "/usr/local/cuda/bin/nvcc). Install the CUDA toolkit (CUDA 12.0 or newer) or set "
              "NVCC=/path/to/nvcc; the CUDA kernels cannot be checked without it.",
              file=sys.stderr)
        return 2
    sources = cuda_sources()
    if not sources:
        print(f"nvcc_check: FAILED: no .cu files in {KERNEL_DIR}", file=sys.stderr)
        return 2
    version = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
    print(f"nvcc_check: {nvcc}: {version.strip().splitlines()[-1] if version else '?'}")
    problems = check_table()
    with tempfile.TemporaryDirectory(prefix="minicnn-nvcc-") as tmp:
        for cu in sources:
            for arch in archs:
                found = compile_one(nvcc, cu, arch, pathlib.Path(tmp), args.keep)
                problems += found
                n = len(cuda_kernels.name_expressions(cu.name))
                print(f"  {cu.name:<14} {arch}: {'FAILED' if found else 'ok'} "
                      f"({n} instantiations, -Werror all-warnings)")
    if args.nvrtc:
        path = find_nvrtc()
        if path is None:
            print("nvcc_check: FAILED: --nvrtc asked for, but no libnvrtc was found (pip install "
                  "nvidia-cuda-nvrtc, or set NVRTC_LIBRARY=/path/to/libnvrtc.so)", file=sys.stderr)
            return 2
        nvrtc = NVRTC(path)
        print(f"nvcc_check: NVRTC {nvrtc.version} ({path})")
        for cu in sources:
            for arch in ("compute_" + a.split("_")[1] for a in archs):
                found = nvrtc_check_one(nvrtc, cu, arch)
                problems += found
                print(f"  {cu.name:<14} {arch}: {'FAILED' if found else 'ok'} (NVRTC, "
                      f"{len(cuda_kernels.name_expressions(cu.name))} name expressions lowered)")
    if problems:
        print("nvcc_check: FAILED\n" + "\n".join(problems), file=sys.stderr)
        return 1
    print(f"nvcc_check: {len(sources)} files x {len(archs)} architectures compiled cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
