"""Built-in suites, data sets and teachers (a plugin like any other; imports no torch).

The paper suites (``cifar10``, ``cifar100``, ``imagenet``, ``imagenet-vit``) are declared in
:mod:`dfqbench_suites.paper_suites`.

``digits`` is the offline default: scikit-learn's real handwritten digits at their native
8×8, with narrow models that dfqbench trained and ships (``digits.py``). The widths are chosen so
that the naive baseline loses clearly at 3–4 bits (measured numbers in the README).
"""

from dfqbench.api import CNN, VIT, DatasetInfo, ModelInfo, SuiteInfo, hookimpl
from dfqbench_suites import paper_suites

DIGITS_MEAN = (0.3054,)
DIGITS_STD = (0.3759,)


@hookimpl
def dfqbench_datasets():
    return [
        DatasetInfo(
            name="digits",
            display_name="Digits",
            num_classes=10,
            input_shape=(1, 8, 8),
            mean=DIGITS_MEAN,
            std=DIGITS_STD,
            loader="dfqbench.data.digits:load_split",
            notes="scikit-learn load_digits; stratified 1,198 train / 599 val",
        ),
        *paper_suites.DATASETS,
    ]


@hookimpl
def dfqbench_models():
    return [
        ModelInfo("resnet20-digits", "ResNet-20 (4/8/16)", CNN, "dfqbench_suites.digits:resnet20_digits"),
        ModelInfo("mobilenetv2-digits", "MobileNetV2 (digits)", CNN, "dfqbench_suites.digits:mobilenetv2_digits"),
        ModelInfo("vit-digits", "ViT (digits)", VIT, "dfqbench_suites.digits:vit_digits", "timm VisionTransformer, 2×2 patches, 48×3"),
        *paper_suites.MODELS,
    ]


@hookimpl
def dfqbench_suites():
    return [
        SuiteInfo(
            name="digits",
            description="real 8×8 handwritten digits, narrow models shipped with dfqbench (offline default)",
            rows=(("digits", "resnet20-digits"), ("digits", "mobilenetv2-digits"), ("digits", "vit-digits")),
            bits=("3", "4", "5"),
        ),
        *paper_suites.SUITES,
    ]
