"""The ACGAN-style conditional generators of GDFQ, Qimera and AdaDFQ.

All share PyTorch-GAN's ACGAN trunk as the reference codes have it (plain PyTorch default
initialisation, no custom init):

    Linear(in → 128·s·s) → BN(128) → ×2 → Conv3×3(128→128) → BN(128, eps=0.8) → LReLU(0.2)
    → ×2 → Conv3×3(128→64) → BN(64, eps=0.8) → LReLU(0.2) → Conv3×3(64→C) → Tanh
    → BN(C, affine=False)

with s = image size / 4. ``eps=0.8`` is the ACGAN quirk (the second positional argument of
``BatchNorm2d`` is eps, not momentum) and is kept. The generator always runs in train
mode, so the last BN standardises each channel over the batch: the output already lives in
the classifier's normalised input space.

Conditioning, as in the reference codes:

* ``embedding`` (GDFQ/AdaDFQ CIFAR): input = Embedding(y) ⊙ z;
* ``cbn`` (GDFQ/AdaDFQ ImageNet): input = z; the label enters through categorical
  conditional BN layers (per-class γ init 1, β init 0);
* Qimera: input = normalise(Embedding(y) + s·z), or for boundary-supporting samples the
  λ-weighted sum over K slots of normalise(Embedding(y_k) + z_k); its ImageNet variant
  additionally uses CBN with γ = mean_k(λ_k·γ_{y_k}).

ZAQ's generator (DAFL/DFAD style) is the same trunk, unconditional, with z of 256
dimensions and eps 1e-5 in every BN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dfqbench.precision import full_precision, upcast

ACGAN_EPS = 0.8


#: how the ACGAN generators condition on the label: CIFAR ``embedding`` ⊙ z, ImageNet conditional BN
CONDITIONINGS = ("embedding", "cbn")


class ConditionalBatchNorm2d(nn.Module):
    """BN without affine, then a per-class γ (init 1) and β (init 0) looked up by label.

    For mixed labels ``(B, K)`` with weights ``(B, K)`` the affine parameters are the
    *mean* over slots of λ_k·γ_{y_k} (Qimera's ImageNet code; not the λ-weighted sum).
    """

    def __init__(self, num_classes: int, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, eps=eps, affine=False)
        self.gamma = nn.Embedding(num_classes, num_features)
        self.beta = nn.Embedding(num_classes, num_features)
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        gamma, beta = self.gamma(labels), self.beta(labels)
        if weights is not None:
            gamma = (weights[..., None] * gamma).mean(dim=1)
            beta = (weights[..., None] * beta).mean(dim=1)
        return gamma[:, :, None, None] * self.bn(x) + beta[:, :, None, None]


class ACGANTrunk(nn.Module):
    """The shared layer stack from the input vector to the (normalised) image."""

    def __init__(
        self, in_dim: int, image_shape: tuple[int, int, int], cbn_classes: int | None = None, inner_eps: float = ACGAN_EPS
    ):
        super().__init__()
        channels, height, width = image_shape
        if height != width or height % 4:
            raise ValueError(f"the ACGAN generator needs square images with a side divisible by 4, got {height}×{width}")
        self.init_size = height // 4
        self.l1 = nn.Linear(in_dim, 128 * self.init_size**2)

        def norm(features: int, eps: float) -> nn.Module:
            if cbn_classes is None:
                return nn.BatchNorm2d(features, eps=eps)
            return ConditionalBatchNorm2d(cbn_classes, features, eps)

        self.norm0 = norm(128, 1e-5)
        self.conv1 = nn.Conv2d(128, 128, 3, stride=1, padding=1)
        self.norm1 = norm(128, inner_eps)
        self.conv2 = nn.Conv2d(128, 64, 3, stride=1, padding=1)
        self.norm2 = norm(64, inner_eps)
        self.conv3 = nn.Conv2d(64, channels, 3, stride=1, padding=1)
        self.out_norm = nn.BatchNorm2d(channels, affine=False)

    def _norm(self, layer: nn.Module, x: torch.Tensor, cond: tuple | None) -> torch.Tensor:
        return layer(x, *cond) if isinstance(layer, ConditionalBatchNorm2d) else layer(x)

    def forward(self, h: torch.Tensor, cond: tuple | None = None) -> torch.Tensor:
        # Always fp32, --precision bf16 included: after a bfloat16 convolution the BN
        # (eps 0.8) subtracts a batch mean from values rounded to 8 bits, and what is left is
        # mostly rounding. With this trunk in bf16, GDFQ's generator never learned (digits
        # ResNet-20 W4A4, seed 0: 60.10 top-1, vs 95.33 in fp32 and 96.99 with only the
        # generator in fp32; tools/bf16_fragile_parts.py).
        with full_precision():
            x = self.l1(upcast(h)).view(h.shape[0], 128, self.init_size, self.init_size)
            x = F.interpolate(self._norm(self.norm0, x, cond), scale_factor=2)
            x = F.leaky_relu(self._norm(self.norm1, self.conv1(x), cond), 0.2)
            x = F.interpolate(x, scale_factor=2)
            x = F.leaky_relu(self._norm(self.norm2, self.conv2(x), cond), 0.2)
            return self.out_norm(torch.tanh(self.conv3(x)))


class GDFQGenerator(nn.Module):
    """GDFQ's generator (also AdaDFQ's): ``embedding`` (CIFAR) or ``cbn`` (ImageNet) conditioning."""

    def __init__(self, num_classes: int, image_shape: tuple[int, int, int], latent_dim: int = 100, conditioning: str = "embedding"):
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise ValueError(f"unknown conditioning {conditioning!r}; valid choices: {', '.join(CONDITIONINGS)}")
        self.latent_dim = latent_dim
        self.label_emb = nn.Embedding(num_classes, latent_dim) if conditioning == "embedding" else None
        self.trunk = ACGANTrunk(latent_dim, image_shape, cbn_classes=num_classes if conditioning == "cbn" else None)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.label_emb is not None:
            return self.trunk(self.label_emb(labels) * z)
        return self.trunk(z, (labels,))


class QimeraGenerator(nn.Module):
    """Qimera's generator with its superposed latent embedding (Qimera §3.2 as released).

    ``embedding_init``: the teacher's classifier weights (N × D), or None for a random
    N(0, 1) embedding (``--randemb``); trainable either way. ``dm_dim``: the
    disentanglement mapping ``Linear(D → dm_dim)``, off (None) in every released script.
    ``noise_scale`` applies to the CIFAR-style generator only, as in the reference.
    """

    def __init__(
        self,
        num_classes: int,
        image_shape: tuple[int, int, int],
        latent_dim: int,
        embedding_init: torch.Tensor | None = None,
        noise_scale: float = 1.0,
        dm_dim: int | None = None,
        conditioning: str = "embedding",
    ):
        super().__init__()
        self.latent_dim = latent_dim
        # the ImageNet (CBN) generator of the reference ignores --noise_scale
        self.noise_scale = 1.0 if conditioning == "cbn" else noise_scale
        if embedding_init is None:
            self.label_emb = nn.Embedding(num_classes, latent_dim)
        else:
            self.label_emb = nn.Embedding.from_pretrained(embedding_init.detach().clone().float(), freeze=False)
        self.fc_reducer = nn.Linear(latent_dim, dm_dim) if dm_dim else None
        self.trunk = ACGANTrunk(dm_dim or latent_dim, image_shape, cbn_classes=num_classes if conditioning == "cbn" else None)

    def forward(self, z: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Single labels: z (B, D), labels (B,). Mixed: z (B, K, D), labels (B, K), weights (B, K)."""
        if weights is None:
            # Per-sample standardisation over the D dimensions (the reference's
            # BatchNorm1d on the transposed (D, B) tensor: biased variance, eps 1e-5).
            e = self.label_emb(labels) + self.noise_scale * z
            e = (e - e.mean(dim=1, keepdim=True)) / torch.sqrt(e.var(dim=1, unbiased=False, keepdim=True) + 1e-5)
            return self.trunk(self._mapped(e), (labels,))
        # Mixed path: the reference transposes (B, K, D) to (D, K, B), so each slot k is
        # standardised over all D·B values of the batch, not per sample.
        e = self.label_emb(labels) + self.noise_scale * z
        e = (e - e.mean(dim=(0, 2), keepdim=True)) / torch.sqrt(e.var(dim=(0, 2), unbiased=False, keepdim=True) + 1e-5)
        return self.trunk((weights[..., None] * self._mapped(e)).sum(dim=1), (labels, weights))

    def _mapped(self, e: torch.Tensor) -> torch.Tensor:
        """The disentanglement mapping, if on; fp32 like the trunk it feeds."""
        if self.fc_reducer is None:
            return e
        with full_precision():
            return self.fc_reducer(upcast(e))


class UnconditionalGenerator(nn.Module):
    """The trunk without label conditioning: z ~ N(0, I) → image. The defaults are ZAQ's
    (``network/gan.py``: 256 dimensions, BN eps 1e-5); PSAQ-ViT V2's generator variant uses
    GDFQ's (100, eps 0.8)."""

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int = 256, inner_eps: float = 1e-5):
        super().__init__()
        self.latent_dim = latent_dim
        self.trunk = ACGANTrunk(latent_dim, image_shape, inner_eps=inner_eps)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.trunk(z)
