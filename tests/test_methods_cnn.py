"""The CNN method plugins: end-to-end smoke runs, shared work, and their paper configs."""

import dataclasses

import pytest
import torch

from dfqbench.api import Task
from dfqbench.plan import make_plan, method_impl
from dfqbench.records import RecordStore
from dfqbench.registry import load_registry
from dfqbench.session import Session


def task(dataset, model, bits=4):
    return Task("s", dataset, model, "cnn", 10, (3, 32, 32), (0.5,) * 3, (0.5,) * 3, bits, bits)


@pytest.mark.parametrize("methods", ["zeroq,gdfq,qimera", "zaq,adadfq"])
def test_smoke_matrix(cli, tmp_path, methods):
    res = cli("run", "--methods", methods, "--bits", "3,4,5", "--budget", "smoke", "--results", str(tmp_path))
    assert res.code == 0, res.err
    recs = RecordStore(tmp_path / "digits" / "records.jsonl").read()
    assert len(recs) == 2 * 3 * len(methods.split(","))
    assert all(r["status"] == "ok" for r in recs), [r["error"] for r in recs if r["error"]]
    # a working model, not a collapsed one: chance is 10 %, the smoke runs score 60–99, but ZAQ's
    # 30–80: at its paper LR its train-mode BN re-estimates the statistics on a few batches of
    # an untrained generator's output (ResNet-20 30–34 at every bit-width; README)
    floor = {"zaq": 25.0}
    assert all(r["top1"] >= floor.get(r["cell"]["method"], 40.0) for r in recs), sorted((r["cell"]["method"], r["top1"]) for r in recs)
    assert all(r["metrics"] for r in recs)  # every method reports what it optimised


def test_gdfq_on_a_short_schedule_beats_noise_where_noise_loses_clearly(cli, tmp_path):
    """The smoke floors above sit below what calibration on noise alone scores, so this is the
    default run's check that the generator's images do the work: 200 iterations (a warm-up of
    100 that calibrates, then 100 student steps), about 20 s here. Measured, seeds 0–3: 88.1,
    89.0, 89.8, 89.0 against noise's 80.8, 81.5, 80.1, 81.0; the full default budget is in
    test_default_budget_floors.py (slow)."""
    short = [f"--set=gdfq.{field}={value}" for field, value in
             [("epochs", 8), ("iters_per_epoch", 25), ("warmup_epochs", 4), ("calib_epochs", 4)]]  # fmt: skip
    res = cli("run", "--methods", "noise,gdfq", "--models", "mobilenetv2-digits", "--bits", "3", "--seeds", "0",
              "--results", str(tmp_path), *short)  # fmt: skip
    assert res.code == 0, res.err
    acc = {r["cell"]["method"]: r["top1"] for r in RecordStore(tmp_path / "digits" / "records.jsonl").read()}
    assert acc["gdfq"] >= acc["noise"] + 4.0, acc


def test_zeroq_distils_once_per_model_and_seed(monkeypatch):
    import dfqbench_zeroq.method as zeroq

    calls = []
    original = zeroq.distill
    monkeypatch.setattr(zeroq, "distill", lambda *a: calls.append(a[1].w_bits) or original(*a))
    reg = load_registry()
    cells = make_plan(reg, "digits", ["zeroq"], ["resnet20-digits"], [(3, 3), (4, 4), (5, 5)], [0], "smoke").cells
    shared_session = Session(reg, torch.device("cpu"))
    shared = [shared_session.run(c)["top1"] for c in cells]
    assert calls == [3]  # distilled once, reused at 4 and 5 bits
    alone = Session(reg, torch.device("cpu")).run(cells[2])["top1"]
    assert alone == shared[2]  # the reused batch equals a freshly distilled one


def test_zeroq_cells_of_another_config_do_not_reuse_the_batch():
    """The batch is shared by the bit-widths of one config only: a ``--set`` variant that ran
    after the default in the same session gives the record it gives alone."""
    reg = load_registry()
    default = make_plan(reg, "digits", ["zeroq"], ["resnet20-digits"], [(4, 4)], [0], "smoke").cells
    unit = make_plan(reg, "digits", ["zeroq"], ["resnet20-digits"], [(4, 4)], [0], "smoke", changes={"zeroq": {"init": "unit"}}).cells
    session = Session(reg, torch.device("cpu"))
    shared = [session.run(c) for c in default + unit][1]
    alone = Session(reg, torch.device("cpu")).run(unit[0])
    assert shared["metrics"]["distill_loss"] == alone["metrics"]["distill_loss"] and shared["top1"] == alone["top1"]


