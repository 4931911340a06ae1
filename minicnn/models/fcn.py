"""FCN: fully convolutional networks (Long, Shelhamer, Darrell 2015, "Fully convolutional networks
for semantic segmentation", CVPR; https://arxiv.org/abs/1411.4038).

A classifier made fully convolutional: VGG-16's conv layers (``features``, the paper's Table 1
column D, the same ``CFGS``/``make_layers`` as :mod:`minicnn.models.vgg`, so the keys are
``features.N.*``), its two fully connected layers as convolutions (``fc6``: 7x7, 4096 channels;
``fc7``: 1x1, 4096; ReLU and dropout after each), a 1x1 conv to class scores (``score_fr``) at
stride 32, and *score* upsampling back to the input's size. The decoder is light: it carries
``num_classes`` maps, not features (U-Net's expanding path, by contrast, mirrors the contracting
path with as many feature maps).

    FCN-32s (``stride=32``): scores at stride 32 -> upsample x32 (the coarse baseline, no skip)
    FCN-16s (``stride=16``): upscore2(scores) + score_pool4(pool4) -> upsample x16
    FCN-8s  (``stride=8``):  upscore2(scores) + score_pool4(pool4) -> upscore_pool4(.)
                             + score_pool3(pool3) -> upsample x8

The skips are **sums** of class scores: ``score_pool4`` and ``score_pool3`` are 1x1 convs that
turn the pooled maps into scores, and each is added to the upsampled coarser scores. As in the
paper (section 4.2), the new skip layers are zero-initialised "so that the net starts with
unmodified predictions", the 2x upsamplings (``upscore2``, ``upscore_pool4``: transposed convs
with kernel 4, stride 2, no bias) are initialised to bilinear interpolation and learned, and the
final upsampling (kernel 2s, stride s) is fixed to bilinear interpolation (section 4.3) -- a
buffer here, not a parameter. The class scoring layer ``score_fr`` is zero-initialised too
(section 4.3: random initialisation "gave neither better performance nor faster convergence").

At the paper's configuration (``fcn8s()``: 3 input channels, 21 PASCAL VOC classes) the net has
134,376,863 trainable parameters (the paper's Table 1: 134M for FCN-VGG16); ``fcn32s()`` has
134,346,581 (the skips add 30,282).

Departures from the reference Caffe nets: ``fc6`` is padded (3 pixels: "same") instead of
padding the first conv by 100 pixels and cropping at the end, so any input size works without
crops; each transposed conv picks its ``output_padding`` to meet the size of the map it joins
(the input itself for the last one), so sizes that are not multiples of 32 work too. The encoder
is initialised here from scratch (``kaiming_normal_(fan_in, relu)``, biases 0), where the paper
starts from ImageNet-trained VGG-16 weights (which load by name into ``features``).

``fcn_small(...)``: the same design for 32x32 or 48x48 images on a CPU: every encoder width
scaled by ``width / 64`` (``width=16``: 16-32-64-128-128), ``fc6`` a 3x3 conv and ``fc6``/``fc7``
``16 * width`` wide, no dropout.
"""
import numpy as np

import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn.models.vgg import CFGS, make_layers

_STRIDES = (8, 16, 32)


def bilinear_kernel(size):
    """The ``size x size`` kernel of bilinear interpolation (a tent), for a transposed conv of
    stride ``ceil(size / 2)``: ``kernel[i, j] = (1 - |i - c| / f) * (1 - |j - c| / f)`` with
    ``f = ceil(size / 2)`` and centre ``c`` (``f - 1`` for an odd size, ``f - 0.5`` even)."""
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 else factor - 0.5
    tent = 1 - np.abs(np.arange(size) - centre) / factor
    return np.outer(tent, tent).astype(np.float32)


def bilinear_upsampling_weight(channels, size):
    """A ``(channels, channels, size, size)`` transposed-conv weight that upsamples each channel
    by itself (bilinear kernel on the diagonal, zeros across channels)."""
    weight = np.zeros((channels, channels, size, size), dtype=np.float32)
    weight[np.arange(channels), np.arange(channels)] = bilinear_kernel(size)
    return weight


