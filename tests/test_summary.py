"""Tests of ``minicnn.summary``: LeNet-5's table by hand, the multiply-add totals of the big nets
against torchvision's published GFLOPS, the column-buffer column against the predictor, names
of containers and shared modules, depth folding, and that the model comes back unchanged."""
import importlib
import io

import numpy as np
import pytest

import minicnn as mc
import minicnn.nn as nn
import minicnn.nn.init as init
from minicnn.models.lenet import lenet5
from minicnn.engine.memory import conv2d_column_bytes, conv_transpose2d_column_bytes
from minicnn.summary import summary


def by_name(result):
    return {row.name: row for row in result.rows}


# ---------------------------------------------------------------------------------------------
# LeNet-5, every number by hand
# ---------------------------------------------------------------------------------------------

#: name -> (output shape per image, params, multiply-adds per image) for a 1x28x28 input
LENET = {
    "features.0": ((6, 28, 28), 6 * 25 + 6, 28 * 28 * 6 * 1 * 25),       # 156, 117,600
    "features.1": ((6, 28, 28), 0, 0),
    "features.2": ((6, 14, 14), 0, 0),
    "features.3": ((16, 10, 10), 16 * 6 * 25 + 16, 10 * 10 * 16 * 6 * 25),  # 2,416, 240,000
    "features.4": ((16, 10, 10), 0, 0),
    "features.5": ((16, 5, 5), 0, 0),
    "classifier.0": ((120,), 400 * 120 + 120, 400 * 120),                 # 48,120, 48,000
    "classifier.1": ((120,), 0, 0),
    "classifier.2": ((84,), 120 * 84 + 84, 120 * 84),                     # 10,164, 10,080
    "classifier.3": ((84,), 0, 0),
    "classifier.4": ((10,), 84 * 10 + 10, 84 * 10),                       # 850, 840
}


@pytest.mark.parametrize("batch", [1, 64])
def test_lenet5_table_numbers_by_hand(batch):
    result = summary(lenet5(), (batch, 1, 28, 28), print_table=False)
    rows = by_name(result)
    assert [row.name for row in result.rows] == ["", "features"] + \
        [f"features.{i}" for i in range(6)] + ["classifier"] + \
        [f"classifier.{i}" for i in range(5)]
    for name, (shape, params, macs) in LENET.items():
        row = rows[name]
        assert row.output_shape == (batch,) + shape, name
        assert (row.params, row.trainable_params) == (params, params), name
        assert row.macs == macs * batch, name
    assert rows["features.0"].type == "Conv2d" and rows["classifier.4"].type == "Linear"
    assert result.macs_per_image == 416_520
    assert result.total_macs == 416_520 * batch
    assert result.total_params == 61_706 == sum(p.size for p in lenet5().parameters())
    assert (result.trainable_params, result.non_trainable_params) == (61_706, 0)
    assert result.output_shape == (batch, 10)


def test_lenet5_printed_table():
    out = io.StringIO()
    result = summary(lenet5(), (1, 1, 28, 28), file=out)
    text = out.getvalue()
    assert text.strip() == str(result).strip()
    for needle in ["features.0 (Conv2d)", "[1, 6, 28, 28]", "117,600", "240,000", "48,120",
                   "Total params: 61,706", "Total mult-adds: 416,520", "Peak im2col"]:
        assert needle in text, needle
    assert "61,706 params" in repr(result)


def test_print_table_false_prints_nothing(capsys):
    summary(lenet5(), (1, 1, 28, 28), print_table=False)
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------------------------------------
# Column buffers: the predictor's numbers, for the requested batch; the peak is their maximum
# ---------------------------------------------------------------------------------------------