def test_zeroq_calibrates_the_quantized_model_in_eval_mode_on_the_distilled_batch(zeroq_bench):
    """One forward of the batch that ``distill`` returns sets the ranges; the BN layers keep
    the teacher's statistics (eval mode: the distilled batch does not re-estimate them)."""
    import dfqbench_zeroq.method as zeroq
    from dfqbench.quant import calibrating, preset, quant_acts, wrap

    teacher, digits, ctx = zeroq_bench
    ctx.shared, ctx.log = (lambda key, fn: fn()), (lambda **_: None)
    cfg = dataclasses.replace(zeroq.ZeroQConfig(), batch_size=4, iterations=3)
    torch.manual_seed(1)
    images, _ = zeroq.distill(teacher, digits, cfg, ctx)
    expected = wrap(teacher, 4, 4, preset("zeroq")).eval()
    with calibrating(expected), torch.no_grad():
        expected(images)
    qmodel = wrap(teacher, 4, 4, preset("zeroq"))  # before seeding: building the layers draws numbers
    torch.manual_seed(1)
    qmodel = zeroq.ZeroQ().quantize(teacher, qmodel, digits, cfg, ctx)
    ranges = [[(a.x_min.item(), a.x_max.item()) for _, a in quant_acts(model)] for model in (qmodel, expected)]
    assert ranges[0] == ranges[1]
    bns = [[m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)] for model in (qmodel, teacher)]
    assert all(torch.equal(q.running_mean, t.running_mean) and torch.equal(q.running_var, t.running_var) for q, t in zip(*bns, strict=True))


def test_zeroq_distillation_lowers_the_bn_statistics_loss(zeroq_bench):
    import dfqbench_zeroq.method as zeroq
    from dfqbench.dfq.bn_stats import BNInputs, zeroq_bns_loss

    teacher, digits, ctx = zeroq_bench
    cfg = dataclasses.replace(zeroq.ZeroQConfig(), iterations=50)
    torch.manual_seed(1)
    start = zeroq.initial_images(cfg, digits.input_shape, ctx.device)
    with BNInputs(teacher) as bn, torch.no_grad():
        teacher(start)
        initial = zeroq_bns_loss(bn, start).item()
    torch.manual_seed(1)  # the same initial images
    images, final = zeroq.distill(teacher, digits, cfg, ctx)
    assert final < 0.7 * initial  # 196.4 → 116.9 when written
    assert not torch.equal(images, start)


def test_zeroq_initial_images_are_the_codes_integer_pixels_over_the_variance():
    """(randint(0, 255) − 127.5)/5418.75: pixels 0..254 divided by the variance of that draw
    (the code's slip, ``reference``); ``unit`` divides the same draw by the std instead."""
    import dfqbench_zeroq.method as zeroq

    cfg = dataclasses.replace(zeroq.ZeroQConfig(), batch_size=64)
    torch.manual_seed(0)
    reference = zeroq.initial_images(cfg, (1, 8, 8), torch.device("cpu"))
    assert reference.shape == (64, 1, 8, 8)
    pixels = reference.double() * 5418.75 + 127.5
    assert torch.allclose(pixels, pixels.round(), atol=1e-3)
    assert (pixels.round().min().item(), pixels.round().max().item()) == (0.0, 254.0)  # 4096 draws of 255 values
    torch.manual_seed(0)
    unit = zeroq.initial_images(dataclasses.replace(cfg, init="unit"), (1, 8, 8), torch.device("cpu"))
    assert torch.allclose(unit.double() * 5418.75**0.5, pixels - 127.5, atol=1e-3)


