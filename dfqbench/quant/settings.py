"""The quantizer convention as data: one settings object, recorded with every cell.

The default, ``gdfq``, is the convention of the GDFQ family's code (ZeroQ → GDFQ → Qimera
→ AdaDFQ share the quantizer file byte for byte; see the method specs named in the README):

* weights: per output channel, asymmetric min/max of the current latent FP weights,
  recomputed at every forward, 2^n levels, zero exactly representable;
* activations: one asymmetric per-tensor quantizer after every ReLU/ReLU6 call site;
  ranges from an exponential moving average (momentum 0.9) while calibrating, then frozen;
* identity straight-through gradient (no clip mask); BN not folded; the first and last
  layers at the same bit-width as the rest; the input image not quantized.

``psaqvit`` is the convention of PSAQ-ViT V1's code (the default for ViTs; placement in
:mod:`dfqbench.quant.vit`):

* weights: per output channel, *symmetric*, Δ = 2·max(−min, max)/(2^n − 1), codes
  −2^(n−1)..2^(n−1) − 1, every linear/conv (patch embedding and head included);
* activations: one per-tensor asymmetric quantizer at each of PSAQ-ViT's sites (input
  image, patch embedding, position embedding, LayerNorm outputs, qkv, attention scores,
  attn·v, projections, residual sums, MLP hidden and output, logits; see ``vit``), with
  PSAQ-ViT's own bookkeeping: unsigned codes 0..2^n − 1 and the zero point clamped to
  them (identical to the shared grid whenever the range contains 0). ``act_sites="psaqvit"``
  selects sites and bookkeeping together;
* ranges: min/max of an observation of the *full-precision* network (``calibrate="fp"``:
  weights unquantized too while calibrating), then frozen; LayerNorm, softmax and GELU FP;
* identity straight-through gradient (PSAQ-ViT V1 has none; V2 needs one to train).

Deliberate deviation: the reference's EMA "bias correction" divides the *stored* value by
(1 − β^t), so ranges balloon to ~4000× the batch maximum around update 21 before settling
after ~200 updates. We apply the Adam-style correction it intended (the first update
equals the batch statistic), which reaches the same plain EMA after the transient.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dfqbench.bits import MAX_BITS, MIN_BITS
from dfqbench.errors import DfqError, unknown

WEIGHT_SCHEMES = ("asym-minmax-channel", "sym-minmax-channel")
ACT_RANGES = ("ema", "minmax", "minmax-from-zero")
#: activation-site placements: where each puts its quantizers, and the model families that
#: have such sites (elsewhere it would place none, and the activations would stay FP)
ACT_SITES = {"after-relu": ("after ReLU/ReLU6 calls", ("cnn",)), "psaqvit": ("in ViT blocks", ("vit",))}
CALIBRATE_MODES = ("quantized", "fp")


@dataclass(frozen=True)
class QuantSettings:
    name: str = "gdfq"
    weight: str = "asym-minmax-channel"
    #: activation range estimator: ``ema`` (bias-corrected, ``act_momentum``), ``minmax``
    #: (cumulative min/max from the first batch, as PSAQ-ViT) or ``minmax-from-zero``
    #: (cumulative min/max of buffers initialised to 0, as ZeroQ and ZAQ: the range holds 0,
    #: and a single-value range falls back to the tensor's own min/max).
    act_range: str = "ema"
    act_momentum: float = 0.9
    act_sites: str = "after-relu"
    #: ``quantized``: while ranges are being calibrated the forward already quantizes with
    #: the updated range (GDFQ family). ``fp``: calibration observes the FP network.
    calibrate: str = "quantized"
    #: bit-width of the first and last weight layers; None means "same as the others".
    first_last_bits: int | None = None
    quantize_input: bool = False
    fold_bn: bool = False
    ste: str = "identity"

    def validate(self) -> QuantSettings:
        for field_name, choices in (
            ("weight", WEIGHT_SCHEMES),
            ("act_range", ACT_RANGES),
            ("act_sites", ACT_SITES),
            ("calibrate", CALIBRATE_MODES),
            ("ste", ("identity",)),
        ):
            value = getattr(self, field_name)
            if value not in choices:
                raise unknown(f"quantizer {field_name}", value, choices)
        if self.fold_bn:
            raise DfqError("quantizer fold_bn=True is not implemented; valid choices: False")
        if not 0.0 < self.act_momentum < 1.0:
            raise DfqError(f"quantizer act_momentum={self.act_momentum} must lie in (0, 1)")
        if self.first_last_bits is not None and not MIN_BITS <= self.first_last_bits <= MAX_BITS:  # as --bits
            raise DfqError(f"quantizer first_last_bits={self.first_last_bits}; valid: {MIN_BITS}..{MAX_BITS} or None")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


#: Named conventions. ``gdfq`` is the default for CNNs, ``psaqvit`` for ViTs.
PRESETS: dict[str, QuantSettings] = {
    "gdfq": QuantSettings(),
    # ZeroQ's and ZAQ's own estimator: cumulative min/max from 0 instead of the EMA.
    "zeroq": QuantSettings(name="zeroq", act_range="minmax-from-zero"),
    "psaqvit": QuantSettings(
        name="psaqvit",
        weight="sym-minmax-channel",
        act_range="minmax",
        act_sites="psaqvit",
        calibrate="fp",
        quantize_input=True,
    ),
}

DEFAULT_FOR_FAMILY = {"cnn": "gdfq", "vit": "psaqvit"}


def preset(name: str) -> QuantSettings:
    try:
        return PRESETS[name]
    except KeyError:
        raise unknown("quantizer", name, PRESETS) from None
