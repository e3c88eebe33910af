"""What a model or dataset loader may use: cache, data root, local weights, progress."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    #: model name → local weights file given with ``--weights MODEL=PATH``; loaders read it
    #: through :meth:`weights_file`, so a file no loader asked for is an error, not ignored
    weights: dict[str, Path] = field(default_factory=dict)
    weights_asked: set[str] = field(default_factory=set)
    display: Display = SILENT
    #: ``--download``: loaders may fetch missing data sets (weights are fetched when needed)
    download: bool = False
    #: (dataset, model) → where the teacher's weights came from; loaders fill it in and every
    #: record of that teacher carries it
    weights_used: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def weights_file(self, model: str) -> Path | None:
        """The file given with ``--weights MODEL=PATH``, if any."""
        self.weights_asked.add(model)
        return self.weights.get(model)