def test_zeroq_distillation_is_adam_on_the_pixels_under_the_plateau_schedule(zeroq_bench):
    """``distill`` against its loop written out: Adam on the pixels; after more than
    ``plateau_patience`` steps whose loss is not 1e-4 (relative) below the best, the LR is
    multiplied by ``plateau_factor``, never below ``min_lr`` (ReduceLROnPlateau's rule)."""
    import math

    import dfqbench_zeroq.method as zeroq
    from dfqbench.dfq.bn_stats import BNInputs, zeroq_bns_loss

    teacher, digits, ctx = zeroq_bench
    cfg = dataclasses.replace(zeroq.ZeroQConfig(), batch_size=4, iterations=16, lr=5.0, plateau_patience=1, plateau_factor=0.3, min_lr=1.0)
    torch.manual_seed(1)
    images, final = zeroq.distill(teacher, digits, cfg, ctx)
    torch.manual_seed(1)
    x = zeroq.initial_images(cfg, digits.input_shape, ctx.device).requires_grad_(True)
    adam = torch.optim.Adam([x], lr=5.0)
    best, bad, lrs = math.inf, 0, []
    with BNInputs(teacher) as bn:
        for _ in range(16):
            bn.clear()
            teacher(x)
            loss = zeroq_bns_loss(bn, x)
            adam.zero_grad()
            loss.backward()
            adam.step()
            best, bad = (loss.item(), 0) if loss.item() < best * (1 - 1e-4) else (best, bad + 1)
            if bad > 1:
                adam.param_groups[0]["lr"], bad = max(adam.param_groups[0]["lr"] * 0.3, 1.0), 0
            lrs.append(adam.param_groups[0]["lr"])
    assert lrs == pytest.approx([5.0] * 6 + [1.5] * 2 + [1.0] * 8)  # here: two cuts, the second stopped by min_lr
    assert torch.allclose(images, x.detach(), rtol=0, atol=1e-6) and final == pytest.approx(loss.item(), rel=1e-6)


def test_zeroq_configs_are_the_reference_codes():
    """distill_data.py: 500 Adam steps at lr 0.5, plateau patience 100, factor 0.1, min 1e-4;
    32 images (run.sh: 64 on ImageNet); no reduced budget (the default is the paper's)."""
    zeroq = method_impl(load_registry().method("zeroq").info)
    c10 = zeroq.config(task("cifar10", "resnet20"), "paper")
    assert (c10.batch_size, c10.iterations, c10.lr, c10.plateau_patience, c10.plateau_factor, c10.min_lr, c10.init) == (
        32, 500, 0.5, 100, 0.1, 1e-4, "reference")  # fmt: skip
    assert zeroq.config(task("imagenet", "resnet18"), "paper") == dataclasses.replace(c10, batch_size=64)
    assert zeroq.config(task("digits", "resnet20-digits"), "default") == c10
    assert zeroq.config(task("digits", "resnet20-digits"), "smoke") == dataclasses.replace(c10, iterations=5)


def test_gdfq_paper_configs_are_the_reference_hocons():
    gdfq = method_impl(load_registry().method("gdfq").info)
    c100 = gdfq.config(task("cifar100", "resnet20"), "paper")
    assert (c100.epochs, c100.iters_per_epoch, c100.batch_size, c100.warmup_epochs, c100.calib_epochs) == (400, 200, 200, 4, 4)
    assert (c100.lr_s, c100.lr_g, c100.milestones_s, c100.betas_g, c100.weight_decay_s) == (1e-4, 1e-3, (100, 200, 300), (0.5, 0.999), 1e-4)
    assert (c100.temperature, c100.alpha, c100.bns_weight, c100.latent_dim, c100.conditioning) == (20.0, 1.0, 0.1, 100, "embedding")
    r18 = gdfq.config(task("imagenet", "resnet18"), "paper")
    assert (r18.batch_size, r18.warmup_epochs, r18.lr_s, r18.conditioning) == (16, 50, 1e-6, "cbn")


def test_qimera_paper_configs_follow_the_run_scripts():
    qimera = method_impl(load_registry().method("qimera").info)
    pick = lambda t: (lambda c: (c.mix_prob, c.mix_classes, c.embedding_init, c.dm_dim))(qimera.config(t, "paper"))
    assert pick(task("cifar10", "resnet20", 4)) == (0.4, 2, "random", 0)
    assert pick(task("cifar100", "resnet20", 5)) == (0.4, 50, "teacher", 0)
    assert pick(task("cifar100", "resnet20", 3)) == (0.4, 10, "teacher", 0)  # 3-bit: derived from 4-bit
    assert pick(task("imagenet", "resnet50", 4)) == (0.7, 500, "teacher", 0)
    assert pick(task("imagenet", "mobilenetv2", 5)) == (0.4, 100, "random", 0)
    assert pick(task("digits", "resnet20-digits", 4)) == (0.4, 2, "random", 0)  # CIFAR-10's
    assert qimera.config(task("imagenet", "resnet18"), "paper").conditioning == "cbn"


