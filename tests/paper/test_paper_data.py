"""The real data loaders on small files in the real formats: CIFAR pickles, an ImageNet folder."""

import numpy as np
import pytest
import torch

from dfqbench.errors import DfqError
from dfqbench.zoo import ZooEnv
from dfqbench_suites import cifar, imagenet
from dfqbench_suites.paper_suites import GDFQ_CIFAR10, GDFQ_CIFAR100, PYTORCHCV_CIFAR

from .formats import (
    CIFAR100_TEST_LABELS,
    CIFAR_TEST_LABELS,
    CIFAR_TRAIN_PER_BATCH,
    IMAGENET_CLASSES,
    IMAGENET_SIZE,
    imagenet_image,
)


def expected_cifar(stored: np.ndarray, index: int, mean, std) -> torch.Tensor:
    """Image ``index`` as the model must see it: planes R, G, B of 32×32, scaled, normalised."""
    chw = torch.from_numpy(stored[index].reshape(3, 32, 32).astype(np.float32) / 255)
    return (chw - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


class TestCifar:
    def test_cifar10_val_is_the_test_batch_under_gdfq_normalisation(self, cifar_checksums, cifar_files, tmp_path):
        val = cifar.load_cifar10("val", ZooEnv(cache_dir=tmp_path, data_root=cifar_checksums), {"normalization": "gdfq"})
        assert [int(val[i][1]) for i in range(len(val))] == CIFAR_TEST_LABELS
        for i in (0, 7):
            image, _ = val[i]
            assert image.shape == (3, 32, 32)
            assert torch.allclose(image, expected_cifar(cifar_files.test10, i, *GDFQ_CIFAR10), atol=1e-6)

    def test_pytorchcv_normalisation_is_selectable(self, cifar_checksums, cifar_files, tmp_path):
        val = cifar.load_cifar10("val", ZooEnv(cache_dir=tmp_path, data_root=cifar_checksums), {"normalization": "pytorchcv"})
        assert torch.allclose(val[2][0], expected_cifar(cifar_files.test10, 2, *PYTORCHCV_CIFAR), atol=1e-6)
        assert not torch.allclose(val[2][0], expected_cifar(cifar_files.test10, 2, *GDFQ_CIFAR10), atol=1e-3)

    def test_cifar10_train_reads_all_five_batches(self, cifar_checksums, tmp_path):
        train = cifar.load_cifar10("train", ZooEnv(cache_dir=tmp_path, data_root=cifar_checksums), {})
        assert len(train) == 5 * CIFAR_TRAIN_PER_BATCH
        assert [int(train[i][1]) for i in range(CIFAR_TRAIN_PER_BATCH)] == [(1 + j) % 10 for j in range(CIFAR_TRAIN_PER_BATCH)]

    def test_cifar100_uses_fine_labels_and_its_own_constants(self, cifar_checksums, cifar_files, tmp_path):
        val = cifar.load_cifar100("val", ZooEnv(cache_dir=tmp_path, data_root=cifar_checksums), {"normalization": "gdfq"})
        assert [int(val[i][1]) for i in range(len(val))] == CIFAR100_TEST_LABELS
        assert torch.allclose(val[1][0], expected_cifar(cifar_files.test100, 1, *GDFQ_CIFAR100), atol=1e-6)

    def test_missing_folder_names_the_path_and_both_flags(self, tmp_path):
        with pytest.raises(DfqError) as info:
            cifar.load_cifar10("val", ZooEnv(cache_dir=tmp_path, data_root=tmp_path / "nothing"), {})
        message = str(info.value)
        assert f"no folder {tmp_path / 'nothing' / 'cifar-10-batches-py'}" in message
        assert "--data-root" in message and "--download" in message

    def test_files_failing_the_md5_check_are_refused(self, cifar_files, tmp_path):
        # no checksum patch: the test files are not the real archive, so torchvision refuses them
        with pytest.raises(DfqError, match="incomplete or corrupted .*md5"):
            cifar.load_cifar10("val", ZooEnv(cache_dir=tmp_path, data_root=cifar_files.root), {})

    def test_failed_download_is_one_clear_error(self, tmp_path, monkeypatch):
        import urllib.error

        import torchvision.datasets.cifar as tv_cifar

        def offline(*args, **kwargs):
            raise urllib.error.URLError("[Errno -2] Name or service not known")

        monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
        with pytest.raises(DfqError, match=r"could not download CIFAR-100 under .*Name or service not known.*--data-root"):
            cifar.load_cifar100("val", ZooEnv(cache_dir=tmp_path, data_root=tmp_path, download=True), {})

    def test_without_data_root_the_cache_is_the_data_root(self, tmp_path):
        with pytest.raises(DfqError, match=str(tmp_path / "data" / "cifar-100-python")):
            cifar.load_cifar100("val", ZooEnv(cache_dir=tmp_path), {})


def reference_eval_image(pil_image, resize: int, crop: int, resample, mean, std) -> torch.Tensor:
    """The evaluation preprocessing written directly with PIL: shorter side → ``resize``, centre crop."""
    w, h = pil_image.size
    short = min(w, h)
    size = (resize, int(resize * h / short)) if w == short else (int(resize * w / short), resize)
    resized = pil_image.resize(size, resample)
    left, top = round((size[0] - crop) / 2), round((size[1] - crop) / 2)
    array = np.asarray(resized.crop((left, top, left + crop, top + crop)), dtype=np.float32) / 255
    chw = torch.from_numpy(array).permute(2, 0, 1)
    return (chw - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


class TestImageNet:
    def test_class_index_is_the_sorted_ilsvrc2012_list(self):
        index = imagenet.class_index()
        assert len(index) == 1000 and list(index) == sorted(index)
        assert index["n01440764"] == 0 and index["n01443537"] == 1 and index["n15075141"] == 999

    def test_subset_folder_keeps_the_standard_labels(self, imagenet_root, tmp_path):
        env = ZooEnv(cache_dir=tmp_path, data_root=imagenet_root)
        val = imagenet.load_imagenet("val", env, {"resize": 256, "crop": 224, "interpolation": "bilinear"})
        assert sorted(label for _, label in val.samples) == sorted(i for _, i, n in IMAGENET_CLASSES for _ in range(n))
        assert all(path.endswith(".JPEG") for path, _ in val.samples)

    @pytest.mark.parametrize("resize, interpolation", [(256, "bilinear"), (248, "bicubic")])
    def test_preprocessing_is_resize_then_centre_crop(self, imagenet_root, tmp_path, resize, interpolation):
        from PIL import Image

        env = ZooEnv(cache_dir=tmp_path, data_root=imagenet_root)
        val = imagenet.load_imagenet("val", env, {"resize": resize, "crop": 224, "interpolation": interpolation})
        path, _ = val.samples[0]
        image, _ = val[0]
        resample = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[interpolation]
        with Image.open(path) as pil:
            expected = reference_eval_image(pil.convert("RGB"), resize, 224, resample, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        assert image.shape == (3, 224, 224)
        assert torch.allclose(image, expected, atol=1e-5)

    def test_the_two_protocols_differ(self, imagenet_root, tmp_path):
        env = ZooEnv(cache_dir=tmp_path, data_root=imagenet_root)
        cnn = imagenet.load_imagenet("val", env, {"resize": 256, "crop": 224, "interpolation": "bilinear"})[0][0]
        swin = imagenet.load_imagenet("val", env, {"resize": 248, "crop": 224, "interpolation": "bicubic"})[0][0]
        assert (cnn - swin).abs().max() > 0.1

    def test_a_subset_is_announced(self, imagenet_root, tmp_path):
        printed = []

        class Recorder:
            def print(self, *args):
                printed.append(" ".join(map(str, args)))

        imagenet.load_imagenet("val", ZooEnv(cache_dir=tmp_path, data_root=imagenet_root, display=Recorder()), {})
        folder = imagenet_root / "imagenet" / "val"
        assert printed == [f"note: ImageNet val under {folder} holds 4 images in 3 of 1000 classes; accuracies are on this subset"]

    def test_missing_folder(self, tmp_path):
        with pytest.raises(DfqError) as info:
            imagenet.load_imagenet("val", ZooEnv(cache_dir=tmp_path, data_root=tmp_path), {})
        message = str(info.value)
        assert f"no class folders in {tmp_path / 'imagenet' / 'val'}" in message
        assert "--data-root DIR with DIR/imagenet/val/<wnid>/*.JPEG" in message

    def test_a_folder_that_is_not_a_wordnet_id_is_refused(self, tmp_path):
        folder = tmp_path / "imagenet" / "val" / "goldfish"
        folder.mkdir(parents=True)
        imagenet_image(0).save(folder / "a.JPEG")
        with pytest.raises(DfqError, match="goldfish is not an ImageNet-1k class folder"):
            imagenet.load_imagenet("val", ZooEnv(cache_dir=tmp_path, data_root=tmp_path), {})

    def test_unknown_interpolation(self, imagenet_root, tmp_path):
        with pytest.raises(DfqError, match="unknown interpolation 'cubic' in the data settings; valid choices: .*bicubic"):
            imagenet.load_imagenet("val", ZooEnv(cache_dir=tmp_path, data_root=imagenet_root), {"interpolation": "cubic"})

    def test_image_size_is_what_the_fixture_wrote(self, imagenet_root):
        from PIL import Image

        path = next((imagenet_root / "imagenet" / "val").rglob("*.JPEG"))
        with Image.open(path) as pil:
            assert pil.size == IMAGENET_SIZE and pil.format == "JPEG"
