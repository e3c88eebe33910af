"""The ViT convention (``psaqvit``): PSAQ-ViT's quantizer functions against independent
formulas, and its sites on timm DeiT and Swin (random init, no download)."""

import numpy as np
import pytest
import timm
import torch
from torch import nn

from dfqbench.quant import QuantAct, QuantLinear, QuantSettings, calibrating, describe, preset, quant_acts, weight_layers, wrap
from dfqbench.quant.functional import asym_fake_quant, asym_unsigned_fake_quant, sym_fake_quant_channel
from dfqbench.quant.settings import DEFAULT_FOR_FAMILY


def sym_reference(w, bits):
    """PSAQ-ViT 0.2 in float64 numpy: Δ = max(−min, max)/((2^n − 1)/2) per row."""
    a = np.maximum(-w.min(axis=1, keepdims=True), w.max(axis=1, keepdims=True))
    step = a / ((2**bits - 1) / 2)
    return np.clip(np.round(w / step), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1) * step


def unsigned_reference(x, m, M, bits):
    step = (M - m) / (2**bits - 1)
    zero = np.clip(-np.round(m / step), 0, 2**bits - 1)
    return (np.clip(np.round(x / step + zero), 0, 2**bits - 1) - zero) * step


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_symmetric_weights_match_formula(bits):
    rng = np.random.default_rng(bits)
    w = rng.normal(0, 1, size=(16, 3, 2, 2)) * rng.uniform(0.01, 3, size=(16, 1, 1, 1))
    ours = sym_fake_quant_channel(torch.from_numpy(w), bits).numpy()
    np.testing.assert_allclose(ours, sym_reference(w.reshape(16, -1), bits).reshape(w.shape), rtol=0, atol=1e-12)


def test_symmetric_weights_clip_the_positive_extreme():
    # a = 3.5 at 3 bits: Δ = 2·3.5/7 = 1; +a → 3.5 → rounds to 4 → clipped to 3; −a → −4 (half to even)
    w = torch.tensor([[-3.5, 1.75, 3.5, 0.4, -2.5], [0.7, -0.35, 0.0, 0.13, 0.29]], dtype=torch.float64)
    out = sym_fake_quant_channel(w, 3)
    assert out[0].tolist() == [-4.0, 2.0, 3.0, 0.0, -2.0]
    assert out[1].tolist() == pytest.approx([0.6, -0.4, 0.0, 0.2, 0.2])  # Δ = 0.2, 0.7 → 3.5 → 4 → 3


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_unsigned_activations_match_formula(bits):
    rng = np.random.default_rng(10 + bits)
    x = rng.normal(0, 2, size=4000)
    for m, M in [(-1.3, 2.2), (0.4, 3.0), (-3.0, -0.5)]:
        ours = asym_unsigned_fake_quant(torch.from_numpy(x), torch.tensor(m, dtype=torch.float64), torch.tensor(M, dtype=torch.float64), bits)
        np.testing.assert_allclose(ours.numpy(), unsigned_reference(x, m, M, bits), rtol=0, atol=1e-12)


def test_unsigned_activations_keep_the_reference_quirk_when_the_range_excludes_zero():
    # [0.5, 2] at 2 bits: Δ = 0.5, the zero point −1 is clamped to 0, so the grid is
    # {0, 0.5, 1, 1.5}: the top of the calibrated range is clipped to 1.5
    x = torch.tensor([0.4, 0.6, 1.2, 2.0, 5.0], dtype=torch.float64)
    out = asym_unsigned_fake_quant(x, torch.tensor(0.5, dtype=torch.float64), torch.tensor(2.0, dtype=torch.float64), 2)
    assert out.tolist() == [0.5, 0.5, 1.0, 1.5, 1.5]


def test_unsigned_equals_the_shared_grid_when_the_range_contains_zero():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(10000, generator=gen, dtype=torch.float64) * 3
    out_unsigned = asym_unsigned_fake_quant(x, torch.tensor(-2.3, dtype=torch.float64), torch.tensor(4.1, dtype=torch.float64), 4)
    out_shared = asym_fake_quant(x, torch.tensor(-2.3, dtype=torch.float64), torch.tensor(4.1, dtype=torch.float64), 4)
    assert torch.allclose(out_unsigned, out_shared, rtol=0, atol=1e-12)


