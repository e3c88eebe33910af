"""Teachers of the embedded ``digits`` suite: trained by dfqbench, shipped with it.

The weights are trained deterministically by :func:`train` (the recipe of each model below,
on one thread) and shipped as safetensors files in ``teachers/``, so every machine loads
the same teacher. Training is deterministic on one machine only: CPUs whose kernels round
differently (another vector instruction set) end a 30-epoch run with other weights, and on
the digits ResNet-20 another teacher moves the methods' margins over the noise baseline by
several points. A suite whose teachers depend on the CPU cannot put records from two
machines in one table, so the teachers ship instead of being trained on first use
(``tools/train_digits_teachers.py`` trains them again and writes the files).

Each file names the fingerprint of the architecture, the recipe and the data split it was
trained for; loading refuses a file whose fingerprint is not today's, so a change of any of
them cannot silently reuse stale weights.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from dfqbench.api import DatasetInfo, load_object
from dfqbench.data import digits
from dfqbench.errors import DfqError
from dfqbench.evaluate import evaluate
from dfqbench.progress import SILENT, Display
from dfqbench.zoo import ZooEnv
from dfqbench.zoo.store import fingerprint
from dfqbench.zoo.train import Recipe, train_classifier
from dfqbench_suites import DIGITS_TEACHERS

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
ARCHITECTURES.update({name: ARCHITECTURES[base] for name, (base, _) in DIGITS_TEACHERS.items()})
RECIPES.update({name: dataclasses.replace(RECIPES[base], seed=k) for name, (base, k) in DIGITS_TEACHERS.items()})
TEACHERS = Path(__file__).parent / "teachers"


def spec(name: str) -> dict:
    """What the weights of ``name`` are a function of: architecture, recipe, data split."""
    ref, kwargs = ARCHITECTURES[name]
    return {"arch": ref.rsplit(":", 1)[1], "kwargs": kwargs, "recipe": RECIPES[name].to_dict(), "split": [digits.SPLIT_SEED, digits.VAL_FRACTION]}


def teacher_file(name: str) -> Path:
    return TEACHERS / f"{name}.safetensors"


def build(name: str) -> nn.Module:
    """The untrained network, initialised from the recipe's seed."""
    ref, kwargs = ARCHITECTURES[name]
    cls = load_object(ref)
    torch.manual_seed(RECIPES[name].seed)
    return cls(**kwargs)


def train(name: str, display: Display = SILENT) -> tuple[nn.Module, float]:
    """Train ``name`` from scratch with its recipe; returns the model and its validation top-1."""
    model = build(name)
    background = (0.0 - digits.MEAN[0]) / digits.STD[0]
    train_classifier(model, digits.load_split("train"), RECIPES[name], background, f"training {name} on digits", display)
    top1, _ = evaluate(model, digits.load_split("val"), torch.device("cpu"))
    return model, top1


def load(name: str, dataset: DatasetInfo, env: ZooEnv, settings: dict | None = None) -> nn.Module:
    if dataset.name != "digits":
        raise DfqError(f"model {name!r} of the digits suite has no weights for dataset {dataset.name!r}; valid choices: digits")
    path = teacher_file(name)
    try:
        with safe_open(path, framework="pt") as f:
            trained_for = (f.metadata() or {}).get("fingerprint")
            state = {key: f.get_tensor(key) for key in f.keys()}
    except (OSError, SafetensorError) as exc:
        raise DfqError(f"cannot load the shipped {name} teacher {path} ({exc}); reinstall dfqbench") from None
    if trained_for != fingerprint(spec(name)):
        raise DfqError(
            f"the shipped {name} teacher {path} was trained for another architecture, recipe or split "
            f"(fingerprint {trained_for}, today's {fingerprint(spec(name))}); train it again with tools/train_digits_teachers.py"
        )
    model = build(name)
    model.load_state_dict(state)
    return model.eval()


# the models' loaders (``ModelInfo.loader``), one per shipped file
resnet20_digits = partial(load, "resnet20-digits")
mobilenetv2_digits = partial(load, "mobilenetv2-digits")
vit_digits = partial(load, "vit-digits")
resnet20_digits_t1 = partial(load, "resnet20-digits-t1")
resnet20_digits_t2 = partial(load, "resnet20-digits-t2")
mobilenetv2_digits_t1 = partial(load, "mobilenetv2-digits-t1")
mobilenetv2_digits_t2 = partial(load, "mobilenetv2-digits-t2")
