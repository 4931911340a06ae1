"""U-Net (Ronneberger, Fischer, Brox 2015, "U-Net: convolutional networks for biomedical image
segmentation", MICCAI, https://arxiv.org/abs/1505.04597).

    contracting path: depth x [two 3x3 convs + ReLU, 2x2 max-pool] (widths 64, 128, 256, 512)
    bottom:           two 3x3 convs + ReLU (1024)
    expansive path:   depth x [2x2 up-conv (halves the width), skip, two 3x3 convs + ReLU]
    head:             1x1 conv to num_classes scores per pixel

The original (``unet()``: 1 input channel, 2 classes, ``base_channels=64``, ``depth=4``,
unpadded 3x3 convs) has 31,030,658 parameters and maps a 572x572 tile to a 388x388 map of scores:
every unpadded conv trims 2 pixels, so the encoder maps are larger than the decoder maps they
join, and the skip crops them to the centre first (``F.center_crop``) -- the "crop and copy" of
the paper's Fig. 1. :func:`unet_output_size` does this arithmetic; an unpadded U-Net refuses an
input whose maps reach a 2x2 max-pool with an odd size (the paper chooses the tile size so that
they never do: 572 = 16 * 32 + 60).

Variants:

- ``padding=True``: 3x3 convs with padding 1, so the output has the input's size (any size: the
  up-conv picks its ``output_padding`` to meet the skip's size, and nothing is cropped).
- ``skip='sum'``: the FCN-style skip (Long, Shelhamer, Darrell 2015): the cropped encoder map is
  ADDED to the up-conv's output instead of concatenated. The up-conv already halves the width to
  the encoder map's, so the sum has C channels where the concat had 2C, and the first conv of
  each decoder level takes C inputs instead of 2C: the original layout with sum skips has
  27,897,218 parameters (3,133,440 fewer, all in those first decoder convs).
- ``batch_norm=True`` (not in the paper): BN after every 3x3 conv (which then has no bias); it
  lets the small configurations train faster.

Initialisation is the paper's: weights from N(0, 2 / fan_in) with fan_in the number of inputs of
one output (3*3*C_in for a 3x3 conv, C_in for the 2x2 stride-2 up-conv, whose outputs each see one
input pixel), biases 0. The paper's dropout at the end of the contracting path is left out.

State-dict keys: ``encoder.{0..depth}.conv1/conv2`` (``encoder.depth`` is the bottom),
``upconvs.{0..depth-1}`` and ``decoder.{0..depth-1}.conv1/conv2`` from the deepest level up,
``head``.

A small configuration for the 2-core CPU: ``unet(in_channels=1, num_classes=4, base_channels=16,
depth=3, padding=True)`` (481,796 parameters; with ``skip='sum'`` 433,412) on
``mc.data.SyntheticShapes``.
"""
import math

import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn.ops import cat

_SKIPS = ("concat", "sum")


class DoubleConv(nn.Module):
    """Two 3x3 convs, each followed by ReLU (and BN before it when ``batch_norm``):
    ``(N, C_in, H, W) -> (N, C_out, H - 4, W - 4)`` unpadded, ``(N, C_out, H, W)`` padded."""

    def __init__(self, in_channels, out_channels, padding=False, batch_norm=False):
        super().__init__()
        pad, bias = int(padding), not batch_norm
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=pad, bias=bias)
        self.bn1 = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=pad, bias=bias)
        self.bn2 = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))     # N x C_out x H-2 x W-2 (padded: H x W)
        return self.relu(self.bn2(self.conv2(x)))  # N x C_out x H-4 x W-4 (padded: H x W)


def unet_output_size(input_size, depth=4, padding=False):
    """The output size (H or W) of a U-Net for an input of ``input_size``, without running it.

    Unpadded: each DoubleConv trims 4, each pool halves, each up-conv doubles
    (572 -> 568 -> 284 -> ... -> 28 at the bottom -> 56 -> 52 -> ... -> 388). Padded: the input
    size. Raises ValueError when a map shrinks to nothing or reaches a max-pool with an odd size.
    """
    size = int(input_size)
    if padding:
        if size < 2 ** depth:
            raise ValueError(f"U-Net: a {size}-pixel input is too small for depth {depth}: the "
                             f"bottom needs at least 1 pixel (input >= {2 ** depth})")
        return size
    for level in range(depth):
        size -= 4
        if size <= 0 or size % 2:
            raise ValueError(_bad_size_message(input_size, depth, level, size))
        size //= 2
    size -= 4                               # the bottom DoubleConv
    if size <= 0:
        raise ValueError(_bad_size_message(input_size, depth, depth, size))
    for _ in range(depth):
        size = 2 * size - 4                 # up-conv, then DoubleConv
    return size


