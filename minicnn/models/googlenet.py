"""GoogLeNet / Inception v1 (Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke,
Rabinovich 2015, "Going deeper with convolutions", CVPR; https://arxiv.org/abs/1409.4842).

An Inception module runs four branches side by side on the same input and concatenates their
outputs along the channel axis (``mc.cat(..., 1)``):

    branch1: 1x1 conv                        (#1x1)
    branch2: 1x1 conv (#3x3 reduce) -> 3x3   (#3x3)
    branch3: 1x1 conv (#5x5 reduce) -> 5x5   (#5x5)
    branch4: 3x3 max pool, stride 1 -> 1x1   (pool proj)

The 1x1 "reduce" convolutions are what make the module cheap: they shrink the channels before
the expensive 3x3 and 5x5 filters. The channel counts of the nine modules are Table 1 of the
paper, kept below as data (``INCEPTION_V1_CONFIG``).

Three variants:

- :func:`googlenet` -- torchvision's layout (and state_dict keys, so its weights load by name):
  every conv is ``BasicConv2d`` (conv without bias + BatchNorm(eps=0.001) + ReLU), no LRN, and
  the "5x5" branch uses a 3x3 kernel (a known slip in torchvision kept for weight
  compatibility). 6,624,904 parameters; 13,004,888 with the two auxiliary classifiers.
- :func:`googlenet_paper` -- the paper's layout: convs with bias followed by ReLU, no batch norm,
  a true 5x5 kernel in branch3, LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1) after the first
  max pool and after conv3 (Figure 3 / Caffe's bvlc_googlenet), dropout 0.4, and the paper's
  auxiliary heads (5x5/3 average pool, 1x1 conv 128 + ReLU, fc 1024 + ReLU, dropout 0.7, fc).
  6,998,552 parameters without aux heads -- exactly what the paper's Table 1 shapes give with
  one bias per conv output channel and a biased 1024 -> 1000 linear layer (the same keys as
  :func:`googlenet`, plus ``.conv.bias`` and without ``.bn``).
  With the paper's auxiliary heads (biased 1x1 conv): 13,378,280.
- :func:`googlenet_small` -- a 5-module Inception net (154,070 parameters) for 28x28 or 32x32
  images (Fashion-MNIST, CIFAR-10) that trains on a CPU in minutes.

With ``aux_logits=True`` the net has the two auxiliary classifiers on inception4a and inception4d;
in training mode ``forward`` then returns ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)``
(torchvision's order; the paper weights each auxiliary loss by 0.3), in evaluation mode the
logits only.
"""
from collections import namedtuple

import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn.ops import cat

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])

# Table 1: (name, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj); in_channels follow
INCEPTION_V1_CONFIG = (
    ("inception3a", 64, 96, 128, 16, 32, 32),      # out 256
    ("inception3b", 128, 128, 192, 32, 96, 64),    # out 480
    ("inception4a", 192, 96, 208, 16, 48, 64),     # out 512
    ("inception4b", 160, 112, 224, 24, 64, 64),    # out 512
    ("inception4c", 128, 128, 256, 24, 64, 64),    # out 512
    ("inception4d", 112, 144, 288, 32, 64, 64),    # out 528
    ("inception4e", 256, 160, 320, 32, 128, 128),  # out 832
    ("inception5a", 256, 160, 320, 32, 128, 128),  # out 832
    ("inception5b", 384, 192, 384, 48, 128, 128),  # out 1024
)


def _check_config(config, expected, owner):
    """``forward`` calls the modules by name: a config must name the same modules in order."""
    names, wanted = [row[0] for row in config], [row[0] for row in expected]
    if names != wanted:
        raise ValueError(f"{owner}: inception_config must name the modules {wanted} in this "
                         f"order (forward calls them by name), got {names}")
    for row in config:
        if len(row) != 7:
            raise ValueError(f"{owner}: each inception_config row is (name, #1x1, #3x3 reduce, "
                             f"#3x3, #5x5 reduce, #5x5, pool proj), got {row!r}")


