"""Deterministic supervised training of the embedded suites' FP teachers.

Same recipe, same torch build, same CPU → bit-identical weights: the initialisation, the
shuffling and the augmentation all draw from generators seeded by the recipe, and training
always runs on one thread — a CPU's parallel reductions sum in a thread-count-dependent
order, which alone moved the digits ResNet-20's FP top-1 from 98.33 to 98.66. Another CPU
(other kernels) still rounds otherwise, which is why the digits teachers ship as files.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from dfqbench.progress import SILENT, Display


@dataclass(frozen=True)
class Recipe:
    epochs: int = 30
    batch_size: int = 64
    #: ``sgd`` (Nesterov, ``momentum``) or ``adamw`` (default betas); ViTs need the latter
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    #: linear warm-up before the cosine decay, in epochs
    warmup_epochs: int = 0
    #: random translation by up to this many pixels (padding with the background value)
    shift: int = 1
    label_smoothing: float = 0.0
    seed: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _random_shift(x: torch.Tensor, shift: int, background: float, gen: torch.Generator) -> torch.Tensor:
    if shift == 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (shift, shift, shift, shift), value=background)
    dy, dx = torch.randint(0, 2 * shift + 1, (2, n), generator=gen)
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


def _optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay, nesterov=True
        )
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}; valid choices: sgd, adamw")


def train_classifier(
    model: nn.Module,
    data: TensorDataset,
    recipe: Recipe,
    background: float,
    description: str = "training",
    display: Display = SILENT,
) -> nn.Module:
    """Train ``model`` in place: per-step linear warm-up, then cosine decay (on one thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(model, data, recipe, background, description, display)
    finally:
        torch.set_num_threads(threads)


def _train(model: nn.Module, data: TensorDataset, recipe: Recipe, background: float, description: str, display: Display) -> nn.Module:
    gen = torch.Generator().manual_seed(recipe.seed)
    images, labels = data.tensors
    steps_per_epoch = math.ceil(len(labels) / recipe.batch_size)
    total = recipe.epochs * steps_per_epoch
    warmup = recipe.warmup_epochs * steps_per_epoch
    opt = _optimizer(model, recipe)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    model.train()
    with display.bar(description, total) as bar:
        for _ in range(recipe.epochs):
            order = torch.randperm(len(labels), generator=gen)
            for start in range(0, len(labels), recipe.batch_size):
                idx = order[start : start + recipe.batch_size]
                x = _random_shift(images[idx], recipe.shift, background, gen)
                loss = F.cross_entropy(model(x), labels[idx], label_smoothing=recipe.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                bar.advance()
            bar.note(f"loss {loss.item():.3f}")
    return model.eval()