def test_straight_through_gradients_reach_inputs_and_latent_weights():
    layer = QuantLinear.from_float(nn.Linear(4, 3), 2, "sym-minmax-channel")
    act = QuantAct(2, "minmax", calibrate="fp", codes="unsigned")
    x = torch.randn(5, 4, requires_grad=True)
    with torch.no_grad():
        act.calibrating = True
        act(x)
        act.calibrating = False
    act(layer(x)).sum().backward()
    # identity STE: d/dx of sum(Wq x + b) is the column sum of the *quantized* weights
    assert torch.allclose(x.grad, layer.quantized_weight().detach().sum(0).expand(5, 4))
    assert torch.allclose(layer.weight.grad, torch.ones(3, 1) * x.detach().sum(0))


def test_psaqvit_preset_is_the_vit_default():
    settings = preset("psaqvit")
    assert DEFAULT_FOR_FAMILY["vit"] == "psaqvit"
    assert (settings.weight, settings.act_range, settings.act_sites, settings.calibrate, settings.quantize_input) == (
        "sym-minmax-channel", "minmax", "psaqvit", "fp", True,
    )  # fmt: skip
    # the rest is the default's: patch embedding and head at the cell's bits (first_last_bits None)
    assert settings == QuantSettings(name="psaqvit", weight="sym-minmax-channel", act_range="minmax", act_sites="psaqvit", calibrate="fp", quantize_input=True)


# PSAQ-ViT V1's sites (spec §3.1), by the module that owns them
DEIT_BLOCK = {"norm1.1", "norm2.1", "act_res1", "act_res2", "attn.qkv.1", "attn.act_scores", "attn.act_attn_v",
              "attn.proj.1", "mlp.act.1", "mlp.fc2.1"}  # fmt: skip
DEIT_MODEL = {"0", "1.patch_embed.proj.1", "1.act_tokens", "1.act_pos", "1.act_pos_sum", "1.act_head_in", "1.head.1"}
SWIN_BLOCK = DEIT_BLOCK | {"attn.act_table", "attn.act_biased"}
SWIN_MODEL = {"0", "1.patch_embed.proj.1", "1.patch_embed.norm.1", "1.norm.1", "1.head.global_pool.1", "1.head.fc.1"}
SWIN_MERGE = {"norm.1", "reduction.1"}


def sites_by_owner(qmodel, block_prefixes):
    names = [name for name, _ in quant_acts(qmodel)]
    owned = {prefix: {n[len(prefix) + 1 :] for n in names if n.startswith(prefix + ".")} for prefix in block_prefixes}
    rest = set(names) - {f"{p}.{n}" for p, ns in owned.items() for n in ns}
    return owned, rest


def calibrate_and_compare(model, qmodel, size):
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = model(x)
        with calibrating(qmodel):
            observed = qmodel(x)  # calibration observes the FP network
        quantized = qmodel(x)
    assert all(act.calibrated for _, act in quant_acts(qmodel))  # every site was reached
    assert torch.allclose(observed, reference, atol=1e-4)
    assert not torch.allclose(quantized, reference, atol=1e-3)
    return quantized


def test_every_site_in_a_timm_deit():
    torch.manual_seed(0)
    model = timm.create_model("deit_tiny_patch16_224", pretrained=False).eval()
    qmodel = wrap(model, 4, 8, preset("psaqvit"))
    blocks = [f"1.blocks.{i}" for i in range(12)]
    owned, rest = sites_by_owner(qmodel, blocks)
    assert all(owned[b] == DEIT_BLOCK for b in blocks)
    assert rest == DEIT_MODEL
    assert describe(qmodel) == {"weight_layers": 1 + 12 * 4 + 1, "act_quantizers": 12 * 10 + 7}
    assert all(layer.w_scheme == "sym-minmax-channel" for _, layer in weight_layers(qmodel))
    assert all(act.codes == "unsigned" and act.act_range == "minmax" for _, act in quant_acts(qmodel))
    # LayerNorm, softmax and GELU stay FP modules
    block = qmodel[1].blocks[0]
    assert isinstance(block.norm1[0], nn.LayerNorm) and isinstance(block.mlp.act[0], nn.GELU)
    calibrate_and_compare(model, qmodel, 224)


