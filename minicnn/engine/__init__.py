"""The engine: what makes the ops fast, kept beside them so the op files stay a lesson.

``minicnn/ops/`` says what each op computes (im2col, the GEMMs, col2im, in the lecture's words);
the modules here decide how it runs quickly on the machine:

* ``conv.py`` -- the calls ``ops/conv.py`` makes (forward, backward, and the same for the
  transposed convolution), the reference lane written out, the fast paths and their speed notes;
* ``parallel.py`` -- chunks of the batch on worker threads, each with a single-threaded GEMM;
* ``workspace.py`` -- column buffers reused from call to call;
* ``memory.py`` -- how many bytes of column buffers a layer will take (``minicnn.summary``).

Under ``MINICNN_KERNELS=reference`` (or ``mc.reference_kernels()``) none of the machinery runs:
the calls take the plain NumPy version, the lecture's. The engine imports only the runtime
(``minicnn.backend``, ``minicnn.threads``) and the kernels, never the ops above it.
"""
