"""PSAQ-ViT and the V2 reconstruction: losses on hand-built inputs, generation, and both
methods end to end on the digits suite (smoke budget)."""

import math

import pytest
import torch

from dfqbench.records import RecordStore
from dfqbench_psaqvit import losses
from dfqbench_psaqvit.generation import warmup_cosine


def gaussian(t, mean, h=0.01):
    return math.exp(-((t - mean) ** 2) / (2 * h * h)) / math.sqrt(2 * math.pi * h * h)


def test_patch_similarity_entropy_on_a_hand_built_input():
    # one image, one head, three tokens: token 0 (CLS) is dropped; tokens 1 and 2 are
    # orthogonal, so the similarities are {1, 0, 0, 1} and the grid is 10 points on [0, 1]
    attn_v = torch.tensor([[[[5.0, -7.0], [2.0, 0.0], [0.0, 3.0]]]], dtype=torch.float64)
    grid = [i / 9 for i in range(10)]
    density = [(2 * gaussian(t, 0) + 2 * gaussian(t, 1)) / 4 + 1e-4 for t in grid]
    integrand = [-p * math.log(p) for p in density]
    expected = sum((integrand[i] + integrand[i + 1]) / 2 * (grid[i + 1] - grid[i]) for i in range(9))
    assert expected == pytest.approx(-6.6329, abs=1e-4)  # two spikes of height 19.95 at the ends
    assert losses.patch_similarity_entropy(attn_v, batch=1).item() == pytest.approx(expected, rel=1e-9)
    # the heads are averaged before the similarities: a second head that cancels the first's
    # token-2 direction changes them
    two_heads = torch.cat([attn_v, torch.tensor([[[[0.0, 0.0], [2.0, 0.0], [2.0, -3.0]]]], dtype=torch.float64)], dim=1)
    assert losses.patch_similarity_entropy(two_heads, batch=1).item() != pytest.approx(expected, rel=1e-3)


def test_windows_of_one_image_form_one_sample():
    # Swin: B′ = batch × windows; the KDE of an image pools its windows' similarities
    gen = torch.Generator().manual_seed(0)
    windows = torch.randn(2 * 4, 3, 5, 8, generator=gen, dtype=torch.float64)
    pooled = losses.patch_similarity_entropy(windows, batch=2)
    tokens = torch.nn.functional.normalize(windows.mean(1)[:, 1:], dim=-1)
    sims = torch.cosine_similarity(tokens.unsqueeze(1), tokens.unsqueeze(2), dim=3).reshape(2, 4 * 4 * 4)
    assert pooled.item() == pytest.approx(losses.differential_entropy(sims).item(), rel=1e-9)


def test_total_variation_and_its_prior():
    x = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    # horizontal √2, vertical √8, anti-diagonal |2 − 1|, diagonal |0 − 3|
    assert losses.total_variation(x).item() == pytest.approx(4 + 3 * math.sqrt(2), rel=1e-6)
    assert losses.tv_prior(x, 10.0).item() == pytest.approx(10 - 4 - 3 * math.sqrt(2), rel=1e-6)
    assert losses.tv_prior(x, 1.0).item() == pytest.approx(4 + 3 * math.sqrt(2) - 1, rel=1e-6)  # |TV − v| from above too
    assert losses.tv_target_scale((32, 3, 224, 224)) == 1.0
    assert losses.tv_target_scale((32, 1, 8, 8)) == pytest.approx(math.sqrt(32 * 64 / (32 * 3 * 224 * 224)))


def test_learning_rate_schedule_is_v1s():
    assert [warmup_cosine(t, 500, 100) for t in (0, 49, 99, 100, 300, 499)] == pytest.approx(
        [0.01, 0.5, 1.0, 1.0, 0.5, 0.5 * (1 + math.cos(math.pi * 399 / 400))]
    )


