"""VGG (Simonyan, Zisserman 2015, "Very deep convolutional networks for large-scale image
recognition", ICLR; https://arxiv.org/abs/1409.1556), as torchvision builds it.

Stacks of 3x3 convolutions (padding 1, ReLU) separated by 2x2 max pools, five stages of 64, 128,
256, 512, 512 channels; the configurations of the paper's Table 1 are data (``CFGS``: a number is
a conv layer's output channels, "M" a max pool). ``AdaptiveAvgPool2d((7, 7))``, then
Linear(25088, 4096)-ReLU-Dropout-Linear(4096, 4096)-ReLU-Dropout-Linear(4096, classes).

    factory  paper's column  conv layers  parameters (1000 classes)  with batch_norm=True
    vgg11    A               8            132,863,336                132,868,840
    vgg13    B               10           133,047,848                133,053,736
    vgg16    D               13           138,357,544                138,365,992
    vgg19    E               16           143,667,240                143,678,248

``state_dict`` keys are torchvision's (``features.N.*``, ``classifier.{0,3,6}.*``; with batch
norm each conv is followed by a ``BatchNorm2d``, so the indices shift), and so is the
initialisation: convs ``kaiming_normal_(mode='fan_out', nonlinearity='relu')`` with bias 0,
batch norm weight 1 and bias 0, linear layers N(0, 0.01^2) with bias 0.

``vgg_small(depth)`` -- the same columns for 28x28 or 32x32 images (Fashion-MNIST, CIFAR-10):
every width scaled by ``width / 64`` (``width=16``: 16-32-64-128-128), max pools with
``ceil_mode=True`` so five halvings fit 28x28 (28 -> 14 -> 7 -> 4 -> 2 -> 1; 32 -> ... -> 1),
``AdaptiveAvgPool2d((1, 1))`` and a ``8*width -> 16*width -> 16*width -> classes`` classifier
(with dropout). At ``width=16``, 10 classes, 1 channel: 11 -> 678,218, 13 -> 689,786,
16 -> 1,021,882, 19 -> 1,353,978 parameters. NOTE: its linear layers are initialised
``kaiming_normal_(fan_in, relu)``, not torchvision's N(0, 0.01^2): that std suits 25088- and
4096-wide inputs (0.01 * sqrt(fan_in) = 1.6 and 0.64), but with 128 and 256 inputs each layer
shrinks the signal 6- to 9-fold. Measured on Fashion-MNIST with it: logits of std 1e-4 at the
start, conv gradients near 1e-7, and SGD with momentum 0.9 still at 10% test accuracy after 2
epochs on 20,000 images (lr 0.02) or 1 epoch on 6,000 (lr 0.05).

Stage-wise training (paper, section 3.1): "we began with training the configuration A, shallow
enough to be trained with random initialisation. Then, when training deeper architectures, we
initialised the first four convolutional layers and the last three fully-connected layers with
the layers of net A (the intermediate layers were initialised randomly)." :func:`vgg_grow` does
that. The paper also notes that after submission they found Glorot initialisation made it
unnecessary; torchvision's Kaiming initialisation (used here) trains every depth from scratch.
"""
import minicnn.nn as nn
from minicnn.models.pretrained import load_pretrained, ships_weights

# The paper's Table 1, columns A, B, D, E (torchvision's cfgs).
CFGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}
DEPTHS = {11: "A", 13: "B", 16: "D", 19: "E"}


