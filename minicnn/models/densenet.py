"""DenseNet (Huang, Liu, van der Maaten, Weinberger 2017, "Densely connected convolutional
networks", CVPR; https://arxiv.org/abs/1608.06993).

Inside a dense block every layer receives the concatenation of ALL earlier feature maps of the
block (``mc.cat(features, 1)``) and adds ``growth_rate`` (k) new maps of its own, so layer l of a
block sees ``c0 + l * k`` channels. That is the concat skip, where ResNet has the sum skip:
features are reused, not re-learned, and the gradient reaches every earlier layer directly.

    dense layer ("BC" bottleneck): BN-ReLU-1x1 conv (bn_size * k maps)-BN-ReLU-3x3 conv (k maps)
    transition:                    BN-ReLU-1x1 conv (compression * channels)-2x2 avg pool

- :func:`densenet121` / :func:`densenet169` / :func:`densenet201` (and :func:`densenet161`) --
  torchvision's ImageNet nets (k = 32, bn_size 4, compression 0.5, 64 initial features,
  7x7/2 conv + 3x3/2 max pool stem): 7,978,856 / 14,149,480 / 20,013,928 (28,681,000)
  parameters, state_dict keys equal torchvision's so its weights load by name.
- :func:`densenet_bc_cifar` -- the paper's DenseNet-BC for 32x32 images: three dense blocks of
  (depth - 4) / 6 bottleneck layers, a 3x3 first conv with 2k channels, no pooling stem;
  L = 100, k = 12 has 769,162 parameters (10 classes).
- :func:`densenet_small` -- a DenseNet-BC with three blocks of 4 layers, k = 12, behind a 3x3
  conv and a 2x2 max pool, for Fashion-MNIST (28x28) that trains on a CPU in minutes.
"""
import math
from collections import OrderedDict

import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn.ops import cat


class _DenseLayer(nn.Module):
    """BN-ReLU-Conv1x1(bn_size * k)-BN-ReLU-Conv3x3(k) on the concatenation of its inputs."""

    def __init__(self, num_input_features, growth_rate, bn_size, drop_rate):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, kernel_size=1,
                               stride=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, stride=1,
                               padding=1, bias=False)
        self.drop_rate = float(drop_rate)

    def forward(self, features):
        # features: the block input and every earlier layer's output, all N x ? x H x W
        x = cat(features, 1) if len(features) > 1 else features[0]  # N x (c0 + l*k) x H x W
        x = self.conv1(self.relu1(self.norm1(x)))  # N x bn_size*k x H x W
        x = self.conv2(self.relu2(self.norm2(x)))  # N x k x H x W
        if self.drop_rate > 0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x


