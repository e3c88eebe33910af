"""The fake-quantization function shared by every method.

``asym_fake_quant`` follows the operation order of the GDFQ family's
``AsymmetricQuantFunction`` (signed n-bit codes around an integral zero point), so results
match the reference to the last bit, including ``torch.round``'s half-to-even ties.
"""

from __future__ import annotations

import torch


def asym_fake_quant(x: torch.Tensor, x_min: torch.Tensor, x_max: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantize ``x`` to 2^bits levels spanning [x_min, x_max] and dequantize.

    ``x_min``/``x_max`` broadcast against ``x`` (one value per tensor, or per output
    channel shaped ``(C, 1, ...)``). The grid step is (x_max − x_min)/(2^bits − 1); the
    zero point is an integer, so 0 is exactly representable.
    """
    scale = (2**bits - 1) / torch.clamp(x_max - x_min, min=1e-8)
    half = 2 ** (bits - 1)
    zero_point = torch.round(scale * x_min) + half
    q = torch.clamp(torch.round(scale * x - zero_point), -half, half - 1)
    return (q + zero_point) / scale


class _AsymSTE(torch.autograd.Function):
    """Identity straight-through estimator: no clip mask, no gradient to the range."""

    @staticmethod
    def forward(ctx, x, x_min, x_max, bits):  # noqa: D102 - autograd protocol
        return asym_fake_quant(x, x_min, x_max, bits)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        return grad, None, None, None


def asym_fake_quant_ste(x: torch.Tensor, x_min: torch.Tensor, x_max: torch.Tensor, bits: int) -> torch.Tensor:
    return _AsymSTE.apply(x, x_min.detach(), x_max.detach(), bits)


def per_channel_minmax(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise min/max of ``w`` viewed as (out_channels, −1), shaped to broadcast on ``w``."""
    flat = w.detach().reshape(w.shape[0], -1)
    shape = (-1,) + (1,) * (w.dim() - 1)
    return flat.min(dim=1).values.view(shape), flat.max(dim=1).values.view(shape)
