"""minicnn's own pre-trained weights (minicnn/models/pretrained.py, minicnn/models/weights/):
each loads offline, is what the manifest says (checksum, size), and classifies real Fashion-MNIST
test images (the bundled subset) about as well as the manifest claims."""
import json
import os
import shutil

import numpy as np
import pytest

import minicnn as mc
from minicnn.checkpoint import CheckpointError
from minicnn.models import pretrained

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRIES = pretrained.manifest()["models"]


def _build(name):
    entry = ENTRIES[name]
    return getattr(mc.models, entry["factory"])(**entry["kwargs"], pretrained=True)


def _bundled_test_set():
    test = mc.data.FashionMNIST(train=False, subset=True)      # 1,000 real test images
    x = test.data.astype(np.float32)[:, None] / 255.0
    return (x - 0.2860) / 0.3530, test.targets


def test_the_shipped_zoo_is_small_and_complete():
    assert {"lenet5"} <= set(ENTRIES)
    total = 0
    for name, entry in ENTRIES.items():
        path = os.path.join(pretrained.WEIGHTS_DIR, entry["file"])
        assert os.path.getsize(path) == entry["bytes"]
        total += entry["bytes"]
        assert 0.8 < entry["test_accuracy"] <= 1.0
        assert "experiments/pretrained/train.py" in entry["command"]
        assert entry["dataset"].startswith("Fashion-MNIST, full")
    assert total < 5 * 2 ** 20                                   # a few MB in all
    assert os.path.exists(os.path.join(ROOT, "experiments", "pretrained", "train.py"))


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_pretrained_weights_load_and_classify_real_images(name):
    model = _build(name).eval()
    entry = ENTRIES[name]
    stored = np.load(os.path.join(pretrained.WEIGHTS_DIR, entry["file"]))
    for key, value in model.state_dict().items():
        assert np.array_equal(value, stored[key]), key
    assert sum(p.numel() for p in model.parameters()) == entry["parameters"]
    x, y = _bundled_test_set()
    with mc.no_grad():
        predictions = np.concatenate([model(mc.Tensor(x[i:i + 250])).data.argmax(axis=1)
                                      for i in range(0, len(x), 250)])
    accuracy = float((predictions == y).mean())
    # 1,000 of the 10,000 test images: within a few points of the full test set's accuracy
    assert abs(accuracy - entry["test_accuracy"]) < 0.04, (accuracy, entry["test_accuracy"])


def test_a_fresh_model_is_not_the_pretrained_one():
    fresh, loaded = mc.models.lenet5(), mc.models.lenet5(pretrained=True)
    assert not np.array_equal(fresh.features[0].weight.data, loaded.features[0].weight.data)


def test_other_arguments_are_refused_with_the_call_that_fits():
    with pytest.raises(ValueError) as info:
        mc.models.lenet5(num_classes=5, pretrained=True)
    message = str(info.value)
    assert "num_classes=10" in message and "num_classes=5" in message
    assert "mc.models.lenet5(" in message and "replace_head" in message
    with pytest.raises(ValueError, match="activation='tanh'"):
        mc.models.lenet5(activation="relu", pretrained=True)
    with pytest.raises(ValueError, match="available: "):
        mc.models.cifar_resnet(20, pretrained=True)


def test_pretrained_model_builds_each_entry():
    for name in ENTRIES:
        model = pretrained.pretrained_model(name)
        assert sum(p.numel() for p in model.parameters()) == ENTRIES[name]["parameters"]
    assert "lenet5(" in pretrained.describe() and "%" in pretrained.describe()
    assert pretrained.available() == sorted(ENTRIES)


def test_a_damaged_file_is_detected(tmp_path, monkeypatch):
    copy = tmp_path / "weights"
    shutil.copytree(pretrained.WEIGHTS_DIR, copy)
    path = copy / ENTRIES["lenet5"]["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF                                  # one flipped byte
    path.write_bytes(bytes(data))
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", str(copy))
    monkeypatch.setattr(pretrained, "MANIFEST", str(copy / "manifest.json"))
    with pytest.raises(CheckpointError, match="damaged"):
        mc.models.lenet5(pretrained=True)
    path.unlink()
    with pytest.raises(FileNotFoundError, match="experiments/pretrained/train.py"):
        mc.models.lenet5(pretrained=True)


def test_manifest_is_plain_json_with_checksums():
    with open(pretrained.MANIFEST) as f:
        raw = json.load(f)
    for entry in raw["models"].values():
        assert len(entry["sha256"]) == 64 and int(entry["sha256"], 16) >= 0
        assert entry["normalize"] == {"mean": [0.286], "std": [0.353]}
