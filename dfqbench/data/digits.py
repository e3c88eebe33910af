"""The embedded default data set: scikit-learn's 1,797 real 8×8 handwritten digits.

The data ship inside scikit-learn, so the default suite works offline. The split is
stratified and fixed (``random_state=0``): 1,198 training images and 599 validation
images. Pixels (0..16) are scaled to [0, 1] and normalised with the training split's
mean and std, given as constants in :data:`MEAN`/:data:`STD` (a test recomputes them).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from dfqbench.data.fence import check_unfenced

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from torch.utils.data import TensorDataset

MEAN = (0.3054,)  # training split; equal to the suite plugin's DatasetInfo
STD = (0.3759,)
VAL_FRACTION = 1 / 3
SPLIT_SEED = 0


@lru_cache(maxsize=1)
def _split_indices() -> dict[str, np.ndarray]:
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    labels = load_digits().target
    train, val = train_test_split(
        np.arange(len(labels)), test_size=VAL_FRACTION, random_state=SPLIT_SEED, stratify=labels
    )
    return {"train": np.sort(train), "val": np.sort(val)}


def raw_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images in [0, 1] shaped (N, 1, 8, 8) and their labels, for ``train`` or ``val``."""
    check_unfenced("Digits", split)
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    idx = _split_indices()[split]
    images = (digits.images[idx].astype(np.float32) / 16.0)[:, None]
    return images, digits.target[idx].astype(np.int64)


def load_split(split: str, env: object = None, settings: dict | None = None) -> TensorDataset:
    """The ``train`` or ``val`` split as normalised tensors (the dataset loader of the suite)."""
    import torch
    from torch.utils.data import TensorDataset

    images, labels = raw_split(split)
    x = (torch.from_numpy(images) - MEAN[0]) / STD[0]
    return TensorDataset(x, torch.from_numpy(labels))
