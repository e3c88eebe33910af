"""The GDFQ family's alternating generator / quantized-model training loop.

Per iteration (GDFQ ``trainer.py``, inherited by Qimera and AdaDFQ):

1. sample latent codes and labels, generate images;
2. one teacher forward (its BN inputs captured for the BNS loss); the same logits, detached,
   are reused by the student loss instead of recomputing them on identical images;
3. one generator step (Adam);
4. a student forward on the detached images — it updates the activation ranges while the
   calibration window is open — and a student step (SGD) once the warm-up is over.

The activation ranges are updated during the first ``calib_epochs`` epochs only (hard-coded
4 in the references, independent of the warm-up) and frozen afterwards. The student runs in
eval mode throughout: BN uses and keeps the pretrained running statistics while its affine
parameters are trained. Between the calibration window and the end of the warm-up the
student forward has no effect on the result, so it is skipped unless the generator's loss
needs the student.

When the generator's loss does not need the student (GDFQ, Qimera), the generator, its
images and the teacher's logits are the same whatever the bit-width, so
:func:`train_students_with_generator` trains the quantized models of several bit-widths on
one generator: each ends exactly as it would alone (same images, same updates, same
logged metrics), and the generator's steps (generator and teacher, forward and backward:
most of an iteration's work on the digits suite) are taken once instead of once per
bit-width.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from dfqbench.api import check_config
from dfqbench.context import RunContext
from dfqbench.dfq.bn_stats import BNInputs
from dfqbench.errors import Diverged
from dfqbench.quant import set_calibrating


@dataclass(frozen=True)
class LoopConfig:
    """Schedule and optimisers of the loop; method configs extend it with their own fields."""

    epochs: int = 400
    iters_per_epoch: int = 200
    batch_size: int = 200
    warmup_epochs: int = 4  #: generator-only epochs: no student update before this epoch
    calib_epochs: int = 4  #: activation ranges are updated in epochs [0, calib_epochs); at least 1: a range is needed
    lr_s: float = 1e-4
    lr_g: float = 1e-3
    milestones_s: tuple[int, ...] = (100, 200, 300)
    milestones_g: tuple[int, ...] = (100, 200, 300)
    lr_decay: float = 0.1
    momentum_s: float = 0.9
    weight_decay_s: float = 1e-4
    nesterov_s: bool = True
    betas_g: tuple[float, float] = (0.5, 0.999)

    def __post_init__(self) -> None:
        check_config(
            self,
            at_least={"epochs": 1, "iters_per_epoch": 1, "batch_size": 1, "warmup_epochs": 0, "calib_epochs": 1, "lr_s": 0, "lr_g": 0,
                      "milestones_s": 0, "milestones_g": 0, "momentum_s": 0, "weight_decay_s": 0, "betas_g": 0},
            above={"lr_decay": 0},
            below={"betas_g": 1},
        )  # fmt: skip
        for window in ("warmup_epochs", "calib_epochs"):  # a longer window would silently cover the whole run
            if getattr(self, window) > self.epochs:
                raise ValueError(f"{window}={getattr(self, window)} is above epochs={self.epochs}; valid: {window} ≤ epochs")


def multistep_lr(base: float, epoch: int, milestones: tuple[int, ...], decay: float) -> float:
    """``LRPolicy('multi_step')`` of the references: base·decay^#{m : epoch + 1 > m}."""
    return base * decay ** sum(epoch + 1 > m for m in milestones)


