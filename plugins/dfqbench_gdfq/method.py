"""GDFQ: a conditional generator trained against the FP teacher's labels and BN statistics;
the quantized model distilled from the teacher on its images (official code ``xushoukai/GDFQ``).

Losses (GDFQ §3; the code's constants):

* generator: CE(teacher(G(z, y)), y) + 0.1·L_BNS — the generator never sees the student;
* student: α·T²·KL_mean(q/T ‖ t/T) + CE(q, y), T = 20, α = 1, KL with the element-wise mean
  reduction of ``nn.KLDivLoss()`` (effective weight 400/N per sample).

Deliberate deviations, applied to every method alike by the harness: the final model is
reported (the reference keeps the best test-set epoch); activation ranges use the
bias-corrected EMA (the reference's correction balloons early ranges; after its 800 updates
both agree).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dfqbench.api import Method, Task
from dfqbench.dfq.bn_stats import BNInputs, gdfq_bns_loss
from dfqbench.dfq.budgets import scaled
from dfqbench.dfq.generators import GDFQGenerator
from dfqbench.dfq.kd import gdfq_student_loss
from dfqbench.dfq.loop import ConditionalGame, LoopConfig, train_with_generator


@dataclass(frozen=True)
class GDFQConfig(LoopConfig):
    conditioning: str = "embedding"  #: CIFAR: Embedding(y) ⊙ z; ImageNet: z + conditional BN
    latent_dim: int = 100
    temperature: float = 20.0
    alpha: float = 1.0
    bns_weight: float = 0.1  #: hard-coded in the reference trainer


#: ``cifar100_resnet20.hocon`` (CIFAR-10 derived from it, as Qimera's code does) and
#: ``imagenet_resnet18.hocon`` (ResNet-50/MobileNetV2 derived from it, as Qimera's code does)
PAPER = {
    "cifar": GDFQConfig(batch_size=200, warmup_epochs=4, lr_s=1e-4),
    "imagenet": GDFQConfig(batch_size=16, warmup_epochs=50, lr_s=1e-6, conditioning="cbn"),
}


def paper_config(task: Task) -> GDFQConfig:
    return PAPER["imagenet" if task.dataset == "imagenet" else "cifar"]


class GDFQGame(ConditionalGame):
    def generator_loss(self, sample, teacher_logits, bn: BNInputs, student_logits) -> dict[str, torch.Tensor]:
        ce = F.cross_entropy(teacher_logits, sample.labels)
        bns = gdfq_bns_loss(bn)
        return {"loss": ce + self.cfg.bns_weight * bns, "ce": ce, "bns": bns}

    def student_loss(self, sample, student_logits, teacher_logits) -> dict[str, torch.Tensor]:
        total, kd, ce = gdfq_student_loss(student_logits, teacher_logits, sample.targets, self.cfg.temperature, self.cfg.alpha)
        return {"loss": total, "kd": kd, "ce": ce}


class GDFQ(Method):
    Config = GDFQConfig

    def config(self, task: Task, budget: str) -> GDFQConfig:
        return scaled(paper_config(task), budget)

    def quantize(self, teacher, qmodel, task, config, ctx):
        generator = GDFQGenerator(task.num_classes, task.input_shape, config.latent_dim, config.conditioning).to(ctx.device)
        game = GDFQGame(generator, task.num_classes, config)
        return train_with_generator(teacher, qmodel, generator, game, config, ctx, "GDFQ generator + student")
