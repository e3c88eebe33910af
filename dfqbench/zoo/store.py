"""Safe, atomic storage of trained weights (state dicts only, never pickled code)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def fingerprint(spec: Any) -> str:
    """Short stable hash of a JSON-able description (recipe, architecture, data split)."""
    blob = json.dumps(spec, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def save_state_dict(state: dict[str, torch.Tensor], path: Path, meta: dict[str, Any]) -> None:
    """Write ``path`` (weights) and ``path.json`` (metadata) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, write in (
        (path, lambda f: torch.save(state, f)),
        (path.with_suffix(".json"), lambda f: f.write(json.dumps(meta, indent=2, sort_keys=True).encode())),
    ):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, target)


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a state dict with ``weights_only=True``: a checkpoint cannot run code."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict")
    return state
