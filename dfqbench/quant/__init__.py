"""The shared quantizer: one convention for every method (see :mod:`.settings`)."""

from dfqbench.quant.functional import asym_fake_quant, asym_fake_quant_ste, per_channel_minmax
from dfqbench.quant.modules import QuantAct, QuantConv2d, QuantLinear
from dfqbench.quant.settings import PRESETS, QuantSettings, preset
from dfqbench.quant.wrap import (
    calibrating,
    describe,
    quant_acts,
    set_calibrating,
    uncalibrated,
    weight_layers,
    wrap,
)

__all__ = [
    "PRESETS",
    "QuantAct",
    "QuantConv2d",
    "QuantLinear",
    "QuantSettings",
    "asym_fake_quant",
    "asym_fake_quant_ste",
    "calibrating",
    "describe",
    "per_channel_minmax",
    "preset",
    "quant_acts",
    "set_calibrating",
    "uncalibrated",
    "weight_layers",
    "wrap",
]
