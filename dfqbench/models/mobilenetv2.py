"""MobileNetV2 with pytorchcv's structure: ReLU6 after expand/depthwise convs only."""

from __future__ import annotations

import torch
from torch import nn

from dfqbench.models.blocks import ConvBlock


class LinearBottleneck(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: bool):
        super().__init__()
        mid = in_channels * 6 if expansion else in_channels
        self.residual = in_channels == out_channels and stride == 1
        self.conv1 = ConvBlock(in_channels, mid, 1, activation=nn.ReLU6)
        self.conv2 = ConvBlock(mid, mid, 3, stride, groups=mid, activation=nn.ReLU6)
        self.conv3 = ConvBlock(mid, out_channels, 1, activation=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.conv2(self.conv1(x)))
        return y + x if self.residual else y


class MobileNetV2(nn.Module):
    """``stages`` lists (out_channels, units, first stride) per stage."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        init_channels: int,
        stages: tuple[tuple[int, int, int], ...],
        final_channels: int,
        init_stride: int = 1,
    ):
        super().__init__()
        self.features = nn.Sequential()
        self.features.add_module("init_block", ConvBlock(in_channels, init_channels, 3, init_stride, activation=nn.ReLU6))
        channels = init_channels
        for i, (width, units, stride) in enumerate(stages):
            stage = nn.Sequential()
            for j in range(units):
                expansion = not (i == 0 and j == 0)
                stage.add_module(f"unit{j + 1}", LinearBottleneck(channels, width, stride if j == 0 else 1, expansion))
                channels = width
            self.features.add_module(f"stage{i + 1}", stage)
        self.features.add_module("final_block", ConvBlock(channels, final_channels, 1, activation=nn.ReLU6))
        self.features.add_module("final_pool", nn.AdaptiveAvgPool2d(1))
        self.output = nn.Conv2d(final_channels, num_classes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.output(self.features(x)), 1)