class BasicConv2d(nn.Module):
    """torchvision's conv unit: conv (no bias: the batch norm's shift replaces it) -> BN -> ReLU."""

    def __init__(self, in_channels, out_channels, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class PlainConv2d(nn.Module):
    """The paper's conv unit: conv with bias -> ReLU (no batch norm: it came a year later)."""

    def __init__(self, in_channels, out_channels, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=True, **kwargs)

    def forward(self, x):
        return F.relu(self.conv(x))


class Inception(nn.Module):
    """Four parallel branches concatenated along channels: out = ch1x1 + ch3x3 + ch5x5 + pool_proj.

    ``ch5x5_kernel`` is the kernel of branch3's second conv: 5 in the paper, 3 in torchvision.
    """

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj,
                 conv_block=BasicConv2d, ch5x5_kernel=3):
        super().__init__()
        self.branch1 = conv_block(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            conv_block(in_channels, ch3x3red, kernel_size=1),
            conv_block(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            conv_block(in_channels, ch5x5red, kernel_size=1),
            conv_block(ch5x5red, ch5x5, kernel_size=ch5x5_kernel, padding=ch5x5_kernel // 2),
        )
        self.branch4 = nn.Sequential(
            # NOTE: stride 1 and padding 1 keep the size; ceil_mode changes nothing here
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            conv_block(in_channels, pool_proj, kernel_size=1),
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x):
        # every branch keeps H x W, so the four outputs stack along the channel axis
        branch1 = self.branch1(x)  # N x ch1x1 x H x W
        branch2 = self.branch2(x)  # N x ch3x3 x H x W
        branch3 = self.branch3(x)  # N x ch5x5 x H x W
        branch4 = self.branch4(x)  # N x pool_proj x H x W
        return cat([branch1, branch2, branch3, branch4], 1)  # N x out_channels x H x W


class InceptionAux(nn.Module):
    """Auxiliary classifier (torchvision): adaptive avg pool to 4x4 -> 1x1 conv 128 -> fc 1024 ->
    ReLU -> dropout -> fc. ``pool`` 'adaptive' (torchvision) or 'paper' (5x5 average pooling,
    stride 3: the same 4x4 from the 14x14 maps of a 224x224 input)."""

    def __init__(self, in_channels, num_classes, conv_block=BasicConv2d, dropout=0.7,
                 pool="adaptive"):
        super().__init__()
        if pool not in ("adaptive", "paper"):
            raise ValueError(f"InceptionAux: pool must be 'adaptive' or 'paper', got {pool!r}")
        self.pool = pool
        self.conv = conv_block(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x):
        # aux1: N x 512 x 14 x 14, aux2: N x 528 x 14 x 14
        if self.pool == "adaptive":
            x = F.adaptive_avg_pool2d(x, (4, 4))
        else:
            x = F.avg_pool2d(x, 5, 3)
        # aux1: N x 512 x 4 x 4, aux2: N x 528 x 4 x 4
        x = self.conv(x)          # N x 128 x 4 x 4
        x = F.flatten(x, 1)       # N x 2048
        x = F.relu(self.fc1(x))   # N x 1024
        x = self.dropout(x)       # N x 1024
        return self.fc2(x)        # N x num_classes


class GoogLeNet(nn.Module):
    """GoogLeNet with torchvision's attribute names. ``conv_block`` BasicConv2d (torchvision) or
    PlainConv2d (paper); ``ch5x5_kernel`` 3 (torchvision) or 5 (paper); ``lrn`` adds the paper's
    two LocalResponseNorm layers (``lrn1``, ``lrn2``, no parameters); ``aux_pool`` 'adaptive'
    or 'paper'; ``init_weights`` 'torchvision' (trunc_normal std 0.01 for every conv and linear
    weight, torchvision's default) or None (PyTorch's layer defaults)."""

    def __init__(self, num_classes=1000, in_channels=3, aux_logits=False, transform_input=False,
                 dropout=0.2, dropout_aux=0.7, conv_block=BasicConv2d, ch5x5_kernel=3, lrn=False,
                 aux_pool="adaptive", init_weights="torchvision",
                 inception_config=INCEPTION_V1_CONFIG):
        super().__init__()
        if transform_input and in_channels != 3:
            raise ValueError("GoogLeNet: transform_input=True converts ImageNet-normalised RGB "
                             f"input and needs in_channels=3, got {in_channels}")
        _check_config(inception_config, INCEPTION_V1_CONFIG, "GoogLeNet")
        self.aux_logits = aux_logits
        self.transform_input = transform_input

        self.conv1 = conv_block(in_channels, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.lrn1 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0) if lrn else None
        self.conv2 = conv_block(64, 64, kernel_size=1)
        self.conv3 = conv_block(64, 192, kernel_size=3, padding=1)
        self.lrn2 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0) if lrn else None
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        channels = 192
        for name, *widths in inception_config:
            block = Inception(channels, *widths, conv_block=conv_block, ch5x5_kernel=ch5x5_kernel)
            setattr(self, name, block)
            channels = block.out_channels
            if name == "inception3b":
                self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            elif name == "inception4e":
                self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)

        if aux_logits:
            self.aux1 = InceptionAux(self.inception4a.out_channels, num_classes, conv_block,
                                     dropout_aux, aux_pool)
            self.aux2 = InceptionAux(self.inception4d.out_channels, num_classes, conv_block,
                                     dropout_aux, aux_pool)
        else:
            self.aux1 = None
            self.aux2 = None

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(channels, num_classes)

        if init_weights == "torchvision":
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
        elif init_weights is not None:
            raise ValueError(f"GoogLeNet: init_weights must be 'torchvision' or None, got "
                             f"{init_weights!r}")

    def _transform_input(self, x):
        """ImageNet-normalised input -> the (x - 0.5) / 0.5 input Google's weights expect."""
        if not self.transform_input:
            return x
        x_ch0 = x[:, 0:1] * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
        x_ch1 = x[:, 1:2] * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
        x_ch2 = x[:, 2:3] * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
        return cat([x_ch0, x_ch1, x_ch2], 1)

    def forward(self, x):
        x = self._transform_input(x)  # N x 3 x 224 x 224
        x = self.conv1(x)             # N x 64 x 112 x 112
        x = self.maxpool1(x)          # N x 64 x 56 x 56
        if self.lrn1 is not None:
            x = self.lrn1(x)          # N x 64 x 56 x 56
        x = self.conv2(x)             # N x 64 x 56 x 56
        x = self.conv3(x)             # N x 192 x 56 x 56
        if self.lrn2 is not None:
            x = self.lrn2(x)          # N x 192 x 56 x 56
        x = self.maxpool2(x)          # N x 192 x 28 x 28
        x = self.inception3a(x)       # N x 256 x 28 x 28
        x = self.inception3b(x)       # N x 480 x 28 x 28
        x = self.maxpool3(x)          # N x 480 x 14 x 14
        x = self.inception4a(x)       # N x 512 x 14 x 14
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None  # N x classes
        x = self.inception4b(x)       # N x 512 x 14 x 14
        x = self.inception4c(x)       # N x 512 x 14 x 14
        x = self.inception4d(x)       # N x 528 x 14 x 14
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None  # N x classes
        x = self.inception4e(x)       # N x 832 x 14 x 14
        x = self.maxpool4(x)          # N x 832 x 7 x 7
        x = self.inception5a(x)       # N x 832 x 7 x 7
        x = self.inception5b(x)       # N x 1024 x 7 x 7
        x = self.avgpool(x)           # N x 1024 x 1 x 1
        x = F.flatten(x, 1)           # N x 1024
        x = self.dropout(x)           # N x 1024
        x = self.fc(x)                # N x num_classes
        if self.training and self.aux_logits:
            return GoogLeNetOutputs(x, aux2, aux1)
        return x


