"""The ViT teachers of the PSAQ-ViT suite: timm architectures, timm's weights on the Hugging Face Hub.

The weights are the ImageNet-1k ones PSAQ-ViT evaluated: DeiT's official files (timm tag
``fb_in1k``) and Swin's official ImageNet-1k files as converted by timm (tag ``ms_in1k``;
timm's default Swin-S is now the ImageNet-22k fine-tuned one, which is not it). A file is
taken from ``--weights MODEL=PATH`` (timm's own state dict or safetensors, or the official
DeiT/Swin ``.pth`` checkpoint, which timm's checkpoint filter converts), else from the Hub
cache under the dfqbench cache, else from the Hub. The Hub stores a file under its sha256;
the file is checked against that name before it is loaded, and its Hub revision recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import timm
from huggingface_hub import hf_hub_download
from torch import nn

from dfqbench.api import DatasetInfo, load_object
from dfqbench.errors import DfqError
from dfqbench.zoo import ZooEnv
from dfqbench.zoo.store import load_state_dict
from dfqbench_suites.weights import digest, load_strict, note, user_file, wrong_dataset

HUB_FILE = "model.safetensors"
SHA256_NAME = re.compile(r"^[0-9a-f]{64}$")
VIT_CONVERT = "timm.models.vision_transformer:checkpoint_filter_fn"
SWIN_CONVERT = "timm.models.swin_transformer:checkpoint_filter_fn"


@dataclass(frozen=True)
class TimmWeights:
    name: str  #: timm model name with its pretrained tag
    convert: str  #: ``"module:function"``: timm's filter from official checkpoints to its own names


PINNED = {
    "deit-tiny": TimmWeights("deit_tiny_patch16_224.fb_in1k", VIT_CONVERT),
    "deit-small": TimmWeights("deit_small_patch16_224.fb_in1k", VIT_CONVERT),
    "deit-base": TimmWeights("deit_base_patch16_224.fb_in1k", VIT_CONVERT),
    "swin-tiny": TimmWeights("swin_tiny_patch4_window7_224.ms_in1k", SWIN_CONVERT),
    "swin-small": TimmWeights("swin_small_patch4_window7_224.ms_in1k", SWIN_CONVERT),
}


def load(model: str, dataset: DatasetInfo, env: ZooEnv, settings: dict[str, Any]) -> nn.Module:
    if dataset.name != "imagenet":
        raise wrong_dataset(model, dataset, ["imagenet"])
    pin = PINNED[model]
    path, origin = _weights_file(model, pin, env)
    # No digest of the Hub's files is pinned, only the repository (timm's tag): a re-export
    # on the Hub would change the file, so every record names the Hub revision it came from.
    facts = {"sha256": digest(path, "sha256"), "pinned": pin.name, "matches_pin": None}
    if origin == "--weights":
        env.display.print(
            f"note: --weights {model}={path} is used as given: dfqbench holds no digest of timm's {pin.name} to compare it "
            "with; the records show its own sha256 and FP accuracy"
        )
    else:
        verify_hub_file(path, facts["sha256"], model)
        facts["hub_revision"] = hub_revision(path)
    net = timm.create_model(pin.name, pretrained=False)
    state = load_object(pin.convert)(load_state_dict(path), net)
    load_strict(net, state, path, f"timm {pin.name}")
    note(env, dataset, model, path, origin, **facts)
    return net


deit_tiny = partial(load, "deit-tiny")
deit_small = partial(load, "deit-small")
deit_base = partial(load, "deit-base")
swin_tiny = partial(load, "swin-tiny")
swin_small = partial(load, "swin-small")


def _weights_file(model: str, pin: TimmWeights, env: ZooEnv) -> tuple[Path, str]:
    given = user_file(model, env)
    if given is not None:
        return given, "--weights"
    repo = timm.models.get_pretrained_cfg(pin.name).hf_hub_id
    cache = env.cache_dir / "weights" / "huggingface"
    try:  # the cache first: the Hub would otherwise be asked on every run
        path, origin = Path(hf_hub_download(repo, HUB_FILE, cache_dir=cache, local_files_only=True)), "cache"
    except OSError:
        env.display.print(f"downloading {repo}/{HUB_FILE}")
        try:
            path, origin = Path(hf_hub_download(repo, HUB_FILE, cache_dir=cache)), "download"
        except OSError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DfqError(
                f"no weights for {model}: {repo}/{HUB_FILE} is not in {cache} and the download failed ({reason}); "
                f"pass --weights {model}=PATH"
            ) from None
    return path, origin


def hub_revision(path: Path) -> str | None:
    """The Hub commit of a cached file (``…/snapshots/<commit>/model.safetensors``)."""
    return path.parent.name if path.parent.parent.name == "snapshots" else None


def verify_hub_file(path: Path, sha256: str, model: str) -> None:
    """A Hub cache file links to a blob named by the file's sha256: check the content against it."""
    blob = path.resolve()
    if SHA256_NAME.match(blob.name) and sha256 != blob.name:
        raise DfqError(f"{path} failed its integrity check (sha256 differs from its blob name); delete it, or pass --weights {model}=PATH")
