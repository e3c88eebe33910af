"""Fake-quantized layers: weight quantizers in conv/linear, activation quantizers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dfqbench.precision import upcast
from dfqbench.quant.functional import (
    asym_fake_quant,
    asym_fake_quant_ste,
    asym_unsigned_fake_quant,
    per_channel_minmax,
    ste,
    sym_fake_quant_channel,
)


def _asym_minmax_channel(w: torch.Tensor, bits: int) -> torch.Tensor:
    w_min, w_max = per_channel_minmax(w)
    return asym_fake_quant_ste(w, w_min, w_max, bits)


def _sym_minmax_channel(w: torch.Tensor, bits: int) -> torch.Tensor:
    return ste(sym_fake_quant_channel, w, bits)


#: weight schemes of :class:`~dfqbench.quant.settings.QuantSettings`
WEIGHT_QUANTIZERS = {
    "asym-minmax-channel": _asym_minmax_channel,  # GDFQ family
    "sym-minmax-channel": _sym_minmax_channel,  # PSAQ-ViT
}

#: activation code ranges: ``signed`` (GDFQ family), ``unsigned`` (PSAQ-ViT)
ACT_QUANTIZERS = {"signed": asym_fake_quant, "unsigned": asym_unsigned_fake_quant}


class _WeightQuant:
    """Mixin: the layer's forward uses the fake-quantized latent FP weight."""

    w_bits: int
    w_scheme: str = "asym-minmax-channel"
    weight: nn.Parameter
    #: False while an ``fp`` calibration observes the full-precision network.
    quant_enabled: bool = True

    def quantized_weight(self) -> torch.Tensor:
        if not self.quant_enabled:
            return self.weight
        return WEIGHT_QUANTIZERS[self.w_scheme](self.weight, self.w_bits)


class QuantConv2d(_WeightQuant, nn.Conv2d):
    """``nn.Conv2d`` whose weights are quantized per output channel at every forward."""

    @classmethod
    def from_float(cls, conv: nn.Conv2d, w_bits: int, scheme: str = "asym-minmax-channel") -> QuantConv2d:
        q = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            groups=conv.groups,
            bias=conv.bias is not None,
            padding_mode=conv.padding_mode,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
        )
        q.weight, q.bias = conv.weight, conv.bias
        q.w_bits, q.w_scheme = w_bits, scheme
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.quantized_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, w_bits={self.w_bits}, w_scheme={self.w_scheme}"


class QuantLinear(_WeightQuant, nn.Linear):
    """``nn.Linear`` whose weights are quantized per output feature at every forward."""

    @classmethod
    def from_float(cls, linear: nn.Linear, w_bits: int, scheme: str = "asym-minmax-channel") -> QuantLinear:
        q = cls(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            device=linear.weight.device,
            dtype=linear.weight.dtype,
        )
        q.weight, q.bias = linear.weight, linear.bias
        q.w_bits, q.w_scheme = w_bits, scheme
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.quantized_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, w_bits={self.w_bits}, w_scheme={self.w_scheme}"


class QuantAct(nn.Module):
    """Per-tensor asymmetric activation quantizer with a calibrated, then frozen, range.

    While :attr:`calibrating` is True every forward updates the range from the batch
    min/max (``ema``: bias-corrected moving average; ``minmax``: cumulative extremes, the first
    batch initialises them; ``minmax-from-zero``: cumulative extremes of buffers that start at
    0, so the range always holds 0), in train or eval mode alike, as the reference codes do.
    Afterwards the range is frozen.
    ``codes`` picks the grid bookkeeping (see :data:`ACT_QUANTIZERS`).
    """

    def __init__(
        self, bits: int, act_range: str = "ema", momentum: float = 0.9, calibrate: str = "quantized", codes: str = "signed"
    ):
        super().__init__()
        self.bits = bits
        self.codes = codes
        self.act_range = act_range
        self.momentum = momentum
        self.calibrate_mode = calibrate
        self.calibrating = False
        self.register_buffer("x_min", torch.zeros(()))
        self.register_buffer("x_max", torch.zeros(()))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @property
    def calibrated(self) -> bool:
        return bool(self.num_updates > 0)

    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> None:
        batch_min, batch_max = x.detach().min().float(), x.detach().max().float()
        t = int(self.num_updates) + 1
        # ZeroQ's and ZAQ's buffers start at 0 and take part in the first update too
        if self.act_range == "minmax-from-zero" or (self.act_range == "minmax" and t > 1):
            new_min, new_max = torch.minimum(self.x_min, batch_min), torch.maximum(self.x_max, batch_max)
        elif t == 1:
            new_min, new_max = batch_min, batch_max
        else:
            # Adam-style bias correction written on the corrected value c:
            # c_t = [β(1 − β^(t−1))·c_(t−1) + (1 − β)·b_t] / (1 − β^t); c_1 = b_1.
            beta = self.momentum
            keep = beta * (1 - beta ** (t - 1)) / (1 - beta**t)
            new_min = keep * self.x_min + (1 - keep) * batch_min
            new_max = keep * self.x_max + (1 - keep) * batch_max
        self.x_min.copy_(new_min)
        self.x_max.copy_(new_max)
        self.num_updates.fill_(t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.calibrating:
            self.observe(x)
            if self.calibrate_mode == "fp":
                return x
        elif not self.calibrated:
            raise RuntimeError("activation quantizer used before its range was calibrated")
        # the ranges in the dtype the quantizer computes in: fp64 for fp64, fp32 for fp32 and bf16
        x_min, x_max = self.x_min.to(upcast(x).dtype), self.x_max.to(upcast(x).dtype)
        if self.act_range == "minmax-from-zero":
            # ZeroQ's and ZAQ's quantizer: a degenerate range (a site that only ever saw one
            # value, e.g. a dead ReLU) falls back to the tensor's own min/max
            same = x_min == x_max
            x_min, x_max = torch.where(same, x.detach().min(), x_min), torch.where(same, x.detach().max(), x_max)
        return ste(ACT_QUANTIZERS[self.codes], x, x_min, x_max, self.bits)

    def reset(self) -> None:
        """Forget the calibrated range (the next calibration starts afresh)."""
        self.x_min.zero_()
        self.x_max.zero_()
        self.num_updates.zero_()

    def extra_repr(self) -> str:
        return f"bits={self.bits}, codes={self.codes}, range={self.act_range}, x_min={float(self.x_min):.4g}, x_max={float(self.x_max):.4g}"
