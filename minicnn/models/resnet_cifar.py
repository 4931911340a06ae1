"""The CIFAR-10 ResNets (He, Zhang, Ren, Sun 2016, "Deep residual learning for image recognition",
CVPR, Section 4.2, https://arxiv.org/abs/1512.03385) and their plain twins.

    conv 3x3, 16 -> stage 1: n blocks, 16 channels, 32x32 -> stage 2: n blocks, 32 channels, 16x16
    -> stage 3: n blocks, 64 channels, 8x8 -> global average pool -> fc

Each block is two 3x3 convs (a BasicBlock), so the depth is 6n + 2: ResNet-20/32/44/56/110 for
n = 3/5/7/9/18, with 269,722 / 464,154 / 658,586 / 853,018 / 1,727,962 parameters (10 classes).
The first block of stages 2 and 3 halves the size with stride 2 and doubles the width.

Shortcuts are the paper's option A, which has NO parameters: the identity, and where the shape
changes, the input subsampled with stride 2 (``x[:, :, ::2, ::2]``) and zero-padded with the new
channels (the old channels keep their index, channels ``C_in .. C_out - 1`` of the shortcut are
zeros). So ``plain=True`` -- the same layers with every addition removed -- has exactly the same
parameters and ``state_dict`` as the residual net: weights move between the twins unchanged.

For the gradient-flow experiments (plain vs residual, with and without batch norm, different
activations and initialisations) the factories also take:

- ``norm=True``: batch norm after every conv; ``norm=False`` drops it and gives the convs a bias
  instead (the counts change: ResNet-20 without BN has 269,034 parameters);
- ``activation='relu'`` (or ``'tanh'``, ``'sigmoid'``);
- ``init='kaiming_fan_out'``: convs ``kaiming_normal_(mode='fan_out')`` as torchvision's ResNets
  (default), ``'kaiming_fan_in'`` (He et al. 2015's forward rule), ``'xavier'`` (Glorot normal),
  ``'normal'`` (N(0, 0.01**2), the small fixed scale that makes deep plain nets without BN lose
  their signal and gradients) or ``'default'`` (each layer's own ``reset_parameters``); the
  gain follows ``activation``.
  BN weights start at 1 and biases at 0; the fc layer keeps ``Linear``'s default. Conv biases
  (``norm=False``) start at 0, except with ``'default'``;
- ``zero_init_residual=False``: True starts the second BN weight of every residual block at 0
  (torchvision's option; Goyal et al. 2017, "Accurate, large minibatch SGD", Section 5.1), so
  that every block starts as the identity and a deep net starts as a shallow one.

``model.blocks()`` lists the 3n blocks in the order forward runs them (attach hooks there).
The nets take any input of at least 8x8: 28x28 Fashion-MNIST with ``in_channels=1`` runs through
28 -> 14 -> 7 before the average pool.
"""
import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn.models.pretrained import load_pretrained, ships_weights

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
_INITS = ("kaiming_fan_out", "kaiming_fan_in", "xavier", "normal", "default")


def conv3x3(in_planes, out_planes, stride=1, bias=False):
    """3x3 convolution with padding 1 (no bias when a batch norm follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=bias)


def _norm(planes, norm):
    return nn.BatchNorm2d(planes) if norm else nn.Identity()


def init_conv_(conv, init, activation):
    """Initialise ``conv`` in place with the scheme ``init``: 'kaiming_fan_out' /
    'kaiming_fan_in' (He et al. 2015, kaiming normal), 'xavier' (Glorot normal) or 'normal'
    (N(0, 0.01^2)); the gain follows ``activation``. A bias starts at 0."""
    if init == "xavier":
        nn.init.xavier_normal_(conv.weight, gain=nn.init.calculate_gain(activation))
    elif init == "normal":
        nn.init.normal_(conv.weight, 0.0, 0.01)
    else:
        nn.init.kaiming_normal_(conv.weight, mode=init[len("kaiming_"):],
                                nonlinearity=activation)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class ZeroPadShortcut(nn.Module):
    """Option A shortcut, no parameters: subsample by ``stride`` and append zero channels.

    ``(N, C_in, H, W) -> (N, C_out, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, in_planes, out_planes, stride):
        super().__init__()
        if out_planes < in_planes:
            raise ValueError(f"ZeroPadShortcut: cannot shrink {in_planes} channels to "
                             f"{out_planes} by zero padding")
        self.in_planes, self.out_planes, self.stride = in_planes, out_planes, stride

    def forward(self, x):
        x = x[:, :, ::self.stride, ::self.stride]   # N x C_in x H/stride x W/stride
        extra = self.out_planes - self.in_planes
        return F.pad(x, (0, 0, 0, 0, 0, extra))     # N x C_out x H/stride x W/stride

    def extra_repr(self):
        return f"{self.in_planes}, {self.out_planes}, stride={self.stride}"


