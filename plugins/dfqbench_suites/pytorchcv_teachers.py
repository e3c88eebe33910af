"""The GDFQ family's CNN teachers: pytorchcv architectures with the papers' weight files.

The files are pinned by pytorchcv's own naming (``<arch>-<error>-<sha1 prefix>.pth``) and
release, not taken from pytorchcv's current registry: that registry has moved ResNet-18 on
to a retrained file (``resnet18-0896-77a56f15``) whose accuracy is not the 71.47 the papers
report. A file is taken from, in order: ``--weights MODEL=PATH``; the dfqbench cache;
pytorchcv's own store ``~/.torch/models`` (where the reference codes keep them); else it
is downloaded from pytorchcv's release page into the cache. Any file but a ``--weights``
one must match the pinned sha1, and a download that does not is never kept.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from pytorchcv.model_provider import get_model
from torch import nn

from dfqbench.api import DatasetInfo
from dfqbench.errors import DfqError
from dfqbench.zoo import ZooEnv
from dfqbench.zoo.store import load_state_dict
from dfqbench_suites.weights import digest, load_strict, note, user_file, wrong_dataset

RELEASES = "https://github.com/osmr/imgclsmob/releases/download"
PYTORCHCV_STORE = Path("~/.torch/models")


@dataclass(frozen=True)
class PinnedFile:
    arch: str  #: pytorchcv model name
    error: str  #: the error tag of the file name
    #: the full digest from pytorchcv's model store (ResNet-18's from the store of v0.0.153's
    #: time, which GDFQ's code vendors; today's store lists the retrained file)
    sha1: str
    release: str  #: imgclsmob release that holds the file

    @property
    def file_name(self) -> str:
        return f"{self.arch}-{self.error}-{self.sha1[:8]}.pth"

    @property
    def url(self) -> str:
        return f"{RELEASES}/{self.release}/{self.file_name}.zip"


PINNED = {
    ("resnet20", "cifar10"): PinnedFile("resnet20_cifar10", "0597", "9b0024ac4c2f374cde2c5052e0d0344a75871cdb", "v0.0.163"),
    ("resnet20", "cifar100"): PinnedFile("resnet20_cifar100", "2964", "a5322afed92fa96cb7b3453106f73cf38e316151", "v0.0.180"),
    ("resnet18", "imagenet"): PinnedFile("resnet18", "0982", "0126861b4cd7f7b14196b1e01827da688f8bab6d", "v0.0.153"),
    ("resnet50", "imagenet"): PinnedFile("resnet50", "0633", "b00d1c8e52aa7a2badc705b1545aaf6ccece6ce9", "v0.0.329"),
    ("mobilenetv2", "imagenet"): PinnedFile("mobilenetv2_w1", "0887", "13a021bca5b679b76156829743f7182da42e8bb6", "v0.0.213"),
}


def load(model: str, dataset: DatasetInfo, env: ZooEnv, settings: dict[str, Any]) -> nn.Module:
    pin = PINNED.get((model, dataset.name))
    if pin is None:
        raise wrong_dataset(model, dataset, [d for m, d in PINNED if m == model])
    path, origin = _weights_file(model, pin, env)
    sha1 = digest(path, "sha1")
    if origin == "--weights":
        if sha1 != pin.sha1:
            env.display.print(
                f"note: --weights {model}={path} is not the papers' file {pin.file_name}; the records show its own FP accuracy"
            )
    elif sha1 != pin.sha1:
        raise DfqError(
            f"{path} failed its integrity check (sha1 {sha1[:8]}…, expected {pin.sha1[:8]}…); delete it to download it "
            f"again, or pass --weights {model}=PATH"
        )
    net = load_strict(get_model(pin.arch, pretrained=False), load_state_dict(path), path, f"pytorchcv {pin.arch}")
    note(env, dataset, model, path, origin, sha1=sha1, pinned=pin.file_name, matches_pin=sha1 == pin.sha1)
    return net


resnet20 = partial(load, "resnet20")
resnet18 = partial(load, "resnet18")
resnet50 = partial(load, "resnet50")
mobilenetv2 = partial(load, "mobilenetv2")


def _weights_file(model: str, pin: PinnedFile, env: ZooEnv) -> tuple[Path, str]:
    given = user_file(model, env)
    if given is not None:
        return given, "--weights"
    cached = env.cache_dir / "weights" / "pytorchcv" / pin.file_name
    store = PYTORCHCV_STORE.expanduser() / pin.file_name
    for path, origin in ((cached, "cache"), (store, "pytorchcv store")):
        if path.is_file():
            return path, origin
    env.display.print(f"downloading {pin.url}")
    try:
        _download(pin, cached)
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise DfqError(
            f"no weights for {model}: {pin.file_name} is neither in {cached.parent} nor in {store.parent}, and the download "
            f"from {pin.url} failed ({exc}); pass --weights {model}=PATH"
        ) from None
    return cached, "download"


def _download(pin: PinnedFile, target: Path) -> None:
    """Fetch the release archive, check the file inside, then move it into place atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        archive = Path(tmp) / f"{pin.file_name}.zip"
        torch.hub.download_url_to_file(pin.url, str(archive), progress=False)
        with zipfile.ZipFile(archive) as zf:
            extracted = Path(zf.extract(pin.file_name, tmp))
        sha1 = digest(extracted, "sha1")
        if sha1 != pin.sha1:
            raise DfqError(
                f"the download from {pin.url} failed its integrity check (sha1 {sha1[:8]}…, expected {pin.sha1[:8]}…); it was not kept"
            )
        os.replace(extracted, target)