def test_v1_rounds_restart_the_warmup_cosine_schedule_but_keep_adams_state():
    """``optimise`` against V1's loop written out: per round, Adam steps on jittered/flipped
    images at lr·factor(step) (warm-up 2 of 4 steps: ½, 1, then the cosine 1, ½; a 3-step
    round: ½, 1, 1), the images clipped to [(0 − 0.3)/0.4, (1 − 0.3)/0.4] after each step."""
    import random

    from dfqbench.api import Task
    from dfqbench_psaqvit.generation import PixelBatch, image_bounds, jitter_flip, optimise

    def objective(x):  # pulls every pixel to 2, beyond the valid 1.75
        loss = (x - 2.0).square().sum()
        return loss, None, {"loss": loss}

    task = Task("s", "digits", "m", "vit", 10, (1, 4, 4), (0.3,), (0.4,), 4, 8)
    start = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    batch = PixelBatch(start, 0.2, (0.5, 0.9), image_bounds(task, torch.device("cpu")))
    random.seed(0)
    optimise(batch, objective, [(4, 1), (3, 1)], warmup=2, flip=0.5, on_step=lambda parts: None)
    x = start.clone().requires_grad_(True)
    adam = torch.optim.Adam([x], lr=0.2, betas=(0.5, 0.9))
    random.seed(0)
    for factor in [0.5, 1.0, 1.0, 0.5] + [0.5, 1.0, 1.0]:
        adam.param_groups[0]["lr"] = 0.2 * factor
        adam.zero_grad()
        objective(jitter_flip(x, 1, 0.5))[0].backward()
        adam.step()
        with torch.no_grad():
            x.clamp_(-0.75, 1.75)
    assert torch.allclose(batch.images, x.detach(), rtol=0, atol=1e-6)
    assert batch.images.max().item() == pytest.approx(1.75)  # the clip was reached


def test_teacher_student_kl():
    t = torch.tensor([[2.0, 0.0, -1.0]])
    p = torch.softmax(t, -1)
    assert losses.teacher_student_kl(t, t).item() == pytest.approx(0.0, abs=1e-7)
    s = torch.tensor([[0.0, 1.0, 0.0]])
    q = torch.softmax(s, -1)
    assert losses.teacher_student_kl(t, s).item() == pytest.approx((p * (p / q).log()).sum().item(), rel=1e-5)
    # τ = 2 over a batch of two: τ²·mean_b Σ_c p_c log(p_c/q_c) of the softened distributions;
    # [2 ln 3, 0]/2 → (¾, ¼), [0, 0] → (½, ½), [0, 2 ln 2]/2 → (⅓, ⅔)
    t2 = torch.tensor([[2 * math.log(3), 0.0], [0.0, 0.0]])
    s2 = torch.tensor([[0.0, 0.0], [0.0, 2 * math.log(2)]])
    kl = [0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5), 0.5 * math.log(0.5 / (1 / 3)) + 0.5 * math.log(0.5 / (2 / 3))]
    assert losses.teacher_student_kl(t2, s2, temperature=2.0).item() == pytest.approx(4 * sum(kl) / 2, rel=1e-5)


def test_jitter_rolls_both_axes_by_one_offset_and_flips_horizontally_with_probability_p():
    import random

    import numpy as np

    from dfqbench_psaqvit.generation import jitter_flip

    x = torch.arange(2 * 1 * 4 * 5, dtype=torch.float64).reshape(2, 1, 4, 5)
    flips = 0
    for seed in range(40):
        random.seed(seed)
        offset, u = random.randint(-2, 2), random.random()  # V1's two draws, in its order
        expected = np.roll(x.numpy(), (offset, offset), axis=(2, 3))
        if u > 1 - 0.3:  # flip with probability 0.3
            expected, flips = expected[..., ::-1], flips + 1
        random.seed(seed)
        np.testing.assert_array_equal(jitter_flip(x, 2, 0.3).numpy(), expected)
    assert 0 < flips < 20  # both branches were taken, and p = 0.3 is not read as 1 − p


