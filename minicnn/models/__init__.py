"""The architectures of the "Modern CNNs" lecture, as PyTorch/torchvision define them.

Each family lives in its own file; the factories (``lenet5``, ...) are the public names, and
:func:`get_model` finds a factory by name (the command line uses it).
"""
from minicnn.models.lenet import LeNet5, lenet5

MODELS = {"lenet5": lenet5}


def get_model(name, **kwargs):
    """Build the model called ``name`` (a key of ``MODELS``) with the factory's arguments."""
    try:
        factory = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}") \
            from None
    return factory(**kwargs)


__all__ = ["LeNet5", "lenet5", "MODELS", "get_model"]
