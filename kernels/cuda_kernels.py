"""Loading and launching the CUDA C kernels (``kernels/*.cu``) through CuPy.

Every kernel is a template over the element type ``T`` (``float`` or ``double``) that runs one
thread per output element (see the header comment of each kernel in its ``.cu`` file). This
module holds:

* :data:`KERNELS`, the table of every kernel: its ``.cu`` file and its argument list, written out
  as in the source (``"const T*"``, ``"int"``, ...). The launch code converts arguments by this
  table, the nvcc compile check (``kernels/nvcc_check.py``) instantiates the kernels by it, and
  ``tests/test_cuda_kernels.py`` checks it against the sources, so a kernel renamed or an argument
  added in a ``.cu`` file cannot go unnoticed;
* :func:`launch`, the one launch helper every CUDA twin calls (``im2col_cuda`` in
  ``kernels/im2col.py``, ``max_pool2d_forward_cuda`` in ``kernels/pooling.py``, ...): it takes
  the kernel's name, the image geometry and the arrays by name, types the arguments by the table
  and the grid by the output's size (:func:`plan`), compiles the ``.cu`` file on first use
  (:func:`module`: ``cupy.RawModule``, NVRTC, cached) and runs the kernel. :func:`plan` needs
  no GPU: the host-side test harness (which swaps :func:`launch` for a CPU run of the same
  plan) and :func:`launch_view.show_kernel` use it too.
"""
import dataclasses
import functools
import re

import numpy as np

from minicnn.kernels import KERNEL_DIR

#: threads per block: a multiple of the warp size (32); 256 keeps several blocks resident per
#: multiprocessor for these register-light kernels.
BLOCK = 256

#: options passed to NVRTC besides those CuPy adds (the architecture of the device); none:
#: NVRTC's default language standard (C++17) and IEEE-exact division and square root
NVRTC_OPTIONS = ()

#: the C types of the templates' instantiations, per NumPy dtype
CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

_IMAGE_ARGS = (("long long", "total"), ("int", "H"), ("int", "W"), ("int", "C"), ("int", "KH"),
               ("int", "KW"), ("int", "sH"), ("int", "sW"), ("int", "pH"), ("int", "pW"),
               ("int", "OH"), ("int", "OW"))
#: the same with the dilation ``(dH, dW)`` after the padding, for the kernels whose window taps
#: may be spread out (im2col, col2im, max pooling; average pooling has no dilation in PyTorch)
_DILATED_ARGS = _IMAGE_ARGS[:10] + (("int", "dH"), ("int", "dW")) + _IMAGE_ARGS[10:]


@dataclasses.dataclass(frozen=True)
class KernelSpec:
    """One ``__global__`` template: its source file, its arguments ``(C type, name)`` in order,
    and what one thread computes (``thread``: the output element's index names, outermost
    first; ``output``: the argument whose elements the threads write, one each)."""
    file: str
    args: tuple
    thread: tuple
    output: str


KERNELS = {
    "im2col_nhwc": KernelSpec(
        "im2col.cu", (("const T*", "x"), ("T*", "cols")) + _DILATED_ARGS,
        ("n", "oh", "ow", "kh", "kw", "c"), "cols"),
    "col2im_nhwc": KernelSpec(
        "im2col.cu", (("const T*", "cols"), ("T*", "image")) + _DILATED_ARGS,
        ("n", "y", "x", "c"), "image"),
    "max_pool2d_forward_nhwc": KernelSpec(
        "pooling.cu", (("const T*", "x"), ("T*", "y"), ("int*", "indices")) + _DILATED_ARGS,
        ("n", "oh", "ow", "c"), "y"),
    "max_pool2d_backward_nhwc": KernelSpec(
        "pooling.cu", (("const T*", "gy"), ("const int*", "indices"), ("T*", "gx"))
        + _DILATED_ARGS, ("n", "y", "x", "c"), "gx"),
    "avg_pool2d_forward_nhwc": KernelSpec(
        "pooling.cu", (("const T*", "x"), ("const T*", "divisors"), ("T*", "y")) + _IMAGE_ARGS,
        ("n", "oh", "ow", "c"), "y"),
    "avg_pool2d_backward_nhwc": KernelSpec(
        "pooling.cu", (("const T*", "gy"), ("const T*", "divisors"), ("T*", "gx"))
        + _IMAGE_ARGS, ("n", "y", "x", "c"), "gx"),
}


def name_expression(kernel, dtype):
    """``"im2col_nhwc<float>"``: how NVRTC and CuPy name one instantiation."""
    dtype = np.dtype(dtype)
    if dtype not in CTYPES:
        raise TypeError(f"{kernel}: the CUDA kernels take float32 or float64 arrays, got {dtype}")
    return f"{kernel}<{CTYPES[dtype]}>"