def test_generation_raises_the_patch_similarity_entropy():
    from timm.models.vision_transformer import VisionTransformer

    from dfqbench.api import Task
    from dfqbench.context import RunContext
    from dfqbench.seeding import seed_everything
    from dfqbench_psaqvit.generation import AttentionProbe
    from dfqbench_psaqvit.v1 import PSAQViTConfig, synthesize

    seed_everything(0)
    teacher = VisionTransformer(img_size=8, patch_size=2, in_chans=1, num_classes=10, embed_dim=16, depth=2, num_heads=2).eval()
    teacher.requires_grad_(False)
    task = Task("s", "digits", "m", "vit", 10, (1, 8, 8), (0.3,), (0.4,), 4, 8)
    ctx = RunContext(task, torch.device("cpu"), 0, "smoke")
    config = PSAQViTConfig(images=8, steps=(20,), jitter=(1,), warmup=5, ce_weight=0.0, tv_weight=0.0)  # PSE only
    images, final = synthesize(teacher, task, config, ctx)
    assert set(final) == {"tv", "pse", "ce"}  # the last step's loss parts come back, for every cell to log
    probe = AttentionProbe(teacher)  # a second probe sees the same (now explicit) attention

    def entropy(x):
        teacher(x)
        return sum(losses.patch_similarity_entropy(f, len(x)).item() for f in probe.features)

    seed_everything(0)
    start = torch.randn(8, 1, 8, 8)  # the same N(0, 1) start synthesize drew
    # V1's 10-point, h = 0.01 estimate stays near 0 here; optimising moves it from ≈ −0.06 to ≈ −0.01
    assert entropy(start) < -0.05 and entropy(images) > -0.015
    assert images.min() >= (0 - 0.3) / 0.4 - 1e-6 and images.max() <= (1 - 0.3) / 0.4 + 1e-6  # valid images
    assert not ctx.metrics  # synthesis logs nothing itself: each cell logs `final` once


def test_v2_cycles_are_the_adversarial_sample_steps_then_the_student_steps_written_out():
    """``evolve`` against its cycle written out (spec §1.4): k_x Adam steps on jittered, flipped
    samples minimising the V1 objective − λ_adv·τ²·KL(T‖S), then k_θ Adam steps of the
    student on a fresh jittered copy minimising τ²·KL(T‖S), its LR decayed by a cosine."""
    import contextlib
    import copy
    import random
    from types import SimpleNamespace

    from timm.models.vision_transformer import VisionTransformer

    from dfqbench.api import Task
    from dfqbench.quant import preset, wrap
    from dfqbench_psaqvit.generation import AttentionProbe, PatchSimilarityObjective, PixelBatch, image_bounds, jitter_flip
    from dfqbench_psaqvit.v2 import PSAQViTV2Config, calibrate, evolve

    torch.manual_seed(0)
    teacher = VisionTransformer(img_size=8, patch_size=2, in_chans=1, num_classes=10, embed_dim=16, depth=1, num_heads=2).eval()
    teacher.requires_grad_(False)
    task = Task("s", "digits", "m", "vit", 10, (1, 8, 8), (0.3,), (0.4,), 4, 8)
    objective = PatchSimilarityObjective(teacher, AttentionProbe(teacher), tv_target=5.0, labels=None)
    start = torch.randn(4, 1, 8, 8)
    qmodel = wrap(teacher, 4, 8, preset("psaqvit"))
    calibrate(qmodel, [start])
    cfg = PSAQViTV2Config(cycles=3, sample_steps=2, student_steps=2, sample_lr=0.05, student_lr=1e-3, jitter=1, temperature=2.0, adv_weight=0.5)
    ctx = SimpleNamespace(log=lambda **_: None, progress=lambda *_: contextlib.nullcontext(SimpleNamespace(advance=lambda: None)))
    samplers = [PixelBatch(start, cfg.sample_lr, cfg.betas, image_bounds(task, torch.device("cpu"))) for _ in range(2)]
    student = copy.deepcopy(qmodel)
    random.seed(0)
    evolve(teacher, qmodel, samplers[:1], [objective], cfg, ctx)

    def kl(t, s):  # τ²·mean_b KL(softmax(t/τ) ‖ softmax(s/τ)), τ = 2
        p = torch.softmax(t / 2, dim=1)
        return 4 * (torch.xlogy(p, p) - p * torch.log_softmax(s / 2, dim=1)).sum(1).mean()

    random.seed(0)
    batch, adam, steps = samplers[1], torch.optim.Adam(student.parameters(), lr=1e-3), 0
    for _ in range(3):
        student.requires_grad_(False)
        for _ in range(2):
            x = jitter_flip(batch.draw(), 1, 0.5)
            loss, t, _ = objective(x)
            batch.step(loss - 0.5 * kl(t, student(x)))
        student.requires_grad_(True)
        for _ in range(2):
            x = jitter_flip(batch.draw(), 1, 0.5)
            adam.param_groups[0]["lr"] = 1e-3 * 0.5 * (1 + math.cos(math.pi * steps / 6))
            adam.zero_grad()
            kl(teacher(x), student(x)).backward()
            adam.step()
            steps += 1
    assert torch.allclose(samplers[0].images, batch.images, rtol=0, atol=1e-5)
    assert all(torch.allclose(a, b, rtol=0, atol=1e-7) for a, b in zip(qmodel.parameters(), student.parameters(), strict=True))
    assert not torch.allclose(samplers[0].images, start) and not torch.equal(qmodel[1].head[0].weight, teacher.head.weight)


