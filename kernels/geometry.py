"""Output sizes of sliding windows: the one place minicnn computes them.

A window of ``kernel`` taps, ``dilation`` apart, slides with step ``stride`` over an axis of
``size`` samples padded by ``padding`` on each side. The window spans
``dilation * (kernel - 1) + 1`` samples, so it fits

    out = floor((size + 2*padding - dilation*(kernel - 1) - 1) / stride) + 1

times (PyTorch's formula for convolution and pooling). Pooling with ``ceil_mode`` rounds up
instead, but never lets the last window start inside the right padding. A transposed
convolution runs the same relation backwards:

    out = (size - 1)*stride - 2*padding + dilation*(kernel - 1) + output_padding + 1
"""


def window_span(kernel, dilation=1):
    """Samples covered by a window of ``kernel`` taps spaced ``dilation`` apart."""
    return dilation * (kernel - 1) + 1


def conv_output_size(size, kernel, stride=1, padding=0, dilation=1, ceil_mode=False):
    """Output length along one axis of a convolution or pooling window (see the module doc).

    May be zero or negative: callers turn that into an error naming their op.
    """
    reach = size + 2 * padding - window_span(kernel, dilation)
    if not ceil_mode:
        return reach // stride + 1
    out = -(-reach // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1  # the last window would start in the right padding: drop it
    return out


def conv_transpose_output_size(size, kernel, stride=1, padding=0, output_padding=0, dilation=1):
    """Output length along one axis of a transposed convolution (see the module doc)."""
    return (size - 1) * stride - 2 * padding + window_span(kernel, dilation) + output_padding
