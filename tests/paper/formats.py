"""Small files in the real formats of the paper suites (the fixtures are in ``conftest.py``).

* CIFAR: the "python version" pickles (``cifar-10-batches-py/``, ``cifar-100-python/``).
  torchvision checks each file's md5 before unpickling it; the ``cifar_checksums`` fixture
  points those checks at these files (the real checksums belong to the real archives).
* ImageNet: ``imagenet/{val,train}/<wnid>/*.JPEG`` written with PIL.
* Teachers: one state-dict file per architecture, saved from a randomly initialised model
  whose classifier is rigged to always predict one class, so the FP accuracy the harness
  measures is known exactly.
"""

from __future__ import annotations

import numpy as np
import torch

# CIFAR labels written below: the val (test) split holds 10 images with these labels
CIFAR_TEST_LABELS = [3, 1, 3, 0, 9, 5, 3, 7, 2, 4]  # three 3s
CIFAR_TRAIN_PER_BATCH = 6
CIFAR100_TEST_LABELS = [42, 7, 42, 99, 0, 42, 13, 42]  # four 42s
# ImageNet: (wnid, class index, number of val images)
IMAGENET_CLASSES = [("n01440764", 0, 1), ("n01443537", 1, 1), ("n15075141", 999, 2)]
IMAGENET_SIZE = (300, 260)  # width, height: not square, so the shorter-side resize matters


def cifar_pixels(n: int, seed: int) -> np.ndarray:
    """``n`` images as CIFAR stores them: uint8 rows of 3072 = R plane, G plane, B plane (32×32 each)."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def imagenet_image(seed: int):
    """A JPEG-able RGB image with structure (a gradient and a bright off-centre square)."""
    from PIL import Image

    w, h = IMAGENET_SIZE
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // w, y * 255 // h, np.full_like(x, int(rng.integers(0, 256)))], axis=-1).astype(np.uint8)
    top, left = int(rng.integers(0, h - 60)), int(rng.integers(0, w - 60))
    rgb[top : top + 60, left : left + 60] = 255
    return Image.fromarray(rgb)


def rig_to_predict(net: torch.nn.Module, classifier: str, k: int) -> torch.nn.Module:
    """Make ``net`` predict class ``k`` for every input: its classifier sees non-negative
    features (after ReLU and pooling) or has a bias; either is made to favour ``k`` alone."""
    layer = net.get_submodule(classifier)
    with torch.no_grad():
        layer.weight.zero_()
        if layer.bias is not None:
            layer.bias.zero_()
            layer.bias[k] = 1.0
        else:
            layer.weight[k] = 1.0
    return net


# pytorchcv architecture → (the class its rigged classifier predicts, the expected FP top-1 on the test files)
PYTORCHCV_RIGS = {
    "resnet20_cifar10": (3, 100 * 3 / 10),
    "resnet20_cifar100": (42, 100 * 4 / 8),
    "resnet18": (999, 100 * 2 / 4),
    "resnet50": (0, 100 * 1 / 4),
    "mobilenetv2_w1": (1, 100 * 1 / 4),
}
