"""pytorchcv-style building blocks: each activation is its own module, applied once.

Keeping pytorchcv's structure (and names) means the quantizer places activation
quantizers exactly where the GDFQ family's reference code does on pytorchcv models.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class ConvBlock(nn.Module):
    """conv → BN → optional activation (pytorchcv's ``conv3x3_block``/``conv1x1_block``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        activation: Callable[[], nn.Module] | None = nn.ReLU,
    ):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.activ = activation() if activation is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activ(self.bn(self.conv(x)))
