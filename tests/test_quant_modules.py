"""Quantized layers, the activation-range estimators and calibrate-then-freeze."""

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import fx, nn

from dfqbench.quant import (
    QuantAct,
    QuantConv2d,
    QuantLinear,
    QuantSettings,
    asym_fake_quant,
    calibrating,
    describe,
    quant_acts,
    uncalibrated,
    weight_layers,
    wrap,
)


def test_conv_weights_quantized_per_output_channel_every_forward():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, bias=False)
    q = QuantConv2d.from_float(conv, 3)
    w = q.quantized_weight()
    for c in range(5):
        row = conv.weight[c]
        expected = asym_fake_quant(row, row.min(), row.max(), 3)
        assert torch.equal(w[c], expected)
        assert len(torch.unique(w[c])) <= 8
    with torch.no_grad():  # the range follows the latent weights: recomputed at every forward
        conv.weight.mul_(2)
    assert torch.allclose(q.quantized_weight(), 2 * w)
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(q(x), F.conv2d(x, q.quantized_weight()))


def test_linear_weights_quantized_per_row_bias_kept_fp():
    lin = nn.Linear(7, 4)
    q = QuantLinear.from_float(lin, 2)
    x = torch.randn(3, 7)
    assert torch.allclose(q(x), F.linear(x, q.quantized_weight(), lin.bias))
    for row, quantized in zip(lin.weight, q.quantized_weight(), strict=True):
        assert torch.equal(quantized, asym_fake_quant(row, row.min(), row.max(), 2))


def adam_corrected(batch_values, beta=0.9):
    m, out = 0.0, []
    for t, b in enumerate(batch_values, 1):
        m = beta * m + (1 - beta) * b
        out.append(m / (1 - beta**t))
    return out


def test_ema_range_is_the_bias_corrected_moving_average():
    act = QuantAct(4, "ema", 0.9)
    minima, maxima = [-1.0, 0.5, -2.0, 0.0, -0.25], [3.0, 1.0, 2.0, 5.0, 4.0]
    act.calibrating = True
    for t, (lo, hi) in enumerate(zip(minima, maxima)):
        act(torch.tensor([lo, 0.75, hi]))
        assert act.x_min.item() == pytest.approx(adam_corrected(minima)[t], rel=1e-6)
        assert act.x_max.item() == pytest.approx(adam_corrected(maxima)[t], rel=1e-6)
    assert act.x_max.item() != pytest.approx(max(maxima))


def test_minmax_range_keeps_the_extremes():
    act = QuantAct(4, "minmax")
    act.calibrating = True
    for lo, hi in [(-1.0, 2.0), (-0.5, 5.0), (-3.0, 1.0)]:
        act(torch.tensor([lo, hi]))
    assert (act.x_min.item(), act.x_max.item()) == (-3.0, 5.0)


@pytest.mark.parametrize(("act_range", "first_range"), [("minmax", (1.5, 2.0)), ("minmax-from-zero", (0.0, 2.0))])
def test_minmax_first_batch_initialises_or_joins_zero(act_range, first_range):
    # PSAQ-ViT initialises its range from the first batch; ZeroQ's and ZAQ's buffers start at 0
    act = QuantAct(4, act_range)
    act.calibrating = True
    act(torch.tensor([1.5, 2.0]))
    assert (act.x_min.item(), act.x_max.item()) == first_range
    act(torch.tensor([1.0, 3.0]))
    assert (act.x_min.item(), act.x_max.item()) == (min(first_range[0], 1.0), 3.0)
    act.reset()
    act(torch.tensor([2.5, 4.0]))
    assert (act.x_min.item(), act.x_max.item()) == ((2.5, 4.0) if act_range == "minmax" else (0.0, 4.0))


def test_the_zeroq_preset_is_the_default_with_zeroqs_cumulative_min_max_from_zero():
    from dfqbench.quant import preset

    assert preset("zeroq") == QuantSettings(name="zeroq", act_range="minmax-from-zero")
    act = wrap(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), 4, 4, preset("zeroq"))[1][1]
    with calibrating(act), torch.no_grad():
        act(torch.tensor([1.5, 2.0]))
        act(torch.tensor([1.0, 3.0]))
    assert (act.x_min.item(), act.x_max.item()) == (0.0, 3.0)  # not the EMA, and 0 always inside


@pytest.mark.parametrize("act_range", ["ema", "minmax", "minmax-from-zero"])
def test_a_degenerate_range_falls_back_to_the_tensor_only_for_zeroq_and_zaq(act_range):
    act = QuantAct(2, act_range)
    with calibrating(nn.Sequential(act)), torch.no_grad():
        act(torch.zeros(8))  # a dead ReLU: the calibrated range is [0, 0]
    x = torch.tensor([0.0, 1.0, 2.0, 3.0])
    if act_range == "minmax-from-zero":
        assert torch.equal(act(x), asym_fake_quant(x, torch.tensor(0.0), torch.tensor(3.0), 2))
    else:  # GDFQ's family and PSAQ-ViT keep the frozen range: everything maps to 0
        assert act(x).abs().max().item() < 1e-6


