"""The data sets ``minicnn train``, the experiments and the pre-trained weights use, ready to train.

    from minicnn.data.presets import NORMALIZE, load_data

    train, test, channels, size = load_data("fashion-mnist")    # normalised, 1 channel, 28x28
    train, test, channels, size = load_data("cifar10", augment=True)
    train, val, test, channels, size = load_data("fashion-mnist", val_fraction=0.1)

One place says how each data set is normalised (``NORMALIZE``: the per-channel mean and std of
its training images) and which transforms a training split gets, so that the command line, the
gradient-flow and transfer experiments and the shipped weights all see the same inputs. With
``val_fraction`` a validation part is held out of the training split (always the same images:
:data:`~minicnn.data.split.SPLIT_SEED`), measured without the training augmentation.
"""
from minicnn.data import transforms as T
from minicnn.data.cifar import CIFAR10
from minicnn.data.mnist import MNIST, FashionMNIST, fashion_mnist_message, load_fashion_mnist
from minicnn.data.split import SPLIT_SEED, hold_out_validation

__all__ = ["NORMALIZE", "DATASETS", "load_data"]

#: data set -> (per-channel mean, per-channel std) of its training images, pixels in [0, 1]
#: (computed once from the full training sets)
NORMALIZE = {"fashion-mnist": ((0.2860,), (0.3530,)), "mnist": ((0.1307,), (0.3081,)),
             "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))}
#: the names :func:`load_data` knows
DATASETS = tuple(NORMALIZE)


def load_data(name, subset="auto", augment=False, root=None, log=print, *, val_fraction=None,
              split_seed=SPLIT_SEED):
    """``(train, test, in_channels, image_size)`` for a data set of :data:`DATASETS`, each
    split normalised with :data:`NORMALIZE`; with ``val_fraction`` (a number in [0, 1))
    ``(train, val, test, in_channels, image_size)``, the ``val`` part (None for 0) held out of
    the training split with ``split_seed`` (:func:`~minicnn.data.split.hold_out_validation`).

    ``subset``: 'auto' (Fashion-MNIST only: the full set when installed, else the bundled
    subset), 'full' or 'bundled'. ``augment`` adds random crops and flips to the training split
    (CIFAR-10; for the 28x28 grey sets a 2-pixel random crop only). ``log`` (None for silence)
    gets one line saying which data was found.

    NOTE: the validation part gets the test split's transform (the normalisation only), never
    the training augmentation: it measures the model as the test set will.
    """
    if name not in NORMALIZE:
        raise ValueError(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}")
    mean, std = NORMALIZE[name]
    normalize = T.Normalize(mean, std)
    size = 32 if name == "cifar10" else 28
    if augment:
        crop = T.RandomCrop(size, padding=4 if name == "cifar10" else 2)
        flips = [T.RandomHorizontalFlip()] if name == "cifar10" else []
        train_tf = T.Compose([crop, *flips, normalize])
    else:
        train_tf = normalize
    if name == "fashion-mnist":
        if subset == "auto":
            train, test = load_fashion_mnist(root, train_transform=train_tf,
                                             test_transform=normalize, verbose=False)
        else:
            use_subset = subset == "bundled"
            train = FashionMNIST(root, train=True, transform=train_tf, subset=use_subset)
            test = FashionMNIST(root if not use_subset else None, train=False,
                                transform=normalize, subset=use_subset)
        if log:
            log(fashion_mnist_message(train, test, prefer_full=subset != "bundled"))
    else:
        if subset == "bundled":
            raise ValueError(f"only Fashion-MNIST ships a bundled subset, not {name}")
        cls = MNIST if name == "mnist" else CIFAR10
        train = cls(root, train=True, transform=train_tf)
        test = cls(root, train=False, transform=normalize)
        if log:
            log(f"{name}: {len(train):,} training / {len(test):,} test images")
    if val_fraction is None:
        return train, test, len(mean), size
    train, val = hold_out_validation(train, val_fraction, normalize, split_seed)
    return train, val, test, len(mean), size
