"""Teachers of the embedded ``digits`` suite: trained deterministically on first use, cached.

The cache file name is a fingerprint of the architecture, the training recipe and the data
split, so changing any of them retrains instead of silently reusing stale weights.
"""

from __future__ import annotations

import datetime

import torch
from torch import nn

from dfqbench.api import DatasetInfo, load_object
from dfqbench.data import digits
from dfqbench.errors import DfqError
from dfqbench.evaluate import evaluate
from dfqbench.zoo import ZooEnv
from dfqbench.zoo.store import fingerprint, load_state_dict, save_state_dict
from dfqbench.zoo.train import Recipe, train_classifier

#: name → ("module:Class", constructor arguments); classes are imported on first use (timm is slow to import)
ARCHITECTURES = {
    "resnet20-digits": (
        "dfqbench.models.cifar_resnet:CIFARResNet",
        {"in_channels": 1, "num_classes": 10, "depth": 20, "widths": (4, 8, 16)},
    ),
    "mobilenetv2-digits": (
        "dfqbench.models.mobilenetv2:MobileNetV2",
        {
            "in_channels": 1,
            "num_classes": 10,
            "init_channels": 8,
            "stages": ((8, 1, 1), (12, 2, 2), (16, 2, 2), (24, 1, 1)),
            "final_channels": 64,
        },
    ),
    # DeiT's layout (CLS token, learned position embedding, pre-LN blocks) at digits scale:
    # 2×2 patches → 16 tokens + CLS, width 48, 3 blocks of 3 heads, MLP ratio 2 (about 60 k
    # parameters): 96.2 % top-1; a narrower 32-wide, 4-block variant reached 94 %.
    "vit-digits": (
        "timm.models.vision_transformer:VisionTransformer",
        {
            "img_size": 8,
            "patch_size": 2,
            "in_chans": 1,
            "num_classes": 10,
            "embed_dim": 48,
            "depth": 3,
            "num_heads": 3,
            "mlp_ratio": 2.0,
        },
    ),
}
RECIPES = {
    "resnet20-digits": Recipe(weight_decay=0.0),
    "mobilenetv2-digits": Recipe(weight_decay=0.0),
    # SGD does not train this ViT (top-1 < 20 %); AdamW with a warm-up does.
    "vit-digits": Recipe(optimizer="adamw", epochs=100, lr=0.003, weight_decay=0.05, warmup_epochs=10),
}


def load(name: str, dataset: DatasetInfo, env: ZooEnv, settings: dict | None = None) -> nn.Module:
    if dataset.name != "digits":
        raise DfqError(f"model {name!r} of the digits suite has no weights for dataset {dataset.name!r}; valid choices: digits")
    ref, kwargs = ARCHITECTURES[name]
    cls = load_object(ref)
    recipe = RECIPES[name]
    spec = {"arch": cls.__name__, "kwargs": kwargs, "recipe": recipe.to_dict(), "split": [digits.SPLIT_SEED, digits.VAL_FRACTION]}
    path = env.cache_dir / "models" / "digits" / f"{name}-{fingerprint(spec)}.pt"
    torch.manual_seed(recipe.seed)
    model = cls(**kwargs)
    if path.exists():
        try:
            state = load_state_dict(path)
        except DfqError as exc:  # e.g. a copy cut short
            raise DfqError(f"{exc}; it is a cached teacher: delete it, and the next run trains it again") from None
        model.load_state_dict(state)
        return model.eval()
    background = (0.0 - digits.MEAN[0]) / digits.STD[0]
    train_classifier(model, digits.load_split("train"), recipe, background, f"training {name} on digits (first use)", env.display)
    top1, _ = evaluate(model, digits.load_split("val"), torch.device("cpu"))
    meta = {"spec": spec, "val_top1": top1, "torch": torch.__version__, "trained": datetime.datetime.now().isoformat()}
    save_state_dict(model.state_dict(), path, meta)
    env.display.print(f"trained {name} on digits: FP top-1 {top1:.2f}% → cached at {path}")
    return model.eval()


def resnet20_digits(dataset: DatasetInfo, env: ZooEnv, settings: dict) -> nn.Module:
    return load("resnet20-digits", dataset, env)


def mobilenetv2_digits(dataset: DatasetInfo, env: ZooEnv, settings: dict) -> nn.Module:
    return load("mobilenetv2-digits", dataset, env)


def vit_digits(dataset: DatasetInfo, env: ZooEnv, settings: dict) -> nn.Module:
    return load("vit-digits", dataset, env)
