"""How a CUDA kernel maps to GPU threads: :func:`show_kernel`, for the lecture (no GPU needed).

It shows a kernel of ``kernels/*.cu`` and its launch for a given input shape: the source with
its thread-mapping comment, the grid and block, and which output element a few threads compute.
The launch is the runtime's own :func:`cuda_kernels.plan`, so what it shows is what runs.
"""
import numpy as np

from minicnn.kernels import cuda_kernels
from minicnn.kernels.geometry import conv_output_size


#: lecture names -> CUDA kernels (see ``kernels/cuda_kernels.py``)
KERNEL_VIEWS = {
    "im2col": "im2col_nhwc",
    "col2im": "col2im_nhwc",
    "max_pool2d_forward": "max_pool2d_forward_nhwc",
    "max_pool2d_backward": "max_pool2d_backward_nhwc",
    "avg_pool2d_forward": "avg_pool2d_forward_nhwc",
    "avg_pool2d_backward": "avg_pool2d_backward_nhwc",
}


class KernelView:
    """A kernel's CUDA source and one launch of it: ``grid``, ``block``, ``total`` (output
    elements, one thread each), ``output_shape``, ``thread(i)`` (the output element thread ``i``
    computes). ``str()`` / the notebook display shows all of it."""

    def __init__(self, name, launch, n_images, output_shape, source, print_source):
        self.name, self.launch, self.output_shape = name, launch, output_shape
        self.n_images = n_images
        self.source, self.print_source = source, print_source
        self.kernel, self.grid, self.block, self.total = (launch.kernel, launch.grid,
                                                          launch.block, launch.total)

    def thread(self, i):
        """``{"n": .., ...}``: the output element thread ``i`` (= blockIdx.x * blockDim.x +
        threadIdx.x) writes."""
        return self.launch.thread(i)

    def __str__(self):
        spec = cuda_kernels.KERNELS[self.kernel]
        g = self.launch.named
        idle = self.grid * self.block - self.total
        lines = []
        if self.print_source:
            lines += [f"// ---- kernels/{spec.file}: {self.kernel} ----", self.source.rstrip(), ""]
        lines += [
            f"launch {self.launch.name} for an input of (N, H, W, C) = "
            f"({self.n_images}, {g['H']}, {g['W']}, {g['C']}) with kernel {g['KH']}x{g['KW']}, "
            f"stride ({g['sH']}, {g['sW']}), padding ({g['pH']}, {g['pW']})"
            + (f", dilation ({g['dH']}, {g['dW']})" if (g.get('dH', 1), g.get('dW', 1)) != (1, 1)
               else "")
            + f", output (OH, OW) = ({g['OH']}, {g['OW']}):",
            f"  {spec.output} has shape {self.output_shape}: {self.total} elements, one thread "
            "each",
            f"  grid = ({self.grid}, 1, 1) blocks, block = ({self.block}, 1, 1) threads: "
            f"{self.grid * self.block} threads, {idle} idle in the last block (i >= total)",
            f"  thread i = blockIdx.x * {self.block} + threadIdx.x -> "
            f"({', '.join(spec.thread)}) of {spec.output}, {spec.thread[-1]} fastest:",
        ]
        shown = sorted({0, 1, min(2, self.total - 1), self.block - 1, self.block,
                        self.total - 1} & set(range(self.total)))
        for i in shown:
            b, t = divmod(i, self.block)
            where = ", ".join(f"{k}={v}" for k, v in self.thread(i).items())
            lines.append(f"    thread {i} -> block {b}, threadIdx {t}: ({where})")
        return "\n".join(lines)

    __repr__ = __str__


def show_kernel(name, shape, kernel_size=3, stride=None, padding=0, dtype="float32",
                print_source=True, dilation=1):
    """Show the CUDA kernel ``name`` (``"im2col"``, ``"col2im"``, ``"max_pool2d_forward"``, ...,
    see :data:`KERNEL_VIEWS`) and its launch for a channels-last input of ``shape``
    (N, H, W, C): the source with its thread-mapping comment, the grid and block, and which
    output element (n, y, x, c / n, oh, ow, kh, kw, c) a few threads compute. Returns a
    :class:`KernelView` (displayed by a notebook; ``print()`` it in a script). Needs no GPU.

    ``stride`` defaults to 1 for im2col/col2im and to the kernel size for pooling, as in
    ``F.conv2d`` and ``F.max_pool2d``; ``dilation`` (im2col, col2im, max pooling) spreads the
    kernel's taps. Example::

        >>> from minicnn.kernels.launch_view import show_kernel
        >>> print(show_kernel("im2col", (64, 28, 28, 1), kernel_size=5, padding=2))
    """
    if name not in KERNEL_VIEWS:
        raise ValueError(f"show_kernel: unknown kernel {name!r}; expected one of "
                         f"{', '.join(KERNEL_VIEWS)}")
    kernel = KERNEL_VIEWS[name]
    if len(shape) != 4:
        raise ValueError(f"show_kernel: shape must be (N, H, W, C), got {tuple(shape)}")
    pair = (lambda v: (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1])))
    k = pair(kernel_size)
    s = pair(stride if stride is not None else (1 if "col" in name else kernel_size))
    p, d = pair(padding), pair(dilation)
    N, H, W, C = (int(v) for v in shape)
    OH, OW = (conv_output_size(*axis) for axis in zip((H, W), k, s, p, d))
    if min(OH, OW) < 1:
        raise ValueError(f"show_kernel: a {k[0]}x{k[1]} kernel with padding {p} leaves no "
                         f"output for a {H}x{W} input")
    if kernel == "im2col_nhwc":
        out_shape = (N * OH * OW, k[0] * k[1] * C)
    elif kernel.endswith("forward_nhwc"):
        out_shape = (N, OH, OW, C)
    else:  # col2im and the pooling backwards write the input-shaped gradient
        out_shape = (N, H, W, C)
    total = int(np.prod(out_shape))
    arrays = {name_: None for ctype, name_ in cuda_kernels.KERNELS[kernel].args
              if ctype.endswith("*")}
    launch = cuda_kernels.plan(kernel, shape, (OH, OW), k, s, p, dtype=dtype, total=total,
                               dilation=d, **arrays)
    return KernelView(name, launch, N, out_shape, cuda_kernels.kernel_source(kernel),
                      print_source)
