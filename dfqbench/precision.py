"""Arithmetic precision of a cell (``--precision``) and the places that never leave fp32.

``fp32`` (the default) is how every reference code trains. ``bf16`` runs the method's
forward and backward passes under ``torch.autocast(dtype=bfloat16)`` — faster on GPUs with
bf16 tensor cores, and a recorded deviation: it is part of the cell's key and every table
heading names it. What must stay exact stays in fp32 under either setting:

* fake quantization (:func:`dfqbench.quant.functional.ste`): a 3-bit grid computed in
  bfloat16's 8-bit mantissa would be wrong, and ranges are stored in fp32;
* the BN-statistics losses and PSAQ-ViT's patch-similarity entropy: variances and a
  kernel density of bandwidth 0.01 on cosine similarities need more than bfloat16's
  ~0.4 % resolution;
* the generators' ACGAN trunk and ZeroQ's distillation (the comments there say why: in
  bf16 GDFQ's generator never learned and ZeroQ's distillation stalled);
* evaluation (the harness runs it outside autocast), so a bf16 cell's top-1 is that of the
  exact fake-quantized model.

Only the operands of autocast's low-precision ops (convolutions, matrix products) are
rounded, e.g. a quantized weight enters the convolution as the nearest bfloat16 value.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import torch

from dfqbench.errors import DfqError, unknown

PRECISIONS = ("fp32", "bf16")
DEFAULT = "fp32"
_AUTOCAST_DEVICES = ("cpu", "cuda")


def check(precision: str, device: torch.device | None = None) -> str:
    """``precision`` if it is valid (and, given a device, supported there), else one clear error."""
    if precision not in PRECISIONS:
        raise unknown("precision", precision, PRECISIONS)
    # bf16 tensor cores from compute capability 8.0 (A100) on; torch.cuda.is_bf16_supported()
    # also counts the slow emulation older GPUs offer, and looks at the current GPU only
    if precision == "bf16" and device is not None and device.type == "cuda" and torch.cuda.get_device_capability(device) < (8, 0):
        raise DfqError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16 tensor cores; valid choices here: fp32")
    return precision


def of(cell: dict) -> str:
    """The precision of a stored cell: records made before the field existed ran in fp32."""
    return cell.get("precision", DEFAULT)


def autocast(device: torch.device, precision: str):
    """The context a method runs in: autocast to bfloat16 for ``bf16``, nothing for ``fp32``."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=check(precision) == "bf16")


@contextmanager
def full_precision() -> Iterator[None]:
    """Autocast off, on whichever device it is on, for a block that must compute in fp32."""
    with ExitStack() as stack:
        for device_type in _AUTOCAST_DEVICES:
            if torch.is_autocast_enabled(device_type):
                stack.enter_context(torch.autocast(device_type, enabled=False))
        yield


def upcast(x: torch.Tensor) -> torch.Tensor:
    """``x`` in fp32 if autocast made it a 16-bit float; fp32 and fp64 stay as they are."""
    return x.float() if x.is_floating_point() and x.element_size() < 4 else x
