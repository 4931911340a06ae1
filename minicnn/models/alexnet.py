"""AlexNet (Krizhevsky, Sutskever, Hinton 2012, "ImageNet classification with deep convolutional
neural networks", NIPS 25; https://papers.nips.cc/paper/4824).

Five convolutional layers, three fully connected ones, ReLU everywhere, dropout in the first two
fully connected layers, overlapping max pooling (3x3 windows, stride 2). Three variants:

``alexnet()`` -- torchvision's layout (61,100,840 parameters at 1000 classes). One tower,
    64-192-384-256-256 channels (from the "One weird trick" paper, Krizhevsky 2014), no LRN,
    ``AdaptiveAvgPool2d((6, 6))`` before the classifier, and the classifier
    Dropout-Linear(9216, 4096)-ReLU-Dropout-Linear(4096, 4096)-ReLU-Linear(4096, classes).
    ``state_dict`` keys ``features.{0,3,6,8,10}.*`` and ``classifier.{1,4,6}.*`` are torchvision's,
    so its weights load by name.

``alexnet_paper()`` -- the 2012 paper's two-tower net (60,965,224 parameters at 1000 classes):

    layer   paper                                         here                         params
    conv1   96 kernels 11x11x3, stride 4 (48 per GPU,     Conv2d(3, 96, 11, 4, 2)      34,944
            each sees all 3 input channels)
            ReLU, LRN, max pool 3/2
    conv2   256 kernels 5x5x48: each GPU's 128 kernels    Conv2d(96, 256, 5, p=2,     307,456
            see only that GPU's 48 maps                    groups=2)
            ReLU, LRN, max pool 3/2
    conv3   384 kernels 3x3x256: the one layer that       Conv2d(256, 384, 3, p=1)    885,120
            talks across the GPUs
    conv4   384 kernels 3x3x192, per GPU                  Conv2d(384, 384, 3, p=1,    663,936
                                                           groups=2)
    conv5   256 kernels 3x3x192, per GPU                  Conv2d(384, 256, 3, p=1,    442,624
            ReLU, max pool 3/2                             groups=2)
    fc6     6x6x256 -> 4096 (across GPUs), ReLU, dropout  Linear(9216, 4096)       37,752,832
    fc7     4096 -> 4096, ReLU, dropout                   Linear(4096, 4096)       16,781,312
    fc8     4096 -> 1000, softmax                         Linear(4096, 1000)        4,097,000
                                                                          total    60,965,224

    Every layer has a bias. The two GPUs' halves are the two groups of a grouped convolution
    (``groups=2``: channels 0..C/2-1 are tower 1, the rest tower 2); the fully connected layers and
    conv3 see both towers, as in the paper's Figure 2. (The often quoted "60 million" is this
    count; torchvision's one-tower net above is a different, later layout.)

    LRN: ``b = a / (k + alpha * sum of a^2 over n = 5 neighbouring maps)^beta`` with k = 2,
    alpha = 1e-4, beta = 0.75 (paper, section 3.3), after the ReLU of conv1 and conv2 and before
    their pooling. NOTE: PyTorch's (and Caffe's, and minicnn's) ``LocalResponseNorm`` divides
    alpha by the window size n, so the paper's formula needs ``alpha = 5 * 1e-4`` there; the
    ``lrn_alpha`` argument is the paper's alpha and the conversion happens here. The LRN window
    is taken over all 96 (256) maps, not within each tower (the paper does not say; the group
    boundary changes only the maps at the edges).

    Input: the paper says 224x224 but its arithmetic needs 227x227 (Caffe crops 227 without
    padding). Here conv1 pads by 2 as torchvision does, so 224x224 and 227x227 inputs both end in
    6x6x256 maps before fc6; an ``AdaptiveAvgPool2d((6, 6))`` (no parameters, the identity at
    6x6) lets other sizes through too. The classifier follows the paper (and Caffe's
    bvlc_alexnet): Linear-ReLU-Dropout-Linear-ReLU-Dropout-Linear, i.e. dropout on the outputs of
    fc6 and fc7, so its Linear layers are ``classifier.0/3/6``. Initialisation is the paper's
    (section 5): weights N(0, 0.01^2); biases 1 in conv2, conv4, conv5, fc6 and fc7 (to give
    the ReLUs positive inputs early), 0 in the others. ``paper_init=False`` keeps PyTorch's
    default layer initialisation instead.

``alexnet_small()`` -- AlexNet's shape for 28x28 or 32x32 images (Fashion-MNIST, CIFAR-10):
    five 5x5/5x5/3x3/3x3/3x3 convolutions of 32-64-96-96-64 channels at stride 1, ReLU,
    overlapping 3x3/2 max pooling (padded by 1, so 28 -> 14 -> 7 -> 4 and 32 -> 16 -> 8 -> 4),
    ``AdaptiveAvgPool2d((4, 4))`` and Dropout-Linear(1024, 512)-ReLU-Dropout-Linear(512,
    512)-ReLU-Linear(512, classes) (torchvision's classifier order). No LRN unless ``lrn=True``
    (the paper's LRN after conv1 and conv2). 1,038,474 parameters at 10 classes and 1 input channel.
"""
import minicnn.nn as nn