def googlenet_loss(outputs, target, aux_weight=0.3):
    """The paper's training loss: cross-entropy of the logits plus ``aux_weight`` (0.3 in the
    paper) times that of each auxiliary head. Plain logits (evaluation, no aux heads) give the
    plain cross-entropy, so ``mc.fit(model, opt, loader, epochs, loss_fn=googlenet_loss)`` works
    in both modes."""
    if not isinstance(outputs, tuple):
        return F.cross_entropy(outputs, target)
    logits, *aux = outputs
    loss = F.cross_entropy(logits, target)
    for aux_logits in aux:
        if aux_logits is not None:
            loss = loss + aux_weight * F.cross_entropy(aux_logits, target)
    return loss


# ---- the small Inception net for 28x28 / 32x32 images -----------------------------------------

# (name, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj), Table 1's proportions at ~1/4
SMALL_INCEPTION_CONFIG = (
    ("inception3a", 16, 24, 32, 4, 8, 8),       # out 64
    ("inception3b", 32, 32, 48, 8, 24, 16),     # out 120
    ("inception4a", 48, 24, 52, 4, 12, 16),     # out 128
    ("inception4b", 40, 28, 56, 6, 16, 16),     # out 128
    ("inception5a", 64, 40, 80, 8, 32, 32),     # out 208
)


