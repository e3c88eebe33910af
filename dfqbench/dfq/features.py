"""Intermediate features: the outputs of a network's stages, captured with forward hooks."""

from __future__ import annotations

import re

import torch
from torch import nn

#: pytorchcv (``features.stageN``) and torchvision/timm (``layerN``) stage containers
STAGE = re.compile(r"(^|\.)(stage|layer)\d+$")


def stage_names(model: nn.Module) -> list[str]:
    """Names of the outermost stage modules, in forward order (e.g. ``features.stage1``)."""
    names = [name for name, _ in model.named_modules() if STAGE.search(name)]
    return [n for n in names if not any(n.startswith(other + ".") for other in names)]


class StageOutputs:
    """Context manager: ``outputs`` lists the named modules' outputs of the latest forward."""

    def __init__(self, model: nn.Module, names: list[str]):
        self.modules = [model.get_submodule(name) for name in names]
        self._latest: dict[int, torch.Tensor] = {}
        self._handles: list = []

    def __enter__(self) -> StageOutputs:
        self._handles = [
            module.register_forward_hook(lambda m, args, out, i=i: self._latest.__setitem__(i, out))
            for i, module in enumerate(self.modules)
        ]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles, self._latest = [], {}

    @property
    def outputs(self) -> list[torch.Tensor]:
        return [self._latest[i] for i in range(len(self.modules))]
