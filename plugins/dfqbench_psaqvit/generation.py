"""PSAQ-ViT's image synthesis (V1 spec §3.2): pixels optimised directly under the FP
teacher, with jitter/flip, Adam and a warm-up + cosine schedule restarted per round.

Random draws use Python's ``random`` where V1 does (labels, TV target, jitter, flip) and
torch's generator for the N(0, 1) initial pixels; the harness seeds both per cell.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dfqbench.api import Task
from dfqbench.quant.vit import explicit_attention
from dfqbench_psaqvit.losses import patch_similarity_entropy, tv_prior


class AttentionProbe:
    """Each block's attn·v output of the last teacher forward (V1 hooks ``matmul2``)."""

    def __init__(self, teacher: nn.Module):
        self.features: list[torch.Tensor | None] = []
        for index, site in enumerate(explicit_attention(teacher)):
            self.features.append(None)
            site.register_forward_hook(lambda module, args, out, i=index: self.features.__setitem__(i, out))
        if not self.features:
            raise ValueError("PSAQ-ViT needs a timm VisionTransformer or SwinTransformer teacher")


def image_bounds(task: Task, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel limits of valid [0, 1] images in the normalised input space (V1 ``clip``)."""
    mean = torch.tensor(task.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(task.std, device=device).view(1, -1, 1, 1)
    return -mean / std, (1 - mean) / std


def jitter_flip(x: torch.Tensor, limit: int, flip: float) -> torch.Tensor:
    """Roll both spatial axes by the same random offset in [−limit, limit], then flip
    horizontally with probability ``flip`` (V1 §3.2, after DeepInversion)."""
    offset = random.randint(-limit, limit)
    x = torch.roll(x, shifts=(offset, offset), dims=(2, 3))
    return torch.flip(x, dims=(3,)) if random.random() > 1 - flip else x


def warmup_cosine(step: int, steps: int, warmup: int) -> float:
    """LR factor of V1's ``lr_cosine_policy``: (t+1)/warmup, then a cosine to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup)))


@dataclass
class PatchSimilarityObjective:
    """V1's objective L = −Σ_l H_l + w_ce·CE(T(x), ŷ) + w_tv·|TV(x) − v| (§3.2);
    ``labels=None`` drops the CE term (V2), ``pse=False`` the entropy term (V2 ablation)."""

    teacher: nn.Module
    probe: AttentionProbe
    tv_target: float
    tv_weight: float = 0.05
    labels: torch.Tensor | None = None
    ce_weight: float = 1.0
    bandwidth: float = 0.01
    points: int = 10
    pse: bool = True

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(loss, teacher logits, named terms) for the (augmented) images ``x``."""
        logits = self.teacher(x)
        parts = {"tv": tv_prior(x, self.tv_target)}
        loss = self.tv_weight * parts["tv"]
        if self.pse:
            parts["pse"] = sum(patch_similarity_entropy(f, len(x), self.bandwidth, self.points) for f in self.probe.features)
            loss = loss - parts["pse"]
        if self.labels is not None:
            parts["ce"] = F.cross_entropy(logits, self.labels)
            loss = loss + self.ce_weight * parts["ce"]
        return loss, logits, parts


class AdamSampler:
    """Something that draws a batch of images and is updated by Adam on a loss."""

    def __init__(self, params, lr: float, betas: tuple[float, float]):
        self.lr = lr
        self.optimizer = torch.optim.Adam(params, lr=lr, betas=betas, eps=1e-8)

    def draw(self) -> torch.Tensor:
        raise NotImplementedError

    def step(self, loss: torch.Tensor, lr_factor: float = 1.0) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr * lr_factor
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


class PixelBatch(AdamSampler):
    """A batch of images that are themselves the parameters, clipped to valid images after
    every step (V1 §3.2)."""

    def __init__(self, images: torch.Tensor, lr: float, betas: tuple[float, float], bounds: tuple[torch.Tensor, torch.Tensor]):
        self.images = images.detach().clone().requires_grad_(True)
        self.low, self.high = bounds
        super().__init__([self.images], lr, betas)

    def draw(self) -> torch.Tensor:
        return self.images

    def step(self, loss: torch.Tensor, lr_factor: float = 1.0) -> None:
        super().step(loss, lr_factor)
        with torch.no_grad():
            self.images.copy_(torch.maximum(torch.minimum(self.images, self.high), self.low))


def optimise(
    sampler: AdamSampler,
    objective: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]],
    rounds: Iterable[tuple[int, int]],
    warmup: int,
    flip: float,
    on_step: Callable[[dict[str, float]], None],
) -> None:
    """V1's loop: for each (steps, jitter limit) round, ``steps`` Adam steps on the
    objective of jittered/flipped images, the LR schedule restarting every round (the
    optimizer state does not)."""
    for steps, limit in rounds:
        for step in range(steps):
            loss, _, parts = objective(jitter_flip(sampler.draw(), limit, flip))
            sampler.step(loss, warmup_cosine(step, steps, warmup))
            on_step({k: float(v.detach()) for k, v in parts.items()})
