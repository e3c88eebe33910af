"""Teachers: pinned pytorchcv files and timm ViTs, from --weights, the cache or a (simulated)
download, checked, loaded without running code, evaluated by the harness."""

import io
import os
import pickle
import shutil
import zipfile
from types import SimpleNamespace

import pytest
import torch

from dfqbench.errors import DfqError
from dfqbench.registry import load_registry
from dfqbench.session import Session
from dfqbench.zoo import ZooEnv
from dfqbench.zoo.store import load_state_dict
from dfqbench_suites import pytorchcv_teachers as ptcv
from dfqbench_suites import timm_teachers
from dfqbench_suites.weights import digest

from .formats import PYTORCHCV_RIGS, rig_to_predict

ROWS = [("cifar10", "resnet20", "resnet20_cifar10"), ("cifar100", "resnet20", "resnet20_cifar100"),
        ("imagenet", "resnet18", "resnet18"), ("imagenet", "resnet50", "resnet50"), ("imagenet", "mobilenetv2", "mobilenetv2_w1")]


def suite_settings(reg, dataset, model):
    suite = next(e.info for e in reg.suites.values() if (dataset, model) in e.info.rows)
    return suite.data_settings(model)


@pytest.mark.parametrize("dataset, model, arch", ROWS)
def test_each_teacher_loads_its_file_and_is_evaluated_by_the_harness(dataset, model, arch, teacher_files, cifar_checksums,
                                                                      imagenet_root, tmp_path):
    reg = load_registry()
    data_root = cifar_checksums if dataset.startswith("cifar") else imagenet_root
    env = ZooEnv(cache_dir=tmp_path, data_root=data_root, weights={model: teacher_files[arch]})
    teacher = Session(reg, torch.device("cpu"), env).teacher(dataset, model, suite_settings(reg, dataset, model))
    saved = torch.load(teacher_files[arch], weights_only=True)
    assert all(torch.equal(teacher.module.state_dict()[k], v) for k, v in saved.items())
    assert teacher.fp_top1 == pytest.approx(PYTORCHCV_RIGS[arch][1])  # the rigged class's share of the images
    assert teacher.weights == {"file": str(teacher_files[arch]), "origin": "--weights", "sha1": digest(teacher_files[arch], "sha1"),
                               "pinned": ptcv.PINNED[(model, dataset)].file_name, "matches_pin": False}


def test_pins_are_the_papers_files():
    names = {key: pin.file_name for key, pin in ptcv.PINNED.items()}
    assert names == {
        ("resnet20", "cifar10"): "resnet20_cifar10-0597-9b0024ac.pth",
        ("resnet20", "cifar100"): "resnet20_cifar100-2964-a5322afe.pth",
        ("resnet18", "imagenet"): "resnet18-0982-0126861b.pth",
        ("resnet50", "imagenet"): "resnet50-0633-b00d1c8e.pth",
        ("mobilenetv2", "imagenet"): "mobilenetv2_w1-0887-13a021bc.pth",
    }
    assert ptcv.PINNED[("resnet18", "imagenet")].url == "https://github.com/osmr/imgclsmob/releases/download/v0.0.153/resnet18-0982-0126861b.pth.zip"


def test_pins_are_full_sha1_digests_as_pytorchcv_lists_them():
    """Every file is checked against its whole sha1. pytorchcv's store lists four of the five
    files with the same digest and release; ResNet-18's entry there is now the retrained file."""
    import csv

    from pytorchcv.models.common.model_store import get_model_metainfos_file_path

    with open(get_model_metainfos_file_path(), encoding="utf-8") as file:
        store = {row["model_name"]: row for row in csv.DictReader(file)}
    for pin in ptcv.PINNED.values():
        assert len(pin.sha1) == 40 and int(pin.sha1, 16) >= 0, pin
        listed = store[pin.arch]
        same = (listed["error_value"], listed["checksum"], listed["repo_release_tag"]) == (pin.error, pin.sha1, pin.release)
        assert same == (pin.arch != "resnet18"), (pin, listed)


