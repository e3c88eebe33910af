"""Batch-norm statistics of the FP teacher and the two BN-matching losses of the DFQ papers.

:class:`BNInputs` captures the input of every ``BatchNorm2d`` of the teacher at each
forward. ZeroQ hooks the conv outputs paired by order with the BN layers; in conv→BN
networks (the pytorchcv ResNets and MobileNetV2 the reference codes use) those are the
same tensors, so hooking the BN inputs directly gives the same loss.

Each input is kept in its own layer's slot, never in a list in call order: a pytorchcv
ResNet unit that downsamples computes its identity convolution *before* its body although
the body's layers are registered first, so call order and module order disagree there.
Until 2026-12-06 the inputs were zipped with the layers by call order, which paired the
three BN layers of every downsampling unit with each other's statistics (both ResNet-20s,
the ImageNet ResNets; not MobileNetV2, whose shortcuts have no convolution).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from dfqbench.precision import upcast


class BNInputs:
    """Context manager: ``inputs[i]`` is the input of ``layers[i]`` (module order) in the
    latest forward."""

    def __init__(self, model: nn.Module):
        self.layers = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        self.clear()
        self._handles: list = []

    def _capture(self, index: int, module: nn.Module, args: tuple) -> None:
        self.inputs[index] = upcast(args[0])  # statistics in fp32 under --precision bf16 too
        self._captures += 1

    def __enter__(self) -> BNInputs:
        self._handles = [layer.register_forward_pre_hook(partial(self._capture, i)) for i, layer in enumerate(self.layers)]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.clear()

    def clear(self) -> None:
        self.inputs: list[torch.Tensor | None] = [None] * len(self.layers)
        self._captures = 0

    def pairs(self) -> list[tuple[torch.Tensor, nn.BatchNorm2d]]:
        """(input, layer) of every BN layer; a layer called twice or never since :meth:`clear` is refused."""
        if self._captures != len(self.layers) or any(x is None for x in self.inputs):
            raise RuntimeError(f"captured {self._captures} BN inputs for {len(self.layers)} BN layers; call clear() before each forward")
        return list(zip(self.inputs, self.layers, strict=True))


def gdfq_bns_loss(bn: BNInputs) -> torch.Tensor:
    """GDFQ's BNS loss (GDFQ Eq. 6, as the code has it), also AdaDFQ's recovered Eq. (12):

    (1/L) Σ_l [ MSE(batch mean, running mean) + MSE(biased batch variance, running var) ],
    statistics over (N, H, W), MSE averaged over channels, no input-image term.
    """
    terms = []
    for x, layer in bn.pairs():
        mean = x.mean(dim=(0, 2, 3))
        var = x.var(dim=(0, 2, 3), unbiased=False)
        terms.append(
            torch.nn.functional.mse_loss(mean, layer.running_mean) + torch.nn.functional.mse_loss(var, layer.running_var)
        )
    return torch.stack(terms).mean()


def _per_sample_mean_std(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    flat = x.flatten(2)
    return flat.mean(dim=2), torch.sqrt(flat.var(dim=2, unbiased=True) + eps)


def zeroq_bns_loss(bn: BNInputs, images: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """ZeroQ's distillation loss (ZeroQ Eq. 4, as ``distill_data.py`` has it).

    Every *image* must match the BN running statistics on its own (per-sample spatial mean
    and std from the unbiased variance, eps 1e-6 — not BN's 1e-5), plus an input term that
    drives each image's per-channel mean to 0 and std to 1:

    Σ_l (1/B) Σ_b (‖μ_l − μ̂_lb‖² + ‖σ_l − σ̂_lb‖²) + (1/B) Σ_b (‖μ̂_0b‖² + ‖1 − σ̂_0b‖²).
    """
    batch = images.shape[0]
    total = images.new_zeros(())
    for x, layer in bn.pairs():
        mean, std = _per_sample_mean_std(x, eps)
        target_std = torch.sqrt(layer.running_var + eps)
        total = total + ((layer.running_mean - mean).norm() ** 2 + (target_std - std).norm() ** 2) / batch
    mean0, std0 = _per_sample_mean_std(images, eps)
    return total + (mean0.norm() ** 2 + (1 - std0).norm() ** 2) / batch