def test_adadfq_paper_configs_follow_the_reference_hocons():
    ada = method_impl(load_registry().method("adadfq").info)
    c10 = ada.config(task("cifar10", "resnet20", 3), "paper")
    assert (c10.batch_size, c10.warmup_epochs, c10.lr_s, c10.milestones_s, c10.temperature) == (16, 4, 1e-4, (100, 200, 300), 20.0)
    assert (c10.alpha_ds, c10.alpha_as, c10.lambda_lower, c10.lambda_upper, c10.beta, c10.gamma) == (0.2, 0.1, 0.1, 0.8, 1.0, 1.0)
    r18 = {b: ada.config(task("imagenet", "resnet18", b), "paper") for b in (3, 4, 5)}
    assert [r18[b].lambda_lower for b in (3, 4, 5)] == [0.1, 0.3, 0.3]
    assert [r18[b].alpha_ds for b in (3, 4, 5)] == [0.2, 0.2, 0.3]
    assert (r18[4].lr_s, r18[4].milestones_s, r18[4].temperature, r18[4].warmup_epochs) == (1e-5, (350, 400), 5.0, 50)
    r50 = {b: ada.config(task("imagenet", "resnet50", b), "paper") for b in (3, 4, 5)}
    assert [r50[b].warmup_epochs for b in (3, 4, 5)] == [100, 50, 50]
    assert [r50[b].milestones_s for b in (3, 4, 5)] == [(150, 300, 400), (200, 300, 400), (350, 400)]
    assert [r50[b].lambda_lower for b in (3, 4, 5)] == [0.4, 0.3, 0.3] and r50[4].alpha_ds == 0.1 and r50[3].lr_s == 1e-4
    mv2 = {b: ada.config(task("imagenet", "mobilenetv2", b), "paper") for b in (3, 4, 5)}
    assert [mv2[b].alpha_ds for b in (3, 4, 5)] == [0.2, 0.3, 0.2]
    assert [mv2[b].lambda_lower for b in (3, 4, 5)] == [0.1, 0.1, 0.1]  # the ResNets' 0.3/0.4 are theirs only


def test_reduced_student_lr_per_method_as_chosen_on_the_training_split():
    reg = load_registry()
    digits = task("digits", "resnet20-digits", 3)
    impls = {m: method_impl(reg.method(m).info) for m in ("gdfq", "qimera", "adadfq")}
    default = {m: impl.config(digits, "default") for m, impl in impls.items()}
    paper = {m: impl.config(digits, "paper") for m, impl in impls.items()}
    assert {m: default[m].lr_s / paper[m].lr_s for m in impls} == pytest.approx({"gdfq": 10.0, "qimera": 0.3, "adadfq": 3.0})
    # AdaDFQ keeps its paper batch (training split, docs/budgets.md)
    assert {m: c.batch_size for m, c in default.items()} == {"gdfq": 64, "qimera": 64, "adadfq": 16}


def test_zaq_paper_and_reduced_configs():
    zaq = method_impl(load_registry().method("zaq").info)
    paper = zaq.config(task("cifar10", "resnet20"), "paper")
    assert (paper.epochs, paper.iters_per_epoch, paper.q_steps, paper.batch_size, paper.latent_dim) == (300, 60, 5, 256, 256)
    assert (paper.lr_q, paper.weight_decay_q, paper.lr_g, paper.milestones, paper.alpha, paper.beta) == (0.1, 5e-4, 1e-3, (100, 200), 1.0, 0.1)
    assert not paper.derived
    # ImageNet (no reference config): the CIFAR schedule at the GDFQ family's ImageNet batch
    imagenet = zaq.config(task("imagenet", "resnet18"), "paper")
    assert imagenet == dataclasses.replace(paper, batch_size=16, derived=True)
    default = zaq.config(task("digits", "resnet20-digits"), "default")
    # ZAQ keeps the 20 epochs × 50 student updates it was tuned on, calibrated over the first 4
    # epochs: the family's longer generator warm-up is not ZAQ's (it has none)
    assert default.epochs * default.iters_per_epoch * default.q_steps == 20 * 50
    assert (default.epochs, default.calib_epochs, default.milestones, default.batch_size) == (20, 4, (7, 13), 64)
    assert default.lr_q == paper.lr_q  # chosen on the training split (docs/budgets.md)
    assert dataclasses.replace(default, derived=False) == dataclasses.replace(default)


def test_every_method_is_deterministic():
    reg = load_registry()
    methods = ["zeroq", "gdfq", "qimera", "zaq", "adadfq"]
    cells = make_plan(reg, "digits", methods, ["mobilenetv2-digits"], [(4, 4)], [3], "smoke").cells
    runs = [[(r["top1"], r["metrics"]) for r in map(Session(reg, torch.device("cpu")).run, cells)] for _ in range(2)]
    assert runs[0] == runs[1]
