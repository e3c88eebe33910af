"""ImageNet (ILSVRC-2012) from class folders: ``<data-root>/imagenet/{val,train}/<wnid>/*.JPEG``.

That is the layout torchvision's ``ImageFolder`` reads (the validation images sorted into
one folder per class, as the usual ``valprep.sh`` does). Labels are the standard class
indices: the position of the folder's WordNet id among the 1000 ILSVRC-2012 ids in sorted
order. That is ImageFolder's order on the full folder, and it stays right for a folder
holding only some of the classes (a quick subset check), where ImageFolder's own indices
would shift.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from torch.utils.data import Dataset
from torchvision import datasets, transforms
from torchvision.transforms import InterpolationMode

from dfqbench.data.fence import check_unfenced
from dfqbench.errors import DfqError, unknown
from dfqbench.zoo import ZooEnv
from dfqbench_suites.data_root import data_dir
from dfqbench_suites.paper_suites import IMAGENET, IMAGENET_CNN_EVAL

VAL_IMAGES = 50_000


@lru_cache(maxsize=1)
def class_index() -> dict[str, int]:
    """WordNet id → ILSVRC-2012 class index (timm ships the list of the 1000 ids)."""
    from timm.data import ImageNetInfo

    return {wnid: i for i, wnid in enumerate(sorted(ImageNetInfo("imagenet-1k").label_names()))}


class ImageNetFolder(datasets.ImageFolder):
    """``ImageFolder`` whose labels are the ILSVRC-2012 indices of its class folders."""

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        wnids = sorted(entry.name for entry in os.scandir(directory) if entry.is_dir())
        index = class_index()
        stray = [w for w in wnids if w not in index]
        if stray:
            raise DfqError(
                f"{os.path.join(directory, stray[0])} is not an ImageNet-1k class folder; the folders under {directory} "
                "must be named by WordNet id (n01440764 ... n15075141)"
            )
        return wnids, {w: index[w] for w in wnids}


def eval_transform(settings: dict[str, Any]) -> transforms.Compose:
    """Resize (shorter side) → center crop → tensor → normalise, as the row's settings say."""
    settings = {**IMAGENET_CNN_EVAL, **settings}
    modes = [m.value for m in InterpolationMode]
    if settings["interpolation"] not in modes:
        raise unknown("interpolation", settings["interpolation"], modes, " in the data settings")
    mean, std = IMAGENET.normalization(settings)
    return transforms.Compose(
        [
            transforms.Resize(settings["resize"], interpolation=InterpolationMode(settings["interpolation"])),
            transforms.CenterCrop(settings["crop"]),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )


def load_imagenet(split: str, env: ZooEnv, settings: dict[str, Any]) -> Dataset:
    check_unfenced("ImageNet", split)
    folder = data_dir(env) / "imagenet" / split
    if not folder.is_dir() or not any(entry.is_dir() for entry in os.scandir(folder)):
        raise DfqError(
            f"ImageNet {split} images not found: no class folders in {folder}; pass --data-root DIR with "
            f"DIR/imagenet/{split}/<wnid>/*.JPEG (ImageNet cannot be downloaded automatically)"
        )
    try:
        dataset = ImageNetFolder(str(folder), transform=eval_transform(settings))
    except FileNotFoundError as exc:  # a class folder without images
        raise DfqError(f"ImageNet {split} under {folder}: {exc}") from None
    if len(dataset.classes) != len(class_index()) or (split == "val" and len(dataset) != VAL_IMAGES):
        env.display.print(
            f"note: ImageNet {split} under {folder} holds {len(dataset):,} images in {len(dataset.classes)} of "
            f"{len(class_index())} classes; accuracies are on this subset"
        )
    return dataset