class ConvZoo(nn.Module):
    """Every kind of convolution the predictor distinguishes: one input channel (direct), 3x3,
    strided, grouped, 1x1 (no columns), 'same' padding, and a transposed convolution."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 5, padding=2)
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.c3 = nn.Conv2d(16, 16, 3, padding=1, groups=4, bias=False)
        self.c4 = nn.Conv2d(16, 32, 1)
        self.c5 = nn.Conv2d(32, 32, 3, padding="same")
        self.up = nn.ConvTranspose2d(32, 8, 2, stride=2)

    def forward(self, x):
        return self.up(self.c5(self.c4(self.c3(self.c2(self.c1(x))))))


def test_column_bytes_equal_the_predictor_for_the_requested_batch():
    model = ConvZoo()
    batch = 96   # large enough for the batch to be cut into chunks
    result = summary(model, (batch, 1, 32, 32), print_table=False)
    rows = by_name(result)
    for name in ("c1", "c2", "c3", "c4", "c5"):
        layer, row = getattr(model, name), rows[name]
        assert row.input_shape[0] == batch
        padding = (1, 1) if layer.padding == "same" else layer.padding
        for chunked, got in ((True, row.column_bytes), (False, row.unchunked_column_bytes)):
            assert got == conv2d_column_bytes(row.input_shape, layer.weight.shape, layer.stride,
                                              padding, layer.groups, np.float32, chunked), name
    up = rows["up"]
    assert up.input_shape == (batch, 32, 16, 16) and up.output_shape == (batch, 8, 32, 32)
    assert up.column_bytes == conv_transpose2d_column_bytes(up.input_shape, (32, 8, 2, 2), 2)
    assert rows["c4"].column_bytes == 0                       # 1x1: no im2col
    # whole batch at once: the textbook matrix, N*OH*OW rows of kH*kW*C_in float32 numbers
    assert rows["c5"].unchunked_column_bytes == batch * 16 * 16 * (3 * 3 * 32) * 4
    assert all(rows[n].unchunked_column_bytes >= rows[n].column_bytes for n in rows)
    convs = [rows[n] for n in ("c1", "c2", "c3", "c4", "c5", "up")]
    assert result.peak_column_bytes == max(r.column_bytes for r in convs) > 0
    assert result.peak_unchunked_column_bytes == max(r.unchunked_column_bytes for r in convs)
    assert rows[result.peak_column_layer].column_bytes == result.peak_column_bytes


def test_macs_of_grouped_strided_and_transposed_convolutions_by_hand():
    result = summary(ConvZoo(), (2, 1, 32, 32), print_table=False)
    rows = by_name(result)
    assert rows["c1"].macs == 2 * 32 * 32 * 8 * (1 * 5 * 5)
    assert rows["c2"].macs == 2 * 16 * 16 * 16 * (8 * 3 * 3)
    assert rows["c3"].macs == 2 * 16 * 16 * 16 * (16 // 4 * 3 * 3)   # groups divide the work
    assert rows["c4"].macs == 2 * 16 * 16 * 32 * 16
    assert rows["c5"].macs == 2 * 16 * 16 * 32 * (32 * 3 * 3)
    assert rows["up"].macs == 2 * 16 * 16 * 32 * (8 * 2 * 2)          # per INPUT position
    assert result.total_macs == sum(rows[n].macs for n in ("c1", "c2", "c3", "c4", "c5", "up"))


class UpTo(nn.Module):
    """A transposed convolution asked for an explicit output size (U-Net's odd sizes)."""

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(2, 4, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1)

    def forward(self, x):
        return self.up(self.down(x), output_size=x.shape)


@pytest.mark.parametrize("make, shape", [(ConvZoo, (3, 1, 16, 16)), (UpTo, (2, 2, 7, 9)),
                                         (lenet5, (2, 1, 28, 28))])
def test_shape_only_pass_gives_the_same_rows_as_the_real_one(make, shape):
    model = make()
    fast = summary(model, shape, print_table=False)
    real = summary(model, shape, shape_only=False, print_table=False)
    assert fast.rows == real.rows
    assert all("forward" not in m.__dict__ for m in model.modules())   # class forward back
    if make is UpTo:
        assert by_name(fast)["up"].output_shape == shape


def test_an_instance_forward_survives_the_shape_only_pass():
    layer = nn.Conv2d(1, 2, 3)
    own = layer.forward                     # a bound method kept on the instance
    layer.forward = own
    summary(layer, (1, 1, 5, 5), print_table=False)
    assert layer.__dict__["forward"] is own


# ---------------------------------------------------------------------------------------------
# Names, shared modules, depth folding
# ---------------------------------------------------------------------------------------------

class Shared(nn.Module):
    """One Linear and one ReLU used twice, inside a ModuleList and a nested Sequential."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Flatten(), nn.Sequential(nn.Linear(12, 8), nn.ReLU()))
        self.blocks = nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 8)])
        self.act = nn.ReLU()
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        x = self.stem(x)
        for _ in range(2):              # the same two layers twice: shared weights
            x = self.act(self.blocks[0](x))
        x = self.act(self.blocks[1](x))
        return self.head(x)


def test_shared_modules_and_containers_get_pytorch_names():
    result = summary(Shared(), (4, 3, 2, 2), print_table=False)
    names = [row.name for row in result.rows]
    assert names == ["", "stem", "stem.0", "stem.1", "stem.1.0", "stem.1.1",
                     "blocks.0", "act", "blocks.0", "act", "blocks.1", "act", "head"]
    depths = [row.depth for row in result.rows]
    assert depths == [0, 1, 2, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1]
    again = [row for row in result.rows if row.name == "blocks.0"]
    assert [r.repeated for r in again] == [False, True]
    assert [r.params for r in again] == [72, 0]          # counted once ...
    assert [r.macs for r in again] == [4 * 64] * 2       # ... but computed twice
    assert result.total_params == 12 * 8 + 8 + 2 * 72 + 27 == \
        sum(p.size for p in Shared().parameters())
    assert result.total_macs == 4 * (96 + 3 * 64 + 24)
    text = str(result)
    assert "(recursive)" in text and "stem.1.0 (Linear)" in text


@pytest.mark.parametrize("depth", [0, 1, 2, 3])
def test_depth_folds_rows_and_the_shown_numbers_add_up_to_the_totals(depth):
    result = summary(Shared(), (4, 3, 2, 2), depth=depth, print_table=False)
    shown = result.visible_rows
    assert all(row.depth <= depth for row in shown)
    cells = [result._cells(row) for row in shown]

    def total(column):
        return sum(int(c[column].replace(",", "")) for c in cells
                   if c[column] not in ("--", "(recursive)"))

    assert total(2) == result.total_params
    assert total(3) == result.total_macs
    if depth == 1:
        stem = by_name(result)["stem"]
        assert result._cells(stem)[2:4] == ["104", "384"]   # folded: 12*8+8, 4*96


def test_lenet5_depth_one_folds_into_features_and_classifier():
    result = summary(lenet5(), (1, 1, 28, 28), depth=1, print_table=False)
    assert [row.name for row in result.visible_rows] == ["", "features", "classifier"]
    features = by_name(result)["features"]
    assert (features.params, features.macs) == (156 + 2416, 117_600 + 240_000)
    assert features.column_bytes == max(by_name(result)[f"features.{i}"].column_bytes
                                         for i in (0, 3))


# ---------------------------------------------------------------------------------------------
# The model comes back as it was; errors name the layer
# ---------------------------------------------------------------------------------------------

def test_model_state_is_restored():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.ReLU())
    model[2].eval()   # a mixed state must come back exactly
    before = {k: v.copy() for k, v in model.state_dict().items()}
    summary(model, (8, 3, 6, 6), print_table=False)
    assert [m.training for m in model.modules()] == [True, True, True, False, True]
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    for key, value in model.state_dict().items():   # batch norm's running stats untouched
        np.testing.assert_array_equal(value, before[key])
    assert mc.is_grad_enabled()


def test_on_every_device_and_in_float64(device):
    reference = summary(lenet5(), (2, 1, 28, 28), print_table=False)
    on_device = summary(lenet5().to(device), (2, 1, 28, 28), print_table=False)
    assert on_device.rows == reference.rows
    double = summary(lenet5().double(), (1, 1, 28, 28), print_table=False)
    assert double.dtype == np.float64 and double.macs_per_image == 416_520
    single = by_name(summary(lenet5(), (1, 1, 28, 28), print_table=False))
    for name in ("features.0", "features.3"):   # one image: twice the bytes per number
        assert by_name(double)[name].column_bytes == 2 * single[name].column_bytes > 0


def test_a_failing_forward_names_the_layer():
    with pytest.raises(RuntimeError, match=r"features\.0 \(Conv2d\)"):
        summary(lenet5(), (1, 3, 28, 28), print_table=False)   # 3 channels into a 1-channel C1


@pytest.mark.parametrize("shape", [(), (1, 0, 28), (1, 1.5, 28, 28), "1x28", None])
def test_bad_input_shape(shape):
    with pytest.raises(ValueError, match="input_shape"):
        summary(lenet5(), shape, print_table=False)


def test_modules_not_run_are_reported():
    class WithAux(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.aux = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            return self.body(x)

    result = summary(WithAux(), (1, 4), print_table=False)
    assert result.not_run == [("aux", 10)]
    assert result.total_params == 30 and "aux (10)" in str(result)


# ---------------------------------------------------------------------------------------------
# Totals at 224x224 against torchvision's published GFLOPS (multiply-adds, really)
# ---------------------------------------------------------------------------------------------

#: (module, factory, GFLOPS in torchvision's model tables, decimals published)
PUBLISHED = [
    ("alexnet", "alexnet", 0.714, 3),
    ("vgg", "vgg16", 15.47, 2),
    ("resnet", "resnet18", 1.814, 3),
    ("resnet", "resnet50", 4.089, 3),
    ("densenet", "densenet121", 2.834, 3),
    ("googlenet", "googlenet", 1.498, 3),
]


@pytest.fixture
def cheap_init(monkeypatch):
    """NOTE: a summary needs shapes, not values. Drawing VGG-16's 138 million random weights
    takes seconds (twice: the layers' default and the model's own initialisation), so every
    random initialiser writes zeros instead while the big nets are built."""
    def zeros(tensor, *args, **kwargs):
        return init.constant_(tensor, 0.0)

    for name in ("uniform_", "normal_", "trunc_normal_"):
        monkeypatch.setattr(init, name, zeros)


@pytest.mark.parametrize("module, factory, gflops, decimals", PUBLISHED,
                         ids=[p[1] for p in PUBLISHED])
def test_total_macs_match_torchvision_published_gflops(cheap_init, module, factory, gflops,
                                                       decimals):
    try:
        family = importlib.import_module(f"minicnn.models.{module}")
    except ModuleNotFoundError as error:
        if error.name != f"minicnn.models.{module}":
            raise
        pytest.skip(f"minicnn.models.{module} is not written yet")
    model = getattr(family, factory)()
    result = summary(model, (1, 3, 224, 224), print_table=False)
    assert result.output_shape == (1, 1000)
    assert result.total_params == sum(p.size for p in model.parameters())
    assert round(result.total_macs / 1e9, decimals) == gflops, \
        f"{factory}: {result.total_macs:,} multiply-adds, torchvision publishes {gflops} G"
