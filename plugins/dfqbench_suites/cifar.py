"""CIFAR-10/100 through torchvision, in torchvision's own layout under the data root.

``<data-root>/cifar-10-batches-py/`` and ``<data-root>/cifar-100-python/`` are the folders of
the "python version" archives (and what ``torchvision.datasets.CIFAR10(root, download=True)``
writes). torchvision checks every file's md5 before it unpickles anything, so a tampered
batch file is refused rather than loaded. The ``val`` split is the 10,000-image test split.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset
from torchvision import datasets, transforms

from dfqbench.api import DatasetInfo
from dfqbench.data.fence import check_unfenced
from dfqbench.errors import DfqError
from dfqbench.zoo import ZooEnv
from dfqbench_suites.data_root import data_dir
from dfqbench_suites.paper_suites import CIFAR10, CIFAR100


def load_cifar10(split: str, env: ZooEnv, settings: dict[str, Any]) -> Dataset:
    return _load(CIFAR10, datasets.CIFAR10, split, env, settings)


def load_cifar100(split: str, env: ZooEnv, settings: dict[str, Any]) -> Dataset:
    return _load(CIFAR100, datasets.CIFAR100, split, env, settings)


def _load(info: DatasetInfo, cls: type[datasets.CIFAR10], split: str, env: ZooEnv, settings: dict[str, Any]) -> Dataset:
    check_unfenced(info.display_name, split)
    root = data_dir(env)
    folder = root / cls.base_folder
    mean, std = info.normalization(settings)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    if not folder.is_dir() and not env.download:
        raise DfqError(
            f"{info.display_name} not found: no folder {folder}; pass --data-root DIR where DIR/{cls.base_folder}/ "
            f"holds the python version of {info.display_name}, or add --download to fetch it there with torchvision"
        )
    try:
        return cls(str(root), train=split == "train", transform=transform, download=env.download)
    except RuntimeError:  # raised by torchvision when a file is missing or fails its md5 check
        raise DfqError(
            f"{info.display_name} under {folder} is incomplete or corrupted (a file is missing or fails torchvision's "
            "md5 check); replace the files, or delete the folder and add --download"
        ) from None
    except OSError as exc:  # a failed download (offline, proxy, disk full) or an unreadable file
        action = "download" if env.download else "read"
        raise DfqError(
            f"could not {action} {info.display_name} under {root} ({exc}); pass --data-root DIR with DIR/{cls.base_folder}/"
        ) from None