# Architecture as data: each convolution is
#     (out_channels, kernel_size, stride, padding, groups, what follows its ReLU)
# where "what follows" is "" (nothing), "pool" (max pool) or "lrn+pool" (LRN, then max pool).
TORCHVISION_CFG = [
    (64, 11, 4, 2, 1, "pool"),
    (192, 5, 1, 2, 1, "pool"),
    (384, 3, 1, 1, 1, ""),
    (256, 3, 1, 1, 1, ""),
    (256, 3, 1, 1, 1, "pool"),
]
PAPER_CFG = [
    (96, 11, 4, 2, 1, "lrn+pool"),
    (256, 5, 1, 2, 2, "lrn+pool"),
    (384, 3, 1, 1, 1, ""),
    (384, 3, 1, 1, 2, ""),
    (256, 3, 1, 1, 2, "pool"),
]
SMALL_CFG = [   # the LRNs are dropped unless alexnet_small(lrn=True)
    (32, 5, 1, 2, 1, "lrn+pool"),
    (64, 5, 1, 2, 1, "lrn+pool"),
    (96, 3, 1, 1, 1, ""),
    (96, 3, 1, 1, 1, ""),
    (64, 3, 1, 1, 1, "pool"),
]

#: The paper's LRN constants (section 3.3), in the paper's convention (alpha NOT divided by n).
PAPER_LRN = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)


def make_features(cfg, in_channels=3, lrn=None, pool_padding=0):
    """The convolutional part: Conv2d-ReLU per entry of ``cfg``, then an LRN and/or a 3x3/2 max
    pool where the entry says so. ``lrn`` is a dict ``size, alpha, beta, k`` in the PAPER's
    convention (alpha not divided by size); None drops every LRN."""
    layers = []
    for out_channels, kernel_size, stride, padding, groups, after in cfg:
        layers += [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                             groups=groups),
                   nn.ReLU(inplace=True)]
        if "lrn" in after and lrn is not None:
            # NOTE: LocalResponseNorm (PyTorch's convention) uses alpha / size
            layers.append(nn.LocalResponseNorm(lrn["size"], alpha=lrn["alpha"] * lrn["size"],
                                               beta=lrn["beta"], k=lrn["k"]))
        if "pool" in after:
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2, padding=pool_padding))
        in_channels = out_channels
    return nn.Sequential(*layers)


def make_classifier(in_features, hidden, num_classes, dropout, dropout_first=True):
    """Three fully connected layers. ``dropout_first`` (torchvision): Dropout-Linear-ReLU-
    Dropout-Linear-ReLU-Linear; otherwise (the paper, Caffe): Linear-ReLU-Dropout-Linear-ReLU-
    Dropout-Linear. Either way the Linear layers sit at different indices, see the docstring."""
    if dropout_first:
        layers = [nn.Dropout(p=dropout), nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
                  nn.Dropout(p=dropout), nn.Linear(hidden, hidden), nn.ReLU(inplace=True)]
    else:
        layers = [nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Dropout(p=dropout),
                  nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(p=dropout)]
    return nn.Sequential(*layers, nn.Linear(hidden, num_classes))


