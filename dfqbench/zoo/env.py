"""What a model or dataset loader may use: cache, data root, local weights, progress."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dfqbench.progress import SILENT, Display


def default_cache_dir() -> Path:
    """``$DFQBENCH_CACHE``, else ``$XDG_CACHE_HOME/dfqbench``, else ``~/.cache/dfqbench``."""
    if os.environ.get("DFQBENCH_CACHE"):
        return Path(os.environ["DFQBENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dfqbench"


@dataclass
class ZooEnv:
    cache_dir: Path = field(default_factory=default_cache_dir)
    data_root: Path | None = None
    #: model name → local weights file given with ``--weights MODEL=PATH``
    weights: dict[str, Path] = field(default_factory=dict)
    display: Display = SILENT
