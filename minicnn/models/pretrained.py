"""minicnn's own small model zoo: weights trained by minicnn on Fashion-MNIST, shipped inside the
package, loaded offline.

    model = mc.models.lenet5(pretrained=True)                  # 28x28 grey images, 10 classes
    model = mc.models.vgg_small(pretrained=True)
    model = mc.models.cifar_resnet(8, in_channels=1, pretrained=True)   # ResNet-8
    print(mc.models.pretrained.describe())                     # accuracy, size, checksum, command

The files live in ``minicnn/models/weights/``: one ``.npz`` per model (``np.load`` opens it) and
``manifest.json``, which records for each the factory and the arguments it was trained with,
its test accuracy on the 10,000 Fashion-MNIST test images, its SHA-256 checksum, the data
normalisation its inputs need (``(x - 0.2860) / 0.3530`` on pixels in [0, 1], as ``minicnn
train`` does), and the command that reproduces it (``experiments/pretrained/train.py``).

Loading checks that the call builds the architecture the weights were trained for (another
``num_classes`` or ``in_channels`` is an error that says which call fits; to reuse the weights
for other classes, load them and then :func:`minicnn.transfer.replace_head`), and that the file
still has its checksum (a damaged file is an error, never silently wrong weights).

The arrows point down: the model files (``lenet.py``, ``vgg.py``, ``resnet_cifar.py``) import
this module and mark each factory that takes ``pretrained=True`` with :func:`ships_weights`;
this module never imports them, it finds a factory by the name the manifest gives.
"""
import inspect
import json
import os

from minicnn.data.download import sha256_of
from minicnn.serialization import CheckpointError, read_archive

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
MANIFEST = os.path.join(WEIGHTS_DIR, "manifest.json")

__all__ = ["WEIGHTS_DIR", "manifest", "available", "describe", "load_pretrained",
           "pretrained_model", "ships_weights"]

#: factory name -> factory, for every factory marked with :func:`ships_weights`
_FACTORIES = {}


def ships_weights(factory):
    """Decorator for a model factory that takes ``pretrained=True``: the manifest's ``factory``
    entry names it, and :func:`pretrained_model` and the argument check find it here."""
    _FACTORIES[factory.__name__] = factory
    return factory


def manifest():
    """The parsed ``manifest.json``: ``{"models": {name: entry}}``."""
    try:
        with open(MANIFEST, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"minicnn's pre-trained weights are missing: no {MANIFEST} (an "
                                "installation without package data?). Reinstall minicnn, or "
                                "train them: python experiments/pretrained/train.py") from None


def available():
    """The names of the shipped models (``lenet5``, ``resnet8``, ``vgg_small``)."""
    return sorted(manifest()["models"])


def describe():
    """One line per shipped model: call, test accuracy, size, checksum."""
    lines = []
    for name, e in sorted(manifest()["models"].items()):
        args = ", ".join(f"{k}={v!r}" for k, v in e["kwargs"].items())
        lines.append(f"{e['factory']}({args}, pretrained=True): Fashion-MNIST test accuracy "
                     f"{100 * e['test_accuracy']:.2f}%, {e['parameters']:,} parameters, "
                     f"{e['bytes']:,} bytes, sha256 {e['sha256'][:16]}...")
    return "\n".join(lines)


def _entry(name):
    """The manifest entry of the shipped model ``name``; an unknown name lists the others."""
    entries = manifest()["models"]
    if name not in entries:
        raise ValueError(f"no pre-trained weights named {name!r} ship with minicnn; available: "
                         f"{', '.join(sorted(entries))}")
    return entries[name]


def _factory(entry):
    """The factory a manifest entry names (one marked with :func:`ships_weights`)."""
    try:
        return _FACTORIES[entry["factory"]]
    except KeyError:
        raise ValueError(f"the manifest names the factory {entry['factory']!r}, which does not "
                         f"take pretrained=True (those that do: {', '.join(sorted(_FACTORIES))})"
                         ) from None


def _expected_arguments(entry):
    """The factory's defaults overridden by the arguments the weights were trained with."""
    factory = _factory(entry)
    defaults = {k: p.default for k, p in inspect.signature(factory).parameters.items()
                if p.default is not inspect.Parameter.empty}
    return {**defaults, **entry["kwargs"]}


def load_pretrained(model, name, arguments):
    """Load the shipped weights ``name`` into ``model``, built by a factory called with the
    architecture ``arguments`` (a dict); used by the factories' ``pretrained=True``. Returns
    ``model``."""
    entry = _entry(name)
    expected = _expected_arguments(entry)
    differ = [(k, v, expected[k]) for k, v in arguments.items()
              if k in expected and expected[k] != v]
    if differ:
        fits = ", ".join(f"{k}={v!r}" for k, v in entry["kwargs"].items())
        raise ValueError(
            f"{entry['factory']}(pretrained=True): the shipped weights were trained on "
            f"Fashion-MNIST with " + ", ".join(f"{k}={want!r}" for k, _, want in differ) +
            ", but this call has " + ", ".join(f"{k}={got!r}" for k, got, _ in differ) +
            f". Call mc.models.{entry['factory']}({fits}, pretrained=True); for other classes, "
            "load them so and then minicnn.transfer.replace_head(model, num_classes)")
    path = os.path.join(WEIGHTS_DIR, entry["file"])
    if not os.path.exists(path):
        raise FileNotFoundError(f"the pre-trained weights file {path} is missing; reproduce it "
                                f"with: {entry['command']}")
    digest = sha256_of(path)
    if digest != entry["sha256"]:
        raise CheckpointError(f"{path} is damaged: its SHA-256 is {digest}, the manifest says "
                              f"{entry['sha256']}. Reinstall minicnn, or reproduce the file "
                              f"with: {entry['command']}")
    state, _ = read_archive(path, "weights")
    model.load_state_dict(state)   # strict: a key or shape that does not fit lists them all
    return model


def pretrained_model(name):
    """Build the shipped model ``name`` with the arguments it was trained with and load its
    weights: ``pretrained_model("resnet8")``."""
    entry = _entry(name)
    return _factory(entry)(**entry["kwargs"], pretrained=True)
