"""The GDFQ-family alternating loop: windows, schedules and work done once."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from dfqbench.api import Task
from dfqbench.context import RunContext
from dfqbench.dfq.budgets import scaled
from dfqbench.dfq.generators import GDFQGenerator
from dfqbench.dfq.loop import LoopConfig, multistep_lr, train_students_with_generator, train_with_generator
from dfqbench.errors import Diverged
from dfqbench.models.cifar_resnet import CIFARResNet
from dfqbench.quant import QuantSettings, quant_acts, wrap

TASK = Task("t", "digits", "m", "cnn", 10, (1, 8, 8), (0.0,), (1.0,), 4, 4)


def test_multistep_lr_follows_the_reference_policy():
    steps = (100, 200, 300)
    assert [multistep_lr(1.0, e, steps, 0.1) for e in (0, 99, 100, 199, 200, 300, 399)] == pytest.approx(
        [1.0, 1.0, 0.1, 0.1, 0.01, 0.001, 0.001]
    )


def test_reduced_budgets_keep_the_schedule_fractions():
    paper = LoopConfig()
    default = scaled(paper, "default")
    assert (default.epochs, default.iters_per_epoch, default.batch_size) == (32, 50, 64)
    # warm-up = calibration window of the paper's 800 iterations (16 epochs of 50), then a
    # student phase of 16 epochs with the paper's milestones at 25/50/75 % of it
    assert (default.warmup_epochs, default.calib_epochs, default.milestones_s) == (16, 16, (20, 24, 28))
    assert default.lr_s == paper.lr_s  # the paper's student LR unless a method chose a factor
    assert scaled(paper, "paper") is paper
    imagenet = dataclasses.replace(paper, warmup_epochs=50, batch_size=16, milestones_s=(350, 400))
    assert scaled(imagenet, "default").milestones_s == (30, 32)  # the last decay is never reached, as in the paper
    assert scaled(imagenet, "default").batch_size == 16  # a reduced budget never grows the paper's batch
    smoke = scaled(imagenet, "smoke")
    assert (smoke.batch_size, smoke.warmup_epochs, smoke.epochs) == (8, 1, 2)


class CountingGame:
    """GDFQ-like objectives that count forwards; optionally needs the student in the G step."""

    def __init__(self, generator, student_in_generator_step=False):
        self.generator = generator
        self.student_in_generator_step = student_in_generator_step

    def sample(self, batch_size, device):
        return torch.randn(batch_size, 100, device=device), torch.randint(0, 10, (batch_size,), device=device)

    def generate(self, sample):
        return self.generator(*sample)

    def generator_loss(self, sample, teacher_logits, bn, student_logits):
        loss = F.cross_entropy(teacher_logits, sample[1])
        if student_logits is not None:
            loss = loss + student_logits.mean()
        return {"loss": loss}

    def student_loss(self, sample, student_logits, teacher_logits):
        return {"loss": F.mse_loss(student_logits, teacher_logits)}


def snapshot(module, keep=lambda name: True):
    return {k: v.clone() for k, v in module.state_dict().items() if keep(k)}


def differs(before, module):
    return {k for k, v in module.state_dict().items() if k in before and not torch.equal(before[k], v)}


def is_bn_statistic(name):
    return name.endswith(("running_mean", "running_var", "num_batches_tracked"))


def run_loop(cfg, student_in_g=False, states=None):
    """``states`` (a dict), if given, receives the entries of the three models' state dicts
    that the loop changed: ``teacher``, ``student_bn`` (BN statistics) and ``generator``."""
    torch.manual_seed(0)
    teacher = CIFARResNet(1, 10, 8, (4, 8)).eval().requires_grad_(False)
    student = wrap(teacher, 4, 4, QuantSettings())
    counts = {"teacher": 0, "student": 0}
    teacher.register_forward_hook(lambda *a: counts.__setitem__("teacher", counts["teacher"] + 1))
    student.register_forward_hook(lambda *a: counts.__setitem__("student", counts["student"] + 1))
    before = snapshot(student, lambda k: "weight" in k)
    game = CountingGame(GDFQGenerator(10, (1, 8, 8)), student_in_g)
    teacher_before, bn_before, generator_before = snapshot(teacher), snapshot(student, is_bn_statistic), snapshot(game.generator)
    ctx = RunContext(TASK, torch.device("cpu"), 0, "smoke")
    train_with_generator(teacher, student, game.generator, game, cfg, ctx, "test")
    if states is not None:
        states.update(teacher=differs(teacher_before, teacher), student_bn=differs(bn_before, student), generator=differs(generator_before, game.generator))
    return student, counts, bool(differs(before, student)), ctx


def test_calibration_window_then_frozen_and_no_student_step_in_warmup():
    cfg = LoopConfig(epochs=3, iters_per_epoch=2, batch_size=8, warmup_epochs=3, calib_epochs=1)
    student, counts, changed, ctx = run_loop(cfg)
    assert {int(act.num_updates) for _, act in quant_acts(student)} == {2}  # epoch 0 only
    assert not any(act.calibrating for _, act in quant_acts(student))
    assert not changed  # warm-up covers every epoch: the student is never updated
    assert counts["teacher"] == 6  # one teacher forward per iteration
    assert counts["student"] == 2  # student forwards only where they matter (calibration)
    assert "g_loss" in ctx.metrics and ctx.metrics["g_loss"]["count"] == 3


def test_student_trains_after_warmup_with_ranges_frozen():
    cfg = LoopConfig(epochs=3, iters_per_epoch=2, batch_size=8, warmup_epochs=1, calib_epochs=1, lr_s=0.1)
    student, counts, changed, _ = run_loop(cfg)
    assert changed
    assert {int(act.num_updates) for _, act in quant_acts(student)} == {2}
    assert counts["student"] == 6


def test_only_the_generator_and_the_students_weights_learn():
    """Teacher and student run in eval mode, as in the reference: the teacher's BN statistics
    are the BNS loss's targets, and the student keeps the FP model's."""
    cfg = LoopConfig(epochs=3, iters_per_epoch=2, batch_size=8, warmup_epochs=1, calib_epochs=1, lr_s=0.1)
    states = {}
    _, _, changed, _ = run_loop(cfg, states=states)
    assert changed and states["teacher"] == set() and states["student_bn"] == set()
    # every parameter of the generator is updated, not only its BN statistics (train mode)
    assert {name for name, _ in GDFQGenerator(10, (1, 8, 8)).named_parameters()} <= states["generator"]


def test_each_optimizer_steps_at_its_own_multistep_lr(monkeypatch):
    """The schedule as the loop applies it, epoch by epoch: an LR decays once epoch + 1 passes
    a milestone (GDFQ's LRPolicy), the generator's and the student's each on their own."""
    steps = []
    for kind in (torch.optim.SGD, torch.optim.Adam):
        original = kind.step
        monkeypatch.setattr(kind, "step", lambda opt, *a, _o=original, **k: steps.append((type(opt).__name__, opt.param_groups[0]["lr"])) or _o(opt, *a, **k))
    cfg = LoopConfig(epochs=4, iters_per_epoch=1, batch_size=8, warmup_epochs=1, calib_epochs=1, lr_s=0.1, lr_g=0.01,
                     milestones_s=(2,), milestones_g=(1, 3), lr_decay=0.5)  # fmt: skip
    run_loop(cfg)
    assert [lr for kind, lr in steps if kind == "Adam"] == pytest.approx([0.01, 0.005, 0.005, 0.0025])  # epochs 0–3
    assert [lr for kind, lr in steps if kind == "SGD"] == pytest.approx([0.1, 0.05, 0.05])  # epochs 1–3, after the warm-up


def test_student_in_generator_step_is_forwarded_twice_per_iteration():
    cfg = LoopConfig(epochs=2, iters_per_epoch=2, batch_size=8, warmup_epochs=1, calib_epochs=1)
    student, counts, _, _ = run_loop(cfg, student_in_g=True)
    assert counts["student"] == 8 and counts["teacher"] == 4
    # AdaDFQ's calibration sees both forwards of each calibration iteration
    assert {int(act.num_updates) for _, act in quant_acts(student)} == {4}


def test_without_a_generator_the_student_trains_on_the_games_images():
    """The real-data reference: no generator step, the student distilled on the images the
    game draws (here a fixed set, so the images the teacher saw can be checked)."""
    from dfqbench_gdfq.method import GDFQConfig
    from dfqbench_gdfq.real import RealImagesGame

    torch.manual_seed(0)
    images, labels = torch.randn(5, 1, 8, 8), torch.arange(5)
    train = torch.utils.data.TensorDataset(images, labels)
    teacher = CIFARResNet(1, 10, 8, (4, 8)).eval().requires_grad_(False)
    student = wrap(teacher, 4, 4, QuantSettings())
    seen = []
    teacher.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    cfg = GDFQConfig(epochs=2, iters_per_epoch=3, batch_size=4, warmup_epochs=1, calib_epochs=1, lr_s=0.1)
    before = student.output.weight.detach().clone()
    ctx = RunContext(TASK, torch.device("cpu"), 0, "smoke")
    train_with_generator(teacher, student, None, RealImagesGame(train, 10, cfg), cfg, ctx, "test")
    assert len(seen) == 6 and all(not x.requires_grad for x in seen)
    assert all(any(torch.equal(row, image) for image in images) for x in seen for row in x)
    assert not torch.equal(before, student.output.weight)
    assert not any(name.startswith("g_") for name in ctx.metrics) and ctx.metrics["s_kd"]["count"] == 2


def joint_setup(bits, poisoned=()):
    """A teacher, its quantized copies at ``bits`` (those in ``poisoned`` with a NaN BN
    weight: they diverge at their first logged epoch) and a generator, seeded apart."""
    torch.manual_seed(0)
    teacher = CIFARResNet(1, 10, 8, (4, 8)).eval().requires_grad_(False)
    students = [wrap(teacher, b, b, QuantSettings()) for b in bits]
    for b, student in zip(bits, students):
        if b in poisoned:
            next(m for m in student.modules() if isinstance(m, torch.nn.BatchNorm2d)).weight.data.fill_(float("nan"))
    torch.manual_seed(1)
    generator = GDFQGenerator(10, (1, 8, 8))
    contexts = [RunContext(dataclasses.replace(TASK, w_bits=b, a_bits=b), torch.device("cpu"), 0, "smoke") for b in bits]
    return teacher, students, CountingGame(generator), contexts


def test_bit_widths_on_one_generator_end_as_each_would_alone():
    cfg = LoopConfig(epochs=3, iters_per_epoch=2, batch_size=8, warmup_epochs=1, calib_epochs=1, lr_s=0.1)
    teacher, students, game, contexts = joint_setup([3, 4, 5], poisoned=[4])
    results = train_students_with_generator(teacher, students, game.generator, game, cfg, contexts, "joint")
    assert results[0] is students[0] and results[2] is students[2]
    assert isinstance(results[1], Diverged) and "became nan" in str(results[1])
    assert contexts[1].metrics["g_loss"]["count"] == 1  # stopped at its first epoch; the others went on
    assert contexts[0].metrics["g_loss"]["count"] == 3
    for i, bits in enumerate([3, 4, 5]):
        teacher, (student,), game, (ctx,) = joint_setup([bits], poisoned=[4])
        if bits == 4:
            with pytest.raises(Diverged, match=str(results[1])):
                train_with_generator(teacher, student, game.generator, game, cfg, ctx, "alone")
        else:
            train_with_generator(teacher, student, game.generator, game, cfg, ctx, "alone")
            joint_state = students[i].state_dict()
            assert all(torch.equal(value, joint_state[name]) for name, value in student.state_dict().items())
        assert ctx.history == contexts[i].history  # every logged value, generator's and student's


def test_a_game_whose_generator_sees_the_student_trains_one_bit_width_at_a_time():
    teacher, students, game, contexts = joint_setup([3, 4])
    game.student_in_generator_step = True
    with pytest.raises(ValueError, match="cannot share a generator"):
        train_students_with_generator(teacher, students, game.generator, game, LoopConfig(epochs=1, iters_per_epoch=1, warmup_epochs=1, calib_epochs=1), contexts, "joint")
