"""`dfqbench run` on the paper suites, on small files in the real formats, offline."""

import shutil

import pytest
import torch

from dfqbench.plan import make_plan, make_task
from dfqbench.records import RecordStore
from dfqbench.registry import load_registry
from dfqbench_suites.paper_suites import GDFQ_CIFAR10, IMAGENET_MEAN, PYTORCHCV_CIFAR

from .formats import PYTORCHCV_RIGS


def records(results, suite):
    return RecordStore(results / suite / "records.jsonl").read()


def one_line_error(result):
    """The error line of a run that stopped on bad input (after the run's header lines)."""
    assert result.code == 2, (result.out, result.err)
    lines = result.err.strip().splitlines()
    errors = [line for line in lines if line.startswith("dfqbench: error:")]
    assert errors == lines[-1:] and "Traceback" not in result.err
    return errors[0]


def test_cifar10_smoke_matrix(cli, cifar_checksums, teacher_files, tmp_path):
    results = tmp_path / "results"
    res = cli("run", "--suite", "cifar10", "--methods", "noise", "--bits", "3,4", "--budget", "smoke",
              "--set", "noise.batch_size=8", "--data-root", str(cifar_checksums), "--weights", f"resnet20={teacher_files['resnet20_cifar10']}",
              "--results", str(results), "--cache-dir", str(tmp_path / "cache"))
    assert res.code == 0, res.err
    recs = records(results, "cifar10")
    assert sorted((r["cell"]["method"], r["cell"]["w_bits"]) for r in recs) == [("noise", 3), ("noise", 4)]
    for r in recs:
        assert r["status"] == "ok", r["error"]
        assert r["fp_top1"] == pytest.approx(PYTORCHCV_RIGS["resnet20_cifar10"][1])
        # the rigged classifier's zero weights quantize to zero and its bias stays FP, so the
        # quantized model still predicts the rigged class: the whole path on the real format
        assert r["top1"] == pytest.approx(PYTORCHCV_RIGS["resnet20_cifar10"][1])
        assert r["cell"]["data"] == {"normalization": "gdfq"}
        assert r["labels"]["dataset"] == "CIFAR-10" and r["labels"]["model"] == "ResNet-20"
        assert r["weights"]["origin"] == "--weights" and r["weights"]["pinned"] == "resnet20_cifar10-0597-9b0024ac.pth"
    table = (results / "cifar10" / "table.md").read_text()
    assert "| CIFAR-10  | ResNet-20 (30.00; pub 93.89) | 4w4a" in table