class CifarBasicBlock(nn.Module):
    """``act(bn2(conv2(act(bn1(conv1(x))))) + shortcut(x))``; ``residual=False`` drops the
    addition (the plain block). ``downsample`` is the option A shortcut when the shape changes
    (None otherwise, and always None in a plain block)."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, residual=True, norm=True, activation="relu"):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride, bias=not norm)
        self.bn1 = _norm(planes, norm)
        self.act = ACTIVATIONS[activation]()
        self.conv2 = conv3x3(planes, planes, bias=not norm)
        self.bn2 = _norm(planes, norm)
        self.downsample = None
        if residual and (stride != 1 or inplanes != planes):
            self.downsample = ZeroPadShortcut(inplanes, planes, stride)
        self.residual = residual

    def forward(self, x):
        # act(bn1(conv1(x))): nn.norm_relu runs batch norm + ReLU as one fused op (same numbers)
        out = nn.norm_relu(self.bn1, self.act, self.conv1(x))  # N x planes x H/stride x W/stride
        if not self.residual:                    # plain: act(bn2(conv2(out))), fused the same way
            return nn.norm_relu(self.bn2, self.act, self.conv2(out))
        out = self.bn2(self.conv2(out))          # N x planes x H/stride x W/stride
        identity = x if self.downsample is None else self.downsample(x)  # same shape as out
        return nn.residual_act(self.act, out, identity)  # the shortcut: act(F(x) + x), fused


class CifarResNet(nn.Module):
    """``CifarResNet(depth=20, num_classes=10, in_channels=3, plain=False, norm=True,
    activation='relu', init='kaiming_fan_out', zero_init_residual=False)``; ``depth = 6n + 2``."""

    def __init__(self, depth=20, num_classes=10, in_channels=3, plain=False, norm=True,
                 activation="relu", init="kaiming_fan_out", zero_init_residual=False):
        super().__init__()
        if zero_init_residual and (plain or not norm):
            raise ValueError("CifarResNet: zero_init_residual=True needs residual blocks with "
                             "batch norm (a plain block would start as the zero function, and "
                             "without BN there is no BN weight to zero)")
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CifarResNet: depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, 44, "
                             f"56, 110...), got {depth!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"CifarResNet: activation must be one of {sorted(ACTIVATIONS)}, "
                             f"got {activation!r}")
        if init not in _INITS:
            raise ValueError(f"CifarResNet: init must be one of {_INITS}, got {init!r}")
        n = (depth - 2) // 6
        self.depth, self.plain, self.norm, self.activation = depth, plain, norm, activation
        self.zero_init_residual = zero_init_residual
        self.inplanes = 16
        self.conv1 = conv3x3(in_channels, 16, bias=not norm)
        self.bn1 = _norm(16, norm)
        self.act = ACTIVATIONS[activation]()
        self.layer1 = self._make_layer(16, n, stride=1)
        self.layer2 = self._make_layer(32, n, stride=2)
        self.layer3 = self._make_layer(64, n, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)
        self.reset_parameters(init)

    def _make_layer(self, planes, blocks, stride):
        layers = []
        for i in range(blocks):
            layers.append(CifarBasicBlock(self.inplanes, planes, stride if i == 0 else 1,
                                          residual=not self.plain, norm=self.norm,
                                          activation=self.activation))
            self.inplanes = planes
        return nn.Sequential(*layers)

    def reset_parameters(self, init="kaiming_fan_out"):
        """(Re)initialise every conv and BN with the scheme ``init`` (see the module docstring);
        the fc layer is left alone."""
        if init not in _INITS:
            raise ValueError(f"CifarResNet: init must be one of {_INITS}, got {init!r}")
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if init == "default":
                    m.reset_parameters()
                else:
                    init_conv_(m, init, self.activation)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if self.zero_init_residual:
            for block in self.blocks():
                nn.init.constant_(block.bn2.weight, 0)   # F(x) = 0: the block is the identity

    def blocks(self):
        """The 3n blocks in the order forward runs them."""
        return [b for layer in (self.layer1, self.layer2, self.layer3) for b in layer]

    def forward(self, x):
        x = nn.norm_relu(self.bn1, self.act, self.conv1(x))  # act(bn1(conv1(x))): N x 16 x 32 x 32
        x = self.layer1(x)                     # N x 16 x 32 x 32
        x = self.layer2(x)                     # N x 32 x 16 x 16
        x = self.layer3(x)                     # N x 64 x 8 x 8
        x = self.avgpool(x)                    # N x 64 x 1 x 1
        x = x.flatten(1)                       # N x 64
        return self.fc(x)                      # N x num_classes


@ships_weights
def cifar_resnet(depth=20, num_classes=10, in_channels=3, plain=False, norm=True,
                 activation="relu", init="kaiming_fan_out", zero_init_residual=False,
                 pretrained=False):
    """The CIFAR ResNet of any depth 6n + 2 (8, 14, 20, ...); see the module docstring.

    Parameter count with BN: 16*9*c + 32 (stem, c = in_channels) + 3n BasicBlocks + 65 * classes.
    Without BN (``norm=False``) each conv gets a bias and each BN's 2*C goes: ResNet-20,
    10 classes: 269,722 with BN, 269,034 without.

    ``pretrained=True`` loads weights minicnn trained on Fashion-MNIST, shipped for
    ``cifar_resnet(8, in_channels=1)`` (see :mod:`minicnn.models.pretrained`).
    """
    model = CifarResNet(depth, num_classes, in_channels, plain, norm, activation, init,
                        zero_init_residual)
    if pretrained:
        load_pretrained(model, f"resnet{depth}", dict(
            depth=depth, num_classes=num_classes, in_channels=in_channels, plain=plain,
            norm=norm, activation=activation))
    return model


def resnet20(num_classes=10, in_channels=3, plain=False, norm=True, activation="relu",
             init="kaiming_fan_out"):
    """ResNet-20 (n = 3): 269,722 parameters; ``plain=True`` the same count."""
    return CifarResNet(20, num_classes, in_channels, plain, norm, activation, init)


def resnet32(num_classes=10, in_channels=3, plain=False, norm=True, activation="relu",
             init="kaiming_fan_out"):
    """ResNet-32 (n = 5): 464,154 parameters; ``plain=True`` the same count."""
    return CifarResNet(32, num_classes, in_channels, plain, norm, activation, init)


def resnet44(num_classes=10, in_channels=3, plain=False, norm=True, activation="relu",
             init="kaiming_fan_out"):
    """ResNet-44 (n = 7): 658,586 parameters; ``plain=True`` the same count."""
    return CifarResNet(44, num_classes, in_channels, plain, norm, activation, init)


def resnet56(num_classes=10, in_channels=3, plain=False, norm=True, activation="relu",
             init="kaiming_fan_out"):
    """ResNet-56 (n = 9): 853,018 parameters; ``plain=True`` the same count."""
    return CifarResNet(56, num_classes, in_channels, plain, norm, activation, init)


def resnet110(num_classes=10, in_channels=3, plain=False, norm=True, activation="relu",
              init="kaiming_fan_out"):
    """ResNet-110 (n = 18): 1,727,962 parameters; ``plain=True`` the same count."""
    return CifarResNet(110, num_classes, in_channels, plain, norm, activation, init)
