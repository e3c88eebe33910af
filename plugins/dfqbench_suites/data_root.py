"""Where the real data sets are looked for (and where ``--download`` puts them)."""

from __future__ import annotations

from pathlib import Path

from dfqbench.zoo import ZooEnv


def data_dir(env: ZooEnv) -> Path:
    """``--data-root``, else ``<cache>/data``."""
    return env.data_root if env.data_root is not None else env.cache_dir / "data"