class Game(Protocol):
    """One method's objectives inside the loop."""

    #: True when the generator loss needs the student's logits on the (non-detached) images
    student_in_generator_step: bool

    def sample(self, batch_size: int, device: torch.device) -> Any: ...

    def generate(self, sample: Any) -> torch.Tensor: ...

    def generator_loss(
        self, sample: Any, teacher_logits: torch.Tensor, bn: BNInputs, student_logits: torch.Tensor | None
    ) -> dict[str, torch.Tensor]: ...

    def student_loss(self, sample: Any, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> dict[str, torch.Tensor]: ...


@dataclass
class Sample:
    """One batch of generator inputs and the labels the losses use."""

    z: torch.Tensor
    labels: torch.Tensor
    targets: torch.Tensor  #: soft labels ỹ (one-hot for single-label batches)
    weights: torch.Tensor | None = None  #: mixing coefficients of superposed labels (Qimera)


class ConditionalGame:
    """Sampling and generation of a class-conditional generator G(z, y), z ~ N(0, I) of
    ``generator.latent_dim`` dimensions and y ~ U{0..N−1}; methods add their two losses."""

    student_in_generator_step = False

    def __init__(self, generator: nn.Module, num_classes: int, cfg: Any):
        self.generator, self.num_classes, self.cfg = generator, num_classes, cfg

    def sample(self, batch_size: int, device: torch.device) -> Sample:
        z = torch.randn(batch_size, self.generator.latent_dim, device=device)
        labels = torch.randint(0, self.num_classes, (batch_size,), device=device)
        return Sample(z, labels, F.one_hot(labels, self.num_classes).float())

    def generate(self, sample: Sample) -> torch.Tensor:
        return self.generator(sample.z, sample.labels)


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def train_with_generator(
    teacher: nn.Module,
    qmodel: nn.Module,
    generator: nn.Module | None,
    game: Game,
    cfg: LoopConfig,
    ctx: RunContext,
    description: str,
) -> nn.Module:
    (result,) = train_students_with_generator(teacher, [qmodel], generator, game, cfg, [ctx], description)
    if isinstance(result, Diverged):
        raise result
    return result


@dataclass
class _Student:
    model: nn.Module
    ctx: RunContext
    optimizer: torch.optim.Optimizer
    sums: dict[str, torch.Tensor]
    diverged: Diverged | None = None


def train_students_with_generator(
    teacher: nn.Module,
    qmodels: list[nn.Module],
    generator: nn.Module | None,
    game: Game,
    cfg: LoopConfig,
    contexts: list[RunContext],
    description: str,
) -> list[nn.Module | Diverged]:
    """The loop for one or more quantized models (one per bit-width, each logging to its own
    context) on one generator. A model whose metrics turn non-finite drops out with its
    :class:`~dfqbench.errors.Diverged`, returned in its place; the others go on as they would
    alone. Without a generator (a reference whose game draws real images) there is no
    generator step and the teacher's forward keeps no graph."""
    if game.student_in_generator_step and len(qmodels) > 1:
        raise ValueError("this game's generator loss needs the student: its bit-widths cannot share a generator")
    teacher.eval()
    opt_g = None
    if generator is not None:
        generator.train()
        opt_g = torch.optim.Adam(generator.parameters(), lr=cfg.lr_g, betas=tuple(cfg.betas_g))
    students = [
        _Student(
            qmodel.eval(),
            ctx,
            torch.optim.SGD(qmodel.parameters(), lr=cfg.lr_s, momentum=cfg.momentum_s, weight_decay=cfg.weight_decay_s, nesterov=cfg.nesterov_s),
            {},
        )
        for qmodel, ctx in zip(qmodels, contexts, strict=True)
    ]
    zero = partial(torch.zeros, (), device=contexts[0].device)
    with BNInputs(teacher) as bn, contexts[0].progress(cfg.epochs * cfg.iters_per_epoch, description) as bar:
        for epoch in range(cfg.epochs):
            active = [s for s in students if s.diverged is None]
            if not active:
                break
            if opt_g is not None:
                _set_lr(opt_g, multistep_lr(cfg.lr_g, epoch, tuple(cfg.milestones_g), cfg.lr_decay))
            calibrate, train_student = epoch < cfg.calib_epochs, epoch >= cfg.warmup_epochs
            for student in active:
                _set_lr(student.optimizer, multistep_lr(cfg.lr_s, epoch, tuple(cfg.milestones_s), cfg.lr_decay))
                set_calibrating(student.model, calibrate)
                student.sums = defaultdict(zero)
            g_sums: dict[str, torch.Tensor] = defaultdict(zero)
            for _ in range(cfg.iters_per_epoch):
                sample = game.sample(cfg.batch_size, contexts[0].device)
                images = game.generate(sample)
                bn.clear()
                with torch.set_grad_enabled(opt_g is not None):
                    teacher_logits = teacher(images)
                if opt_g is not None:
                    student_in_g = active[0].model(images) if game.student_in_generator_step else None
                    g_terms = game.generator_loss(sample, teacher_logits, bn, student_in_g)
                    opt_g.zero_grad(set_to_none=True)
                    g_terms["loss"].backward()
                    opt_g.step()
                    for name, value in g_terms.items():
                        g_sums[f"g_{name}"] += value.detach()
                if calibrate or train_student:
                    for student in active:
                        _student_step(student, game, sample, images.detach(), teacher_logits.detach(), train_student)
                bar.advance()
            for student in active:
                try:  # g_ terms first, as one student's loop always logged them
                    student.ctx.log(**{name: total / cfg.iters_per_epoch for name, total in {**g_sums, **student.sums}.items()})
                except Diverged as exc:
                    student.diverged = exc
    for student in students:
        set_calibrating(student.model, False)
    return [student.diverged or student.model for student in students]


def _student_step(student: _Student, game: Game, sample: Any, images: torch.Tensor, teacher_logits: torch.Tensor, train: bool) -> None:
    """A forward on the generator's images (moving the ranges while they calibrate), and an
    update once the warm-up is over."""
    with torch.set_grad_enabled(train):
        student_logits = student.model(images)
        s_terms = game.student_loss(sample, student_logits, teacher_logits)
    if train:
        student.optimizer.zero_grad(set_to_none=True)
        s_terms["loss"].backward()
        student.optimizer.step()
    for name, value in s_terms.items():
        student.sums[f"s_{name}"] += value.detach()
    student.sums["agreement"] += (student_logits.argmax(1) == teacher_logits.argmax(1)).float().mean().detach()