class _DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers (``denselayer1``, ...); output: input + num_layers * k maps."""

    def __init__(self, num_layers, num_input_features, bn_size, growth_rate, drop_rate):
        super().__init__()
        for i in range(num_layers):
            layer = _DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size,
                                drop_rate)
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, init_features):
        features = [init_features]  # N x c0 x H x W
        for layer in self.values():
            features.append(layer(features))  # N x k x H x W each
        return cat(features, 1)  # N x (c0 + num_layers*k) x H x W


class _Transition(nn.Sequential):
    """BN-ReLU-Conv1x1-AvgPool2x2: shrink channels (compression) and halve H and W."""

    def __init__(self, num_input_features, num_output_features):
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(num_input_features))
        self.add_module("relu", nn.ReLU())
        self.add_module("conv", nn.Conv2d(num_input_features, num_output_features,
                                          kernel_size=1, stride=1, bias=False))
        self.add_module("pool", nn.AvgPool2d(kernel_size=2, stride=2))


class DenseNet(nn.Module):
    """DenseNet-BC with torchvision's names: ``features`` (conv0, norm0, relu0, pool0,
    denseblock1, transition1, ..., norm5) and ``classifier``.

    ``stem`` 'imagenet' (7x7/2 conv + 3x3/2 max pool, torchvision), 'cifar' (one 3x3 conv,
    the paper's CIFAR nets) or 'small' (3x3 conv + 2x2 max pool, for a fast CPU net).
    Transitions keep ``floor(compression * channels)`` maps.
    Initialisation as torchvision: kaiming_normal_ conv weights, BN 1/0, linear bias 0.
    """

    def __init__(self, growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64,
                 bn_size=4, drop_rate=0.0, num_classes=1000, in_channels=3, compression=0.5,
                 stem="imagenet"):
        super().__init__()
        if not 0 < compression <= 1:
            raise ValueError(f"DenseNet: compression must be in (0, 1], got {compression!r}")
        if stem == "imagenet":
            self.features = nn.Sequential(OrderedDict([
                ("conv0", nn.Conv2d(in_channels, num_init_features, kernel_size=7, stride=2,
                                    padding=3, bias=False)),
                ("norm0", nn.BatchNorm2d(num_init_features)),
                ("relu0", nn.ReLU()),
                ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
            ]))
        elif stem == "cifar":
            # the paper's CIFAR nets: BN-ReLU comes first inside the first dense layer
            self.features = nn.Sequential(OrderedDict([
                ("conv0", nn.Conv2d(in_channels, num_init_features, kernel_size=3, padding=1,
                                    bias=False)),
            ]))
        elif stem == "small":
            # 28x28 / 32x32 inputs on a CPU: one 3x3 conv, then halve the maps before block 1
            self.features = nn.Sequential(OrderedDict([
                ("conv0", nn.Conv2d(in_channels, num_init_features, kernel_size=3, padding=1,
                                    bias=False)),
                ("pool0", nn.MaxPool2d(kernel_size=2, stride=2)),
            ]))
        else:
            raise ValueError(f"DenseNet: stem must be 'imagenet', 'cifar' or 'small', got "
                             f"{stem!r}")

        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            block = _DenseBlock(num_layers, num_features, bn_size, growth_rate, drop_rate)
            self.features.add_module(f"denseblock{i + 1}", block)
            num_features = num_features + num_layers * growth_rate
            if i != len(block_config) - 1:
                out_features = int(math.floor(num_features * compression))
                self.features.add_module(f"transition{i + 1}",
                                         _Transition(num_features, out_features))
                num_features = out_features
        self.features.add_module(f"norm{len(block_config) + 1}", nn.BatchNorm2d(num_features))
        self.classifier = nn.Linear(num_features, num_classes)
        self.num_features = num_features

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        # shapes for densenet121 at 224x224 (the CIFAR stem keeps 32x32 up to denseblock1)
        features = self.features(x)                  # N x 1024 x 7 x 7
        out = F.relu(features)                       # N x 1024 x 7 x 7
        out = F.adaptive_avg_pool2d(out, (1, 1))     # N x 1024 x 1 x 1
        out = F.flatten(out, 1)                      # N x 1024
        return self.classifier(out)                  # N x num_classes


# ---- factories: the architecture as data -------------------------------------------------------

def _densenet(growth_rate, block_config, num_init_features, num_classes, in_channels, **kwargs):
    return DenseNet(growth_rate, block_config, num_init_features, num_classes=num_classes,
                    in_channels=in_channels, **kwargs)


def densenet121(num_classes=1000, in_channels=3, drop_rate=0.0):
    """DenseNet-121 (k=32, blocks 6-12-24-16): 7,978,856 parameters."""
    return _densenet(32, (6, 12, 24, 16), 64, num_classes, in_channels, drop_rate=drop_rate)


def densenet161(num_classes=1000, in_channels=3, drop_rate=0.0):
    """DenseNet-161 (k=48, blocks 6-12-36-24, 96 initial features): 28,681,000 parameters."""
    return _densenet(48, (6, 12, 36, 24), 96, num_classes, in_channels, drop_rate=drop_rate)


def densenet169(num_classes=1000, in_channels=3, drop_rate=0.0):
    """DenseNet-169 (k=32, blocks 6-12-32-32): 14,149,480 parameters."""
    return _densenet(32, (6, 12, 32, 32), 64, num_classes, in_channels, drop_rate=drop_rate)


def densenet201(num_classes=1000, in_channels=3, drop_rate=0.0):
    """DenseNet-201 (k=32, blocks 6-12-48-32): 20,013,928 parameters."""
    return _densenet(32, (6, 12, 48, 32), 64, num_classes, in_channels, drop_rate=drop_rate)


def densenet_bc_cifar(depth=100, growth_rate=12, num_classes=10, in_channels=3, drop_rate=0.0,
                      compression=0.5):
    """The paper's DenseNet-BC for CIFAR: 3 blocks of (depth - 4) / 6 bottleneck layers (each
    counts 2 conv layers; the other 4 are the first conv, two transitions and the classifier),
    first conv 3x3 with 2k channels. L=100, k=12: 769,162 parameters; L=250, k=24 and
    L=190, k=40 are the paper's bigger ones."""
    if (depth - 4) % 6:
        raise ValueError(f"densenet_bc_cifar: depth must be 6n + 4 (e.g. 40, 100, 190, 250), got "
                         f"{depth}")
    n = (depth - 4) // 6
    return _densenet(growth_rate, (n, n, n), 2 * growth_rate, num_classes, in_channels,
                     bn_size=4, drop_rate=drop_rate, compression=compression, stem="cifar")


def densenet_small(num_classes=10, in_channels=1, growth_rate=12, block_config=(4, 4, 4)):
    """A small DenseNet-BC for 28x28 / 32x32 images (depth 28, k=12: 3 blocks of 4 bottleneck
    layers, a 3x3 first conv with 2k maps and a 2x2 max pool, so the blocks run at 14x14, 7x7
    and 3x3): trains on Fashion-MNIST on a CPU in minutes."""
    return _densenet(growth_rate, block_config, 2 * growth_rate, num_classes, in_channels,
                     bn_size=4, compression=0.5, stem="small")
