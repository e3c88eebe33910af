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
#: Further instances of the digits CNN teachers (suite ``digits-teachers``), name → (model, k):
#: the model's architecture and recipe with recipe seed k (initialisation, shuffling,
#: augmentation), to measure how much of a method's margin belongs to one teacher.
DIGITS_TEACHERS = {f"{base}-t{k}": (base, k) for base in ("resnet20-digits", "mobilenetv2-digits") for k in (1, 2)}
DIGITS_CNNS = {"resnet20-digits": "ResNet-20 (4/8/16)", "mobilenetv2-digits": "MobileNetV2 (digits)"}


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
        *(ModelInfo(name, display, CNN, f"dfqbench_suites.digits:{name.replace('-', '_')}") for name, display in DIGITS_CNNS.items()),
        ModelInfo("vit-digits", "ViT (digits)", VIT, "dfqbench_suites.digits:vit_digits", "timm VisionTransformer, 2×2 patches, 48×3"),
        *(
            ModelInfo(name, f"{DIGITS_CNNS[base]}, teacher {k}", CNN, f"dfqbench_suites.digits:{name.replace('-', '_')}", f"{base}'s recipe with seed {k}")
            for name, (base, k) in DIGITS_TEACHERS.items()
        ),
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
        SuiteInfo(
            name="digits-teachers",
            description="the digits CNNs' teachers 1 and 2: their recipes with seeds 1 and 2, to measure what a margin owes to one teacher",
            rows=tuple(("digits", name) for name in DIGITS_TEACHERS),
            bits=("3",),
        ),
        *paper_suites.SUITES,
    ]
