"""The architectures of the "Modern CNNs" lecture, as their papers and torchvision define them.

One file per family; the factories are the public names. At their standard configuration the
parameter counts equal the papers' and torchvision's and the ``state_dict`` keys equal
torchvision's, so torchvision weights load by name. Each family also has a small configuration
for 28x28 / 32x32 images that trains on a laptop CPU in minutes. :func:`get_model` finds a
factory by name (the command line uses it).
"""
from minicnn.models.alexnet import alexnet, alexnet_paper, alexnet_small
from minicnn.models.densenet import (DenseNet, densenet121, densenet161, densenet169,
                                     densenet201, densenet_bc_cifar, densenet_small)
from minicnn.models.fcn import FCN, fcn8s, fcn16s, fcn32s, fcn_small
from minicnn.models.googlenet import (GoogLeNet, GoogLeNetOutputs, googlenet, googlenet_loss,
                                      googlenet_paper, googlenet_small)
from minicnn.models.lenet import LeNet5, lenet5
from minicnn.models.resnet import ResNet, resnet18, resnet34, resnet50, resnet101, resnet152
from minicnn.models.resnet_cifar import (CifarResNet, cifar_resnet, resnet20, resnet32, resnet44,
                                         resnet56, resnet110)
from minicnn.models.unet import UNet, unet, unet_output_size
from minicnn.models.vgg import vgg11, vgg13, vgg16, vgg19, vgg_grow, vgg_small
from minicnn.models import pretrained  # noqa: E402  (mc.models.pretrained.describe())

#: every factory by name: (factory, the input shape (C, H, W) it is meant for)
MODELS = {
    "lenet5": (lenet5, (1, 28, 28)),
    "alexnet": (alexnet, (3, 224, 224)),
    "alexnet_paper": (alexnet_paper, (3, 224, 224)),
    "alexnet_small": (alexnet_small, (1, 28, 28)),
    "vgg11": (vgg11, (3, 224, 224)),
    "vgg13": (vgg13, (3, 224, 224)),
    "vgg16": (vgg16, (3, 224, 224)),
    "vgg19": (vgg19, (3, 224, 224)),
    "vgg_small": (vgg_small, (1, 28, 28)),
    "googlenet": (googlenet, (3, 224, 224)),
    "googlenet_paper": (googlenet_paper, (3, 224, 224)),
    "googlenet_small": (googlenet_small, (1, 28, 28)),
    "resnet18": (resnet18, (3, 224, 224)),
    "resnet34": (resnet34, (3, 224, 224)),
    "resnet50": (resnet50, (3, 224, 224)),
    "resnet101": (resnet101, (3, 224, 224)),
    "resnet152": (resnet152, (3, 224, 224)),
    "resnet20": (resnet20, (3, 32, 32)),
    "resnet32": (resnet32, (3, 32, 32)),
    "resnet44": (resnet44, (3, 32, 32)),
    "resnet56": (resnet56, (3, 32, 32)),
    "resnet110": (resnet110, (3, 32, 32)),
    "densenet121": (densenet121, (3, 224, 224)),
    "densenet169": (densenet169, (3, 224, 224)),
    "densenet201": (densenet201, (3, 224, 224)),
    "densenet_bc_cifar": (densenet_bc_cifar, (3, 32, 32)),
    "densenet_small": (densenet_small, (1, 28, 28)),
    "unet": (unet, (1, 572, 572)),
}


def factory_of(name):
    """The factory of the model called ``name`` (a key of ``MODELS``)."""
    try:
        return MODELS[name][0]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}") \
            from None


def get_model(name, **kwargs):
    """Build the model called ``name`` (a key of ``MODELS``) with the factory's arguments."""
    return factory_of(name)(**kwargs)


def default_input_shape(name):
    """The (C, H, W) input a model of ``MODELS`` is made for."""
    return MODELS[name][1]


__all__ = sorted(set(MODELS) | {
    "LeNet5", "DenseNet", "GoogLeNet", "GoogLeNetOutputs", "ResNet", "CifarResNet", "UNet",
    "cifar_resnet", "densenet161", "googlenet_loss", "unet_output_size", "vgg_grow", "MODELS",
    "get_model", "factory_of", "default_input_shape"})