def instantiations(file=None):
    """``(kernel, C type, name expression)`` of every instantiation the runtime uses (of the
    kernels of ``file``, e.g. ``"im2col.cu"``, when given): ``("im2col_nhwc", "float",
    "im2col_nhwc<float>")``, ... The nvcc check and the host harness build theirs from this."""
    return [(k, ctype, name_expression(k, dtype)) for k, spec in KERNELS.items()
            if file in (None, spec.file) for dtype, ctype in CTYPES.items()]


def name_expressions(file):
    """Every instantiation the runtime asks ``file`` (e.g. ``"im2col.cu"``) for."""
    return [expression for _, _, expression in instantiations(file)]


def element_ctype(ctype, t="T"):
    """The element type of a pointer argument, with ``T`` replaced by ``t``: ``"const T*"`` ->
    ``"T"`` (or ``t``), ``"int*"`` -> ``"int"``."""
    base = ctype.replace("const", "").replace("*", "").strip()
    return t if base == "T" else base


def check_array(kernel, ctype, name, value, dtype, module="cupy"):
    """Raise unless ``value``, for the pointer argument ``ctype name`` of ``kernel``
    instantiated for ``dtype``, is a C-contiguous array of ``module`` (``"cupy"``; the host
    harness: ``"numpy"``) with the pointer's element type: a wrong pointer type would not fail,
    it would compute garbage."""
    want = np.dtype(dtype) if element_ctype(ctype) == "T" else np.dtype(np.int32)
    if type(value).__module__.split(".")[0] != module:
        kind = {"cupy": "CuPy", "numpy": "NumPy"}[module]
        raise TypeError(f"{kernel}: argument {name} must be a {kind} array, got "
                        f"{type(value).__name__}")
    if value.dtype != want or not value.flags.c_contiguous:
        raise ValueError(f"{kernel}: argument {name} must be a C-contiguous {want} array, got "
                         f"{value.dtype}{'' if value.flags.c_contiguous else ' (not contiguous)'}")


def source(file):
    """The text of ``kernels/<file>``."""
    return (KERNEL_DIR / file).read_text()


# ---------------------------------------------------------------------------------------------
# Launch plans (no GPU needed)
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Launch:
    """Everything a launch needs: ``kernel`` (its name), ``name`` (the name expression), ``grid``
    and ``block`` (1-D: one thread per output element), ``total`` (output elements) and ``args``
    (in the kernel's order: arrays as given, scalars as NumPy ``int32``/``int64``)."""
    kernel: str
    dtype: np.dtype
    name: str
    grid: int
    block: int
    total: int
    args: tuple
    named: dict

    def thread(self, i):
        """The output element thread ``i`` computes, as ``{"n": .., "oh": .., ...}`` (the
        decomposition written in the kernel's header comment)."""
        return thread_index(self.kernel, i, self.named)


_INT_RANGE = {"int": (np.int32, 2 ** 31 - 1), "long long": (np.int64, 2 ** 63 - 1)}