class GoogLeNetSmall(nn.Module):
    """A GoogLeNet for 28x28 / 32x32 inputs: a 3x3 stem instead of the 7x7/2 + max-pool stem that
    shrinks 224x224 images, then Inception modules with Table 1's proportions at about a quarter
    of the width, pooled 28 -> 14 -> 7 (32 -> 16 -> 8). BasicConv2d units (with BN) and a
    true 5x5 kernel in branch3."""

    def __init__(self, num_classes=10, in_channels=1, dropout=0.2,
                 inception_config=SMALL_INCEPTION_CONFIG, ch5x5_kernel=5):
        super().__init__()
        _check_config(inception_config, SMALL_INCEPTION_CONFIG, "GoogLeNetSmall")
        self.conv1 = BasicConv2d(in_channels, 24, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(24, 48, kernel_size=3, padding=1)
        channels = 48
        for name, *widths in inception_config:
            block = Inception(channels, *widths, conv_block=BasicConv2d, ch5x5_kernel=ch5x5_kernel)
            setattr(self, name, block)
            channels = block.out_channels
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.conv1(x)             # N x 24 x 28 x 28
        x = self.maxpool1(x)          # N x 24 x 14 x 14
        x = self.conv2(x)             # N x 48 x 14 x 14
        x = self.inception3a(x)       # N x 64 x 14 x 14
        x = self.inception3b(x)       # N x 120 x 14 x 14
        x = self.maxpool2(x)          # N x 120 x 7 x 7
        x = self.inception4a(x)       # N x 128 x 7 x 7
        x = self.inception4b(x)       # N x 128 x 7 x 7
        x = self.inception5a(x)       # N x 208 x 7 x 7
        x = self.avgpool(x)           # N x 208 x 1 x 1
        x = F.flatten(x, 1)           # N x 208
        x = self.dropout(x)           # N x 208
        return self.fc(x)             # N x num_classes


# ---- factories: the architecture as data -------------------------------------------------------

def googlenet(num_classes=1000, in_channels=3, aux_logits=False, dropout=0.2, dropout_aux=0.7,
              transform_input=False, init_weights="torchvision"):
    """GoogLeNet in torchvision's layout (BN, 3x3 in the "5x5" branch): 6,624,904 parameters,
    13,004,888 with ``aux_logits=True``. Keys equal torchvision's ``googlenet()``; for Google's
    converted weights pass ``transform_input=True`` (what torchvision does with them)."""
    return GoogLeNet(num_classes, in_channels, aux_logits, transform_input, dropout, dropout_aux,
                     conv_block=BasicConv2d, ch5x5_kernel=3, lrn=False, aux_pool="adaptive",
                     init_weights=init_weights)


def googlenet_paper(num_classes=1000, in_channels=3, aux_logits=False, dropout=0.4,
                    dropout_aux=0.7, init_weights=None):
    """GoogLeNet as the paper builds it (bias + ReLU convs, no BN, true 5x5, two LRN layers,
    dropout 0.4, aux heads with 5x5/3 average pooling): 6,998,552 parameters without aux heads.
    PyTorch's default layer initialisation unless ``init_weights='torchvision'``."""
    return GoogLeNet(num_classes, in_channels, aux_logits, False, dropout, dropout_aux,
                     conv_block=PlainConv2d, ch5x5_kernel=5, lrn=True, aux_pool="paper",
                     init_weights=init_weights)


def googlenet_small(num_classes=10, in_channels=1, dropout=0.2):
    """A small GoogLeNet (5 Inception modules, ~0.4M parameters) for 28x28 or 32x32 images."""
    return GoogLeNetSmall(num_classes, in_channels, dropout)
