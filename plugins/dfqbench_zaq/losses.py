"""ZAQ's two-level discrepancy (official code ``FLHonker/ZAQ-code``, ``main.py`` and
``utils/loss.py:SCRM``).

For a stage output f (B, C, H, W), f̃ is f L2-normalised over channels at every position and
X ∈ R^{C×HW} one sample of it; γ = 0.1 is fixed (not learned).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


def output_discrepancy(z_q: torch.Tensor, z_p: torch.Tensor) -> torch.Tensor:
    """Output-level discrepancy: mean over B×C of |z_q − z_p| (``F.l1_loss``)."""
    return F.l1_loss(z_q, z_p)


#: rows of A_s computed at a time. CIFAR's stages (at most 32×32 = 1,024 positions, the
#: reference's) take one block, computed as the reference does; an ImageNet stage (56×56 to
#: MobileNetV2's 112×112) would hold B × HW² values, 10 GB for one stage at batch 16.
SPATIAL_ROWS = 1024


def spatial_relation(x: torch.Tensor, gamma: float) -> torch.Tensor:
    """SA(X) = γ·X·A_sᵀ + X with A_s = softmax_row(XᵀX) (HW × HW).

    A_s's rows are independent: above :data:`SPATIAL_ROWS` positions they are computed in
    blocks whose attention is recomputed in the backward pass instead of kept
    (``torch.utils.checkpoint``), so memory grows with HW, not HW²; the values are the same.
    """
    positions = x.shape[-1]
    if positions <= SPATIAL_ROWS:
        return gamma * _attend(x, x) + x
    blocks = [checkpoint(_attend, x, x[..., i : i + SPATIAL_ROWS], use_reentrant=False) for i in range(0, positions, SPATIAL_ROWS)]
    return gamma * torch.cat(blocks, dim=-1) + x


def _attend(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """X·A_sᵀ for the rows of A_s at the positions ``rows`` holds (B, C, n) → (B, C, n)."""
    return x @ F.softmax(rows.transpose(1, 2) @ x, dim=-1).transpose(1, 2)


def channel_relation(x: torch.Tensor, gamma: float) -> torch.Tensor:
    """CA(X) = γ·A_c·X + X with E = XXᵀ and A_c = softmax_row(rowmax(E) − E) (C × C)."""
    energy = x @ x.transpose(1, 2)
    attention = F.softmax(energy.max(dim=-1, keepdim=True).values - energy, dim=-1)
    return gamma * (attention @ x) + x


def unit_channels(f: torch.Tensor) -> torch.Tensor:
    """f / ‖f‖ over channels at every position: ``F.normalize(f, dim=1)`` in the forward.

    Deliberate deviation: an all-zero channel vector (a dead position after a ReLU, frequent
    in narrow nets) gets a zero gradient, where ``F.normalize`` gives 1/eps = 1e12 × the
    upstream gradient — enough to blow up the quantized model at its first step.
    """
    norm = f.norm(dim=1, keepdim=True)
    return torch.where(norm > 0, f / norm.clamp_min(1e-12), torch.zeros_like(f))


def feature_discrepancy(feats_q: list[torch.Tensor], feats_p: list[torch.Tensor], gamma: float = 0.1) -> torch.Tensor:
    """SCRM: Σ_l [ L1(SA(f̃^Q_l), SA(f̃^P_l)) + L1(CA(f̃^Q_l), CA(f̃^P_l)) ].

    Because of the "+X" residuals this contains a direct L1 between normalised features.
    """
    total = feats_q[0].new_zeros(())
    for fq, fp in zip(feats_q, feats_p, strict=True):
        xq = unit_channels(fq).flatten(2)
        xp = unit_channels(fp).flatten(2)
        total = total + F.l1_loss(spatial_relation(xq, gamma), spatial_relation(xp, gamma))
        total = total + F.l1_loss(channel_relation(xq, gamma), channel_relation(xp, gamma))
    return total


def activation_regularizer(last_feature_p: torch.Tensor) -> torch.Tensor:
    """R = mean |g^P_last|: the FP model's mean last-stage activation (generator only)."""
    return last_feature_p.abs().mean()