def _valid_sizes_near(input_size, depth):
    """Unpadded input sizes that keep every pooled map even: 2**depth * m + 4 * (2**depth - 1)
    with m >= 5 the bottom's input size (572 for depth 4, m = 32)."""
    step, offset = 2 ** depth, 4 * (2 ** depth - 1)
    m = max(5, (int(input_size) - offset) // step)
    return sorted({step * max(5, m) + offset, step * (m + 1) + offset})


def _bad_size_message(input_size, depth, level, size):
    what = (f"reaches the max-pool below encoder level {level} (counted from 0) with an odd "
            f"size {size}" if size > 0 else f"shrinks to nothing at encoder level {level}")
    near = " or ".join(str(s) for s in _valid_sizes_near(input_size, depth))
    return (f"U-Net (unpadded 3x3 convs, depth {depth}): a {input_size}x{input_size} input {what}; "
            f"choose an input size such as {near} (unet_output_size gives the output size), or "
            "use padding=True")


class UNet(nn.Module):
    """``UNet(in_channels=1, num_classes=2, base_channels=64, depth=4, padding=False,
    skip='concat', batch_norm=False)``; see the module docstring."""

    def __init__(self, in_channels=1, num_classes=2, base_channels=64, depth=4, padding=False,
                 skip="concat", batch_norm=False):
        super().__init__()
        if skip not in _SKIPS:
            raise ValueError(f"UNet: skip must be one of {_SKIPS}, got {skip!r}")
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"UNet: depth (the number of poolings) must be a positive int, got "
                             f"{depth!r}")
        self.depth, self.padding, self.skip = depth, bool(padding), skip
        widths = [base_channels * 2 ** level for level in range(depth + 1)]  # 64 ... 1024
        self.encoder = nn.ModuleList(
            [DoubleConv(in_channels if level == 0 else widths[level - 1], widths[level],
                        padding, batch_norm) for level in range(depth + 1)])
        self.pool = nn.MaxPool2d(2, 2)
        decoder_levels = list(reversed(range(depth)))     # deepest first: 3, 2, 1, 0
        self.upconvs = nn.ModuleList(
            [nn.ConvTranspose2d(widths[level + 1], widths[level], 2, stride=2)
             for level in decoder_levels])
        join = 2 if skip == "concat" else 1               # concat doubles the channels
        self.decoder = nn.ModuleList(
            [DoubleConv(join * widths[level], widths[level], padding, batch_norm)
             for level in decoder_levels])
        self.head = nn.Conv2d(widths[0], num_classes, 1)
        self.reset_parameters()

    def reset_parameters(self):
        """The paper's initialisation: N(0, 2 / fan_in) weights, zero biases."""
        for m in self.modules():
            if isinstance(m, nn.ConvTranspose2d):
                # weight (C_in, C_out, 2, 2), stride 2: each output pixel sees C_in inputs
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / m.in_channels))
            elif isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            else:
                continue
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def output_size(self, input_size):
        """See :func:`unet_output_size`."""
        return unet_output_size(input_size, self.depth, self.padding)

    def forward(self, x):
        if not self.padding:   # a clear error before any work (and the paper's even-size rule)
            for axis in (2, 3):
                unet_output_size(x.shape[axis], self.depth, False)
        # shapes for the original (unpadded, base 64); padded, the 3x3 convs keep H x W
        skips = []
        for level, block in enumerate(self.encoder):
            if level > 0:
                x = self.pool(x)   # N x 64*2^(l-1) x H_l x W_l (half of the level above)
            x = block(x)           # N x 64*2^l x H_l-4 x W_l-4 (572 -> 568 ... 32 -> 28 bottom)
            skips.append(x)
        skips.pop()                # the bottom is not a skip
        for up, block in zip(self.upconvs, self.decoder):
            skip = skips.pop()     # N x C x H_s x W_s (C = 512, 256, 128, 64)
            if self.padding:
                x = up(x, output_size=skip.shape)  # N x C x H_s x W_s
            else:
                x = up(x)                                 # N x C x 2h x 2w (28 -> 56 ...)
                skip = F.center_crop(skip, x.shape[-2:])  # N x C x 2h x 2w (64 -> 56 ...)
            if self.skip == "concat":
                x = cat([skip, x], axis=1)  # N x 2C x 2h x 2w
            else:
                x = skip + x                   # N x C x 2h x 2w
            x = block(x)                       # N x C x 2h-4 x 2w-4 (56 -> 52 ... 392 -> 388)
        return self.head(x)                    # N x num_classes x 388 x 388 (from 572 x 572)


def unet(in_channels=1, num_classes=2, base_channels=64, depth=4, padding=False, skip="concat",
         batch_norm=False):
    """U-Net; the defaults are the paper's: 31,030,658 parameters, 572x572 -> 388x388.

    ``skip='sum'`` (FCN-style): 27,897,218 parameters at the defaults. The small configuration
    ``unet(1, 4, base_channels=16, depth=3, padding=True)`` has 481,796 (sum: 433,412).
    """
    return UNet(in_channels, num_classes, base_channels, depth, padding, skip, batch_norm)