class FCN(nn.Module):
    """``FCN(num_classes=21, in_channels=3, stride=8, width=64, cfg='D', head_width=4096,
    head_kernel=7, dropout=0.5, batch_norm=False)``; see the module docstring.

    ``stride`` (8, 16 or 32) is the output stride of the finest scores: FCN-8s, -16s, -32s.
    """

    def __init__(self, num_classes=21, in_channels=3, stride=8, width=64, cfg="D",
                 head_width=4096, head_kernel=7, dropout=0.5, batch_norm=False):
        super().__init__()
        if stride not in _STRIDES:
            raise ValueError(f"FCN: stride must be one of {_STRIDES} (FCN-8s, -16s, -32s), got "
                             f"{stride!r}")
        layout = CFGS[cfg]
        if layout.count("M") != 5:
            raise ValueError(f"FCN: the encoder config must have 5 max pools (pool3 and pool4 "
                             f"feed the skips, pool5 the scores), got {layout.count('M')}")
        self.stride, self.num_classes = stride, num_classes
        self.features = make_layers(layout, batch_norm, in_channels, width)
        # the width entering each pool: pool3 and pool4 feed the skips
        pool_widths = [layout[i - 1] * width // 64 for i, v in enumerate(layout) if v == "M"]
        self.fc6 = nn.Conv2d(pool_widths[4], head_width, head_kernel, padding=head_kernel // 2)
        self.fc7 = nn.Conv2d(head_width, head_width, 1)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(p=dropout)
        self.score_fr = nn.Conv2d(head_width, num_classes, 1)
        if stride <= 16:
            self.score_pool4 = nn.Conv2d(pool_widths[3], num_classes, 1)
            self.upscore2 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1,
                                               bias=False)
        if stride == 8:
            self.score_pool3 = nn.Conv2d(pool_widths[2], num_classes, 1)
            self.upscore_pool4 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2,
                                                    padding=1, bias=False)
        # the final, fixed upsampling: one bilinear kernel per class (groups=num_classes)
        kernel = bilinear_kernel(2 * stride)[None, None]
        self.register_buffer("upscore_weight", np.repeat(kernel, num_classes, axis=0))
        self.reset_parameters()

    def reset_parameters(self):
        """The encoder from scratch (He: N(0, 2 / fan_in), biases 0); the scoring layers zero;
        the learned 2x upsamplings bilinear (see the module docstring)."""
        for m in self.modules():
            if isinstance(m, nn.ConvTranspose2d):
                m.weight.data[...] = bilinear_upsampling_weight(m.in_channels, m.kernel_size[0])
            elif isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for name in ("score_fr", "score_pool4", "score_pool3"):
            if hasattr(self, name):
                nn.init.zeros_(getattr(self, name).weight)
                nn.init.zeros_(getattr(self, name).bias)

    def encode(self, x):
        """``(pool3, pool4, pool5)``: the encoder's maps at strides 8, 16 and 32."""
        pools = []
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.MaxPool2d):
                pools.append(x)   # N x 64 x H/2 ... N x 512 x H/32 (VGG-16)
        return pools[2], pools[3], pools[4]

    def forward(self, x):
        # shapes for fcn8s() at N x 3 x 512 x 512 (21 classes)
        size = x.shape[-2:]
        pool3, pool4, pool5 = self.encode(x)        # N x 256 x 64 x 64, 512 x 32, 512 x 16
        h = self.drop(self.relu(self.fc6(pool5)))   # N x 4096 x 16 x 16
        h = self.drop(self.relu(self.fc7(h)))       # N x 4096 x 16 x 16
        scores = self.score_fr(h)                   # N x 21 x 16 x 16 (stride 32)
        if self.stride <= 16:
            scores = (self.upscore2(scores, output_size=pool4.shape)  # N x 21 x 32 x 32
                      + self.score_pool4(pool4))                      # sum skip (stride 16)
        if self.stride == 8:
            scores = (self.upscore_pool4(scores, output_size=pool3.shape)  # N x 21 x 64 x 64
                      + self.score_pool3(pool3))                           # sum skip (stride 8)
        return self.upsample(scores, size)          # N x 21 x 512 x 512

    def upsample(self, scores, size):
        """The final, fixed bilinear upsampling by ``self.stride`` to ``size`` (H, W)."""
        s = self.stride
        smallest = [(n - 1) * s - 2 * (s // 2) + 2 * s for n in scores.shape[-2:]]
        extra = [int(want) - small for want, small in zip(size, smallest)]
        if not all(0 <= e < s for e in extra):
            raise ValueError(f"FCN: scores of shape {tuple(scores.shape)} at stride {s} cannot "
                             f"be upsampled to {tuple(size)}")
        return F.conv_transpose2d(scores, self.upscore_weight, None, stride=s, padding=s // 2,
                                  output_padding=tuple(extra), groups=self.num_classes)


def fcn32s(num_classes=21, in_channels=3, batch_norm=False, dropout=0.5):
    """FCN-32s on VGG-16 (no skip): 134,346,581 parameters at 21 classes."""
    return FCN(num_classes, in_channels, 32, dropout=dropout, batch_norm=batch_norm)


def fcn16s(num_classes=21, in_channels=3, batch_norm=False, dropout=0.5):
    """FCN-16s on VGG-16 (the pool4 skip)."""
    return FCN(num_classes, in_channels, 16, dropout=dropout, batch_norm=batch_norm)


def fcn8s(num_classes=21, in_channels=3, batch_norm=False, dropout=0.5):
    """FCN-8s on VGG-16 (the pool4 and pool3 skips): 134,376,863 parameters at 21 classes."""
    return FCN(num_classes, in_channels, 8, dropout=dropout, batch_norm=batch_norm)


def fcn_small(num_classes=4, in_channels=1, stride=8, width=16, batch_norm=False, dropout=0.0):
    """FCN on a VGG-16 encoder scaled by ``width / 64``, with a 3x3 ``fc6`` and ``16 * width``
    channels in ``fc6``/``fc7``: for the 32x32 or 48x48 synthetic shapes on a CPU."""
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"fcn_small: width must be a positive int, got {width!r}")
    return FCN(num_classes, in_channels, stride, width, "D", head_width=16 * width,
               head_kernel=3, dropout=dropout, batch_norm=batch_norm)
