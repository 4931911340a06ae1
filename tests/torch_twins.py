"""PyTorch twins of the model zoo, built with torch.nn in torchvision's module structure and with
torchvision's attribute names (torchvision itself is not needed). The model tests compare
minicnn's nets with them (keys, shapes, outputs), and the weights tests load their state dicts:
if a key, the key order, a layer's semantics or a weight layout differed from torchvision's, the
comparison would fail. Shared here so that each architecture is written out once.
"""
from collections import OrderedDict

import pytest

from minicnn.models.vgg import CFGS

#: torchvision's configuration letter of each VGG depth
VGG_CFG_NAMES = {11: "A", 13: "B", 16: "D", 19: "E"}


def torch_alexnet(torch, paper=False, num_classes=1000):
    tnn = torch.nn

    class TorchAlexNet(tnn.Module):
        def __init__(self):
            super().__init__()
            if paper:   # two towers: groups=2 on conv2, conv4, conv5; LRN in PyTorch's alpha/n
                lrn = dict(size=5, alpha=5e-4, beta=0.75, k=2.0)
                self.features = tnn.Sequential(
                    tnn.Conv2d(3, 96, 11, 4, 2), tnn.ReLU(), tnn.LocalResponseNorm(**lrn),
                    tnn.MaxPool2d(3, 2),
                    tnn.Conv2d(96, 256, 5, padding=2, groups=2), tnn.ReLU(),
                    tnn.LocalResponseNorm(**lrn), tnn.MaxPool2d(3, 2),
                    tnn.Conv2d(256, 384, 3, padding=1), tnn.ReLU(),
                    tnn.Conv2d(384, 384, 3, padding=1, groups=2), tnn.ReLU(),
                    tnn.Conv2d(384, 256, 3, padding=1, groups=2), tnn.ReLU(),
                    tnn.MaxPool2d(3, 2))
                self.classifier = tnn.Sequential(
                    tnn.Linear(9216, 4096), tnn.ReLU(), tnn.Dropout(),
                    tnn.Linear(4096, 4096), tnn.ReLU(), tnn.Dropout(),
                    tnn.Linear(4096, num_classes))
            else:       # torchvision.models.alexnet
                self.features = tnn.Sequential(
                    tnn.Conv2d(3, 64, 11, 4, 2), tnn.ReLU(), tnn.MaxPool2d(3, 2),
                    tnn.Conv2d(64, 192, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(3, 2),
                    tnn.Conv2d(192, 384, 3, padding=1), tnn.ReLU(),
                    tnn.Conv2d(384, 256, 3, padding=1), tnn.ReLU(),
                    tnn.Conv2d(256, 256, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(3, 2))
                self.classifier = tnn.Sequential(
                    tnn.Dropout(), tnn.Linear(9216, 4096), tnn.ReLU(),
                    tnn.Dropout(), tnn.Linear(4096, 4096), tnn.ReLU(),
                    tnn.Linear(4096, num_classes))
            self.avgpool = tnn.AdaptiveAvgPool2d((6, 6))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    return TorchAlexNet()


def torch_vgg(torch, depth, batch_norm, num_classes=1000):
    """torchvision.models.vgg: make_layers(cfgs[...]) + VGG's avgpool and classifier."""
    tnn = torch.nn
    layers, in_channels = [], 3
    for v in CFGS[VGG_CFG_NAMES[depth]]:
        if v == "M":
            layers.append(tnn.MaxPool2d(2, 2))
        else:
            layers.append(tnn.Conv2d(in_channels, v, 3, padding=1))
            layers += [tnn.BatchNorm2d(v)] if batch_norm else []
            layers.append(tnn.ReLU(inplace=True))
            in_channels = v

    class TorchVGG(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(*layers)
            self.avgpool = tnn.AdaptiveAvgPool2d((7, 7))
            self.classifier = tnn.Sequential(
                tnn.Linear(512 * 7 * 7, 4096), tnn.ReLU(True), tnn.Dropout(),
                tnn.Linear(4096, 4096), tnn.ReLU(True), tnn.Dropout(),
                tnn.Linear(4096, num_classes))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    return TorchVGG()


def torch_googlenet(torch, num_classes=1000, aux_logits=True):
    tnn, F = torch.nn, torch.nn.functional

    class BasicConv2d(tnn.Module):
        def __init__(self, cin, cout, **kw):
            super().__init__()
            self.conv = tnn.Conv2d(cin, cout, bias=False, **kw)
            self.bn = tnn.BatchNorm2d(cout, eps=0.001)

        def forward(self, x):
            return F.relu(self.bn(self.conv(x)))

    class Inception(tnn.Module):
        def __init__(self, cin, c1, c3r, c3, c5r, c5, pp):
            super().__init__()
            self.branch1 = BasicConv2d(cin, c1, kernel_size=1)
            self.branch2 = tnn.Sequential(BasicConv2d(cin, c3r, kernel_size=1),
                                          BasicConv2d(c3r, c3, kernel_size=3, padding=1))
            self.branch3 = tnn.Sequential(BasicConv2d(cin, c5r, kernel_size=1),
                                          BasicConv2d(c5r, c5, kernel_size=3, padding=1))
            self.branch4 = tnn.Sequential(tnn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                          BasicConv2d(cin, pp, kernel_size=1))

        def forward(self, x):
            return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x),
                              self.branch4(x)], 1)

    class InceptionAux(tnn.Module):
        def __init__(self, cin, num_classes):
            super().__init__()
            self.conv = BasicConv2d(cin, 128, kernel_size=1)
            self.fc1 = tnn.Linear(2048, 1024)
            self.fc2 = tnn.Linear(1024, num_classes)
            self.dropout = tnn.Dropout(0.7)

    class GoogLeNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
            self.maxpool1 = tnn.MaxPool2d(3, stride=2, ceil_mode=True)
            self.conv2 = BasicConv2d(64, 64, kernel_size=1)
            self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
            self.maxpool2 = tnn.MaxPool2d(3, stride=2, ceil_mode=True)
            self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
            self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
            self.maxpool3 = tnn.MaxPool2d(3, stride=2, ceil_mode=True)
            self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
            self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
            self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
            self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
            self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
            self.maxpool4 = tnn.MaxPool2d(2, stride=2, ceil_mode=True)
            self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
            self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
            if aux_logits:
                self.aux1 = InceptionAux(512, num_classes)
                self.aux2 = InceptionAux(528, num_classes)
            self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
            self.dropout = tnn.Dropout(0.2)
            self.fc = tnn.Linear(1024, num_classes)

        def forward(self, x):  # evaluation path (no aux heads)
            x = self.maxpool1(self.conv1(x))
            x = self.maxpool2(self.conv3(self.conv2(x)))
            x = self.maxpool3(self.inception3b(self.inception3a(x)))
            for name in ("4a", "4b", "4c", "4d", "4e"):
                x = getattr(self, "inception" + name)(x)
            x = self.inception5b(self.inception5a(self.maxpool4(x)))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return GoogLeNet()