def test_v1_and_v2_configs_scale_v1s_jitter_and_keep_its_learning_rates():
    from dfqbench.api import Task
    from dfqbench_psaqvit.v1 import PSAQViT
    from dfqbench_psaqvit.v2 import PSAQViTV2

    def vit(model, size):
        return Task("s", "imagenet", model, "vit", 1000, (3, size, size), (0.5,) * 3, (0.5,) * 3, 4, 8)

    v1, v2 = PSAQViT(), PSAQViTV2()
    assert (v1.config(vit("deit_tiny", 224), "paper").jitter, v1.config(vit("deit_tiny", 224), "paper").lr) == ((15, 30), 0.20)
    assert v1.config(vit("swin_tiny", 224), "paper").lr == 0.25 and v2.config(vit("swin_tiny", 224), "paper").warm_lr == 0.25
    assert v1.config(vit("deit_tiny", 112), "paper").jitter == (8, 15)  # 7.5 → 8, 15 (Python rounds half to even)
    assert v1.config(vit("vit-digits", 8), "default").jitter == (1, 1)  # at least a pixel
    paper_v2 = v2.config(vit("deit_tiny", 224), "paper")
    assert (paper_v2.jitter, paper_v2.warm_lr, paper_v2.add_ce_random_labels, paper_v2.adv_weight, paper_v2.temperature) == (15, 0.20, False, 1.0, 1.0)
    assert not v2.config(vit("vit-digits", 8), "default").add_ce_random_labels  # no category guidance


def records(path):
    return RecordStore(path / "digits" / "records.jsonl").read()


def test_both_methods_end_to_end_on_digits(cli, tmp_path):
    res = cli("run", "--methods", "noise,psaqvit,psaqvit-v2", "--bits", "4w4a,4w8a,8w8a", "--budget", "smoke", "--results", str(tmp_path))
    assert res.code == 0, res.err
    recs = [r for r in records(tmp_path) if r["cell"]["method"] != "noise" or r["cell"]["model"] == "vit-digits"]
    assert len(recs) == 9 and {r["status"] for r in recs} == {"ok"}
    top1 = {(r["cell"]["method"], r["cell"]["w_bits"], r["cell"]["a_bits"]): r["top1"] for r in recs}
    for r in recs:
        assert r["cell"]["model"] == "vit-digits" and r["cell"]["quantizer"]["name"] == "psaqvit"
        assert r["fp_top1"] >= 95.0
        assert r["quant_sites"] == {"weight_layers": 1 + 3 * 4 + 1, "act_quantizers": 3 * 10 + 7}
    for method in ("psaqvit", "psaqvit-v2"):
        assert top1[method, 8, 8] >= 90.0 and top1[method, 4, 8] >= 80.0
        # where noise calibration loses (4-bit activations) the synthetic images must win clearly
        assert top1[method, 4, 4] >= top1["noise", 4, 4] + 15.0, top1
    v2 = next(r for r in recs if r["cell"]["method"] == "psaqvit-v2")
    assert v2["labels"]["method"] == "PSAQ-ViT V2 (recon.)"
    assert {"kl_sample", "kl_student", "pse", "tv", "warm_pse"} <= set(v2["metrics"])
    # CNN rows of the suite are skipped with a note, not an error
    assert "note: skipped psaqvit supports vit models, resnet20-digits is a cnn" in res.err
    assert "note: skipped psaqvit-v2 supports vit models, mobilenetv2-digits is a cnn" in res.err