def test_calibrate_then_freeze_ignores_train_eval_mode():
    act = QuantAct(3)
    with pytest.raises(RuntimeError, match="before its range was calibrated"):
        act(torch.ones(4))
    act.train()
    with calibrating(nn.Sequential(act)):
        y = act(torch.tensor([0.0, 0.5, 7.0]))
    # during calibration the forward already quantizes with the updated range
    assert torch.equal(y, asym_fake_quant(torch.tensor([0.0, 0.5, 7.0]), torch.tensor(0.0), torch.tensor(7.0), 3))
    frozen = act.x_max.item()
    act.eval()
    act(torch.tensor([0.0, 100.0]))
    act.train()
    act(torch.tensor([0.0, 100.0]))
    assert act.x_max.item() == frozen and int(act.num_updates) == 1


class DoubleRelu(nn.Module):
    """A module that reuses one ReLU and also calls the functional form."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.relu(self.conv(x))
        x = self.relu(x - 0.5)
        return F.relu(x - 0.1)


def test_shared_and_functional_activations_get_one_quantizer_per_call_site():
    q = wrap(DoubleRelu(), 4, 4, QuantSettings())
    assert isinstance(q, fx.GraphModule)
    assert describe(q) == {"weight_layers": 1, "act_quantizers": 3}
    with calibrating(q):
        q(torch.randn(4, 2, 5, 5))
    ranges = [act.x_max.item() for _, act in quant_acts(q)]
    assert len(set(ranges)) == 3  # three tensors, three different ranges
    # and each quantizer's output is what the next operation reads: the forward by hand
    a0, a1, a2 = (act for _, act in quant_acts(q))

    def fake(x, act):
        return asym_fake_quant(x, act.x_min, act.x_max, 4)

    x = torch.randn(4, 2, 5, 5)
    h = fake(F.relu(F.conv2d(x, q.conv.quantized_weight(), q.conv.bias)), a0)
    h = fake(F.relu(h - 0.5), a1)
    expected = fake(F.relu(h - 0.1), a2)
    assert torch.equal(q(x), expected)


def test_torchvision_resnet18_has_a_quantizer_per_relu_call():
    model = torchvision.models.resnet18(num_classes=10).eval()
    q = wrap(model, 4, 4, QuantSettings())
    assert describe(q) == {"weight_layers": 21, "act_quantizers": 17}  # stem + 8 blocks × 2
    assert not any(isinstance(m, QuantAct) for m in model.modules())  # the original is untouched
    with calibrating(q), torch.no_grad():
        q(torch.randn(2, 3, 64, 64))
    assert not uncalibrated(q)


def test_pytorchcv_style_model_gets_the_reference_placement():
    from dfqbench.models.cifar_resnet import CIFARResNet

    q = wrap(CIFARResNet(1, 10, 20, (4, 8, 16)).eval(), 3, 3, QuantSettings())
    # Sequential(ReLU, QuantAct) exactly where the reference's quantize_model puts it
    assert isinstance(q.features.init_block.activ, nn.Sequential)
    assert isinstance(q.features.init_block.activ[1], QuantAct)
    assert isinstance(q.features.stage2.unit1.activ[1], QuantAct)
    assert isinstance(q.features.stage2.unit1.identity_conv.conv, QuantConv2d)
    assert isinstance(q.features.stage1.unit1.body.conv1.bn, nn.BatchNorm2d)  # BN not folded
    assert isinstance(q.output, QuantLinear)
    assert describe(q) == {"weight_layers": 22, "act_quantizers": 19}


def test_mobilenetv2_quantizes_only_relu6_outputs():
    from dfqbench.models.mobilenetv2 import MobileNetV2

    model = MobileNetV2(1, 10, 8, ((8, 1, 1), (12, 2, 2)), 32).eval()
    q = wrap(model, 4, 4, QuantSettings())
    relu6 = sum(isinstance(m, nn.ReLU6) for m in model.modules())
    assert describe(q)["act_quantizers"] == relu6
    assert not isinstance(q.features.stage2.unit1.conv3.activ, nn.Sequential)  # linear bottleneck stays FP


def test_a_model_without_the_sites_is_refused_not_left_in_fp():
    gelu = nn.Sequential(nn.Conv2d(1, 4, 3), nn.GELU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    with pytest.raises(ValueError, match="act_sites='after-relu' found no activation site in Sequential"):
        wrap(gelu, 4, 4, QuantSettings())


def test_first_and_last_layer_bits_option():
    from dfqbench.models.cifar_resnet import CIFARResNet

    q = wrap(CIFARResNet(1, 10, 20, (4, 8, 16)), 4, 4, QuantSettings(first_last_bits=8))
    bits = [layer.w_bits for _, layer in weight_layers(q)]
    assert bits[0] == bits[-1] == 8 and set(bits[1:-1]) == {4}


def test_fp_calibration_mode_observes_the_full_precision_network():
    from dfqbench.models.cifar_resnet import CIFARResNet

    torch.manual_seed(0)
    model = CIFARResNet(1, 10, 20, (4, 8, 16)).eval()
    q = wrap(model, 3, 3, QuantSettings(calibrate="fp")).eval()
    x = torch.randn(8, 1, 8, 8)
    with calibrating(q), torch.no_grad():
        assert torch.equal(q(x), model(x))
    with torch.no_grad():
        assert not torch.allclose(q(x), model(x))
