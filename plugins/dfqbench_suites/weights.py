"""What the teacher loaders share: the ``--weights`` file, digests, strict loading, provenance.

Every file is read with :func:`dfqbench.zoo.store.load_state_dict` (safetensors or
``torch.load(weights_only=True)``), so no weights file can run code, wherever it came from.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from torch import nn

from dfqbench.api import DatasetInfo
from dfqbench.errors import DfqError
from dfqbench.zoo import ZooEnv


def user_file(model: str, env: ZooEnv) -> Path | None:
    """The file given with ``--weights MODEL=PATH``, if any."""
    path = env.weights_file(model)
    if path is not None and not path.is_file():
        raise DfqError(f"--weights {model}={path}: no such file")
    return path


def digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_strict(net: nn.Module, state: dict[str, Any], path: Path, what: str) -> nn.Module:
    """Load every tensor of ``net`` from ``state``, or say which names or shapes do not fit."""
    own = net.state_dict()
    # files saved before BatchNorm counted its batches lack that counter; torch fills it in
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        problems = [
            f"{label} {', '.join(names[:3])}{' …' if len(names) > 3 else ''}"
            for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if names
        ]
        raise DfqError(f"{path} does not fit {what}: {'; '.join(problems)}")
    net.load_state_dict(state, strict=False)  # checked above, batch counters aside
    return net.eval()


def note(env: ZooEnv, dataset: DatasetInfo, model: str, path: Path, origin: str, **facts: Any) -> None:
    """Record where the teacher's weights came from (it goes into every record of the teacher)."""
    env.weights_used[(dataset.name, model)] = {"file": str(path), "origin": origin, **facts}


def wrong_dataset(model: str, dataset: DatasetInfo, valid: list[str]) -> DfqError:
    return DfqError(f"model {model!r} has no pretrained weights for dataset {dataset.name!r}; valid choices: {', '.join(valid)}")
