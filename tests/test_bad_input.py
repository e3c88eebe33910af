"""Bad input: one clear line naming the value and the valid choices, exit 2, nothing lost."""

import pytest


def one_line_error(result):
    assert result.code == 2, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    return lines[0]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--suite", "cifar1000"], "unknown suite 'cifar1000'; valid choices: cifar10, cifar100, digits, imagenet, imagenet-vit"),
        (["--methods", "noise,gdfqq"], "unknown method 'gdfqq'; valid choices: adadfq, gdfq, noise, psaqvit, psaqvit-v2, qimera, real-calib, zaq, zeroq"),
        (["--models", "resnet99"], "unknown model 'resnet99' in suite 'digits'; valid choices: mobilenetv2-digits, resnet20-digits, vit-digits"),
        (["--bits", "0"], "bad --bits entry '0': bit-width 0 is out of range; valid: integers in 2..16"),
        (["--bits", "33"], "bad --bits entry '33': bit-width 33 is out of range"),
        (["--bits", "abc"], "bad --bits entry 'abc'; valid: integers in 2..16, as '4' (W4A4) or '4w8a' (W4A8)"),
        (["--bits", "4w"], "bad --bits entry '4w'"),
        (["--seeds", "x"], "bad --seeds entry 'x'; valid: non-negative integers"),
        (["--budget", "huge"], "unknown budget 'huge'; valid choices: default, paper, smoke"),
        (["--device", "tpu"], "device 'tpu' is not available here; valid choices: auto, cpu"),
        (["--quantizer", "lsq"], "unknown quantizer 'lsq'; valid choices: gdfq, psaqvit, zeroq"),
        (["--set", "noise.nope=1"], "unknown field 'nope' of noise; valid choices: batch_size, batches"),
        (["--set", "noise.batches=many"], "bad --set value for noise.batches: 'many' is not of type int"),
        (["--set", "gdfq.lr=1"], "unknown --set target 'gdfq'; valid choices: data, noise, quantizer"),
        (["--set", "data.resize=256"], "unknown field 'resize' of the data settings of suite 'digits'; valid choices: (none)"),
        (["--set", "broken"], "bad --set 'broken'; valid form: METHOD.FIELD=VALUE"),
        (["--jobs", "0"], "--jobs 0 is not a number of worker processes; valid choices: 1 or more"),
        (["--jobs", "two"], "'two' is not a valid integer"),
        (["--frobnicate"], "No such option '--frobnicate'"),
    ],
)
def test_bad_run_options(cli, tmp_path, args, expected):
    methods = [] if "--methods" in args else ["--methods", "noise"]
    result = cli("run", *methods, *args, "--results", str(tmp_path))
    assert expected in one_line_error(result)
    assert not (tmp_path / "digits" / "records.jsonl").exists()


@pytest.mark.parametrize("dry_run", [(), ("--dry-run",)])
def test_unwritable_results_folder(cli, tmp_path, dry_run):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    line = one_line_error(cli("run", "--methods", "noise", "--budget", "smoke", "--results", str(blocker), *dry_run))
    assert line.startswith(f"dfqbench: error: cannot write records to {blocker}/digits/records.jsonl: Not a directory")
    assert "--results" in line


def test_corrupt_record_line_stops_before_any_work_and_loses_nothing(cli, tmp_path):
    args = ("run", "--methods", "noise", "--models", "resnet20-digits", "--bits", "3", "--budget", "smoke", "--results", str(tmp_path))
    assert cli(*args).code == 0
    path = tmp_path / "digits" / "records.jsonl"
    good = path.read_text()
    path.write_text(good + "{this is not json\n")
    line = one_line_error(cli(*args, "--bits", "4"))
    assert f"{path} line 2 is not valid JSON" in line
    assert path.read_text() == good + "{this is not json\n"
    assert "line 2" in one_line_error(cli("table", "--results", str(tmp_path)))


def test_table_without_records(cli, tmp_path):
    line = one_line_error(cli("table", "--results", str(tmp_path)))
    assert "no records under" in line and "dfqbench run" in line