def plan(kernel, image_shape, output_size, kernel_size, stride, padding, dtype=None,
         total=None, dilation=(1, 1), **arrays):
    """The :class:`Launch` of ``kernel`` (any of :data:`KERNELS`: they share the image
    arguments) for an input image of ``image_shape`` (N, H, W, C), ``output_size`` (OH, OW)
    output pixels, the pairs ``kernel_size``, ``stride``, ``padding`` and ``dilation`` (only for
    the kernels that take ``dH, dW``; the others refuse a dilation other than 1), and the
    kernel's arrays by name. One thread per element of the output array
    (``KernelSpec.output``), whose dtype is the template's ``T``; ``dtype`` and ``total`` stand
    in for them when the arrays are None (:func:`launch_view.show_kernel`). Scalars are
    range-checked and typed by the table; arrays are passed through (:func:`launch` checks
    them)."""
    spec = KERNELS[kernel]
    output = arrays.get(spec.output)
    dtype = np.dtype(output.dtype if dtype is None else dtype)
    total = output.size if total is None else total
    N, H, W, C = (int(s) for s in image_shape)
    (KH, KW), (sH, sW), (pH, pW), (OH, OW) = kernel_size, stride, padding, output_size
    args = dict(arrays, total=int(total), H=H, W=W, C=C, KH=KH, KW=KW, sH=sH, sW=sW, pH=pH,
                pW=pW, OH=OH, OW=OW)
    names = [name for _, name in spec.args]
    if "dH" in names:
        args["dH"], args["dW"] = (int(d) for d in dilation)
    elif tuple(dilation) != (1, 1):
        raise TypeError(f"{kernel}: the kernel takes no dilation, got {tuple(dilation)}")
    missing, extra = set(names) - set(args), set(args) - set(names)
    if missing or extra:
        raise TypeError(f"{kernel}: arguments {sorted(missing)} missing, {sorted(extra)} unknown")
    typed = []
    for ctype, name in spec.args:
        value = args[name]
        if ctype in _INT_RANGE:
            np_type, top = _INT_RANGE[ctype]
            if not 0 <= int(value) <= top:
                raise ValueError(f"{kernel}: {name}={value} does not fit the kernel's {ctype}")
            value = np_type(value)
        typed.append(value)
    grid = max(1, -(-int(total) // BLOCK))
    if grid > 2 ** 31 - 1:
        raise ValueError(f"{kernel}: {total} elements need more than 2^31-1 blocks")
    return Launch(kernel, dtype, name_expression(kernel, dtype), grid, BLOCK, int(total),
                  tuple(typed), args)


def thread_index(kernel, i, args):
    """Python mirror of the index decomposition in ``kernel``'s header comment: the output
    element ``{"n": .., ...}`` that thread ``i`` writes (``args``: the launch's named scalars).
    Used by :func:`launch_view.show_kernel`; the host-run test checks it against the kernels."""
    sizes = {"n": None, "oh": args["OH"], "ow": args["OW"], "kh": args["KH"], "kw": args["KW"],
             "c": args["C"], "y": args["H"], "x": args["W"]}
    index = {}
    rest = int(i)
    for name in reversed(KERNELS[kernel].thread[1:]):  # innermost (fastest) first
        rest, index[name] = divmod(rest, sizes[name])
    index[KERNELS[kernel].thread[0]] = rest
    return {name: index[name] for name in KERNELS[kernel].thread}


# ---------------------------------------------------------------------------------------------
# CuPy: modules and launches
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def module(file):
    """The ``cupy.RawModule`` of ``kernels/<file>`` with every instantiation of :data:`KERNELS`
    named; compiled by NVRTC at the first :meth:`get_function` (CuPy caches the binary on disk,
    this cache keeps the module object)."""
    import cupy  # lazy: CuPy is an optional, heavy dependency (only the GPU path needs it)
    return cupy.RawModule(code=source(file), options=NVRTC_OPTIONS,
                          name_expressions=name_expressions(file))


def launch(kernel, image_shape, output_size, kernel_size, stride, padding, dilation=(1, 1),
           **arrays):
    """Run the CUDA kernel ``kernel`` on the current GPU, one thread per output element: the
    launch every CUDA twin calls. Arguments as for :func:`plan`; the arrays must be C-contiguous
    CuPy arrays of the kernel's types (checked here: a wrong pointer type would not fail, it
    would compute garbage). Returns the :class:`Launch`.

    NOTE: ``host_harness.emulate`` replaces this function (the module attribute), so the twins
    must call it as ``cuda_kernels.launch``, never bind it at import.
    """
    p = plan(kernel, image_shape, output_size, kernel_size, stride, padding,
             dilation=dilation, **arrays)
    if p.total == 0:
        return p
    spec = KERNELS[kernel]
    for (ctype, name), value in zip(spec.args, p.args):
        if ctype.endswith("*"):
            check_array(kernel, ctype, name, value, p.dtype)
    function = module(spec.file).get_function(p.name)   # compiled on first use, then cached
    function((p.grid,), (p.block,), p.args)
    return p


# ---------------------------------------------------------------------------------------------
# Signatures in the sources (for the test that keeps KERNELS honest, and for show_kernel)
# ---------------------------------------------------------------------------------------------

_GLOBAL = re.compile(r"template\s*<\s*typename\s+T\s*>\s*__global__\s+void\s+(\w+)\s*\(([^)]*)\)")


def parse_signatures(text):
    """``{kernel name: ((C type, arg name), ...)}`` of every ``template <typename T> __global__``
    function in a ``.cu`` source (``__restrict__`` dropped, whitespace normalised)."""
    found = {}
    for name, arglist in _GLOBAL.findall(text):
        args = []
        for arg in arglist.split(","):
            words = arg.replace("*", " * ").replace("__restrict__", " ").split()
            ctype = " ".join(words[:-1]).replace(" *", "*")
            args.append((ctype, words[-1]))
        found[name] = tuple(args)
    return found


def kernel_source(kernel):
    """The lines of ``kernel``'s ``.cu`` file from its header comment to the end of its
    ``__global__`` function (the per-element ``__host__ __device__`` body included)."""
    text = source(KERNELS[kernel].file)
    lines = text.splitlines()
    start_global = next(i for i, line in enumerate(lines)
                        if re.search(rf"__global__\s+void\s+{kernel}\s*\(", line))
    end = next(i for i in range(start_global, len(lines)) if lines[i] == "}")
    start = start_global
    # back up over the element function to the header comment block ("// ---" rule above it)
    while start > 0 and not lines[start - 1].startswith("// ----"):
        start -= 1
    while start > 1 and lines[start - 2].startswith("//"):
        start -= 1
    return "\n".join(lines[start - 1:end + 1]) + "\n"
