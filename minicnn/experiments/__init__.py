"""The lecture's experiments: runners that use the library's tools, their pictures and their CLI.

The tools they measure with live in the library (``minicnn.gradflow``, ``minicnn.transfer``);
the committed results live in the repository's top-level ``experiments/`` folder.
"""
