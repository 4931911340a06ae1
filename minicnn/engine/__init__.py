"""The engine: what makes the ops fast, kept beside them so the op files stay a lesson.

``minicnn/ops/`` says what each op computes (im2col, the GEMMs, col2im, in the lecture's words);
the modules here decide how it runs quickly on the machine: reused buffers, chunks of the batch
on worker threads, special cases (1x1 kernels, one input channel), memory prediction. Under
``MINICNN_KERNELS=reference`` (or ``mc.reference_kernels()``) none of it runs.
"""