def test_every_site_in_a_timm_swin():
    torch.manual_seed(0)
    model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False).eval()
    qmodel = wrap(model, 4, 8, preset("psaqvit"))
    depths = (2, 2, 6, 2)
    blocks = [f"1.layers.{s}.blocks.{i}" for s, d in enumerate(depths) for i in range(d)]
    merges = [f"1.layers.{s}.downsample" for s in (1, 2, 3)]
    owned, rest = sites_by_owner(qmodel, blocks + merges)
    assert all(owned[b] == SWIN_BLOCK for b in blocks)
    assert all(owned[m] == SWIN_MERGE for m in merges)
    assert rest == SWIN_MODEL
    assert describe(qmodel) == {"weight_layers": 1 + 12 * 4 + 3 + 1, "act_quantizers": 12 * 12 + 3 * 2 + 6}
    calibrate_and_compare(model, qmodel, 224)


def test_each_vit_site_observes_its_fp_tensor_and_feeds_the_next_operation():
    """``fp`` calibration gives every site the min/max of its tensor in the untouched timm
    model (read with hooks; attention written out); shrinking any one site's range then
    changes the logits: its output is what the next operation reads."""
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(img_size=8, patch_size=2, in_chans=1, num_classes=10, embed_dim=16, depth=1, num_heads=2).eval()
    with torch.no_grad():  # timm's init makes near-constant logits, which 8-bit logits would hide changes in
        for parameter in model.parameters():
            parameter.normal_(0, 0.5)
    x = torch.randn(3, 1, 8, 8)
    seen = {"0": x, "1.act_pos": model.pos_embed}
    block, b, hooks = model.blocks[0], "1.blocks.0.", []

    def keep(name, pre=False):
        return (lambda m, args: seen.__setitem__(name, args[0])) if pre else (lambda m, args, out: seen.__setitem__(name, out))

    for module, name in [(model.patch_embed.proj, "1.patch_embed.proj.1"), (model.patch_embed, "tokens"), (block.norm1, b + "norm1.1"),
                         (block.attn.qkv, b + "attn.qkv.1"), (block.attn.proj, b + "attn.proj.1"), (block.norm2, b + "norm2.1"),
                         (block.mlp.act, b + "mlp.act.1"), (block.mlp.fc2, b + "mlp.fc2.1"), (block, b + "act_res2"), (model.head, "1.head.1")]:
        hooks.append(module.register_forward_hook(keep(name)))
    for module, name in [(block, "1.act_pos_sum"), (block.norm2, b + "act_res1"), (model.head, "1.act_head_in")]:
        hooks.append(module.register_forward_pre_hook(keep(name, pre=True)))
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    with torch.no_grad():
        seen["1.act_tokens"] = torch.cat([model.cls_token.flatten(), seen.pop("tokens").flatten()])
        q, k, v = seen[b + "attn.qkv.1"].reshape(3, 17, 3, 2, 8).permute(2, 0, 3, 1, 4)
        seen[b + "attn.act_scores"] = q @ k.transpose(-2, -1) / 8**0.5
        seen[b + "attn.act_attn_v"] = seen[b + "attn.act_scores"].softmax(-1) @ v
    qmodel = wrap(model, 8, 8, preset("psaqvit"))
    with calibrating(qmodel), torch.no_grad():
        qmodel(x)
    ranges = {name: (act.x_min.item(), act.x_max.item()) for name, act in quant_acts(qmodel)}
    assert set(ranges) == set(seen)
    for name, tensor in seen.items():
        assert ranges[name] == pytest.approx((tensor.min().item(), tensor.max().item()), abs=1e-5), name
    with torch.no_grad():
        logits = qmodel(x)
        for name, act in quant_acts(qmodel):
            top = act.x_max.clone()
            act.x_max.copy_((act.x_min + act.x_max) / 2)
            assert not torch.allclose(qmodel(x), logits, rtol=0, atol=1e-6), name
            act.x_max.copy_(top)


def test_unsupported_models_are_refused_not_guessed():
    from timm.models.vision_transformer import VisionTransformer

    with_registers = VisionTransformer(img_size=8, patch_size=2, in_chans=1, embed_dim=16, depth=1, num_heads=2, reg_tokens=2)
    with pytest.raises(ValueError, match="register tokens"):
        wrap(with_registers, 4, 8, preset("psaqvit"))
    with pytest.raises(ValueError, match="needs a timm VisionTransformer"):
        wrap(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), 4, 8, preset("psaqvit"))
