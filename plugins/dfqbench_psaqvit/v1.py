"""PSAQ-ViT (V1): patch-similarity-aware data-free quantization of ViTs, as its code does it.

Z. Li, L. Ma, M. Chen, J. Xiao, Q. Gu, "Patch Similarity Aware Data-Free Quantization for
Vision Transformers", ECCV 2022; code zkkli/PSAQ-ViT (spec ``zaq-adadfq-psaqvit.md`` §3).

32 images are optimised directly in pixel space so that the patch-similarity distribution
of every block of the FP teacher has high differential entropy, under random-label CE and
a TV prior; one calibration forward of the quantized model on them sets the activation
ranges (min/max of the FP network, the ``psaqvit`` quantizer). No fine-tuning.

Adaptations to other inputs than V1's 32×3×224×224 (stated in every record through the
config): the jitter limits (15, 30 pixels at 224) scale with the image width (at least 1
pixel; 1 and 1 on 8×8 digits), the TV target U(2500, 3000) scales with √(values/32·3·224²)
(:func:`~dfqbench_psaqvit.losses.tv_target_scale`), the random labels range over the task's
classes. Everything else is V1's, including its flip on digits (which are not
mirror-symmetric) and the cosine similarity computed as a Gram matrix of unit vectors
(same values). Deviations: the generated batch is shared by the cells of one (model, seed),
so every bit-width is calibrated on the same images (V1 regenerates per run; same seed →
same images there too); the quantized model is a copy of the timm teacher (V1 quantizes
its own DeiT/Swin re-implementations loaded with the official checkpoints, which for Swin
are the originals of timm's converted weights).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from dfqbench.api import Method, Task, check_config
from dfqbench.quant import calibrating
from dfqbench_psaqvit.generation import AttentionProbe, PatchSimilarityObjective, PixelBatch, image_bounds, optimise
from dfqbench_psaqvit.losses import tv_target_scale

#: V1's input width; its jitter limits are in pixels at this width
REFERENCE_WIDTH = 224


def scaled_jitter(limits: tuple[int, ...], task: Task) -> tuple[int, ...]:
    return tuple(max(1, round(limit * task.input_shape[-1] / REFERENCE_WIDTH)) for limit in limits)


def generation_lr(task: Task) -> float:
    return 0.25 if "swin" in task.model else 0.20  # V1: 0.25 for Swin, 0.20 otherwise


@dataclass(frozen=True)
class PSAQViTConfig:
    images: int = 32  #: batch of synthetic images (also the calibration batch)
    steps: tuple[int, ...] = (500, 500)  #: Adam steps per round
    jitter: tuple[int, ...] = (15, 30)  #: roll limit of each round, pixels
    warmup: int = 100  #: linear LR warm-up steps at the start of every round
    lr: float = 0.20
    betas: tuple[float, float] = (0.5, 0.9)
    flip: float = 0.5  #: horizontal-flip probability
    kde_bandwidth: float = 0.01
    kde_points: int = 10
    ce_weight: float = 1.0  #: random-label cross-entropy
    tv_weight: float = 0.05
    #: U(lo, hi) target of the TV prior for a 32×3×224×224 batch (scaled to the real one)
    tv_target: tuple[float, float] = (2500.0, 3000.0)

    def __post_init__(self) -> None:
        check_config(
            self,
            at_least={"images": 1, "steps": 1, "jitter": 0, "warmup": 0, "lr": 0, "betas": 0, "flip": 0, "kde_points": 2,
                      "ce_weight": 0, "tv_weight": 0, "tv_target": 0},
            above={"kde_bandwidth": 0},
            at_most={"flip": 1},
            below={"betas": 1},
        )  # fmt: skip
        if not self.steps or len(self.steps) != len(self.jitter):  # one jitter limit per round
            raise ValueError(f"steps={self.steps} and jitter={self.jitter} name {len(self.steps)} and {len(self.jitter)} rounds; valid: one or more rounds, as many of each")


class PSAQViT(Method):
    Config = PSAQViTConfig

    def config(self, task: Task, budget: str) -> PSAQViTConfig:
        paper = PSAQViTConfig(jitter=scaled_jitter((15, 30), task), lr=generation_lr(task))
        if budget == "smoke":
            return PSAQViTConfig(images=8, steps=(4, 4), jitter=paper.jitter, warmup=2, lr=paper.lr)
        return paper  # V1's 1,000 steps take ~10 s on a CPU for the digits ViT, so default = paper

    def quantize(self, teacher, qmodel, task, config, ctx):
        images, final = ctx.shared(f"psaqvit:{config!r}", lambda: synthesize(teacher, task, config, ctx))
        ctx.log(**final)  # here, once per cell: a record never depends on which cell synthesised
        qmodel.eval()
        with calibrating(qmodel), torch.no_grad():  # V1: one forward of the FP network, then frozen
            qmodel(images)
        return qmodel


def synthesize(teacher: torch.nn.Module, task: Task, config: PSAQViTConfig, ctx) -> tuple[torch.Tensor, dict[str, float]]:
    """V1 ``generate_data``: the synthetic calibration batch, normalised like the data, and
    the last step's loss parts."""
    probe = AttentionProbe(teacher)
    init = torch.randn(config.images, *task.input_shape, device=ctx.device)
    labels = torch.tensor([random.randint(0, task.num_classes - 1) for _ in range(config.images)], device=ctx.device)
    tv_target = random.uniform(*config.tv_target) * tv_target_scale(init.shape)
    objective = PatchSimilarityObjective(
        teacher, probe, tv_target, config.tv_weight, labels, config.ce_weight, config.kde_bandwidth, config.kde_points
    )
    batch = PixelBatch(init, config.lr, config.betas, image_bounds(task, ctx.device))
    final: dict[str, float] = {}
    with ctx.progress(sum(config.steps), f"PSAQ-ViT: optimising {config.images} images") as bar:

        def on_step(parts):
            final.update(parts)
            bar.advance()

        optimise(batch, objective, zip(config.steps, config.jitter, strict=True), config.warmup, config.flip, on_step)
    return batch.images.detach(), final
