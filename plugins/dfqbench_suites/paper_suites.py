"""The AdaDFQ paper's matrix (CIFAR-10/100, ImageNet) and PSAQ-ViT's (ImageNet ViTs).

Declarations only (no torch): the loaders they name live in :mod:`.cifar`,
:mod:`.imagenet`, :mod:`.pytorchcv_teachers` and :mod:`.timm_teachers`.

Evaluation preprocessing is a recorded data setting of each suite, because the reference
codes disagree (see ``docs/real-suites.md``):

* CIFAR: ToTensor → Normalize. ``normalization=gdfq`` (default) is the constants of the
  GDFQ/Qimera/AdaDFQ loaders, under which the papers report the teachers at 93.89 / 70.33;
  ``normalization=pytorchcv`` is pytorchcv's training normalisation, used by ZeroQ and ZAQ
  for both CIFAR-10 and CIFAR-100.
* ImageNet CNNs: Resize(256) → CenterCrop(224) → ImageNet mean/std (bilinear), as ZeroQ,
  GDFQ, Qimera and AdaDFQ.
* ImageNet ViTs: PSAQ-ViT's bicubic Resize(⌊224 / crop_pct⌋) → CenterCrop(224): crop_pct
  0.875 → 256 for DeiT, 0.9 → 248 for Swin.
"""

from dfqbench.api import CNN, VIT, DatasetInfo, ModelInfo, SuiteInfo

PACKAGE = "dfqbench_suites"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# pytorchcv trained its CIFAR-10 and CIFAR-100 models with these (ZeroQ and ZAQ evaluate with them too)
PYTORCHCV_CIFAR = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
GDFQ_CIFAR10 = ((0.49139968, 0.48215827, 0.44653124), (0.24703233, 0.24348505, 0.26158768))
GDFQ_CIFAR100 = ((0.50705882, 0.48666667, 0.44078431), (0.26745098, 0.25568627, 0.27607843))

def _cifar(name: str, display: str, classes: int, gdfq: tuple) -> DatasetInfo:
    return DatasetInfo(
        name=name,
        display_name=display,
        num_classes=classes,
        input_shape=(3, 32, 32),
        mean=gdfq[0],
        std=gdfq[1],
        loader=f"{PACKAGE}.cifar:load_{name}",
        notes=f"torchvision {display} (python version); val = the 10,000-image test split",
        normalizations={"gdfq": gdfq, "pytorchcv": PYTORCHCV_CIFAR},
    )


CIFAR10 = _cifar("cifar10", "CIFAR-10", 10, GDFQ_CIFAR10)
CIFAR100 = _cifar("cifar100", "CIFAR-100", 100, GDFQ_CIFAR100)
IMAGENET = DatasetInfo(
    name="imagenet",
    display_name="ImageNet",
    num_classes=1000,
    input_shape=(3, 224, 224),
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    loader=f"{PACKAGE}.imagenet:load_imagenet",
    notes="ILSVRC-2012 in class folders under <data-root>/imagenet/{val,train}/<wnid>/",
)
DATASETS = (CIFAR10, CIFAR100, IMAGENET)


def _pytorchcv(name: str, display: str, notes: str) -> ModelInfo:
    return ModelInfo(name, display, CNN, f"{PACKAGE}.pytorchcv_teachers:{name}", notes)


def _timm(name: str, display: str, notes: str) -> ModelInfo:
    return ModelInfo(name, display, VIT, f"{PACKAGE}.timm_teachers:{name.replace('-', '_')}", notes)


MODELS = (
    _pytorchcv("resnet20", "ResNet-20", "pytorchcv resnet20_cifar10 / resnet20_cifar100 (the GDFQ family's teachers)"),
    _pytorchcv("resnet18", "ResNet-18", "pytorchcv resnet18, the papers' file resnet18-0982-0126861b"),
    _pytorchcv("resnet50", "ResNet-50", "pytorchcv resnet50-0633-b00d1c8e"),
    _pytorchcv("mobilenetv2", "MobileNetV2", "pytorchcv mobilenetv2_w1-0887-13a021bc"),
    _timm("deit-tiny", "DeiT-T", "timm deit_tiny_patch16_224.fb_in1k"),
    _timm("deit-small", "DeiT-S", "timm deit_small_patch16_224.fb_in1k"),
    _timm("deit-base", "DeiT-B", "timm deit_base_patch16_224.fb_in1k"),
    _timm("swin-tiny", "Swin-T", "timm swin_tiny_patch4_window7_224.ms_in1k"),
    _timm("swin-small", "Swin-S", "timm swin_small_patch4_window7_224.ms_in1k"),
)

CNN_SOURCES = tuple(
    f"{PACKAGE}:published/{name}.csv"
    for name in ("adadfq_cvpr2023_table2", "gdfq_eccv2020_readme", "qimera_neurips2021_readme", "zeroq_cvpr2020_readme")
)
VIT_SOURCES = (f"{PACKAGE}:published/psaqvit_eccv2022_readme.csv",)
IMAGENET_CNN_EVAL = {"resize": 256, "crop": 224, "interpolation": "bilinear"}
DEIT_EVAL = {"resize": 256}  # crop_pct 0.875
SWIN_EVAL = {"resize": 248}  # crop_pct 0.9

SUITES = (
    SuiteInfo(
        name="cifar10",
        description="AdaDFQ Table 2: CIFAR-10, pytorchcv ResNet-20",
        rows=(("cifar10", "resnet20"),),
        bits=("3", "4", "5"),
        published=CNN_SOURCES,
        settings={"normalization": "gdfq"},
    ),
    SuiteInfo(
        name="cifar100",
        description="AdaDFQ Table 2: CIFAR-100, pytorchcv ResNet-20",
        rows=(("cifar100", "resnet20"),),
        bits=("3", "4", "5"),
        published=CNN_SOURCES,
        settings={"normalization": "gdfq"},
    ),
    SuiteInfo(
        name="imagenet",
        description="AdaDFQ Table 2: ImageNet, pytorchcv ResNet-18 / MobileNetV2 / ResNet-50",
        rows=(("imagenet", "resnet18"), ("imagenet", "mobilenetv2"), ("imagenet", "resnet50")),
        bits=("3", "4", "5"),
        published=CNN_SOURCES,
        settings=IMAGENET_CNN_EVAL,
    ),
    SuiteInfo(
        name="imagenet-vit",
        description="PSAQ-ViT: ImageNet, timm DeiT-T/S/B and Swin-T/S at W4/A8 and W8/A8",
        rows=tuple(("imagenet", m) for m in ("deit-tiny", "deit-small", "deit-base", "swin-tiny", "swin-small")),
        bits=("4w8a", "8w8a"),
        published=VIT_SOURCES,
        settings={"crop": 224, "interpolation": "bicubic"},
        model_settings={
            **{m: DEIT_EVAL for m in ("deit-tiny", "deit-small", "deit-base")},
            **{m: SWIN_EVAL for m in ("swin-tiny", "swin-small")},
        },
    ),
)
