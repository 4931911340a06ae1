"""Transfer-learning tools (minicnn/transfer.py): freezing by stage or module, a new head,
feature extraction, parameter groups, the trainable/frozen report, no gradient work for frozen
parameters (Function.needs_input_grad), and the experiment behind ``minicnn finetune``."""
import argparse
import json

import numpy as np
import pytest

import minicnn as mc
import minicnn.nn as nn
import minicnn.nn.functional as F
from minicnn import transfer
from minicnn.experiments import finetune


def _batch(n=16, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, 28, 28)).astype(np.float32)
    return mc.Tensor(x), mc.Tensor(rng.integers(0, classes, n))


def _steps(model, opt, n=3, classes=10):
    model.train()
    for i in range(n):
        x, y = _batch(classes=classes, seed=i)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


# ---- names --------------------------------------------------------------------------------------

def test_stages_of_the_small_models():
    r = transfer.stages(mc.models.resnet20(in_channels=1))
    assert list(r) == ["stem", "layer1", "layer2", "layer3", "head"]
    assert r["stem"] == ["conv1", "bn1"] and r["head"] == ["fc"]
    v = transfer.stages(mc.models.vgg_small())
    assert list(v) == ["stage1", "stage2", "stage3", "stage4", "stage5", "classifier", "head"]
    assert v["head"] == ["classifier.6"] and v["stage1"] == ["features.0", "features.1",
                                                              "features.2"]
    lenet = transfer.stages(mc.models.lenet5())
    assert list(lenet) == ["stage1", "stage2", "classifier", "head"]
    assert transfer.head_name(mc.models.densenet_small()) == "classifier"
    assert transfer.head_name(mc.models.googlenet_small()) == "fc"


def test_unknown_name_lists_the_stages():
    with pytest.raises(ValueError, match="stem, layer1, layer2, layer3, head"):
        transfer.freeze(mc.models.resnet20(in_channels=1), "layer4")


# ---- freezing -----------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_frozen_weights_are_bit_identical_after_training_steps(optimizer):
    mc.manual_seed(0)
    model = mc.models.resnet20(in_channels=1)
    transfer.freeze(model, "stem", "layer1", "layer2.0.conv1")
    frozen = {k: v for k, v in model.state_dict().items()
              if k.startswith(("conv1", "bn1", "layer1", "layer2.0.conv1"))}
    trainable_before = model.layer3[2].conv2.weight.data.copy()
    params = list(model.parameters())   # all of them: the optimiser must skip the frozen ones
    opt = (mc.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-2) if optimizer == "sgd"
           else mc.optim.Adam(params, lr=1e-2, weight_decay=1e-2))
    _steps(model, opt)
    after = model.state_dict()
    for key, value in frozen.items():   # weights AND batch-norm running statistics
        assert np.array_equal(after[key], value), key
        assert after[key].dtype == value.dtype
    assert not np.array_equal(model.layer3[2].conv2.weight.data, trainable_before)
    # trainable batch norms did update their statistics
    assert not np.array_equal(after["layer3.0.bn1.running_mean"],
                              np.zeros_like(after["layer3.0.bn1.running_mean"]))


def test_frozen_parameters_get_no_gradient_and_unfreeze_restores():
    model = mc.models.lenet5()
    transfer.freeze(model)
    transfer.unfreeze(model, "head")
    x, y = _batch()
    F.cross_entropy(model(x), y).backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == name.startswith("classifier.4"), name
    assert transfer.frozen_modules(model) == ["features.0", "features.3", "classifier.0",
                                              "classifier.2"]
    transfer.unfreeze(model)
    assert transfer.frozen_modules(model) == []
    assert all(p.requires_grad for p in model.parameters())


def test_frozen_batch_norm_stays_in_eval_mode_and_unfreezing_lets_it_go():
    model = mc.models.resnet20(in_channels=1)
    transfer.freeze(model, "stem")
    model.train()
    x, _ = _batch(n=8)
    model(x)
    assert model.bn1.training is False            # kept in eval mode by the freeze
    assert model.layer1[0].bn1.training is True
    assert np.array_equal(model.bn1.running_mean.data, np.zeros(16, np.float32))
    transfer.unfreeze(model, "stem")
    model.train()
    model(x)
    assert model.bn1.training is True
    assert not np.array_equal(model.bn1.running_mean.data, np.zeros(16, np.float32))


