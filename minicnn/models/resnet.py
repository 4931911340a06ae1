"""ResNet-18/34/50/101/152 (He, Zhang, Ren, Sun 2016, "Deep residual learning for image
recognition", CVPR, https://arxiv.org/abs/1512.03385), exactly as torchvision builds them, and
their plain twins.

    conv1 7x7/2, 64 -> max-pool 3x3/2 -> layer1..layer4 (stacks of residual blocks; layer2..4
    halve the size and double the width) -> global average pool -> fc

A residual block computes ``relu(F(x) + shortcut(x))``: the stacked layers ``F`` only learn the
residual to the identity, and the identity path lets the gradient reach early layers undamped.

This is torchvision's "v1.5": in a bottleneck the stride sits on the 3x3 conv (the paper put it
on the first 1x1). Shortcuts are identities, and projections (option B: 1x1 conv + BN, module
``downsample``) where the shape changes. Initialisation is torchvision's: convs
``kaiming_normal_(mode='fan_out', nonlinearity='relu')``, BN weight 1 and bias 0, the fc layer
keeps ``Linear``'s default. Parameter counts (1000 classes): 11,689,512 / 21,797,672 /
25,557,032 / 44,549,160 / 60,192,808, and the ``state_dict`` keys are torchvision's (``conv1``,
``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0``, ``fc``...), so its weights load by name.

``plain=True`` builds the paper's plain twin (its Fig. 3, middle): the same stacks of layers with
no shortcut at all, every block ends in ``relu(F(x))``. NOTE: the projection shortcuts
(``downsample``) are removed too, since a plain net has nothing to put them on; so the plain
twins have FEWER parameters than torchvision's ResNets (plain-18: 11,515,688, plain-34:
21,623,848, plain-50: 22,780,456, plain-101: 41,772,584, plain-152: 57,416,232) and no
``downsample`` keys (``load_state_dict(resnet_weights, strict=False)`` loads everything else).
The paper's own plain-vs-residual comparison (its Table 2) used option A shortcuts (parameter-free
zero padding) so that both nets had the same count; the CIFAR nets in
:mod:`minicnn.models.resnet_cifar` do exactly that.
"""
import minicnn.nn as nn


def conv3x3(in_planes, out_planes, stride=1):
    """3x3 convolution with padding 1, no bias (a batch norm follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    """1x1 convolution, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34): ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

    ``downsample``: the module on the shortcut when the shape changes (None: identity).
    ``residual=False``: the plain block, no addition at all (``downsample`` must then be None).
    """

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, residual=True):
        super().__init__()
        if downsample is not None and not residual:
            raise ValueError("BasicBlock: a plain block (residual=False) has no shortcut, so it "
                             "takes no downsample module")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride
        self.residual = residual

    def forward(self, x):
        # relu(bn1(conv1(x))); nn.norm_relu runs batch norm + ReLU as one fused op (same numbers)
        out = nn.norm_relu(self.bn1, self.relu, self.conv1(x))  # N x planes x H/s x W/s
        if not self.residual:                     # plain: relu(bn2(conv2(out))), fused alike
            return nn.norm_relu(self.bn2, self.relu, self.conv2(out))
        out = self.bn2(self.conv2(out))           # N x planes x H/stride x W/stride
        identity = x if self.downsample is None else self.downsample(x)  # same shape as out
        return nn.residual_act(self.relu, out, identity)  # the shortcut: relu(F(x) + x), fused


class Bottleneck(nn.Module):
    """1x1 (reduce) -> 3x3 (stride here: v1.5) -> 1x1 (expand by 4), plus the shortcut
    (ResNet-50/101/152). ``downsample`` and ``residual`` as in :class:`BasicBlock`."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, residual=True):
        super().__init__()
        if downsample is not None and not residual:
            raise ValueError("Bottleneck: a plain block (residual=False) has no shortcut, so it "
                             "takes no downsample module")
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.stride = stride
        self.residual = residual

    def forward(self, x):
        # relu(bn(conv(.))) twice; nn.norm_relu fuses each batch norm + ReLU (same numbers)
        out = nn.norm_relu(self.bn1, self.relu, self.conv1(x))     # N x planes x H x W
        out = nn.norm_relu(self.bn2, self.relu, self.conv2(out))   # N x planes x H/s x W/s
        if not self.residual:
            return nn.norm_relu(self.bn3, self.relu, self.conv3(out))
        out = self.bn3(self.conv3(out))           # N x 4*planes x H/stride x W/stride
        identity = x if self.downsample is None else self.downsample(x)  # same shape as out
        return nn.residual_act(self.relu, out, identity)  # the shortcut: relu(F(x) + x), fused