def torch_densenet(torch, growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64,
                   num_classes=1000, cifar_stem=False):
    tnn, F = torch.nn, torch.nn.functional

    class DenseLayer(tnn.Module):
        def __init__(self, cin):
            super().__init__()
            self.norm1 = tnn.BatchNorm2d(cin)
            self.relu1 = tnn.ReLU()
            self.conv1 = tnn.Conv2d(cin, 4 * growth_rate, 1, bias=False)
            self.norm2 = tnn.BatchNorm2d(4 * growth_rate)
            self.relu2 = tnn.ReLU()
            self.conv2 = tnn.Conv2d(4 * growth_rate, growth_rate, 3, padding=1, bias=False)

        def forward(self, features):
            x = self.conv1(self.relu1(self.norm1(torch.cat(features, 1))))
            return self.conv2(self.relu2(self.norm2(x)))

    class DenseBlock(tnn.ModuleDict):
        def __init__(self, num_layers, cin):
            super().__init__()
            for i in range(num_layers):
                self.add_module(f"denselayer{i + 1}", DenseLayer(cin + i * growth_rate))

        def forward(self, x):
            features = [x]
            for layer in self.values():
                features.append(layer(features))
            return torch.cat(features, 1)

    class Transition(tnn.Sequential):
        def __init__(self, cin, cout):
            super().__init__()
            self.add_module("norm", tnn.BatchNorm2d(cin))
            self.add_module("relu", tnn.ReLU())
            self.add_module("conv", tnn.Conv2d(cin, cout, 1, bias=False))
            self.add_module("pool", tnn.AvgPool2d(2, 2))

    class DenseNet(tnn.Module):
        def __init__(self):
            super().__init__()
            if cifar_stem:
                self.features = tnn.Sequential(OrderedDict([
                    ("conv0", tnn.Conv2d(3, num_init_features, 3, padding=1, bias=False))]))
            else:
                self.features = tnn.Sequential(OrderedDict([
                    ("conv0", tnn.Conv2d(3, num_init_features, 7, 2, 3, bias=False)),
                    ("norm0", tnn.BatchNorm2d(num_init_features)),
                    ("relu0", tnn.ReLU()),
                    ("pool0", tnn.MaxPool2d(3, 2, 1))]))
            c = num_init_features
            for i, n in enumerate(block_config):
                self.features.add_module(f"denseblock{i + 1}", DenseBlock(n, c))
                c += n * growth_rate
                if i != len(block_config) - 1:
                    self.features.add_module(f"transition{i + 1}", Transition(c, c // 2))
                    c //= 2
            self.features.add_module(f"norm{len(block_config) + 1}", tnn.BatchNorm2d(c))
            self.classifier = tnn.Linear(c, num_classes)

        def forward(self, x):
            out = F.adaptive_avg_pool2d(F.relu(self.features(x)), (1, 1))
            return self.classifier(torch.flatten(out, 1))

    return DenseNet()


def torch_resnet(block_name, layers, num_classes=1000, in_channels=3):
    """torchvision.models.resnet.ResNet's structure (v1.5), without torchvision."""
    torch = pytest.importorskip("torch")
    tnn = torch.nn

    class TBasic(tnn.Module):
        expansion = 1

        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class TBottleneck(tnn.Module):
        expansion = 4

        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = tnn.Conv2d(inplanes, planes, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.conv2 = tnn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.conv3 = tnn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = tnn.BatchNorm2d(planes * 4)
            self.relu = tnn.ReLU()
            self.downsample = downsample

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    block = {"basic": TBasic, "bottleneck": TBottleneck}[block_name]

    class TResNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.inplanes = 64
            self.conv1 = tnn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
            self.bn1 = tnn.BatchNorm2d(64)
            self.relu = tnn.ReLU()
            self.maxpool = tnn.MaxPool2d(3, 2, 1)
            self.layer1 = self._make_layer(64, layers[0])
            self.layer2 = self._make_layer(128, layers[1], 2)
            self.layer3 = self._make_layer(256, layers[2], 2)
            self.layer4 = self._make_layer(512, layers[3], 2)
            self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
            self.fc = tnn.Linear(512 * block.expansion, num_classes)

        def _make_layer(self, planes, blocks, stride=1):
            downsample = None
            if stride != 1 or self.inplanes != planes * block.expansion:
                downsample = tnn.Sequential(
                    tnn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                    tnn.BatchNorm2d(planes * block.expansion))
            out = [block(self.inplanes, planes, stride, downsample)]
            self.inplanes = planes * block.expansion
            out += [block(self.inplanes, planes) for _ in range(1, blocks)]
            return tnn.Sequential(*out)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return TResNet()


def torch_cifar_resnet(depth, num_classes=10, in_channels=3, plain=False):
    """The paper's CIFAR ResNet with option A shortcuts (new channels appended as zeros)."""
    torch = pytest.importorskip("torch")
    tnn, tF = torch.nn, torch.nn.functional

    class TBlock(tnn.Module):
        def __init__(self, inplanes, planes, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.stride, self.extra = stride, planes - inplanes

        def forward(self, x):
            out = self.bn2(self.conv2(tF.relu(self.bn1(self.conv1(x)))))
            if not plain:
                out = out + tF.pad(x[:, :, ::self.stride, ::self.stride],
                                   (0, 0, 0, 0, 0, self.extra))
            return tF.relu(out)

    class TNet(tnn.Module):
        def __init__(self):
            super().__init__()
            n = (depth - 2) // 6
            self.conv1 = tnn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(16)
            stages, inplanes = [], 16
            for planes, stride in ((16, 1), (32, 2), (64, 2)):
                blocks = []
                for i in range(n):
                    blocks.append(TBlock(inplanes, planes, stride if i == 0 else 1))
                    inplanes = planes
                stages.append(tnn.Sequential(*blocks))
            self.layer1, self.layer2, self.layer3 = stages
            self.fc = tnn.Linear(64, num_classes)

        def forward(self, x):
            x = tF.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            return self.fc(x.mean((2, 3)))

    return TNet()