# ---- no gradient work for frozen parameters -----------------------------------------------------

def test_linear_skips_the_products_nobody_needs(monkeypatch):
    from minicnn import threads
    calls = []
    real = threads.matmul

    def counting(a, b, *args, **kwargs):
        calls.append((a.shape, b.shape))
        return real(a, b, *args, **kwargs)

    monkeypatch.setattr(threads, "matmul", counting)
    rng = np.random.default_rng(0)
    x_data = rng.standard_normal((5, 4))
    w_data, b_data = rng.standard_normal((3, 4)), rng.standard_normal(3)

    # the first trainable layer after a frozen part: its input needs no gradient
    x, w, b = mc.Tensor(x_data), mc.Tensor(w_data, requires_grad=True), \
        mc.Tensor(b_data, requires_grad=True)
    calls.clear()
    F.linear(x, w, b).sum().backward()
    assert len(calls) == 2                # forward + gW only
    np.testing.assert_allclose(w.grad, np.ones((5, 3)).T @ x_data)

    # a frozen layer between trainable ones: its weight needs no gradient
    x, w = mc.Tensor(x_data, requires_grad=True), mc.Tensor(w_data)
    calls.clear()
    F.linear(x, w, mc.Tensor(b_data)).sum().backward()
    assert len(calls) == 2                # forward + gx only
    assert w.grad is None
    np.testing.assert_allclose(x.grad, np.ones((5, 3)) @ w_data)

    x, w = mc.Tensor(x_data, requires_grad=True), mc.Tensor(w_data, requires_grad=True)
    calls.clear()
    F.linear(x, w).sum().backward()
    assert len(calls) == 3                # both products when both are wanted


def test_conv_with_frozen_weight_computes_no_weight_gradient(monkeypatch):
    from minicnn.engine import conv as conv_ops   # the products the conv op asks for
    seen = []
    real_input_grad, real_nhwc = conv_ops.conv2d_input_grad_nhwc, conv_ops.conv2d_nhwc

    def input_grad(gy, w, hw, stride, padding, groups=1, x=None):
        seen.append(("input_grad", x is not None))
        return real_input_grad(gy, w, hw, stride, padding, groups, x=x)

    def nhwc(x, w, b, stride, padding, groups=1, gy=None, need_y=True):
        seen.append(("nhwc", gy is not None))
        return real_nhwc(x, w, b, stride, padding, groups, gy=gy, need_y=need_y)

    monkeypatch.setattr(conv_ops, "conv2d_input_grad_nhwc", input_grad)
    monkeypatch.setattr(conv_ops, "conv2d_nhwc", nhwc)
    rng = np.random.default_rng(0)
    x = mc.Tensor(rng.standard_normal((2, 3, 6, 6)), requires_grad=True)
    w = mc.Tensor(rng.standard_normal((4, 3, 3, 3)))               # frozen
    F.conv2d(x, w, padding=1).sum().backward()
    assert ("input_grad", False) in seen                           # gx without gW
    assert not any(kind == "nhwc" and with_grad for kind, with_grad in seen)
    assert w.grad is None and x.grad is not None

    seen.clear()
    x2 = mc.Tensor(x.data)                                          # data: no gradient
    w2 = mc.Tensor(w.data, requires_grad=True)
    F.conv2d(x2, w2, padding=1).sum().backward()
    assert not any(kind == "input_grad" for kind, _ in seen)       # no gx at all
    assert w2.grad is not None


# ---- a new head, features, groups, report -------------------------------------------------------

