"""Which twin of a kernel runs: the one rule every public kernel entry point follows.

Every kernel exists three times (see ``kernels/__init__.py``): a readable NumPy reference, a numba
twin for NumPy arrays and a CUDA twin for CuPy arrays. A public entry point (``im2col``,
``max_pool2d_forward``, ``channel_sums``, ``relu_forward``, ...) asks :func:`choose_twin` once and
branches on the answer, always in the same order::

    def im2col(x, ...):
        twin = choose_twin(x)
        if twin == "reference":
            return im2col_reference(x, ...)
        if twin == "cuda":
            return im2col_cuda(x, ...)
        return im2col_numba(x, ...)

The rule, in order:

1. the reference lane (``MINICNN_KERNELS=reference`` or ``mc.reference_kernels()``, see
   ``minicnn/backend.py``) runs the reference, on any device: the lecture's code, no numba;
2. a CuPy array runs the CUDA twin when its dtype has one (float32, float64), else the
   reference (which works on any array module);
3. anything else runs the numba twin, unless the entry point says its twin cannot take these
   arrays (``numba=False``: e.g. the flat ReLU twins need dense arrays of one layout), and
   then the reference.
"""
from minicnn import backend
from minicnn.kernels.cuda_kernels import CTYPES

#: the names :func:`choose_twin` answers with
TWINS = ("reference", "numba", "cuda")


def choose_twin(array, numba=True):
    """``"reference"``, ``"numba"`` or ``"cuda"``: the twin that runs for ``array`` (the
    kernel's main input; its other arrays live on the same device). See the module doc."""
    if backend.reference_lane():
        return "reference"
    if backend.device_of(array) == "cuda":
        return "cuda" if array.dtype in CTYPES else "reference"
    return "numba" if numba else "reference"
