"""Knowledge-distillation losses with the reference codes' reduction conventions explicit.

GDFQ, Qimera (and ZAQ's predecessors) use ``nn.KLDivLoss()`` with its default
``reduction='mean'``: the summed KL is divided by B·N (elements), not by B. With the
weight α·T² = 400 the effective weight on the per-sample KL is 400/N (40 on CIFAR-10,
0.4 on ImageNet). :func:`kl_elementwise_mean` keeps that convention so the effective
weights match; :func:`kl_batchmean` is the per-sample mean for methods that use it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _kl_terms(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    p_teacher = F.softmax(teacher_logits / temperature, dim=1)
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    return torch.xlogy(p_teacher, p_teacher) - p_teacher * log_p_student


def kl_elementwise_mean(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``KLDivLoss(reduction='mean')(log_softmax(q/T), softmax(t/T))``: Σ KL / (B·N)."""
    return _kl_terms(student_logits, teacher_logits, temperature).mean()


def kl_batchmean(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher ‖ student) at temperature T, summed over classes, averaged over the batch."""
    return _kl_terms(student_logits, teacher_logits, temperature).sum(dim=1).mean()


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """−(1/B) Σ_b Σ_c ỹ_bc · log softmax(z_b)_c; equals CE for one-hot ỹ."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def gdfq_student_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 20.0,
    alpha: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GDFQ's quantized-model loss (GDFQ Eq. 8, Qimera Eq. 9 with soft labels):

    α·T²·KL_mean(q/T ‖ t/T) + soft-CE(q, ỹ). Returns (total, kd term, ce term).
    """
    kd = alpha * temperature**2 * kl_elementwise_mean(student_logits, teacher_logits, temperature)
    ce = soft_cross_entropy(student_logits, targets)
    return kd + ce, kd, ce