def test_replace_head_keeps_keys_and_trains():
    mc.manual_seed(0)
    model = mc.models.lenet5(activation="relu", pool="max")
    old_keys = list(model.state_dict())
    head = transfer.replace_head(model, 3)
    assert model.classifier[4] is head and head.out_features == 3
    assert list(model.state_dict()) == old_keys
    transfer.freeze(model)
    transfer.unfreeze(model, "head")
    backbone = {k: v for k, v in model.state_dict().items() if not k.startswith("classifier.4")}
    opt = mc.optim.Adam(transfer.param_groups(model, lr=0.05, backbone_lr=0.0), lr=0.05)
    # three classes of images: a bright square in one of three places, plus noise
    rng = np.random.default_rng(0)
    labels = np.arange(24) % 3
    images = 0.3 * rng.standard_normal((24, 1, 28, 28)).astype(np.float32)
    for i, c in enumerate(labels):
        images[i, 0, 2 + 8 * c:10 + 8 * c, 2 + 8 * c:10 + 8 * c] += 2.0
    x, y = mc.Tensor(images), mc.Tensor(labels)
    losses = []
    for _ in range(40):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]               # the new head learns
    assert (model(x).data.argmax(axis=1) == labels).mean() == 1.0
    assert all(np.array_equal(model.state_dict()[k], v) for k, v in backbone.items())


def test_replace_head_checks_its_arguments():
    model = mc.models.resnet20()
    with pytest.raises(TypeError, match="not an nn.Linear"):
        transfer.replace_head(model, 3, name="layer1")
    with pytest.raises(ValueError, match="positive int"):
        transfer.replace_head(model, 0)


def test_feature_extractor_returns_the_layer_output_and_stops_there():
    mc.manual_seed(0)
    model = mc.models.resnet20(in_channels=1).eval()
    x, _ = _batch(n=4)
    caught = {}
    handle = model.avgpool.register_forward_hook(lambda m, a, out: caught.setdefault("y", out))
    model(x)
    handle.remove()
    fc_calls = []
    model.fc.register_forward_hook(lambda m, a, out: fc_calls.append(1))
    features = transfer.FeatureExtractor(model, "avgpool", flatten=True)
    out = features(x)
    assert out.shape == (4, 64) and fc_calls == []
    np.testing.assert_array_equal(out.data, caught["y"].data.reshape(4, 64))
    deep = transfer.FeatureExtractor(model, "layer2")(x)
    assert deep.shape == (4, 32, 14, 14)
    with pytest.raises(AttributeError):
        transfer.FeatureExtractor(model, "layer9")


def test_feature_extractor_passes_gradients_to_what_is_trainable():
    model = mc.models.resnet20(in_channels=1)
    transfer.freeze(model)
    transfer.unfreeze(model, "layer3")
    features = transfer.FeatureExtractor(model, "layer3")
    x, _ = _batch(n=2)
    features(x).sum().backward()
    assert model.layer3[0].conv1.weight.grad is not None
    assert model.layer2[0].conv1.weight.grad is None
    assert model.fc.weight.grad is None


def test_param_groups_give_the_backbone_its_own_learning_rate():
    model = mc.models.lenet5()
    transfer.freeze(model, "stage1")
    groups = transfer.param_groups(model, lr=0.1, backbone_lr=0.01)
    assert [g["name"] for g in groups] == ["backbone", "head"]
    assert {id(p) for p in groups[1]["params"]} == {id(model.classifier[4].weight),
                                                    id(model.classifier[4].bias)}
    frozen = {id(model.features[0].weight), id(model.features[0].bias)}
    assert not frozen & {id(p) for p in groups[0]["params"]}
    opt = mc.optim.SGD(groups, lr=0.1)
    before = {id(p): p.data.copy() for p in model.parameters()}
    x, y = _batch()
    F.cross_entropy(model(x), y).backward()
    opt.step()
    for group, lr in zip(groups, (0.01, 0.1)):
        for p in group["params"]:
            np.testing.assert_allclose(before[id(p)] - p.data, lr * p.grad, rtol=1e-4,
                                       atol=1e-7)
    transfer.freeze(model)
    with pytest.raises(ValueError, match="every parameter is frozen"):
        transfer.param_groups(model, lr=0.1, backbone_lr=0.01)


def test_report_counts_trainable_and_frozen_per_stage():
    model = mc.models.resnet20(in_channels=1)
    transfer.freeze(model)
    transfer.unfreeze(model, "layer3", "head")
    rep = transfer.report(model)
    rows = {stage: (t, f) for stage, t, f in rep.rows}
    size = lambda m: sum(p.numel() for p in m.parameters())   # noqa: E731
    assert rows["layer3"] == (size(model.layer3), 0)
    assert rows["layer1"] == (0, size(model.layer1))
    assert rows["head"] == (650, 0)
    assert rep.trainable + rep.frozen == size(model) == 269_434
    assert rep.trainable == size(model.layer3) + 650
    text = str(rep)
    assert "layer2" in text and "frozen" in text and "trainable" in text