class ResNet(nn.Module):
    """torchvision's ``ResNet(block, layers, num_classes=1000, zero_init_residual=False)`` plus
    ``in_channels`` and ``plain``.

    ``zero_init_residual=True`` starts the last BN of every residual branch at weight 0, so that
    each block begins as the identity (Goyal et al. 2017); in a plain net it would zero the whole
    signal, so it is refused there.
    """

    def __init__(self, block, layers, num_classes=1000, in_channels=3, plain=False,
                 zero_init_residual=False):
        super().__init__()
        if plain and zero_init_residual:
            raise ValueError("ResNet: zero_init_residual=True would make every block of a plain "
                             "net (plain=True) output zeros; use it with residual nets only")
        self.plain = plain
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for m in self.blocks():
                last_bn = m.bn3 if isinstance(m, Bottleneck) else m.bn2
                nn.init.constant_(last_bn.weight, 0)

    def _make_layer(self, block, planes, blocks, stride=1):
        """A stage: ``blocks`` blocks of width ``planes``; the first one changes the stride
        and/or the width, so its shortcut is a projection (1x1 conv + BN)."""
        downsample = None
        if not self.plain and (stride != 1 or self.inplanes != planes * block.expansion):
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        residual = not self.plain
        layers = [block(self.inplanes, planes, stride, downsample, residual=residual)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, residual=residual))
        return nn.Sequential(*layers)

    def blocks(self):
        """Every residual (or plain) block, in the order forward runs them (for hooks that watch
        activations and gradients block by block)."""
        return [b for layer in (self.layer1, self.layer2, self.layer3, self.layer4) for b in layer]

    def forward(self, x):
        x = nn.norm_relu(self.bn1, self.relu, self.conv1(x))  # relu(bn1(conv1(x))): N x 64 x 112^2
        x = self.maxpool(x)                     # N x 64 x 56 x 56
        x = self.layer1(x)                      # N x 64*e x 56 x 56 (e: block.expansion)
        x = self.layer2(x)                      # N x 128*e x 28 x 28
        x = self.layer3(x)                      # N x 256*e x 14 x 14
        x = self.layer4(x)                      # N x 512*e x 7 x 7
        x = self.avgpool(x)                     # N x 512*e x 1 x 1
        x = x.flatten(1)                        # N x 512*e
        return self.fc(x)                       # N x num_classes


def _resnet(block, layers, num_classes, in_channels, plain, zero_init_residual):
    return ResNet(block, layers, num_classes, in_channels, plain, zero_init_residual)


def resnet18(num_classes=1000, in_channels=3, plain=False, zero_init_residual=False):
    """ResNet-18: BasicBlock x [2, 2, 2, 2]; 11,689,512 parameters (plain: 11,515,688)."""
    return _resnet(BasicBlock, [2, 2, 2, 2], num_classes, in_channels, plain, zero_init_residual)


def resnet34(num_classes=1000, in_channels=3, plain=False, zero_init_residual=False):
    """ResNet-34: BasicBlock x [3, 4, 6, 3]; 21,797,672 parameters (plain: 21,623,848)."""
    return _resnet(BasicBlock, [3, 4, 6, 3], num_classes, in_channels, plain, zero_init_residual)


def resnet50(num_classes=1000, in_channels=3, plain=False, zero_init_residual=False):
    """ResNet-50: Bottleneck x [3, 4, 6, 3]; 25,557,032 parameters (plain: 22,780,456)."""
    return _resnet(Bottleneck, [3, 4, 6, 3], num_classes, in_channels, plain, zero_init_residual)


def resnet101(num_classes=1000, in_channels=3, plain=False, zero_init_residual=False):
    """ResNet-101: Bottleneck x [3, 4, 23, 3]; 44,549,160 parameters (plain: 41,772,584)."""
    return _resnet(Bottleneck, [3, 4, 23, 3], num_classes, in_channels, plain,
                   zero_init_residual)


def resnet152(num_classes=1000, in_channels=3, plain=False, zero_init_residual=False):
    """ResNet-152: Bottleneck x [3, 8, 36, 3]; 60,192,808 parameters (plain: 57,416,232)."""
    return _resnet(Bottleneck, [3, 8, 36, 3], num_classes, in_channels, plain,
                   zero_init_residual)