def test_v2_ablation_switches_run_and_are_deterministic(cli, tmp_path):
    switches = ["--set", "psaqvit-v2.sample_param=generator", "--set", "psaqvit-v2.adv_weight=0.0",
                "--set", "psaqvit-v2.add_ce_random_labels=True", "--set", "psaqvit-v2.recalibrate=True"]  # fmt: skip
    outs = []
    for name in ("a", "b"):
        res = cli("run", "--methods", "psaqvit-v2", "--models", "vit-digits", "--bits", "4w8a", "--budget", "smoke",
                  *switches, "--results", str(tmp_path / name))  # fmt: skip
        assert res.code == 0, res.err
        (rec,) = records(tmp_path / name)
        assert rec["status"] == "ok", rec["error"]
        assert rec["cell"]["config"]["sample_param"] == "generator" and rec["cell"]["config"]["adv_weight"] == 0.0
        assert "kl_sample" not in rec["metrics"] and "ce" in rec["metrics"]
        outs.append((rec["key"], rec["top1"], rec["metrics"]))
    assert outs[0] == outs[1]
    no_pse = cli("run", "--methods", "psaqvit-v2", "--models", "vit-digits", "--bits", "4w8a", "--budget", "smoke",
                 "--set", "psaqvit-v2.no_pse=True", "--results", str(tmp_path / "c"))  # fmt: skip
    assert no_pse.code == 0
    (rec,) = records(tmp_path / "c")
    assert rec["status"] == "ok" and "pse" not in rec["metrics"]


def test_bad_sample_param_is_one_line_of_input_error(cli, tmp_path):
    res = cli("run", "--methods", "psaqvit-v2", "--models", "vit-digits", "--set", "psaqvit-v2.sample_param=gan",
              "--results", str(tmp_path))  # fmt: skip
    assert res.code == 2
    assert "unknown psaqvit-v2 sample_param 'gan'; valid choices: generator, pixels" in res.err


def test_cnn_methods_skip_the_digits_vit(cli, example_plugin, tmp_path):
    res = cli("run", "--methods", "uniform-calib", "--bits", "4", "--budget", "smoke", "--results", str(tmp_path))
    assert res.code == 0, res.err
    assert "note: skipped uniform-calib supports cnn models, vit-digits is a vit" in res.err
    assert {r["cell"]["model"] for r in records(tmp_path)} == {"resnet20-digits", "mobilenetv2-digits"}


def test_v2_student_lr_is_the_training_split_choice_on_digits_and_the_invented_one_at_full_budget():
    from dfqbench.api import Task
    from dfqbench_psaqvit.v2 import PSAQViTV2

    digits = Task("digits", "digits", "vit-digits", "vit", 10, (1, 8, 8), (0.0,), (1.0,), 4, 4)
    assert PSAQViTV2().config(digits, "default").student_lr == 1e-4  # docs/vit.md: the 3-seed check
    assert PSAQViTV2().config(digits, "paper").student_lr == 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("name", ["deit_tiny_patch16_224", "swin_tiny_patch4_window7_224"])
def test_both_methods_run_on_timm_imagenet_architectures(name):
    """V1 and V2 on randomly initialised DeiT-T / Swin-T at 224×224 (a few steps): the
    PSE hooks, Swin's window pooling, calibration and the STE student all work there."""
    import copy
    import dataclasses

    import timm

    from dfqbench.api import Task
    from dfqbench.context import RunContext
    from dfqbench.quant import preset, uncalibrated, wrap
    from dfqbench.seeding import seed_everything
    from dfqbench_psaqvit.v1 import PSAQViT
    from dfqbench_psaqvit.v2 import PSAQViTV2

    seed_everything(0)
    teacher = timm.create_model(name, pretrained=False).eval().requires_grad_(False)
    task = Task("imagenet-vit", "imagenet", name, "vit", 1000, (3, 224, 224), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 4, 8)
    ctx = RunContext(task, torch.device("cpu"), 0, "smoke")
    v1, v2 = PSAQViT(), PSAQViTV2()
    assert v1.config(task, "paper").jitter == (15, 30) and v1.config(task, "paper").lr == (0.25 if "swin" in name else 0.20)
    small_v1 = dataclasses.replace(v1.config(task, "smoke"), images=2, steps=(2,), jitter=(15,), warmup=1)
    small_v2 = dataclasses.replace(v2.config(task, "smoke"), pool_batches=1, batch_size=2, warm_steps=2, warm_warmup=1, cycles=1, sample_steps=1)
    for method, config in ((v1, small_v1), (v2, small_v2)):
        qmodel = wrap(teacher, 4, 8, preset("psaqvit"))
        result = method.quantize(copy.deepcopy(teacher), qmodel, task, config, ctx)
        assert not uncalibrated(result)
        assert torch.isfinite(result(torch.randn(1, 3, 224, 224))).all()
    # V1 logs its synthesis once per cell, V2 its warm start once and each of its 1 cycle
    assert ctx.metrics["pse"]["count"] == 1 + 1 and ctx.metrics["warm_pse"]["count"] == 1
    assert ctx.metrics["kl_student"]["count"] == 1
