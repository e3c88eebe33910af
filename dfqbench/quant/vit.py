"""PSAQ-ViT V1's activation-quantizer placement on timm vision transformers.

Selected by ``act_sites="psaqvit"`` (the ``psaqvit`` preset). The sites are those of the
reference's ``vit_quant.py``/``swin_quant.py``/``layers_quant.py`` (its names in brackets):

* VisionTransformer (DeiT, ViT): input image [``qact_input``, added by ``quantize_input``];
  patch-embedding conv output [``PatchEmbed.QuantAct``]; tokens after the CLS concat
  [``qact_embed``]; the ``pos_embed`` parameter [``qact_pos``]; their sum [``qact1``];
  the head input, i.e. the final-LN CLS vector [``qact2``]; the logits [``act_out``].
* Block: LN1 output [``qact1``]; attention residual sum [``qact2``]; LN2 output
  [``qact3``]; MLP residual sum [``qact4``].
* Attention: qkv output, one range for q, k and v [``qact1``]; scores q·kᵀ·d^−½, the
  softmax input [``qact_attn1``]; attn·v [``qact2``]; proj output [``qact3``]. The softmax
  output stays FP.
* Mlp: after fc1 → GELU (GELU input FP) [``QuantAct1``]; fc2 output [``QuantAct2``].
* Swin: PatchEmbed conv output and its LN output [``QuantAct_before_norm``, ``QuantAct``];
  WindowAttention adds the relative-position-bias table [``qact_table``] and the biased
  scores [``qact2``] (the shift mask is added unquantized); PatchMerging LN output and
  reduction output [``qact1``, ``qact2``]; final LN output [``qact2``], pooled features
  [``qact3``], logits [``act_out``].

A site at a child module's output is a ``Sequential(child, quantizer)`` (per-tensor
ranges do not depend on the layout, so quantizing the conv output before flattening is
the reference's value). Sites inside a forward (attention scores, attn·v, residual sums,
position embedding) need that forward: the module's class is switched to a subclass
below whose forward is timm's with the sites added and the attention computed with
explicit matmuls (timm may use fused SDPA, which has no attention scores to quantize).
Only the quantized copy is changed; timm itself is not.

Models or options the reference never quantized (register tokens, class-free position
embeddings, QK-norm, gated or scale-normed attention, masks) are refused, not guessed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from timm.layers import ClassifierHead, Mlp, PatchEmbed
from timm.models.swin_transformer import PatchMerging, SwinTransformer, SwinTransformerBlock, WindowAttention
from timm.models.vision_transformer import Attention, Block, VisionTransformer
from torch import nn

MakeSite = Callable[[], nn.Module]

#: sites at a child's output: (timm class) → child attributes (skipped where the child is Identity)
AFTER_CHILD: dict[type, tuple[str, ...]] = {
    PatchEmbed: ("proj", "norm"),
    Attention: ("qkv", "proj"),
    Block: ("norm1", "norm2"),
    Mlp: ("act", "fc2"),
    WindowAttention: ("qkv", "proj"),
    SwinTransformerBlock: ("norm1", "norm2"),
    PatchMerging: ("norm", "reduction"),
    SwinTransformer: ("norm",),
    ClassifierHead: ("global_pool", "fc"),
    VisionTransformer: ("head",),
}


class _Sites:
    """A timm module whose own forward has quantizer sites (attributes named ``act_*``)."""

    SITES: tuple[str, ...] = ()

    @classmethod
    def check(cls, module: nn.Module) -> None:
        """Raise if ``module`` uses an option the PSAQ-ViT placement does not define."""

    @classmethod
    def adopt(cls, module: nn.Module, make_site: MakeSite) -> None:
        cls.check(module)
        module.__class__ = cls
        for name in cls.SITES:
            module.add_module(name, make_site())


def _refuse(module: nn.Module, what: str) -> None:
    raise ValueError(f"PSAQ-ViT quantizer placement is not defined for {type(module).__name__} with {what}")


class QuantSitesAttention(_Sites, Attention):
    SITES = ("act_scores", "act_attn_v")

    @classmethod
    def check(cls, module):
        if getattr(module, "gate", None) is not None:
            _refuse(module, "a gate")
        for name in ("q_norm", "k_norm", "norm"):
            if not isinstance(getattr(module, name, nn.Identity()), nn.Identity):
                _refuse(module, f"{name}")

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        if attn_mask is not None or is_causal:
            _refuse(self, "an attention mask")
        B, N, _ = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        scores = self.act_scores((q @ k.transpose(-2, -1)) * self.scale)  # PSAQ scales after the matmul
        attn = self.attn_drop(scores.softmax(dim=-1))
        x = self.act_attn_v(attn @ v).transpose(1, 2).reshape(B, N, -1)
        return self.proj_drop(self.proj(x))


class QuantSitesWindowAttention(_Sites, WindowAttention):
    SITES = ("act_scores", "act_table", "act_biased", "act_attn_v")

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B_, N, _ = x.shape
        qkv = self.qkv(x).reshape(B_, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        scores = self.act_scores((q * self.scale) @ k.transpose(-2, -1))
        table = self.act_table(self.relative_position_bias_table)
        bias = table[self.relative_position_index.view(-1)].view(N, N, -1).permute(2, 0, 1)
        scores = self.act_biased(scores + bias.unsqueeze(0))
        if mask is not None:
            num_win = mask.shape[0]
            scores = scores.view(-1, num_win, self.num_heads, N, N) + mask.unsqueeze(1).unsqueeze(0)
            scores = scores.view(-1, self.num_heads, N, N)
        attn = self.attn_drop(self.softmax(scores))
        x = self.act_attn_v(attn @ v).transpose(1, 2).reshape(B_, N, -1)
        return self.proj_drop(self.proj(x))


class QuantSitesBlock(_Sites, Block):
    SITES = ("act_res1", "act_res2")

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        if attn_mask is not None or is_causal:
            _refuse(self, "an attention mask")
        x = self.act_res1(x + self.drop_path1(self.ls1(self.attn(self.norm1(x)))))
        return self.act_res2(x + self.drop_path2(self.ls2(self.mlp(self.norm2(x)))))


class QuantSitesSwinBlock(_Sites, SwinTransformerBlock):
    SITES = ("act_res1", "act_res2")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        x = self.act_res1(x + self.drop_path1(self._attn(self.norm1(x))))
        x = x.reshape(B, -1, C)
        x = self.act_res2(x + self.drop_path2(self.mlp(self.norm2(x))))
        return x.reshape(B, H, W, C)


class QuantSitesVisionTransformer(_Sites, VisionTransformer):
    SITES = ("act_tokens", "act_pos", "act_pos_sum", "act_head_in")

    @classmethod
    def check(cls, module):
        if module.pos_embed is None or module.no_embed_class or module.dynamic_img_size:
            _refuse(module, "a position embedding other than DeiT's (added after the CLS concat)")
        if module.reg_token is not None:
            _refuse(module, "register tokens")
        if module.attn_pool is not None:
            _refuse(module, "attention pooling")

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.act_pos_sum(self.act_tokens(x) + self.act_pos(self.pos_embed))
        return self.pos_drop(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        # the reference quantizes the pooled vector (DeiT: the final-LN CLS token), not all tokens
        x = self.head_drop(self.act_head_in(self.fc_norm(self.pool(x))))
        return x if pre_logits else self.head(x)


SWAPPED: dict[type, type[_Sites]] = {
    Attention: QuantSitesAttention,
    WindowAttention: QuantSitesWindowAttention,
    Block: QuantSitesBlock,
    SwinTransformerBlock: QuantSitesSwinBlock,
    VisionTransformer: QuantSitesVisionTransformer,
}
ATTENTION = (Attention, WindowAttention)


def place(model: nn.Module, make_site: MakeSite) -> nn.Module:
    """Add PSAQ-ViT's activation sites to ``model`` in place (weights are quantized by
    :func:`dfqbench.quant.wrap.wrap` before)."""
    if not any(isinstance(m, (VisionTransformer, SwinTransformer)) for m in model.modules()):
        raise ValueError("act_sites='psaqvit' needs a timm VisionTransformer or SwinTransformer")
    for module in list(model.modules()):
        kind = _supported(module)
        if kind is None:
            continue
        for child in AFTER_CHILD.get(kind, ()):
            layer = getattr(module, child)
            if not isinstance(layer, nn.Identity):
                setattr(module, child, nn.Sequential(layer, make_site()))
        if kind in SWAPPED:
            SWAPPED[kind].adopt(module, make_site)
    return model


def explicit_attention(model: nn.Module) -> list[nn.Module]:
    """Route every timm attention of ``model`` through explicit matmuls, in place, without
    quantizers; return the attn·v output sites (modules to hook), in block order. Attention
    already routed so is kept as it is (a second call returns the same sites).

    This is what PSAQ-ViT's generation does to its FP teacher (``MatMul`` modules hooked
    at ``matmul2``)."""
    outputs = []
    for module in list(model.modules()):
        kind = _supported(module)
        if kind in ATTENTION:
            SWAPPED[kind].adopt(module, nn.Identity)
        if isinstance(module, (QuantSitesAttention, QuantSitesWindowAttention)):
            outputs.append(module.act_attn_v)
    return outputs


def _supported(module: nn.Module) -> type | None:
    """The supported timm class ``module`` is exactly an instance of; subclasses are refused."""
    kind = type(module)
    if kind in AFTER_CHILD or kind in SWAPPED:
        return kind
    for base in (*AFTER_CHILD, *SWAPPED):
        if isinstance(module, base) and not isinstance(module, _Sites):
            _refuse(module, f"its own subclass of {base.__name__}")
    return None
