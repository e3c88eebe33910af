"""Fixtures of the paper-suite tests: small files in the real formats (see ``formats.py``), and
guards that keep every test offline."""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from .formats import (
    CIFAR100_TEST_LABELS,
    CIFAR_TEST_LABELS,
    CIFAR_TRAIN_PER_BATCH,
    IMAGENET_CLASSES,
    PYTORCHCV_RIGS,
    cifar_pixels,
    imagenet_image,
    rig_to_predict,
)


def _pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


@dataclass
class CifarFiles:
    root: Path
    test10: np.ndarray  # the CIFAR-10 test images as stored (n, 3072)
    test100: np.ndarray


@pytest.fixture(scope="session")
def cifar_files(tmp_path_factory) -> CifarFiles:
    root = tmp_path_factory.mktemp("data")
    c10 = root / "cifar-10-batches-py"
    c10.mkdir()
    for i in range(1, 6):
        labels = [(i + j) % 10 for j in range(CIFAR_TRAIN_PER_BATCH)]
        _pickle(c10 / f"data_batch_{i}", {"batch_label": f"training batch {i} of 5", "labels": labels,
                                           "data": cifar_pixels(CIFAR_TRAIN_PER_BATCH, i), "filenames": [f"t{i}_{j}.png" for j in labels]})
    test10 = cifar_pixels(len(CIFAR_TEST_LABELS), 0)
    _pickle(c10 / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": CIFAR_TEST_LABELS, "data": test10,
                                  "filenames": [f"v{j}.png" for j in range(len(CIFAR_TEST_LABELS))]})
    _pickle(c10 / "batches.meta", {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
                                    "num_cases_per_batch": 10000, "num_vis": 3072})
    c100 = root / "cifar-100-python"
    c100.mkdir()
    train100 = cifar_pixels(12, 100)
    _pickle(c100 / "train", {"fine_labels": list(range(0, 96, 8)), "coarse_labels": [0] * 12, "data": train100, "filenames": []})
    test100 = cifar_pixels(len(CIFAR100_TEST_LABELS), 101)
    _pickle(c100 / "test", {"fine_labels": CIFAR100_TEST_LABELS, "coarse_labels": [1] * len(CIFAR100_TEST_LABELS), "data": test100, "filenames": []})
    _pickle(c100 / "meta", {"fine_label_names": [f"class{i}" for i in range(100)], "coarse_label_names": [f"super{i}" for i in range(20)]})
    return CifarFiles(root, test10, test100)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def cifar_checksums(cifar_files, monkeypatch) -> Path:
    """Make torchvision's md5 checks accept the test files (and only them); returns the data root."""
    from torchvision import datasets

    for cls in (datasets.CIFAR10, datasets.CIFAR100):
        folder = cifar_files.root / cls.base_folder
        for attr in ("train_list", "test_list"):
            monkeypatch.setattr(cls, attr, [[name, _md5(folder / name)] for name, _ in getattr(cls, attr)])
        monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": _md5(folder / cls.meta["filename"])})
    return cifar_files.root


@pytest.fixture(scope="session")
def imagenet_root(tmp_path_factory) -> Path:
    """``<root>/imagenet/{val,train}/<wnid>/*.JPEG`` for three classes; returns ``<root>``."""
    root = tmp_path_factory.mktemp("data")
    for split in ("val", "train"):
        for wnid, index, count in IMAGENET_CLASSES:
            folder = root / "imagenet" / split / wnid
            folder.mkdir(parents=True)
            for k in range(count):
                imagenet_image(1000 * index + k + (0 if split == "val" else 7)).save(folder / f"ILSVRC2012_{split}_{index:04d}{k}.JPEG", quality=95)
    return root


@pytest.fixture(scope="session")
def teacher_files(tmp_path_factory) -> dict[str, Path]:
    """One rigged state-dict file per pytorchcv architecture (torch.save of the state dict)."""
    from pytorchcv.model_provider import get_model

    folder = tmp_path_factory.mktemp("weights")
    files = {}
    torch.manual_seed(0)
    for arch, (k, _) in PYTORCHCV_RIGS.items():
        net = rig_to_predict(get_model(arch, pretrained=False), "output", k)
        files[arch] = folder / f"{arch}-random.pth"
        torch.save(net.state_dict(), files[arch])
    return files


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Every test here runs as without network: any download of weights fails, and pytorchcv's
    own store is empty (a test that simulates a download patches the download again)."""
    import urllib.error

    from huggingface_hub.errors import LocalEntryNotFoundError

    import dfqbench_suites.pytorchcv_teachers as ptcv
    import dfqbench_suites.timm_teachers as tt

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    def no_hub(*args, **kwargs):
        raise LocalEntryNotFoundError("cannot reach the Hub and the file is not in the local cache")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setattr(tt, "hf_hub_download", no_hub)
    monkeypatch.setattr(ptcv, "PYTORCHCV_STORE", Path("/nonexistent/.torch/models"))
