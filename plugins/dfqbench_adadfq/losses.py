"""AdaDFQ's objectives as the official code (``hfutqian/AdaDFQ``, ``trainer.py``) has them.

z_p, z_q: logits of the FP model P and the quantized model Q; C classes; y the sampled label.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Per-sample H(softmax(z/T)) = −Σ_c p_c log p_c."""
    log_p = F.log_softmax(logits / temperature, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def normalized_disagreement_entropy(z_p: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """Eqs. (1)–(3): H′_i = (H_i − min_j H_j) / (log C − min_j H_j), H = H(softmax(z_p − z_q)).

    The minimum is over the batch and gradients flow through it, as in the code; log C is
    the largest possible entropy, so H′ ∈ [0, 1].
    """
    h = entropy(z_p - z_q)
    h_min = h.min()
    return (h - h_min) / (math.log(z_p.shape[1]) - h_min)


def margin_loss(h_norm: torch.Tensor, lower: float, upper: float) -> torch.Tensor:
    """Eq. (11)'s constraint λ_l < H′ < λ_u as the code's two-sided hinge (not a mask):

    mean_i max(0, λ_l − H′_i) + mean_i max(0, H′_i − λ_u). The reference hard-codes a zero
    vector of length 16 (its batch size); here the hinge works for any batch.
    """
    return F.relu(lower - h_norm).mean() + F.relu(h_norm - upper).mean()


def disagreement_loss(z_p: torch.Tensor, z_q: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. (7): L_ds = mean_i −log softmax(z_p − z_q)[y_i]."""
    return F.cross_entropy(z_p - z_q, labels)


def agreement_loss(z_p: torch.Tensor, z_q: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eqs. (8)–(9): L_as = mean_i −log softmax(z_p + z_q)[y_i]."""
    return F.cross_entropy(z_p + z_q, labels)


def student_loss(z_p: torch.Tensor, z_q: torch.Tensor, temperature: float) -> torch.Tensor:
    """Recovered Eq. (14): L_Q = −T²·mean_i H(softmax((z_p − z_q)/T)), z_p detached.

    Maximal entropy means z_q = z_p + const: a shift-invariant logit-matching loss.
    """
    return -(temperature**2) * entropy(z_p.detach() - z_q, temperature).mean()