class AlexNet(nn.Module):
    """``features`` (convolutions) -> ``avgpool`` (adaptive, to ``pool_size``) -> flatten ->
    ``classifier``. Build it with :func:`alexnet`, :func:`alexnet_paper` or
    :func:`alexnet_small`."""

    def __init__(self, cfg=TORCHVISION_CFG, num_classes=1000, in_channels=3, dropout=0.5,
                 pool_size=(6, 6), hidden=4096, lrn=None, pool_padding=0, dropout_first=True):
        super().__init__()
        self.features = make_features(cfg, in_channels, lrn, pool_padding)
        self.avgpool = nn.AdaptiveAvgPool2d(pool_size)
        channels = cfg[-1][0]
        self.classifier = make_classifier(channels * pool_size[0] * pool_size[1], hidden,
                                          num_classes, dropout, dropout_first)

    def forward(self, x):
        # shapes for alexnet / alexnet_paper at N x 3 x 224 x 224, alexnet_small at N x 1 x 28 x 28
        x = self.features(x)       # N x 256 x 6 x 6 / N x 256 x 6 x 6 / N x 64 x 4 x 4
        x = self.avgpool(x)        # the same (the identity at these input sizes)
        x = x.flatten(1)           # N x 9216 / N x 9216 / N x 1024
        return self.classifier(x)  # N x num_classes


def _paper_init(model):
    """The paper's initialisation (section 5): every weight N(0, 0.01^2); biases 1 in the 2nd,
    4th and 5th conv layers and the two hidden fully connected layers, 0 elsewhere."""
    convs = [m for m in model.features.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.classifier.modules() if isinstance(m, nn.Linear)]
    ones = {id(convs[1]), id(convs[3]), id(convs[4]), id(linears[0]), id(linears[1])}
    for m in convs + linears:
        nn.init.normal_(m.weight, 0.0, 0.01)
        nn.init.constant_(m.bias, 1.0 if id(m) in ones else 0.0)


def alexnet(num_classes=1000, in_channels=3, dropout=0.5):
    """torchvision's AlexNet (one tower, 64-192-384-256-256, no LRN): 61,100,840 parameters at
    1000 classes; keys and PyTorch default initialisation as torchvision's ``alexnet()``."""
    return AlexNet(TORCHVISION_CFG, num_classes, in_channels, dropout)


def alexnet_paper(num_classes=1000, in_channels=3, dropout=0.5, lrn_alpha=1e-4,
                  paper_init=True):
    """The 2012 paper's two-tower AlexNet: 96-256-384-384-256 with ``groups=2`` on conv2, conv4
    and conv5, LRN (n=5, alpha=``lrn_alpha`` in the paper's convention, beta=0.75, k=2) after
    conv1 and conv2, 60,965,224 parameters at 1000 classes. See the module docstring."""
    lrn = dict(PAPER_LRN, alpha=lrn_alpha)
    model = AlexNet(PAPER_CFG, num_classes, in_channels, dropout, lrn=lrn, dropout_first=False)
    if paper_init:
        _paper_init(model)
    return model


def alexnet_small(num_classes=10, in_channels=1, dropout=0.5, lrn=False):
    """AlexNet's shape for 28x28/32x32 inputs: 32-64-96-96-64 channels, 5x5, 5x5, 3x3, 3x3, 3x3
    convolutions at stride 1, overlapping 3x3/2 max pools (padded by 1) after conv1, conv2 and
    conv5, ReLU, a 1024-512-512-classes classifier with dropout (torchvision's order);
    ``lrn=True`` adds the paper's LRN after conv1 and conv2."""
    return AlexNet(SMALL_CFG, num_classes, in_channels, dropout, pool_size=(4, 4), hidden=512,
                   lrn=PAPER_LRN if lrn else None, pool_padding=1)
