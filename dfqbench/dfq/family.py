"""Methods built on GDFQ's generator and alternating loop (GDFQ, Qimera, AdaDFQ).

A method of the family names its :class:`~dfqbench.dfq.loop.Game` (what it samples and its
two losses), its paper configurations and, if it differs from GDFQ's, its generator;
:class:`GeneratorMethod` does the rest.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from dfqbench.api import Method, Task
from dfqbench.dfq.bn_stats import BNInputs, gdfq_bns_loss
from dfqbench.dfq.budgets import STUDENT_LR_FACTOR, scaled
from dfqbench.dfq.generators import GDFQGenerator
from dfqbench.dfq.kd import gdfq_student_loss, soft_cross_entropy
from dfqbench.context import JointContext
from dfqbench.dfq.loop import ConditionalGame, LoopConfig, Sample, train_students_with_generator, train_with_generator


class LabelGuidedGame(ConditionalGame):
    """GDFQ's objectives on the (soft) labels ỹ of the sampled batch:

    * generator: soft-CE(teacher(x), ỹ) + w·L_BNS (GDFQ Eq. 7 as coded, w = 0.1; with
      Qimera's soft labels, its Eq. 7);
    * student: α·T²·KL_mean(q/T ‖ t/T) + soft-CE(q, ỹ) (GDFQ Eq. 8; Qimera Eq. 9).

    For one-hot ỹ soft-CE is GDFQ's plain CE. The config provides ``bns_weight``,
    ``temperature`` and ``alpha``.
    """

    def generator_loss(self, sample: Sample, teacher_logits, bn: BNInputs, student_logits) -> dict[str, torch.Tensor]:
        ce = soft_cross_entropy(teacher_logits, sample.targets)
        bns = gdfq_bns_loss(bn)
        return {"loss": ce + self.cfg.bns_weight * bns, "ce": ce, "bns": bns}

    def student_loss(self, sample: Sample, student_logits, teacher_logits) -> dict[str, torch.Tensor]:
        total, kd, ce = gdfq_student_loss(student_logits, teacher_logits, sample.targets, self.cfg.temperature, self.cfg.alpha)
        return {"loss": total, "kd": kd, "ce": ce}


class GeneratorMethod(Method):
    """A method on GDFQ's generator and loop; the budget rule is :func:`~dfqbench.dfq.budgets.scaled`."""

    Game: ClassVar[type[ConditionalGame]]
    description: ClassVar[str]
    #: the reduced budgets' student LR multiplier (see :mod:`dfqbench.dfq.budgets`)
    student_lr_factor: ClassVar[float] = STUDENT_LR_FACTOR

    def paper_config(self, task: Task) -> LoopConfig:
        """The reference configuration for ``task`` (dataset, model, bits)."""
        raise NotImplementedError

    def generator(self, teacher: nn.Module, task: Task, config: Any, ctx: Any) -> nn.Module:
        """GDFQ's generator; the config provides ``latent_dim`` and ``conditioning``."""
        return GDFQGenerator(task.num_classes, task.input_shape, config.latent_dim, config.conditioning)

    def config(self, task: Task, budget: str) -> LoopConfig:
        return scaled(self.paper_config(task), budget, self.student_lr_factor)

    @property
    def joint_bits(self) -> bool:  # type: ignore[override]
        """The bit-widths share one generator where its loss never sees the student."""
        return not self.Game.student_in_generator_step

    def game(self, teacher: nn.Module, task: Task, config: Any, ctx: Any) -> ConditionalGame:
        """The method's game on a fresh generator (``game.generator``)."""
        generator = self.generator(teacher, task, config, ctx).to(ctx.device)
        return self.Game(generator, task.num_classes, config)

    def quantize(self, teacher, qmodel, task, config, ctx):
        game = self.game(teacher, task, config, ctx)
        return train_with_generator(teacher, qmodel, game.generator, game, config, ctx, self.description)

    def quantize_jointly(self, teacher, qmodels, tasks, config, contexts):
        game = self.game(teacher, tasks[0], config, JointContext(contexts))
        description = f"{self.description} ×{len(qmodels)} bit-widths"
        return train_students_with_generator(teacher, qmodels, game.generator, game, config, contexts, description)
