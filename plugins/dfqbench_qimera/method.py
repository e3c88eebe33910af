"""Qimera: GDFQ plus boundary-supporting samples from superposed class embeddings
(official code ``iamkanghyunchoi/qimera``, everything not listed here is GDFQ's).

* With probability p per batch (``mix_prob``; decided once per batch, not per sample) the
  whole batch is mixed: K classes drawn with replacement per sample (``mix_classes``),
  coefficients λ = softmax(N(0, I_K)), soft label ỹ = Σ_k λ_k·onehot(y_k) (duplicates add
  up), image G(z, y, λ). Otherwise a normal single-label batch.
* Generator loss: soft-CE(teacher(x), ỹ) + 0.1·L_BNS (Qimera Eq. 7 + GDFQ's BNS).
* Student loss: 400·KL_mean(q/20 ‖ t/20) + soft-CE(q, ỹ) (Qimera Eq. 9).
* Generator input: normalise(Embedding(y) + z), latent width = the teacher's penultimate
  width; the embedding is random (``--randemb``) or the teacher's classifier weights, and
  trainable either way.

The disentanglement mapping (DM, Qimera §3.3) is off by default: the released code's
``--no_DM`` flag is inverted (``store_false``), so every released run script trains without
it, and its README numbers were presumably produced that way. ``dm_dim=100`` turns on the
paper's version. Deliberate deviations as for GDFQ: final model reported; bias-corrected
EMA ranges; the run's seed instead of ``--id + 1``; the CIFAR-100 "4-bit" script's W5A5 bug
is not reproduced (bits are the cell's).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dfqbench.api import Task, check_config
from dfqbench.dfq.family import GeneratorMethod, LabelGuidedGame
from dfqbench.dfq.generators import CONDITIONINGS, QimeraGenerator
from dfqbench.dfq.loop import LoopConfig, Sample


@dataclass(frozen=True)
class QimeraConfig(LoopConfig):
    mix_prob: float = 0.4  #: p: probability that a batch is made of boundary-supporting samples
    mix_classes: int = 2  #: K: classes superposed in one sample
    embedding_init: str = "random"  #: ``random`` (``--randemb``) or ``teacher`` (classifier weights)
    dm_dim: int = 0  #: 0: no disentanglement mapping (released code); 100: the paper's DM
    noise_scale: float = 1.0
    conditioning: str = "embedding"  #: ImageNet: additionally categorical conditional BN
    temperature: float = 20.0
    alpha: float = 1.0
    bns_weight: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_config(
            self,
            at_least={"mix_prob": 0, "mix_classes": 1, "dm_dim": 0, "noise_scale": 0, "alpha": 0, "bns_weight": 0},
            above={"temperature": 0},
            at_most={"mix_prob": 1},
            choices={"embedding_init": ("random", "teacher"), "conditioning": CONDITIONINGS},
        )


_CIFAR = dict(batch_size=200, warmup_epochs=4, lr_s=1e-4)
_IMAGENET = dict(batch_size=16, warmup_epochs=50, lr_s=1e-6, conditioning="cbn")
#: ``run_*.sh`` + hocon of the release: (dataset, model, bits) → mixing settings. The
#: scripts cover 4 and 5 bits; other bit-widths use the 4-bit settings (derived).
PAPER = {
    ("cifar10", "resnet20", 4): dict(mix_prob=0.4, mix_classes=2, embedding_init="random"),
    ("cifar10", "resnet20", 5): dict(mix_prob=0.4, mix_classes=2, embedding_init="random"),
    ("cifar100", "resnet20", 4): dict(mix_prob=0.4, mix_classes=10, embedding_init="teacher"),
    ("cifar100", "resnet20", 5): dict(mix_prob=0.4, mix_classes=50, embedding_init="teacher"),
    ("imagenet", "resnet18", 4): dict(mix_prob=0.4, mix_classes=500, embedding_init="random"),
    ("imagenet", "resnet18", 5): dict(mix_prob=0.4, mix_classes=100, embedding_init="random"),
    ("imagenet", "resnet50", 4): dict(mix_prob=0.7, mix_classes=500, embedding_init="teacher"),
    ("imagenet", "resnet50", 5): dict(mix_prob=0.7, mix_classes=100, embedding_init="teacher"),
    ("imagenet", "mobilenetv2", 4): dict(mix_prob=0.4, mix_classes=100, embedding_init="random"),
    ("imagenet", "mobilenetv2", 5): dict(mix_prob=0.4, mix_classes=100, embedding_init="random"),
}


#: settings used for models/datasets the release has no script for (digits: CIFAR-10's)
FALLBACK_MODEL = {"cifar10": "resnet20", "cifar100": "resnet20", "imagenet": "resnet18"}


def qimera_paper_config(task: Task) -> QimeraConfig:
    dataset = task.dataset if task.dataset in FALLBACK_MODEL else "cifar10"
    bits = task.w_bits if task.w_bits in (4, 5) else 4
    mixing = PAPER.get((dataset, task.model, bits)) or PAPER[(dataset, FALLBACK_MODEL[dataset], bits)]
    schedule = _IMAGENET if dataset == "imagenet" else _CIFAR
    return QimeraConfig(**schedule, **mixing)


def classifier_weights(model: nn.Module) -> torch.Tensor:
    """The last weight layer's matrix (N × D): the teacher's classifier (a 1×1 conv in MobileNetV2)."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    return layers[-1].weight.detach().flatten(1)


class QimeraGame(LabelGuidedGame):
    """Boundary-supporting batches with probability p, else GDFQ's single-label batches;
    GDFQ's objectives on the soft labels."""

    def sample(self, batch_size: int, device: torch.device) -> Sample:
        if torch.rand(()) < self.cfg.mix_prob:
            dim, classes = self.generator.latent_dim, self.num_classes
            k = self.cfg.mix_classes
            labels = torch.randint(0, classes, (batch_size, k), device=device)
            z = torch.randn(batch_size, k, dim, device=device)
            weights = F.softmax(torch.randn(batch_size, k, device=device), dim=1)
            targets = torch.zeros(batch_size, classes, device=device).scatter_add_(1, labels, weights)
            return Sample(z, labels, targets, weights)
        return super().sample(batch_size, device)

    def generate(self, sample: Sample) -> torch.Tensor:
        return self.generator(sample.z, sample.labels, sample.weights)


class Qimera(GeneratorMethod):
    Config = QimeraConfig
    Game = QimeraGame
    description = "Qimera generator + student"
    #: chosen on the digits training split by the best mean W3A3/W4A4 top-1 of both models:
    #: seed 0 ×0.3 94.3, ×1 93.0, ×3 91.7, ×10 88.4; seeds 0-2 ×0.3 93.83 (docs/budgets.md). Checked again
    #: with the 800-iteration warm-up: ×0.3 94.37, and ×1's ResNet-20 rows cap its mean at 94.20;
    #: on the CPU that made the records ×0.3 93.96 against 93.03 for ×1
    student_lr_factor = 0.3

    def paper_config(self, task: Task) -> QimeraConfig:
        return qimera_paper_config(task)

    def generator(self, teacher, task, config, ctx) -> QimeraGenerator:
        classifier = classifier_weights(teacher)
        ctx.log(latent_dim=classifier.shape[1])  # the teacher's penultimate width
        return QimeraGenerator(
            task.num_classes,
            task.input_shape,
            latent_dim=classifier.shape[1],
            embedding_init=classifier if config.embedding_init == "teacher" else None,
            noise_scale=config.noise_scale,
            dm_dim=config.dm_dim or None,
            conditioning=config.conditioning,
        )
