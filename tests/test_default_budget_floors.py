"""The default budget does what the committed results say: a method beats the naive
baseline where that baseline loses clearly. Seed 0, one cell per method; minutes on a CPU,
so behind the ``slow`` marker (``pytest -m slow``). The margins are well inside what
``results/digits/`` measured for seed 0 (quoted beside each), so only a real regression
trips them."""

import pytest

from dfqbench.records import RecordStore

pytestmark = pytest.mark.slow


def top1(cli, tmp_path, *args):
    """Top-1 by (method, model)."""
    res = cli("run", "--seeds", "0", "--budget", "default", "--results", str(tmp_path), *args)
    assert res.code == 0, res.err
    return {(r["cell"]["method"], r["cell"]["model"]): r["top1"] for r in RecordStore(tmp_path / "digits" / "records.jsonl").read()}


def test_gdfq_beats_noise_at_w3a3(cli, tmp_path):
    acc = top1(cli, tmp_path, "--methods", "noise,gdfq", "--models", "resnet20-digits,mobilenetv2-digits", "--bits", "3")
    # ResNet-20: measured 85.14 ± 1.46 (seed 0: +3.7; +5.7 on the previous CPU) vs 81.52 ± 1.55. With the
    # former 200-iteration warm-up GDFQ was level with noise there (seed 0: +0.7), which this floor trips on
    assert acc["gdfq", "resnet20-digits"] >= acc["noise", "resnet20-digits"] + 2.0, acc
    # MobileNetV2: measured 93.60 ± 2.11 (seed 0: +12.0) vs 80.80 ± 0.67
    assert acc["gdfq", "mobilenetv2-digits"] >= acc["noise", "mobilenetv2-digits"] + 3.0, acc


def test_zeroq_beats_noise_at_w3a3_under_its_own_range_estimator(cli, tmp_path):
    acc = top1(cli, tmp_path, "--methods", "noise,zeroq", "--models", "resnet20-digits", "--bits", "3",
               "--quantizer", "zeroq")  # fmt: skip
    assert acc["zeroq", "resnet20-digits"] >= acc["noise", "resnet20-digits"] + 3.0, acc  # measured: 78.24 ± 1.14 (seed 0: +9.5) vs 72.57 ± 3.01


def test_psaqvit_v2_beats_noise_at_w4a4(cli, tmp_path):
    acc = top1(cli, tmp_path, "--methods", "noise,psaqvit,psaqvit-v2", "--models", "vit-digits", "--bits", "4")
    assert acc["psaqvit", "vit-digits"] >= acc["noise", "vit-digits"] + 20.0, acc  # measured: 68.28 ± 6.84 (seed 0: +38.7) vs 24.10 ± 2.11
    assert acc["psaqvit-v2", "vit-digits"] >= acc["noise", "vit-digits"] + 30.0, acc  # measured: 71.73 ± 3.27 (seed 0: +47.2)


def test_qimera_adadfq_and_real_kd_beat_noise_at_w3a3(cli, tmp_path):
    acc = top1(cli, tmp_path, "--methods", "noise,qimera,adadfq,real-kd", "--models", "resnet20-digits", "--bits", "3")
    assert acc["qimera", "resnet20-digits"] >= acc["noise", "resnet20-digits"] + 2.0, acc  # measured: 83.64 ± 2.00 (seed 0: +5.8) vs 81.52 ± 1.55
    assert acc["adadfq", "resnet20-digits"] >= acc["noise", "resnet20-digits"] + 3.0, acc  # measured: 91.32 ± 2.30 (seed 0: +12.0)
    # GDFQ's training on real images: the loop can lift this teacher (94.32 ± 0.77, seed 0: +13.9)
    assert acc["real-kd", "resnet20-digits"] >= acc["noise", "resnet20-digits"] + 5.0, acc
