"""PSAQ-ViT's losses (V1 spec §3.2, ``generate_data.py`` of zkkli/PSAQ-ViT) and V2's
teacher–student discrepancy (V2 spec §1.4, [I])."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dfqbench.dfq.kd import kl_batchmean
from dfqbench.precision import full_precision, upcast

#: pixel count of the batch V1's TV target was set for ("for batch_size 32", 3×224×224)
TV_REFERENCE_VALUES = 32 * 3 * 224 * 224


def kernel_density(points: torch.Tensor, samples: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """Gaussian KDE p̂_b(t) = mean_k N(t − s_bk; 0, h²) at ``points`` [P] for each row of
    ``samples`` [B, M] → [B, P] (V1 §3.2, ``utils/kde.py``)."""
    diffs = points[None, :, None] - samples[:, None, :]
    return torch.exp(-diffs.square() / (2 * bandwidth**2)).mean(dim=-1) / math.sqrt(2 * math.pi * bandwidth**2)


def differential_entropy(samples: torch.Tensor, bandwidth: float = 0.01, points: int = 10) -> torch.Tensor:
    """Mean over rows of ∫ −p̂ log p̂ (V1 §3.2): the KDE is evaluated on ``points`` values
    spaced evenly between the batch-global min and max (detached, as V1 takes them with
    ``.item()``), offset by 1e-4 before the log, and integrated with the trapezoid rule."""
    grid = torch.linspace(samples.min().item(), samples.max().item(), points, device=samples.device, dtype=samples.dtype)
    density = kernel_density(grid, samples, bandwidth) + 1e-4
    return torch.trapezoid(-density * density.log(), grid, dim=-1).mean()


def patch_similarity_entropy(attn_v: torch.Tensor, batch: int, bandwidth: float = 0.01, points: int = 10) -> torch.Tensor:
    """H of one block (V1 §3.2, pitfalls 2–3): ``attn_v`` is the attn·v output [B′, heads,
    N, d]; heads are averaged, token 0 is dropped (DeiT's CLS; for Swin, V1 drops token 0 of
    every window too), and the pairwise cosine similarities of the remaining tokens, both
    orders and the diagonal included, of all windows of an image (B′ = batch·windows) form
    that image's sample."""
    # fp32 under --precision bf16 too: bfloat16 resolves similarities near 1 to 0.004, not
    # fine enough for a kernel of bandwidth 0.01
    with full_precision():
        tokens = F.normalize(upcast(attn_v).mean(dim=1)[:, 1:], dim=-1)
        # unit vectors' Gram matrix = cosine similarities, without cosine_similarity's N²·d broadcast
        similarity = tokens @ tokens.transpose(1, 2)
        return differential_entropy(similarity.reshape(batch, -1), bandwidth, points)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Sum of the Frobenius norms (not squared, over the whole batch) of the horizontal,
    vertical and both diagonal neighbour differences (V1 §3.2 ``get_image_prior_losses``)."""
    return (
        torch.norm(x[..., :, :-1] - x[..., :, 1:])
        + torch.norm(x[..., :-1, :] - x[..., 1:, :])
        + torch.norm(x[..., 1:, :-1] - x[..., :-1, 1:])
        + torch.norm(x[..., :-1, :-1] - x[..., 1:, 1:])
    )


def tv_prior(x: torch.Tensor, target: float) -> torch.Tensor:
    """|TV(x) − v| (V1 §3.2): pulls the images toward a smoothness level, not to zero."""
    return (total_variation(x) - target).abs()


def tv_target_scale(shape: torch.Size | tuple[int, ...]) -> float:
    """Factor for V1's TV target on a batch of ``shape``: TV grows with the square root of
    the number of values, so √(values / 32·3·224·224) keeps the per-pixel smoothness V1
    asks for; it is exactly 1 for V1's own batch."""
    return math.sqrt(math.prod(shape) / TV_REFERENCE_VALUES)


def teacher_student_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """τ²·KL(softmax(z_T/τ) ‖ softmax(z_S/τ)), mean over the batch (V2 spec §1.4 D, [I])."""
    return temperature**2 * kl_batchmean(student_logits, teacher_logits, temperature)