# ---- the experiment and its command -------------------------------------------------------------

def test_finetune_command_runs_the_experiment(tmp_path):
    parser = argparse.ArgumentParser()
    finetune.register(parser.add_subparsers())
    args = parser.parse_args(["finetune", "--out", str(tmp_path), "--subset", "bundled",
                              "--labels", "2", "4", "--seeds", "1", "--pretrain-epochs", "1",
                              "--min-steps", "3", "--epochs", "1", "--batch-size", "8"])
    lines = []
    assert args.func is finetune._cmd_finetune
    records = finetune.run_experiment(
        out=args.out, labels=tuple(args.labels), seeds=tuple(range(args.seeds)),
        model=args.model, pretrain_epochs=args.pretrain_epochs, min_steps=args.min_steps,
        epochs=args.epochs, batch_size=args.batch_size, subset=args.subset, log=lines.append)
    assert len(records) == 2 * 4
    assert {r["method"] for r in records} == set(finetune.METHODS)
    assert all(0.0 <= r["test_accuracy"] <= 1.0 and r["steps"] == 3 for r in records)
    by_method = {r["method"]: r for r in records if r["labels_per_class"] == 2}
    assert by_method["linear"]["trainable"] == 401 * 5            # Linear(400 = 16 x 5 x 5, 5)
    # the whole frozen LeNet-5 (5 classes) is inside the extractor; only S4 and before run
    assert by_method["linear"]["frozen"] == 61_281
    assert by_method["scratch"]["frozen"] == 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["records"] == records
    table = (tmp_path / "table.md").read_text()
    assert "2 labels/class" in table and "from scratch" in table
    assert (tmp_path / "accuracy_vs_labels.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "pretrained.npz").exists()
    # the pre-trained weights are reused with --pretrained
    again = finetune.run_experiment(out=str(tmp_path / "again"), labels=(2,), seeds=(0,),
                                    pretrained=str(tmp_path / "pretrained.npz"),
                                    min_steps=3, epochs=1, batch_size=8, subset="bundled",
                                    methods=("linear",), log=lines.append)
    assert again[0]["test_accuracy"] == by_method["linear"]["test_accuracy"]


def test_finetune_validates_on_training_images_that_no_draw_trains_on(tmp_path):
    labels = np.repeat(np.arange(3), 20)
    picks = [finetune._few_labels(labels, k, seed) for k in (2, 5) for seed in (0, 1)]
    held = finetune._held_out(len(labels), picks, 15)
    assert len(held) == 15 and not set(held) & set(np.concatenate(picks))
    assert np.array_equal(held, finetune._held_out(len(labels), picks, 15))   # fixed seed
    assert len(finetune._held_out(len(labels), picks, 1000)) == \
        60 - len(set(np.concatenate(picks)))                              # what is left
    records = finetune.run_experiment(out=str(tmp_path), labels=(2,), seeds=(0,),
                                      pretrain_epochs=1, min_steps=2, epochs=1, batch_size=8,
                                      subset="bundled", methods=("scratch",), val_size=50,
                                      log=lambda line: None)
    assert 0 <= records[0]["val_accuracy"] <= 1 and 0 <= records[0]["test_accuracy"] <= 1
    assert json.loads((tmp_path / "results.json").read_text())["config"]["val_images"] == 50


def test_too_many_labels_for_the_data_is_a_clear_error():
    labels = np.repeat(np.arange(3), 5)
    with pytest.raises(ValueError, match="only 5 training images"):
        finetune._few_labels(labels, 6, seed=0)


def test_deepest_stage():
    assert transfer.deepest_stage(mc.models.resnet20()) == "layer3"
    assert transfer.deepest_stage(mc.models.lenet5()) == "classifier"
    assert isinstance(mc.models.lenet5().get_submodule("classifier"), nn.Sequential)