def test_a_file_of_another_architecture_is_refused_in_one_line(teacher_files, tmp_path):
    reg = load_registry()
    env = ZooEnv(cache_dir=tmp_path, weights={"resnet20": teacher_files["resnet20_cifar100"]})
    with pytest.raises(DfqError) as info:
        ptcv.resnet20(reg.dataset("cifar10").info, env, {})
    assert str(info.value) == (f"{teacher_files['resnet20_cifar100']} does not fit pytorchcv resnet20_cifar10: "
                               "wrong shape output.weight, output.bias")


def test_a_model_has_weights_only_for_its_datasets(tmp_path):
    reg = load_registry()
    with pytest.raises(DfqError, match="model 'resnet18' has no pretrained weights for dataset 'cifar10'; valid choices: imagenet"):
        ptcv.resnet18(reg.dataset("cifar10").info, ZooEnv(cache_dir=tmp_path), {})


class TestFetchAndCache:
    """The download is simulated by a server that hands out a zip, as pytorchcv's releases do."""

    @pytest.fixture
    def served(self, teacher_files, monkeypatch):
        pin = ptcv.PinnedFile("resnet20_cifar10", "0597", digest(teacher_files["resnet20_cifar10"], "sha1"), "v0.0.163")
        monkeypatch.setitem(ptcv.PINNED, ("resnet20", "cifar10"), pin)
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zf:
            zf.write(teacher_files["resnet20_cifar10"], pin.file_name)
        requests = []

        def serve(url, dst, progress=True):
            requests.append(url)
            with open(dst, "wb") as f:
                f.write(archive.getvalue())

        monkeypatch.setattr(torch.hub, "download_url_to_file", serve)
        return pin, requests

    def test_downloaded_once_verified_then_cached(self, served, tmp_path):
        pin, requests = served
        cifar10 = load_registry().dataset("cifar10").info
        env = ZooEnv(cache_dir=tmp_path)
        ptcv.resnet20(cifar10, env, {})
        cached = tmp_path / "weights" / "pytorchcv" / pin.file_name
        assert requests == [pin.url] and cached.is_file()
        assert env.weights_used[("cifar10", "resnet20")]["origin"] == "download"
        assert env.weights_used[("cifar10", "resnet20")]["matches_pin"] is True
        ptcv.resnet20(cifar10, env, {})
        assert requests == [pin.url]  # the second load used the cache
        assert env.weights_used[("cifar10", "resnet20")]["origin"] == "cache"

    def test_a_tampered_cache_file_is_refused(self, served, tmp_path):
        pin, _ = served
        cifar10 = load_registry().dataset("cifar10").info
        ptcv.resnet20(cifar10, ZooEnv(cache_dir=tmp_path), {})
        cached = tmp_path / "weights" / "pytorchcv" / pin.file_name
        cached.write_bytes(cached.read_bytes() + b"\0")
        with pytest.raises(DfqError, match=f"{cached} failed its integrity check .*delete it to download it again, or pass --weights resnet20=PATH"):
            ptcv.resnet20(cifar10, ZooEnv(cache_dir=tmp_path), {})

    def test_a_download_with_the_wrong_digest_is_not_kept(self, served, monkeypatch, tmp_path):
        pin, _ = served
        wrong = pin.sha1[:8] + "0" * 32  # same file name, different content
        monkeypatch.setitem(ptcv.PINNED, ("resnet20", "cifar10"), ptcv.PinnedFile(pin.arch, pin.error, wrong, pin.release))
        with pytest.raises(DfqError, match="failed its integrity check .*it was not kept"):
            ptcv.resnet20(load_registry().dataset("cifar10").info, ZooEnv(cache_dir=tmp_path), {})
        assert not list((tmp_path / "weights" / "pytorchcv").iterdir())

    def test_offline_without_weights_names_where_it_looked_and_the_flag(self, tmp_path):
        with pytest.raises(DfqError) as info:
            ptcv.resnet50(load_registry().dataset("imagenet").info, ZooEnv(cache_dir=tmp_path), {})
        assert str(info.value) == (
            f"no weights for resnet50: resnet50-0633-b00d1c8e.pth is neither in {tmp_path / 'weights' / 'pytorchcv'} nor in "
            "/nonexistent/.torch/models, and the download from "
            "https://github.com/osmr/imgclsmob/releases/download/v0.0.329/resnet50-0633-b00d1c8e.pth.zip failed "
            "(<urlopen error [Errno -2] Name or service not known>); pass --weights resnet50=PATH"
        )


