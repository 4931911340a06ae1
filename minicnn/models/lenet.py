"""LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998, "Gradient-based learning applied to document
recognition", Proc. IEEE 86(11)).

    C1 conv 5x5, 6 maps -> S2 2x2 subsampling -> C3 conv 5x5, 16 maps -> S4 2x2 subsampling
    -> C5 120 units -> F6 84 units -> 10 outputs

61,706 parameters. The paper's input is 32x32; a 28x28 image (MNIST, Fashion-MNIST) gets a
padding of 2 in C1 so that every later shape is the paper's. Simplifications that everyone
teaches (and that we keep): C3 connects to all 6 maps (the paper's sparse connection table had
60 of the 96 possible map pairs), S2/S4 are plain average (or max) pooling without the paper's
trainable coefficient, and the output is a linear layer with softmax cross-entropy instead of
Euclidean RBF units.
"""
import minicnn.nn as nn
from minicnn.models.pretrained import load_pretrained, ships_weights

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}
_POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


class LeNet5(nn.Module):
    def __init__(self, num_classes=10, in_channels=1, input_size=28, activation="tanh",
                 pool="avg"):
        super().__init__()
        if input_size not in (28, 32):
            raise ValueError(f"LeNet5: input_size must be 28 (padded to 32) or 32, got "
                             f"{input_size}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"LeNet5: activation must be one of {sorted(_ACTIVATIONS)}, got "
                             f"{activation!r}")
        if pool not in _POOLS:
            raise ValueError(f"LeNet5: pool must be one of {sorted(_POOLS)}, got {pool!r}")
        act, pool_layer = _ACTIVATIONS[activation], _POOLS[pool]
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2 if input_size == 28 else 0),  # C1
            act(),
            pool_layer(2, 2),                                                        # S2
            nn.Conv2d(6, 16, 5),                                                     # C3
            act(),
            pool_layer(2, 2),                                                        # S4
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),                                              # C5
            act(),
            nn.Linear(120, 84),                                                      # F6
            act(),
            nn.Linear(84, num_classes),                                              # output
        )

    def forward(self, x):
        x = self.features(x)       # N x 16 x 5 x 5 (from N x 1 x 28 x 28 or 32 x 32)
        x = x.flatten(1)           # N x 400
        return self.classifier(x)  # N x num_classes


@ships_weights
def lenet5(num_classes=10, in_channels=1, input_size=28, activation="tanh", pool="avg",
           pretrained=False):
    """LeNet-5. ``activation`` 'tanh' (the paper's squashing function, default), 'relu' or
    'sigmoid'; ``pool`` 'avg' (the paper's subsampling, default) or 'max'. ``pretrained=True``
    loads the weights minicnn trained on Fashion-MNIST (default arguments only; see
    :mod:`minicnn.models.pretrained`)."""
    model = LeNet5(num_classes, in_channels, input_size, activation, pool)
    if pretrained:
        load_pretrained(model, "lenet5", dict(num_classes=num_classes, in_channels=in_channels,
                                              input_size=input_size, activation=activation,
                                              pool=pool))
    return model