def make_layers(cfg, batch_norm=False, in_channels=3, width=64, ceil_mode=False):
    """The convolutional part from a config: each number a Conv2d(3x3, padding 1) [+ BatchNorm2d]
    + ReLU, each "M" a 2x2/2 max pool. ``width`` rescales every channel count by ``width / 64``
    (64 keeps the paper's widths)."""
    layers = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=ceil_mode))
            continue
        out_channels = v * width // 64
        layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
        in_channels = out_channels
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """``features`` -> ``avgpool`` (adaptive, to ``pool_size``) -> flatten -> ``classifier``
    (three Linear layers of ``hidden`` units, ReLU and dropout between). Build it with
    :func:`vgg11`, ..., :func:`vgg19` or :func:`vgg_small`."""

    def __init__(self, features, num_classes=1000, init_weights=True, dropout=0.5,
                 pool_size=(7, 7), hidden=4096, linear_init="normal"):
        super().__init__()
        if linear_init not in ("normal", "kaiming"):
            raise ValueError(f"VGG: linear_init must be 'normal' or 'kaiming', got "
                             f"{linear_init!r}")
        self.linear_init = linear_init
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d(pool_size)
        channels = [m for m in features.modules() if isinstance(m, nn.Conv2d)][-1].out_channels
        self.classifier = nn.Sequential(
            nn.Linear(channels * pool_size[0] * pool_size[1], hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, num_classes),
        )
        if init_weights:
            self.reset_parameters()

    def reset_parameters(self):
        """torchvision's initialisation (see the module docstring); with ``linear_init=
        'kaiming'`` (the small configuration) the linear layers get ``kaiming_normal_(fan_in,
        relu)`` instead of N(0, 0.01^2)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                if self.linear_init == "kaiming":
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                else:
                    nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        # shapes for vgg* at N x 3 x 224 x 224; vgg_small(width=16) at N x 1 x 28 x 28
        x = self.features(x)       # N x 512 x 7 x 7;   N x 128 x 1 x 1
        x = self.avgpool(x)        # N x 512 x 7 x 7;   N x 128 x 1 x 1
        x = x.flatten(1)           # N x 25088;         N x 128
        return self.classifier(x)  # N x num_classes


def _vgg(cfg, num_classes, in_channels, batch_norm, dropout):
    return VGG(make_layers(CFGS[cfg], batch_norm, in_channels), num_classes, dropout=dropout)


def vgg11(num_classes=1000, in_channels=3, batch_norm=False, dropout=0.5):
    """VGG-11 (configuration A): 132,863,336 parameters; 132,868,840 with batch norm."""
    return _vgg("A", num_classes, in_channels, batch_norm, dropout)


def vgg13(num_classes=1000, in_channels=3, batch_norm=False, dropout=0.5):
    """VGG-13 (configuration B): 133,047,848 parameters; 133,053,736 with batch norm."""
    return _vgg("B", num_classes, in_channels, batch_norm, dropout)


def vgg16(num_classes=1000, in_channels=3, batch_norm=False, dropout=0.5):
    """VGG-16 (configuration D): 138,357,544 parameters; 138,365,992 with batch norm."""
    return _vgg("D", num_classes, in_channels, batch_norm, dropout)


def vgg19(num_classes=1000, in_channels=3, batch_norm=False, dropout=0.5):
    """VGG-19 (configuration E): 143,667,240 parameters; 143,678,248 with batch norm."""
    return _vgg("E", num_classes, in_channels, batch_norm, dropout)


@ships_weights
def vgg_small(depth=11, num_classes=10, in_channels=1, width=16, batch_norm=False, dropout=0.5,
              hidden=None, pretrained=False):
    """VGG-``depth`` (11, 13, 16 or 19) for 28x28/32x32 inputs: the paper's column with every
    width scaled by ``width / 64``, ceil-mode pools, global average pooling and a classifier of
    ``hidden`` (default ``16 * width``) units. See the module docstring. ``pretrained=True``
    loads the weights minicnn trained on Fashion-MNIST (default arguments only; see
    :mod:`minicnn.models.pretrained`)."""
    if depth not in DEPTHS:
        raise ValueError(f"vgg_small: depth must be one of {sorted(DEPTHS)}, got {depth!r}")
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"vgg_small: width must be a positive int, got {width!r}")
    features = make_layers(CFGS[DEPTHS[depth]], batch_norm, in_channels, width, ceil_mode=True)
    model = VGG(features, num_classes, dropout=dropout, pool_size=(1, 1),
                hidden=16 * width if hidden is None else hidden, linear_init="kaiming")
    if pretrained:
        load_pretrained(model, "vgg_small", dict(depth=depth, num_classes=num_classes,
                                                 in_channels=in_channels, width=width,
                                                 batch_norm=batch_norm, hidden=hidden))
    return model


# ---- stage-wise training ---------------------------------------------------------------------

def _conv_positions(model):
    """``[(label, conv_name, bn_name or None)]`` for the conv layers of ``model.features`` in
    order, labelled ``convS_I`` as the paper does: the I-th conv of stage S (stages end at the
    max pools)."""
    children = list(model.features.named_children())
    positions, stage, index = [], 1, 0
    for i, (name, module) in enumerate(children):
        if isinstance(module, nn.MaxPool2d):
            stage, index = stage + 1, 0
        elif isinstance(module, nn.Conv2d):
            index += 1
            bn = None
            if i + 1 < len(children) and isinstance(children[i + 1][1], nn.BatchNorm2d):
                bn = "features." + children[i + 1][0]
            positions.append((f"conv{stage}_{index}", "features." + name, bn))
    return positions


def _linear_names(model):
    return ["classifier." + name for name, m in model.classifier.named_children()
            if isinstance(m, nn.Linear)]


class GrowReport:
    """What :func:`vgg_grow` did: ``copied``, a list of ``(layer, source key, target key)`` for
    every tensor copied, and ``random``, the target's parameter keys left as initialised."""

    def __init__(self, copied, random):
        self.copied, self.random = copied, random

    def __repr__(self):
        lines = [f"copied {len(self.copied)} tensors:"]
        lines += [f"  {layer:9s} {src} -> {dst}" for layer, src, dst in self.copied]
        lines.append(f"left as initialised ({len(self.random)} parameters): "
                     + ", ".join(self.random))
        return "\n".join(lines)


