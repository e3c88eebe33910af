"""Weights as data: state dicts loaded without running code, digests, fingerprints."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError
from torch import nn

from dfqbench.errors import DfqError


def fingerprint(spec: Any) -> str:
    """Short stable hash of a JSON-able description (recipe, architecture, data split)."""
    blob = json.dumps(spec, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def weights_sha256(module: nn.Module) -> str:
    """sha256 of a model's weights (each tensor's name, dtype, shape and bytes, in state-dict
    order): what identifies a teacher in its records, whichever file or training run it came
    from. BN batch counters are left out: they do not change the function, and files differ in
    whether they keep them."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a state dict that cannot run code: safetensors, or ``torch.load(weights_only=True)``.

    Training checkpoints that wrap the weights in ``{"state_dict": ...}`` or ``{"model": ...}``
    (official DeiT/Swin files) are unwrapped. Anything else is refused with a
    :class:`~dfqbench.errors.DfqError` naming the file.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            state = safetensors.torch.load_file(path, device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, OSError, SafetensorError) as exc:
        raise DfqError(f"cannot load weights from {path}: not a plain state dict that loads without running code ({_reason(exc)})") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DfqError(f"cannot load weights from {path}: it does not hold a state dict (name → tensor)")
    return state


def _reason(exc: Exception) -> str:
    """The cause in one line. For torch's refusal that is its unpickler's finding (an
    unsupported operand, a disallowed or blocked GLOBAL), without the advice around it:
    loading with ``weights_only=False`` or allowlisting the global would run the file's code."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    findings = [
        line.strip().split(". Please ", 1)[0]
        for line in text.splitlines()
        if line.strip() and "weights_only" not in line and not line.strip().startswith(("Weights only load failed", "Check the documentation"))
    ]
    return findings[0] if findings else type(exc).__name__
