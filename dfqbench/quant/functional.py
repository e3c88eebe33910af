"""The fake-quantization functions shared by every method.

``asym_fake_quant`` follows the operation order of the GDFQ family's
``AsymmetricQuantFunction`` (signed n-bit codes around an integral zero point), so results
match the reference to the last bit, including ``torch.round``'s half-to-even ties.
``sym_fake_quant_channel`` and ``asym_unsigned_fake_quant`` do the same for PSAQ-ViT's
``SymmetricQuantFunction`` (weights) and ``AsymmetricQuantFunction`` (activations).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from dfqbench.precision import full_precision, upcast

#: PSAQ-ViT clamps every step size from below by float32's machine epsilon.
_PSAQ_EPS = torch.finfo(torch.float32).eps


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


def asym_unsigned_fake_quant(x: torch.Tensor, x_min: torch.Tensor, x_max: torch.Tensor, bits: int) -> torch.Tensor:
    """PSAQ-ViT's activation quantizer: unsigned codes 0..2^bits − 1, zero point clamped.

    Step Δ = (x_max − x_min)/(2^bits − 1); zero point z = clamp(−round(x_min/Δ), 0, 2^bits − 1);
    x̂ = (clamp(round(x/Δ + z), 0, 2^bits − 1) − z)·Δ. When the range contains 0 this is the
    grid of :func:`asym_fake_quant`; when it does not, the clamped zero point moves the
    grid to start at 0 (the reference's behaviour, kept).
    """
    levels = 2**bits - 1
    scale = torch.clamp((x_max - x_min) / levels, min=_PSAQ_EPS)
    zero_point = torch.clamp(-torch.round(x_min / scale), 0, levels)
    q = torch.clamp(torch.round(x / scale + zero_point), 0, levels)
    return (q - zero_point) * scale


def sym_fake_quant_channel(w: torch.Tensor, bits: int) -> torch.Tensor:
    """PSAQ-ViT's weight quantizer: symmetric, per output channel, from the row's min/max.

    a = max(−min, max) of the row, Δ = a/((2^bits − 1)/2), codes clamp(round(w/Δ),
    −2^(bits−1), 2^(bits−1) − 1). The positive extreme +a maps to (2^bits − 1)/2, rounds to
    2^(bits−1) and is clipped to 2^(bits−1) − 1 (half a step low); −a is exact.
    """
    w_min, w_max = per_channel_minmax(w)
    scale = torch.clamp(torch.maximum(-w_min, w_max) / ((2**bits - 1) / 2), min=_PSAQ_EPS)
    q = torch.clamp(torch.round(w / scale), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return q * scale


class _IdentitySTE(torch.autograd.Function):
    """Forward ``fn(x, *args)`` in fp32 even under autocast (see :mod:`dfqbench.precision`);
    backward passes the gradient to ``x`` unchanged (no clip mask) and to nothing else
    (ranges get no gradient)."""

    @staticmethod
    def forward(ctx, x, fn, *args):  # noqa: D102 - autograd protocol
        ctx.num_args = len(args)
        with full_precision():
            return fn(upcast(x), *(upcast(a) if isinstance(a, torch.Tensor) else a for a in args))

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        return (grad, None) + (None,) * ctx.num_args


def ste(fn: Callable[..., torch.Tensor], x: torch.Tensor, *args) -> torch.Tensor:
    """``fn(x, *args)`` with the identity straight-through gradient."""
    return _IdentitySTE.apply(x, fn, *(a.detach() if isinstance(a, torch.Tensor) else a for a in args))


def asym_fake_quant_ste(x: torch.Tensor, x_min: torch.Tensor, x_max: torch.Tensor, bits: int) -> torch.Tensor:
    return ste(asym_fake_quant, x, x_min, x_max, bits)


def per_channel_minmax(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise min/max of ``w`` viewed as (out_channels, −1), shaped to broadcast on ``w``."""
    flat = w.detach().reshape(w.shape[0], -1)
    shape = (-1,) + (1,) * (w.dim() - 1)
    return flat.min(dim=1).values.view(shape), flat.max(dim=1).values.view(shape)
