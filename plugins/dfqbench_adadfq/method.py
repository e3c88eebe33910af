"""AdaDFQ: GDFQ's generator and loop with the adaptive zero-sum game of AdaDFQ §3
(official code ``hfutqian/AdaDFQ``; quantizer, generator, loop and freezing are GDFQ's).

Generator (recovered Eq. 13): L_G = L_m + β·(α_ds·L_ds + α_as·L_as) + γ·L_BNS, with the
student's logits computed on the generated images (gradients reach the generator through
the student's straight-through quantizers); z_p is not detached. Student: recovered
Eq. 14 on the detached images, T = 20 (CIFAR) / 5 (ImageNet). Losses in :mod:`.losses`.

Deliberate deviations: the hinge's hard-coded batch size 16 is fixed; the final model is
reported (the reference keeps the best test epoch); bias-corrected EMA ranges. The paper's
"max 𝓗" has no explicit term in the code (the hinge and L_ds carry it); we follow the code.
Per-dataset/model/bit values come from the reference configs, which differ from the paper's
text in places (λ_l 0.3 for 4/5-bit ResNet-18/50, 0.4 for 3-bit ResNet-50; ResNet-50's Q LR
1e-4; Adam β1 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dfqbench.api import Task, check_config
from dfqbench.dfq.bn_stats import BNInputs, gdfq_bns_loss
from dfqbench.dfq.family import GeneratorMethod
from dfqbench.dfq.generators import CONDITIONINGS
from dfqbench.dfq.loop import ConditionalGame, LoopConfig
from dfqbench_adadfq import losses


@dataclass(frozen=True)
class AdaDFQConfig(LoopConfig):
    batch_size: int = 16
    conditioning: str = "embedding"
    latent_dim: int = 100
    alpha_ds: float = 0.2
    alpha_as: float = 0.1
    lambda_lower: float = 0.1
    lambda_upper: float = 0.8
    beta: float = 1.0  #: weight of L_bal
    gamma: float = 1.0  #: weight of L_BNS
    temperature: float = 20.0  #: of the student loss

    def __post_init__(self) -> None:
        super().__post_init__()
        check_config(
            self,
            at_least={"latent_dim": 1, "alpha_ds": 0, "alpha_as": 0, "lambda_lower": 0, "beta": 0, "gamma": 0},
            above={"temperature": 0},
            at_most={"lambda_upper": 1},
            choices={"conditioning": CONDITIONINGS},
        )
        if self.lambda_lower > self.lambda_upper:
            raise ValueError(f"lambda_lower={self.lambda_lower} is above lambda_upper={self.lambda_upper}; valid: lambda_lower ≤ lambda_upper")


_CIFAR = dict(warmup_epochs=4, lr_s=1e-4, milestones_s=(100, 200, 300), milestones_g=(100, 200, 300), temperature=20.0)
_IMAGENET = dict(warmup_epochs=50, lr_s=1e-5, milestones_s=(350, 400), milestones_g=(350, 400), temperature=5.0, conditioning="cbn")


def adadfq_paper_config(task: Task) -> AdaDFQConfig:
    """The reference's ``*.hocon`` (shipped at 3 bits) with their per-bit comments."""
    bits, model = task.w_bits, task.model
    if task.dataset != "imagenet":  # CIFAR-10/100 configs; digits uses CIFAR-10's
        return AdaDFQConfig(**_CIFAR)
    cfg = dict(_IMAGENET)
    if model == "resnet50":
        steps = {4: (200, 300, 400), 5: (350, 400)}.get(bits, (150, 300, 400))
        cfg.update(
            warmup_epochs=50 if bits in (4, 5) else 100,
            lr_s=1e-4,
            milestones_s=steps,
            milestones_g=steps,
            alpha_ds=0.1 if bits == 4 else 0.2,
            lambda_lower=0.3 if bits in (4, 5) else 0.4,
        )
    elif model == "mobilenetv2":
        cfg.update(alpha_ds=0.3 if bits == 4 else 0.2)
    else:  # ResNet-18
        cfg.update(alpha_ds=0.3 if bits == 5 else 0.2, lambda_lower=0.3 if bits in (4, 5) else 0.1)
    return AdaDFQConfig(**cfg)


class AdaDFQGame(ConditionalGame):
    """GDFQ's sampling and generation; AdaDFQ's objectives."""

    student_in_generator_step = True

    def generator_loss(self, sample, teacher_logits, bn: BNInputs, student_logits) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        h_norm = losses.normalized_disagreement_entropy(teacher_logits, student_logits)
        margin = losses.margin_loss(h_norm, cfg.lambda_lower, cfg.lambda_upper)
        ds = losses.disagreement_loss(teacher_logits, student_logits, sample.labels)
        as_ = losses.agreement_loss(teacher_logits, student_logits, sample.labels)
        bns = gdfq_bns_loss(bn)
        total = margin + cfg.beta * (cfg.alpha_ds * ds + cfg.alpha_as * as_) + cfg.gamma * bns
        return {"loss": total, "margin": margin, "ds": ds, "as": as_, "bns": bns, "h_norm": h_norm.mean()}

    def student_loss(self, sample, student_logits, teacher_logits) -> dict[str, torch.Tensor]:
        return {"loss": losses.student_loss(teacher_logits, student_logits, self.cfg.temperature)}


class AdaDFQ(GeneratorMethod):
    Config = AdaDFQConfig
    Game = AdaDFQGame
    description = "AdaDFQ generator + student"
    #: ×3 the paper LR in the reduced budgets, chosen on the digits training split (docs/budgets.md):
    #: at its paper batch 16, which the reduced budgets keep, seed 0's mean 95.8 against 94.5
    #: for ×1 and 95.1 for 3e-4 at batch 64 (seeds 0-2: 96.15 against 95.87; 96.13 with the
    #: 800-iteration warm-up, where batch 64 is not eligible: a reduced budget never grows a batch);
    #: at batch 64, ×10 collapsed ResNet-20 at W3A3 (72.6) and 3e-3 diverged
    student_lr_factor = 3.0

    def paper_config(self, task: Task) -> AdaDFQConfig:
        return adadfq_paper_config(task)
