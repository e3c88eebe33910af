"""Shared helpers of the bench scripts: a reference workload and wall-clock timing."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from dfqbench.models.cifar_resnet import CIFARResNet


def reference_seconds(steps: int = 200) -> float:
    """Wall time of ``steps`` SGD steps of the digits ResNet-20 on random batches of 64:
    the unit every bench result is expressed in, so ratios transfer across machines."""
    torch.manual_seed(0)
    model = CIFARResNet(1, 10, 20, (4, 8, 16))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    return timed(lambda: [_step(model, opt, x, y) for _ in range(steps)])


def _step(model, opt, x, y):
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
