"""kernels/geometry.py, the one place output sizes are computed, against PyTorch's own layers."""
import itertools

import pytest

from minicnn.kernels.geometry import conv_output_size, conv_transpose_output_size

torch = pytest.importorskip("torch", reason="PyTorch's layers are the reference for sizes")

GEOMETRIES = list(itertools.product((5, 8), (1, 3), (1, 2, 3), (0, 1), (1, 2)))


@pytest.mark.parametrize("size, kernel, stride, padding, dilation", GEOMETRIES)
def test_conv_output_size_is_pytorchs(size, kernel, stride, padding, dilation):
    conv = torch.nn.Conv1d(1, 1, kernel, stride, padding, dilation)
    reach = size + 2 * padding - dilation * (kernel - 1) - 1
    if reach < 0:
        assert conv_output_size(size, kernel, stride, padding, dilation) <= 0
        return
    expected = conv(torch.zeros(1, 1, size)).shape[-1]
    assert conv_output_size(size, kernel, stride, padding, dilation) == expected


@pytest.mark.parametrize("size, kernel, stride, padding, dilation", GEOMETRIES)
def test_pooling_output_size_with_ceil_mode_is_pytorchs(size, kernel, stride, padding,
                                                        dilation):
    if padding > kernel // 2 or size + 2 * padding < dilation * (kernel - 1) + 1:
        return  # PyTorch refuses these windows
    pool = torch.nn.MaxPool1d(kernel, stride, padding, dilation, ceil_mode=True)
    expected = pool(torch.zeros(1, 1, size)).shape[-1]
    assert conv_output_size(size, kernel, stride, padding, dilation, ceil_mode=True) == expected


@pytest.mark.parametrize("size, kernel, stride, padding, dilation", GEOMETRIES)
def test_transposed_output_size_is_pytorchs(size, kernel, stride, padding, dilation):
    for output_padding in range(max(stride, dilation)):
        layer = torch.nn.ConvTranspose1d(1, 1, kernel, stride, padding, output_padding,
                                         dilation=dilation)
        try:
            expected = layer(torch.zeros(1, 1, size)).shape[-1]
        except RuntimeError:
            continue  # a combination PyTorch refuses
        assert conv_transpose_output_size(size, kernel, stride, padding, output_padding,
                                          dilation) == expected