def test_other_weights_for_a_model_rerun_its_cells(cli, cifar_checksums, teacher_files, tmp_path):
    """The key names the model, not the file: a second run with another --weights file must
    not take the first file's records as its own."""
    from pytorchcv.model_provider import get_model

    from dfqbench.zoo.store import weights_sha256

    from .formats import rig_to_predict

    other = rig_to_predict(get_model("resnet20_cifar10", pretrained=False), "output", 0)  # another class: 10.00 %
    torch.save(other.state_dict(), tmp_path / "other.pth")
    args = ("run", "--suite", "cifar10", "--methods", "noise", "--bits", "4", "--budget", "smoke", "--set", "noise.batch_size=8",
            "--data-root", str(cifar_checksums), "--results", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"))
    assert cli(*args, "--weights", f"resnet20={teacher_files['resnet20_cifar10']}").code == 0
    res = cli(*args, "--weights", f"resnet20={tmp_path / 'other.pth'}")
    assert res.code == 0, res.err
    assert "note: 1 ok record(s) of resnet20 were made with other teacher weights" in res.err
    first, second = records(tmp_path / "results", "cifar10")
    assert first["key"] == second["key"]
    assert second["teacher_sha256"] == weights_sha256(other) != first["teacher_sha256"]
    assert (first["fp_top1"], second["fp_top1"]) == (pytest.approx(30.0), pytest.approx(10.0))
    assert "| CIFAR-10  | ResNet-20 (10.00; pub 93.89) | 4w4a" in res.out
    # offline, without the file, nothing can be compared: the records count as done, with a note
    res = cli(*args)
    assert res.code == 0, res.err
    assert "note: the teacher of resnet20 did not load to check which weights its records were made with" in res.err
    assert "1 cells planned, 1 already done, 0 to run" in res.err


def test_imagenet_smoke_on_mobilenetv2(cli, imagenet_root, teacher_files, tmp_path):
    results = tmp_path / "results"
    res = cli("run", "--suite", "imagenet", "--models", "mobilenetv2", "--methods", "noise", "--bits", "4", "--budget", "smoke",
              "--set", "noise.batches=1", "--set", "noise.batch_size=1", "--data-root", str(imagenet_root),
              "--weights", f"mobilenetv2={teacher_files['mobilenetv2_w1']}", "--results", str(results), "--cache-dir", str(tmp_path))
    assert res.code == 0, res.err
    (r,) = records(results, "imagenet")
    assert r["status"] == "ok", r["error"]
    assert r["fp_top1"] == pytest.approx(PYTORCHCV_RIGS["mobilenetv2_w1"][1])
    assert r["cell"]["data"] == {"resize": 256, "crop": 224, "interpolation": "bilinear"}
    assert "holds 4 images in 3 of 1000 classes" in res.err


class TestMissingDataOrWeights:
    """One line naming what is missing, where it was looked for and the flag; nothing recorded."""

    def test_missing_cifar(self, cli, tmp_path):
        res = cli("run", "--suite", "cifar100", "--methods", "noise", "--data-root", str(tmp_path / "data"),
                  "--results", str(tmp_path / "r"), "--cache-dir", str(tmp_path))
        line = one_line_error(res)
        assert line.startswith(f"dfqbench: error: CIFAR-100 not found: no folder {tmp_path / 'data' / 'cifar-100-python'}")
        assert "--data-root" in line and "--download" in line
        assert records(tmp_path / "r", "cifar100") == []

    def test_missing_imagenet_is_found_before_any_weights_are_fetched(self, cli, tmp_path):
        res = cli("run", "--suite", "imagenet", "--methods", "noise", "--data-root", str(tmp_path),
                  "--results", str(tmp_path / "r"), "--cache-dir", str(tmp_path))
        line = one_line_error(res)
        assert line.startswith(f"dfqbench: error: ImageNet val images not found: no class folders in {tmp_path / 'imagenet' / 'val'}")
        assert "downloading" not in res.err and "--data-root DIR" in line

    def test_a_missing_training_split_stops_the_run_before_any_cell(self, cli, imagenet_root, teacher_files, tmp_path):
        """Only real-calib reads the training images; without them nothing runs, not even the
        data-free cells planned before it (on ImageNet, hours of GPU work before the error)."""
        shutil.copytree(imagenet_root / "imagenet" / "val", tmp_path / "data" / "imagenet" / "val")
        res = cli("run", "--suite", "imagenet", "--models", "mobilenetv2", "--methods", "noise,real-calib", "--bits", "4",
                  "--data-root", str(tmp_path / "data"), "--weights", f"mobilenetv2={teacher_files['mobilenetv2_w1']}",
                  "--results", str(tmp_path / "r"), "--cache-dir", str(tmp_path))
        assert one_line_error(res).startswith(f"dfqbench: error: ImageNet train images not found: no class folders in {tmp_path / 'data' / 'imagenet' / 'train'}")
        assert records(tmp_path / "r", "imagenet") == []
        ok = cli("run", "--suite", "imagenet", "--models", "mobilenetv2", "--methods", "noise", "--bits", "4", "--budget", "smoke",
                 "--set", "noise.batches=1", "--set", "noise.batch_size=1", "--data-root", str(tmp_path / "data"),
                 "--weights", f"mobilenetv2={teacher_files['mobilenetv2_w1']}", "--results", str(tmp_path / "r"), "--cache-dir", str(tmp_path))
        assert ok.code == 0, ok.err  # data-free methods need no training images

    def test_missing_weights_of_a_later_row_stop_the_run_before_any_cell(self, cli, imagenet_root, teacher_files, tmp_path):
        res = cli("run", "--suite", "imagenet", "--models", "resnet18,resnet50", "--methods", "noise", "--bits", "4",
                  "--data-root", str(imagenet_root), "--weights", f"resnet18={teacher_files['resnet18']}",
                  "--results", str(tmp_path / "r"), "--cache-dir", str(tmp_path))
        line = one_line_error(res)
        assert line.startswith("dfqbench: error: no weights for resnet50: resnet50-0633-b00d1c8e.pth is neither in")
        assert line.endswith("pass --weights resnet50=PATH")
        assert records(tmp_path / "r", "imagenet") == []  # resnet18's cells did not run either

    def test_missing_vit_weights(self, cli, imagenet_root, tmp_path):
        res = cli("run", "--suite", "imagenet-vit", "--models", "deit-base", "--methods", "noise",
                  "--data-root", str(imagenet_root), "--results", str(tmp_path / "r"), "--cache-dir", str(tmp_path))
        assert one_line_error(res).endswith("pass --weights deit-base=PATH")

    @pytest.mark.parametrize(
        "args, expected",
        [
            (["--weights", "resnet21=/w.pth"], "unknown model 'resnet21'; valid choices: deit-base,"),
            (["--weights", "resnet20=/nonexistent/w.pth"], "--weights resnet20=/nonexistent/w.pth: no such file"),
            (["--set", "data.normalization=zeroq"], "unknown normalization 'zeroq' of dataset 'cifar10'; valid choices: gdfq, pytorchcv"),
        ],
    )
    def test_bad_flags(self, cli, tmp_path, args, expected):
        res = cli("run", "--suite", "cifar10", "--methods", "noise", *args, "--results", str(tmp_path), "--cache-dir", str(tmp_path))
        assert expected in one_line_error(res)


class TestSuites:
    def test_the_paper_matrix(self):
        reg = load_registry()
        expected = {
            "cifar10": ([("cifar10", "resnet20")], ("3", "4", "5")),
            "cifar100": ([("cifar100", "resnet20")], ("3", "4", "5")),
            "imagenet": ([("imagenet", "resnet18"), ("imagenet", "mobilenetv2"), ("imagenet", "resnet50")], ("3", "4", "5")),
            "imagenet-vit": ([("imagenet", m) for m in ("deit-tiny", "deit-small", "deit-base", "swin-tiny", "swin-small")], ("4w8a", "8w8a")),
        }
        for name, (rows, bits) in expected.items():
            info = reg.suite(name).info
            assert (list(info.rows), info.bits) == (rows, bits)
        labels = {m: reg.model(m).info.display_name for m in ("resnet20", "resnet18", "resnet50", "mobilenetv2", "deit-tiny", "swin-small")}
        assert labels == {"resnet20": "ResNet-20", "resnet18": "ResNet-18", "resnet50": "ResNet-50", "mobilenetv2": "MobileNetV2",
                          "deit-tiny": "DeiT-T", "swin-small": "Swin-S"}
        assert [reg.dataset(d).info.display_name for d in ("cifar10", "cifar100", "imagenet")] == ["CIFAR-10", "CIFAR-100", "ImageNet"]
        assert {reg.model(m).info.family for _, m in reg.suite("imagenet-vit").info.rows} == {"vit"}

    def test_vit_preprocessing_per_model(self):
        info = load_registry().suite("imagenet-vit").info
        assert info.data_settings("deit-base") == {"crop": 224, "interpolation": "bicubic", "resize": 256}
        assert info.data_settings("swin-tiny") == {"crop": 224, "interpolation": "bicubic", "resize": 248}

    def test_normalisation_setting_reaches_the_task_and_the_cell(self):
        reg = load_registry()
        default = make_plan(reg, "cifar10", ["noise"], None, [(4, 4)], [0], "smoke").cells[0]
        assert make_task(reg, "cifar10", "cifar10", "resnet20", 4, 4, default.data).mean == GDFQ_CIFAR10[0]
        changed = make_plan(reg, "cifar10", ["noise"], None, [(4, 4)], [0], "smoke", changes={"data": {"normalization": "pytorchcv"}}).cells[0]
        task = make_task(reg, "cifar10", "cifar10", "resnet20", 4, 4, changed.data)
        assert (task.mean, task.std) == PYTORCHCV_CIFAR
        assert changed.data == {"normalization": "pytorchcv"} and changed.key != default.key
        assert make_task(reg, "imagenet", "imagenet", "resnet18", 4, 4, {}).mean == IMAGENET_MEAN