def vgg_grow(shallow_model, deeper_model, conv_layers=4, fc_layers=3):
    """Initialise ``deeper_model`` from a trained ``shallow_model`` as the VGG paper did (section
    3.1): the shallow net's first ``conv_layers`` conv layers (None: all) and last ``fc_layers``
    linear layers are copied into the deeper net IN PLACE; everything else keeps its random
    initialisation. Returns a :class:`GrowReport`.

    Conv layers are matched by position within their stage: the shallow net's ``convS_I`` (the
    I-th conv of stage S; net A's first four are conv1_1, conv2_1, conv3_1, conv3_2) goes to the
    deeper net's ``convS_I``, so that shapes match (conv2_1 of A and of D both map 64 -> 128
    channels; D's conv1_2 has no counterpart in A and stays random). A batch norm right after a
    copied conv is copied with it (weight, bias, running statistics) when both nets have one.
    Linear layers are matched from the end. Works for any two :class:`VGG` models (standard or
    :func:`vgg_small` of the same width); a layer with no counterpart or another shape is an
    error, and nothing is copied then.
    """
    for role, model in (("shallow_model", shallow_model), ("deeper_model", deeper_model)):
        if not isinstance(model, VGG):
            raise TypeError(f"vgg_grow: {role} must be a VGG model, got {type(model).__name__}")
    src_sd, dst_sd = shallow_model.state_dict(), deeper_model.state_dict()
    src_convs = _conv_positions(shallow_model)
    dst_convs = {label: (conv, bn) for label, conv, bn in _conv_positions(deeper_model)}
    if conv_layers is None:
        conv_layers = len(src_convs)
    src_linears, dst_linears = _linear_names(shallow_model), _linear_names(deeper_model)
    if not 0 <= conv_layers <= len(src_convs):
        raise ValueError(f"vgg_grow: conv_layers must be between 0 and {len(src_convs)} (the "
                         f"shallow net's conv layers), got {conv_layers}")
    if not 0 <= fc_layers <= min(len(src_linears), len(dst_linears)):
        raise ValueError(f"vgg_grow: fc_layers must be between 0 and 3, got {fc_layers}")

    pairs, problems = [], []   # (layer label, source module name, target module name)
    for label, conv, bn in src_convs[:conv_layers]:
        if label not in dst_convs:
            problems.append(f"{label} ({conv}) has no counterpart in the deeper net")
            continue
        dst_conv, dst_bn = dst_convs[label]
        pairs.append((label, conv, dst_conv))
        if bn is not None and dst_bn is not None:
            pairs.append((label, bn, dst_bn))
    for k in range(fc_layers, 0, -1):   # fc1, fc2, fc3 counted in the deeper net
        pairs.append((f"fc{len(dst_linears) - k + 1}", src_linears[-k], dst_linears[-k]))

    copies, copied = {}, []
    for label, src, dst in pairs:
        for suffix in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            src_key, dst_key = f"{src}.{suffix}", f"{dst}.{suffix}"
            if src_key not in src_sd or dst_key not in dst_sd:
                continue
            if src_sd[src_key].shape != dst_sd[dst_key].shape:
                problems.append(f"{label}: {src_key} has shape {tuple(src_sd[src_key].shape)}, "
                                f"{dst_key} has {tuple(dst_sd[dst_key].shape)}")
                continue
            copies[dst_key] = src_sd[src_key]
            copied.append((label, src_key, dst_key))
    if problems:
        raise ValueError("vgg_grow: the shallow net's layers do not fit the deeper net (nothing "
                         "was copied):\n\t" + "\n\t".join(problems))
    deeper_model.load_state_dict(copies, strict=False)
    random = [name for name, _ in deeper_model.named_parameters() if name not in copies]
    return GrowReport(copied, random)
