"""CIFAR-style ResNet (ResNet-20 = 3 stages × 3 basic units), pytorchcv's structure."""

from __future__ import annotations

import torch
from torch import nn

from dfqbench.models.blocks import ConvBlock


class ResUnit(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.body = nn.Sequential()
        self.body.add_module("conv1", ConvBlock(in_channels, out_channels, 3, stride))
        self.body.add_module("conv2", ConvBlock(out_channels, out_channels, 3, activation=None))
        self.resize_identity = in_channels != out_channels or stride != 1
        if self.resize_identity:
            self.identity_conv = ConvBlock(in_channels, out_channels, 1, stride, activation=None)
        self.activ = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.identity_conv(x) if self.resize_identity else x
        return self.activ(self.body(x) + identity)


class CIFARResNet(nn.Module):
    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        depth: int = 20,
        widths: tuple[int, ...] = (16, 32, 64),
    ):
        super().__init__()
        units = (depth - 2) // 6
        self.features = nn.Sequential()
        self.features.add_module("init_block", ConvBlock(in_channels, widths[0], 3))
        channels = widths[0]
        for i, width in enumerate(widths):
            stage = nn.Sequential()
            for j in range(units):
                stride = 2 if j == 0 and i > 0 else 1
                stage.add_module(f"unit{j + 1}", ResUnit(channels, width, stride))
                channels = width
            self.features.add_module(f"stage{i + 1}", stage)
        self.features.add_module("final_pool", nn.AdaptiveAvgPool2d(1))
        self.output = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(torch.flatten(self.features(x), 1))