class Marker:
    """Unpickling this creates the file ``path``: a stand-in for any code a checkpoint could run."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


class TestSafeLoading:
    def test_the_payload_is_live(self, tmp_path):
        # the control: an unrestricted unpickler does run it, so the tests below can fail
        marker = tmp_path / "ran"
        pickle.loads(pickle.dumps({"w": Marker(marker)}))
        assert marker.exists()

    @pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
    def test_a_malicious_weights_file_does_not_run(self, writer, tmp_path):
        marker, path = tmp_path / "ran", tmp_path / "evil.pth"
        payload = {"output.weight": torch.zeros(2), "trap": Marker(marker)}
        if writer == "torch.save":
            torch.save(payload, path)
        else:
            path.write_bytes(pickle.dumps(payload, protocol=2))
        with pytest.raises(DfqError, match=f"cannot load weights from {path}: not a plain state dict that loads without running code") as info:
            load_state_dict(path)
        assert not marker.exists()
        assert "Unsupported global: GLOBAL " in str(info.value) and "weights_only" not in str(info.value)  # no advice to run it

    def test_a_blocked_module_is_named_without_torchs_advice_to_run_it(self, tmp_path):
        path = tmp_path / "evil.pth"
        torch.save({"output.weight": torch.zeros(2), "trap": os.system}, path)
        with pytest.raises(DfqError) as info:
            load_state_dict(path)
        message = str(info.value)
        assert message.startswith(f"cannot load weights from {path}: not a plain state dict that loads without running code (")
        assert "GLOBAL posix.system" in message and "weights_only" not in message and "\n" not in message

    def test_through_the_command_line(self, cli, cifar_checksums, tmp_path):
        marker, path = tmp_path / "ran", tmp_path / "evil.pth"
        torch.save({"trap": Marker(marker)}, path)
        res = cli("run", "--suite", "cifar10", "--methods", "noise", "--bits", "4", "--budget", "smoke", "--data-root",
                  str(cifar_checksums), "--weights", f"resnet20={path}", "--results", str(tmp_path / "r"), "--cache-dir", str(tmp_path))
        assert res.code == 2
        (line,) = res.err.strip().splitlines()[-1:]
        assert line.startswith(f"dfqbench: error: cannot load weights from {path}: not a plain state dict")
        assert "Traceback" not in res.err and not marker.exists()

    def test_safetensors_and_wrapped_checkpoints_load(self, tmp_path):
        from safetensors.torch import save_file

        state = {"a": torch.arange(3.0), "b": torch.ones(2, 2)}
        save_file(state, tmp_path / "w.safetensors")
        torch.save({"model": state, "epoch": 300}, tmp_path / "official.pth")
        for name in ("w.safetensors", "official.pth"):
            loaded = load_state_dict(tmp_path / name)
            assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)


class TestViT:
    @pytest.fixture
    def deit_tiny(self, tmp_path):
        """A randomly initialised DeiT-T (the real architecture) rigged to predict class 1, as safetensors."""
        import timm
        from safetensors.torch import save_file

        torch.manual_seed(0)
        net = rig_to_predict(timm.create_model("deit_tiny_patch16_224", pretrained=False), "head", 1)
        save_file(net.state_dict(), tmp_path / "deit-tiny.safetensors")
        return tmp_path / "deit-tiny.safetensors"

    def test_deit_loads_and_is_evaluated_with_psaqvit_preprocessing(self, deit_tiny, imagenet_root, tmp_path):
        reg = load_registry()
        settings = reg.suite("imagenet-vit").info.data_settings("deit-tiny")
        assert settings == {"crop": 224, "interpolation": "bicubic", "resize": 256}
        printed = []
        env = ZooEnv(cache_dir=tmp_path, data_root=imagenet_root, weights={"deit-tiny": deit_tiny},
                     display=SimpleNamespace(print=printed.append))
        teacher = Session(reg, torch.device("cpu"), env).teacher("imagenet", "deit-tiny", settings)
        assert teacher.fp_top1 == pytest.approx(100 * 1 / 4)  # class 1 holds 1 of the 4 images
        assert teacher.weights["origin"] == "--weights" and teacher.weights["pinned"] == "deit_tiny_patch16_224.fb_in1k"
        # a user's file cannot be compared with the Hub's: said, and recorded as unknown
        assert teacher.weights["matches_pin"] is None and teacher.weights["sha256"] == digest(deit_tiny, "sha256")
        assert any(line.startswith(f"note: --weights deit-tiny={deit_tiny} is used as given") for line in printed)

    def test_a_hub_cache_file_records_its_revision(self, deit_tiny, imagenet_root, tmp_path, monkeypatch):
        """What the Hub client leaves in its cache (a snapshot link to a blob named by its
        sha256) is loaded, checked, and recorded with its commit: no digest is pinned, so
        the revision is what tells two runs' files apart."""
        import hashlib

        repo = tmp_path / "weights" / "huggingface" / "models--timm--deit_tiny_patch16_224.fb_in1k"
        blob = repo / "blobs" / hashlib.sha256(deit_tiny.read_bytes()).hexdigest()
        snapshot = repo / "snapshots" / ("c0ffee" * 6 + "beef") / "model.safetensors"
        blob.parent.mkdir(parents=True)
        snapshot.parent.mkdir(parents=True)
        shutil.copy(deit_tiny, blob)
        snapshot.symlink_to(blob)
        asked = []
        monkeypatch.setattr(timm_teachers, "hf_hub_download", lambda repo_id, name, **kw: asked.append((repo_id, name, kw)) or str(snapshot))
        env = ZooEnv(cache_dir=tmp_path, data_root=imagenet_root)
        timm_teachers.deit_tiny(load_registry().dataset("imagenet").info, env, {})
        assert asked == [("timm/deit_tiny_patch16_224.fb_in1k", "model.safetensors", {"cache_dir": tmp_path / "weights" / "huggingface", "local_files_only": True})]
        assert env.weights_used[("imagenet", "deit-tiny")] == {
            "file": str(snapshot), "origin": "cache", "sha256": blob.name, "pinned": "deit_tiny_patch16_224.fb_in1k",
            "matches_pin": None, "hub_revision": "c0ffee" * 6 + "beef",
        }

    def test_offline_without_weights(self, tmp_path):
        with pytest.raises(DfqError) as info:
            timm_teachers.swin_small(load_registry().dataset("imagenet").info, ZooEnv(cache_dir=tmp_path), {})
        message = str(info.value)
        hub_file = "timm/swin_small_patch4_window7_224.ms_in1k/model.safetensors"
        assert message.startswith(f"no weights for swin-small: {hub_file} is not in {tmp_path / 'weights' / 'huggingface'}")
        assert message.endswith("pass --weights swin-small=PATH")

    def test_pins_are_imagenet_1k_weights_timm_knows(self):
        import timm

        for pin in timm_teachers.PINNED.values():
            assert pin.name in timm.list_pretrained(pin.name)
            assert pin.name.endswith(("fb_in1k", "ms_in1k"))

    def test_a_hub_file_is_checked_against_its_blob_name(self, tmp_path):
        import hashlib

        content = b"weights"
        blob = tmp_path / "blobs" / hashlib.sha256(content).hexdigest()
        blob.parent.mkdir()
        blob.write_bytes(content)
        link = tmp_path / "model.safetensors"
        link.symlink_to(blob)
        timm_teachers.verify_hub_file(link, digest(link, "sha256"), "deit-tiny")
        blob.write_bytes(b"tampered")
        with pytest.raises(DfqError, match="failed its integrity check"):
            timm_teachers.verify_hub_file(link, digest(link, "sha256"), "deit-tiny")


def test_no_download_is_attempted_when_the_flag_gives_the_file(teacher_files, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fail)
    env = ZooEnv(cache_dir=tmp_path, weights={"resnet20": teacher_files["resnet20_cifar100"]})
    ptcv.resnet20(load_registry().dataset("cifar100").info, env, {})
    assert env.weights_used[("cifar100", "resnet20")]["origin"] == "--weights"

