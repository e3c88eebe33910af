"""Bad input: one clear line naming the value and the valid choices, exit 2, nothing lost."""

import re
from pathlib import Path

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
        (["--suite", "cifar1000"], "unknown suite 'cifar1000'; valid choices: cifar10, cifar100, digits, digits-teachers, imagenet, imagenet-vit"),
        (["--methods", "noise,gdfqq"], "unknown method 'gdfqq'; valid choices: adadfq, gdfq, noise, psaqvit, psaqvit-v2, qimera, real-calib, real-kd, zaq, zeroq"),
        (["--models", "resnet99"], "unknown model 'resnet99' in suite 'digits'; valid choices: mobilenetv2-digits, resnet20-digits, vit-digits"),
        (["--bits", "0"], "bad --bits entry '0': bit-width 0 is out of range; valid: integers in 2..16"),
        (["--bits", "33"], "bad --bits entry '33': bit-width 33 is out of range"),
        (["--bits", "abc"], "bad --bits entry 'abc'; valid: integers in 2..16, as '4' (W4A4) or '4w8a' (W4A8)"),
        (["--bits", "4w"], "bad --bits entry '4w'"),
        (["--seeds", "x"], "bad --seeds entry 'x'; valid: integers from 0 to 4294967295"),
        (["--seeds", str(2**64)], f"bad --seeds entry '{2**64}'; valid: integers from 0 to 4294967295"),
        (["--seeds", "٣"], "bad --seeds entry '٣'"),
        (["--seeds", "1" * 4301], "bad --seeds entry '111111111111...1111111111111'; valid: integers from 0 to 4294967295"),  # beyond int()'s digits
        (["--bits", "4w" + "8" * 4301 + "a"], "bad --bits entry '4w8888888888...888888888888a': a bit-width out of range; valid: integers in 2..16"),
        (["--seeds", "0,,1"], "bad --seeds '0,,1': an empty entry"),
        (["--seeds", ""], "bad --seeds '': an empty entry"),
        (["--methods", ""], "bad --methods '': an empty entry; valid: all, or a comma list of adadfq, gdfq, noise, "),
        (["--methods", "all,noise"], "bad --methods 'all,noise': 'all' stands alone; valid: all, or a comma list of adadfq, gdfq, noise, "),
        (["--methods", "noise,"], "bad --methods 'noise,': an empty entry"),
        (["--models", ""], "bad --models '': an empty entry; valid: resnet20-digits, mobilenetv2-digits, vit-digits"),
        (["--bits", ""], "bad --bits entry ''"),
        (["--bits", "４"], "bad --bits entry '４'"),
        (["--methods", "psaqvit", "--models", "resnet20-digits"], "no cell to run: psaqvit supports vit models, resnet20-digits is a cnn"),
        (["--quantizer", "psaqvit", "--models", "resnet20-digits"],
         "quantizer 'psaqvit' places its activation quantizers in ViT blocks, and resnet20-digits is a cnn; valid choices for it: auto, gdfq, zeroq"),
        (["--set", "quantizer.act_sites=psaqvit", "--models", "resnet20-digits"],
         "--set quantizer.act_sites=psaqvit places activation quantizers in ViT blocks, and resnet20-digits is a cnn; valid choices for it: after-relu"),
        # a GELU ViT has no ReLU sites: the activations would stay FP under a WxAx label
        (["--quantizer", "gdfq", "--models", "vit-digits"],
         "quantizer 'gdfq' places its activation quantizers after ReLU/ReLU6 calls, and vit-digits is a vit; valid choices for it: auto, psaqvit"),
        (["--set", "quantizer.act_sites=after-relu", "--models", "vit-digits"],
         "--set quantizer.act_sites=after-relu places activation quantizers after ReLU/ReLU6 calls, and vit-digits is a vit; valid choices for it: psaqvit"),
        (["--set", "noise.batch_size=1e999"], "bad --set value for noise.batch_size: inf is not an integer"),
        (["--methods", "gdfq", "--set", "gdfq.lr_s=1e999"], "bad --set value for gdfq.lr_s: inf is not a finite number"),
        (["--methods", "gdfq", "--set", "gdfq.lr_s=None"], "bad --set value for gdfq.lr_s: None is not a finite number"),
        (["--methods", "gdfq", "--set", "gdfq.betas_g=(0.5,)"], "gdfq.betas_g: (0.5,) is not a tuple of (a finite number, a finite number)"),
        (["--methods", "gdfq", "--set", "gdfq.milestones_s=(1,'a')"], "gdfq.milestones_s: (1, 'a') is not a tuple of integers"),
        (["--set", "quantizer.first_last_bits=abc"], "bad --set value for quantizer.first_last_bits: 'abc' is not an integer or None"),
        (["--set", "quantizer.first_last_bits=1.5"], "quantizer.first_last_bits: 1.5 is not an integer or None"),
        (["--set", "quantizer.first_last_bits=32"], "quantizer first_last_bits=32; valid: 2..16 or None"),
        (["--set", "quantizer.act_momentum=1" + "0" * 400], "bad --set value for quantizer.act_momentum: 1000"),
        (["--set", "noise.batches=0"], "bad --set value for noise: batches=0; valid: 1 or more"),
        (["--methods", "gdfq", "--set", "gdfq.lr_s=-1"], "bad --set value for gdfq: lr_s=-1.0; valid: 0 or more"),
        (["--methods", "gdfq", "--set", "gdfq.milestones_s=(1,-2)"], "bad --set value for gdfq: milestones_s=(1, -2); valid: 0 or more"),
        (["--methods", "gdfq", "--set", "gdfq.betas_g=(0.5,1.0)"], "bad --set value for gdfq: betas_g=(0.5, 1.0); valid: less than 1"),
        (["--methods", "gdfq", "--set", "gdfq.conditioning=nosuch"], "bad --set value for gdfq: conditioning='nosuch'; valid choices: embedding, cbn"),
        (["--methods", "qimera", "--set", "qimera.mix_prob=1.5"], "bad --set value for qimera: mix_prob=1.5; valid: 1 or less"),
        (["--methods", "adadfq", "--set", "adadfq.lambda_lower=0.9"], "lambda_lower=0.9 is above lambda_upper=0.8"),
        (["--methods", "zaq", "--set", "zaq.bn_mode=frozen"], "bad --set value for zaq: bn_mode='frozen'; valid choices: train, eval"),
        # without a calibration epoch no activation range exists: every cell would fail
        (["--methods", "gdfq", "--set", "gdfq.calib_epochs=0"], "bad --set value for gdfq: calib_epochs=0; valid: 1 or more"),
        # a window longer than the run: the student would never train
        (["--methods", "gdfq", "--set", "gdfq.warmup_epochs=1000"], "bad --set value for gdfq: warmup_epochs=1000 is above epochs=32; valid: warmup_epochs ≤ epochs"),
        (["--methods", "psaqvit", "--models", "vit-digits", "--set", "psaqvit.steps=(1,1,1)"],
         "bad --set value for psaqvit: steps=(1, 1, 1) and jitter=(1, 1) name 3 and 2 rounds; valid: one or more rounds, as many of each"),
        (["--methods", "zaq", "--set", "zaq.calib_epochs=0"], "bad --set value for zaq: calib_epochs=0; valid: 1 or more"),
        (["--methods", "zeroq", "--set", "zeroq.iterations=0"], "bad --set value for zeroq: iterations=0; valid: 1 or more"),
        (["--methods", "psaqvit", "--set", "psaqvit.kde_bandwidth=0"], "bad --set value for psaqvit: kde_bandwidth=0.0; valid: more than 0"),
        (["--budget", "huge"], "unknown budget 'huge'; valid choices: default, paper, smoke"),
        (["--device", "tpu"], "device 'tpu' is not available here; valid choices: auto, cpu"),
        (["--device", "cpu:99"], "device 'cpu:99' is not available here; valid choices: auto, cpu"),
        (["--quantizer", "lsq"], "unknown quantizer 'lsq'; valid choices: auto, gdfq, psaqvit, zeroq"),
        (["--set", "noise.nope=1"], "unknown field 'nope' of noise; valid choices: batch_size, batches"),
        (["--set", "noise.batches=many"], "bad --set value for noise.batches: 'many' is not an integer"),
        (["--set", "gdfq.lr=1"], "--set gdfq.…: method 'gdfq' is not in this run's --methods; valid targets: data, quantizer, noise"),
        (["--set", "nosuch.lr=1"], "unknown --set target 'nosuch'; valid choices: data, noise, quantizer"),
        (["--set", "data.resize=256"], "unknown field 'resize' of the data settings of suite 'digits'; valid choices: (none)"),
        (["--suite", "imagenet", "--set", "data.resize=abc"], "bad --set value for data.resize: 'abc' is not an integer"),
        (["--suite", "imagenet", "--set", "data.crop=99999"], "--set data.crop=99999: the model takes 224×224 images; valid choices: 224"),
        (["--suite", "imagenet", "--set", "data.resize=-1"], "--set data.resize=-1: the shorter side must be resized to at least the crop; valid: 224 or more"),
        (["--set", "broken"], "bad --set 'broken'; valid form: METHOD.FIELD=VALUE"),
        (["--set", "quantizer.name=zeroq"], "--set quantizer.name would only relabel the convention; choose one with --quantizer NAME"),
        (["--set", "noise.batches=2", "--set", "noise.batches=3"], "--set noise.batches is given twice, as 2 and 3; give it once"),
        # psaqvit runs no cell on the CNNs, but a typo in its settings is still a typo
        (["--methods", "all", "--models", "resnet20-digits", "--set", "psaqvit.nope=0"], "unknown field 'nope' of psaqvit; valid choices:"),
        (["--methods", "all", "--models", "resnet20-digits", "--set", "psaqvit.kde_bandwidth=abc"],
         "bad --set value for psaqvit.kde_bandwidth: 'abc' is not a finite number"),
        (["--jobs", "0"], "--jobs 0 is not a number of worker processes; valid choices: 1 or more"),
        (["--jobs", "two"], "--jobs 'two' is not a number of worker processes; valid choices: 1 or more"),
        (["--jobs", "-3"], "--jobs -3 is not a number of worker processes; valid choices: 1 or more"),
        (["--jobs", "1" * 5000], "--jobs '111111111111...1111111111111' is not a number of worker processes"),
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


@pytest.mark.parametrize("command", ["table", "show", "leaderboard"])
def test_a_path_the_file_system_refuses_is_one_line(cli, tmp_path, command):
    long = tmp_path / ("a" * 300)  # beyond a file name's 255 bytes
    assert one_line_error(cli(command, "--results", str(long))).startswith(f"dfqbench: error: File name too long: {long}")


def test_a_value_holding_a_newline_is_still_one_line(cli, one_record):
    line = one_line_error(cli("show", "--method", "noise\nevil", "--results", str(one_record.parent.parent)))
    assert "has --method noise\\nevil; valid choices: noise" in line


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
    (tmp_path / "file").write_text("")
    assert one_line_error(cli("table", "--results", str(tmp_path / "file"))).endswith(f"--results {tmp_path / 'file'} is a file; valid: the folder `dfqbench run --results` wrote")


@pytest.mark.parametrize("suite", ["", "cifar10", "../{results}-elsewhere/digits"])
def test_table_of_a_suite_without_records_here(cli, one_record, suite):
    """--suite names a suite of the results folder, never a path out of it."""
    results = one_record.parents[1]
    suite = suite.format(results=results.name)
    elsewhere = results.parent / f"{results.name}-elsewhere" / "digits"
    elsewhere.mkdir(parents=True)
    (elsewhere / "records.jsonl").write_bytes(one_record.read_bytes())
    line = one_line_error(cli("table", "--results", str(results), "--suite", suite))
    assert f"unknown suite {suite!r} with records under {results}; valid choices: digits" in line
    assert sorted(p.name for p in elsewhere.iterdir()) == ["records.jsonl"]  # no tables written there


def error_after_the_header(result):
    """Errors found while loading teachers come after the run's header lines; still one error line."""
    assert result.code == 2 and "Traceback" not in result.err, result.err
    lines = result.err.strip().splitlines()
    assert [line for line in lines if line.startswith("dfqbench: error:")] == lines[-1:], result.err
    return lines[-1]


@pytest.fixture
def one_record(cli, tmp_path):
    """A results folder with one ok record (noise, resnet20-digits, W3A3, smoke)."""
    args = ("run", "--methods", "noise", "--models", "resnet20-digits", "--bits", "3", "--budget", "smoke", "--results", str(tmp_path))
    assert cli(*args).code == 0
    return tmp_path / "digits" / "records.jsonl"


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda good: good + b"\xc0\xff\n", "line 2 is not UTF-8 text; fix or delete that line"),
        (lambda good: good.replace(b'"top1": ', b'"top1": "abc", "was": '), "line 1 has top1 'abc'; valid: a finite number or null"),
        (lambda good: good.replace(b'"top1": ', b'"top1": NaN, "was": '), "line 1 has top1 nan; valid: a finite number or null"),
        # a table would show its mean as nan and count the record
        (lambda good: good.replace(b'"top1": ', b'"top1": null, "was": '), "line 1 is ok without a top1; valid: a finite number"),
        (lambda good: good.replace(b'"top1": ', b'"top1": ' + b"9" * 400 + b', "was": '), "line 1 has top1 999"),
        (lambda good: good.replace(b'"teacher_sha256": ', b'"teacher_sha256": 7, "was": '), "line 1 has teacher_sha256 7, not a string or null"),
        (lambda good: good.replace(b'"cell": ', b'"cell": [], "was": '), "line 1 has cell [], not a JSON object"),
        # fields that only a table, a resume check or show reads: refused before a run does any work
        (lambda good: good.replace(b'"versions": ', b'"versions": "x", "was": '), "line 1 has versions 'x', not a JSON object"),
        (lambda good: good.replace(b'"labels": ', b'"labels": {"year": "x"}, "was": '), "line 1 has labels year 'x', not an integer"),
        (lambda good: good.replace(b'"top1": ', b'"top1": ' + b"1" * 5000 + b', "was": '), "line 1 cannot be read (Exceeds the limit"),
    ],
)
def test_damaged_records_are_one_line_for_every_command(cli, one_record, damage, expected):
    damaged = damage(one_record.read_bytes())
    one_record.write_bytes(damaged)
    results = str(one_record.parent.parent)
    for command in (("table",), ("leaderboard",), ("show",), ("run", "--methods", "noise", "--budget", "smoke", "--bits", "4")):
        assert expected in one_line_error(cli(*command, "--results", results)), command
    assert one_record.read_bytes() == damaged


def test_records_file_that_is_a_folder(cli, tmp_path):
    (tmp_path / "digits" / "records.jsonl").mkdir(parents=True)
    for command in ("table", "leaderboard", "show"):
        assert "records.jsonl is not a file" in one_line_error(cli(command, "--results", str(tmp_path)))


def test_a_results_folder_that_takes_no_new_file_is_refused_before_any_cell(cli, one_record, monkeypatch):
    """The tables are written beside their old files and renamed over them: appending to the
    old files is not enough (an immutable folder, as `chattr +i` makes one, refuses the new)."""
    import tempfile

    real = tempfile.TemporaryFile

    def immutable(*args, dir=None, **kwargs):
        if dir == one_record.parent:
            raise PermissionError(1, "Operation not permitted")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", immutable)
    before = one_record.read_text()
    line = one_line_error(cli("run", "--methods", "noise", "--models", "resnet20-digits", "--bits", "4", "--budget", "smoke",
                              "--results", str(one_record.parent.parent)))  # fmt: skip
    assert line == (f"dfqbench: error: cannot write {one_record.parent / 'table.csv'}: Operation not permitted; "
                    "the run writes its tables there: move it, or choose another --results")  # fmt: skip
    assert one_record.read_text() == before


def test_a_table_file_that_is_not_ours_to_write_is_refused_before_any_cell(cli, one_record, monkeypatch):
    """Another user's table in a shared (sticky) folder cannot be renamed over: opening it to
    append fails the same way, which is what the check tries (as root, simulated)."""
    import builtins

    import dfqbench.tables as tables

    theirs = one_record.parent / "table.md"

    def guarded(path, *args, **kwargs):
        if Path(path) == theirs:
            raise PermissionError(13, "Permission denied", str(path))
        return builtins.open(path, *args, **kwargs)

    monkeypatch.setattr(tables, "open", guarded, raising=False)
    line = one_line_error(cli("run", "--methods", "noise", "--models", "resnet20-digits", "--bits", "4", "--budget", "smoke",
                              "--results", str(one_record.parent.parent)))  # fmt: skip
    assert line.startswith(f"dfqbench: error: cannot write {theirs}: Permission denied; the run writes its tables there")
    assert len(one_record.read_text().splitlines()) == 1


def test_tables_that_cannot_be_written_leave_the_records_intact(cli, one_record):
    (one_record.parent / "table.md").unlink()
    (one_record.parent / "table.md").mkdir()  # in the way of the markdown table
    before = one_record.read_text()
    line = one_line_error(cli("table", "--results", str(one_record.parent.parent)))
    assert line.startswith(f"dfqbench: error: cannot write {one_record.parent / 'table.md'}: Is a directory; the records are intact")
    assert one_record.read_text() == before
    # a run finds it before any cell runs, not after
    line = one_line_error(cli("run", "--methods", "noise", "--models", "resnet20-digits", "--bits", "4", "--budget", "smoke",
                              "--results", str(one_record.parent.parent)))  # fmt: skip
    assert line.startswith(f"dfqbench: error: cannot write {one_record.parent / 'table.md'}: Is a directory; the run writes its tables there")
    assert one_record.read_text() == before


@pytest.mark.parametrize("command", [("run", "--methods", "noise", "--dry-run"), ("table",), ("show",), ("leaderboard",)])
def test_an_empty_results_folder_name_is_refused(cli, tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)  # where an empty path would have put the records
    assert "Invalid value for '--results': an empty path; valid: a folder" in one_line_error(cli(*command, "--results", ""))
    assert list(tmp_path.iterdir()) == []


def test_weights_twice_or_a_folder(cli, tmp_path):
    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    a.write_text("")
    b.write_text("")
    args = ("run", "--suite", "cifar10", "--methods", "noise", "--dry-run", "--results", str(tmp_path))
    line = one_line_error(cli(*args, "--weights", f"resnet20={a}", "--weights", f"resnet20={b}"))
    assert f"--weights resnet20 given twice ({a}, {b}); valid: one file per model" in line
    assert f"--weights resnet20={tmp_path} is a folder; valid: the weights file itself" in one_line_error(cli(*args, "--weights", f"resnet20={tmp_path}"))


def test_weights_for_a_model_that_takes_none_or_is_not_run(cli, one_record, tmp_path):
    weights = tmp_path / "w.pth"
    weights.write_text("not weights")
    args = ("run", "--methods", "noise", "--budget", "smoke", "--bits", "4", "--results", str(tmp_path))
    line = error_after_the_header(cli(*args, "--models", "resnet20-digits", "--weights", f"resnet20-digits={weights}"))
    assert "--weights resnet20-digits=…: the resnet20-digits loader takes no weights file (it trains or fetches its own); leave it out" in line
    # also where the model's cells are done (W3A3): the resume check loads the teacher and refuses the file there
    done = cli("run", "--methods", "noise", "--budget", "smoke", "--bits", "3", "--results", str(tmp_path), "--models", "resnet20-digits",
               "--weights", f"resnet20-digits={weights}")  # fmt: skip
    assert "the resnet20-digits loader takes no weights file" in error_after_the_header(done)
    res = cli(*args, "--models", "resnet20-digits", "--weights", f"vit-digits={weights}")
    assert res.code == 0 and "note: --weights vit-digits=… is for a model this run does not use" in res.err


def test_cache_dir_that_is_a_file(cli, tmp_path):
    (tmp_path / "cache").write_text("")
    for given in (tmp_path / "cache", tmp_path / "cache" / "sub"):
        line = one_line_error(cli("run", "--methods", "noise", "--cache-dir", str(given), "--results", str(tmp_path)))
        assert f"--cache-dir {given}: {tmp_path / 'cache'} is a file; valid: a folder (created if missing)" in line


def test_cache_folder_from_the_environment_that_is_unusable(cli, tmp_path, monkeypatch):
    """DFQBENCH_CACHE is checked like --cache-dir, before any cell (not a failed record per cell)."""
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("DFQBENCH_CACHE", str(tmp_path / "file"))
    args = ("run", "--methods", "noise", "--models", "resnet20-digits", "--bits", "3", "--budget", "smoke", "--results", str(tmp_path / "r"))
    line = one_line_error(cli(*args))
    assert line == f"dfqbench: error: the cache folder (DFQBENCH_CACHE, XDG_CACHE_HOME or ~/.cache) {tmp_path / 'file'}: {tmp_path / 'file'} is a file; valid: a folder (created if missing)"
    monkeypatch.setenv("DFQBENCH_CACHE", "/proc/dfqbench-cache")  # no folder can be made there, not even by root
    assert one_line_error(cli(*args)).endswith("/proc/dfqbench-cache: No such file or directory; valid: a writable folder (created if missing)")
    assert cli(*args, "--dry-run").code == 0  # a dry run creates nothing, so it does not try
    assert not (tmp_path / "r" / "digits" / "records.jsonl").exists()


def test_ray_option_values_are_checked_before_anything_runs(cli, tmp_path):
    pytest.importorskip("ray")
    args = ("run", "--methods", "noise", "--executor", "ray", "--results", str(tmp_path), "--dry-run")
    line = one_line_error(cli(*args, "--executor-option", "num_gpus=abc"))
    assert "bad --executor-option value for ray: The type of keyword 'num_gpus' must be" in line
    assert "cannot be negative" in one_line_error(cli(*args, "--executor-option", "num_gpus=-1"))


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--method", "nosuch"], "has --method nosuch; valid choices: noise"),
        (["--model", "nosuch"], "has --model nosuch; valid choices: resnet20-digits"),
        (["--seed", "7"], "has --seed 7; valid choices: 0"),
        (["--precision", "fp16"], "has --precision fp16; valid choices: fp32"),
        (["--bits", "4"], "has --bits 4w4a; valid choices: 3w3a"),
        (["--suite", "cifar10"], "unknown suite 'cifar10' with records under"),
        (["zzzz"], "has a key starting with 'zzzz'"),
        ([""], "an empty KEY; valid: a cell key or its first characters"),
        (["--bits", ""], "bad --bits entry ''"),
        (["--method", "noise", "--seed", "1"], "has --seed 1; valid choices: 0"),
    ],
)
def test_show_names_what_the_records_have(cli, one_record, args, expected):
    assert expected in one_line_error(cli("show", *args, "--results", str(one_record.parent.parent)))


def test_show_on_an_empty_records_file(cli, tmp_path):
    (tmp_path / "digits").mkdir()
    (tmp_path / "digits" / "records.jsonl").write_text("")
    for args in ((), ("--seed", "3")):
        assert f"no records under {tmp_path}; run `dfqbench run` first" in one_line_error(cli("show", *args, "--results", str(tmp_path)))


def test_repeated_entries_count_once(cli, tmp_path):
    res = cli("run", "--methods", "noise,noise", "--seeds", "0,00", "--models", "resnet20-digits", "--bits", "4,4w4a", "--dry-run",
              "--results", str(tmp_path))  # fmt: skip
    assert res.code == 0 and "1 cells planned" in res.err


def test_a_quantizer_is_checked_only_against_the_models_it_would_run_on(cli, tmp_path):
    res = cli("run", "--methods", "psaqvit", "--quantizer", "psaqvit", "--dry-run", "--results", str(tmp_path))
    assert res.code == 0, res.err
    assert "3 cells planned" in res.err and "note: skipped psaqvit supports vit models, resnet20-digits is a cnn" in res.err


def test_set_values_of_literal_any_and_unresolvable_annotations():
    from dataclasses import dataclass
    from typing import Any, Literal

    from dfqbench import overrides
    from dfqbench.errors import DfqError

    @dataclass(frozen=True)
    class Config:
        mode: Literal["fast", "slow"] = "fast"
        extra: Any = None
        rate: float = 0.1

    assert overrides.apply(Config(), {"mode": "slow", "extra": [1], "rate": 1}, "m") == Config("slow", [1], 1.0)
    with pytest.raises(DfqError, match="bad --set value for m.mode: 'medium' is not one of 'fast', 'slow'"):
        overrides.apply(Config(), {"mode": "medium"}, "m")

    @dataclass(frozen=True)
    class Unresolvable:
        size: "NoSuchType" = 3  # noqa: F821 - judged by the current value instead

    assert overrides.apply(Unresolvable(), {"size": 4}, "m").size == 4
    with pytest.raises(DfqError, match="'big' is not an integer"):
        overrides.apply(Unresolvable(), {"size": "big"}, "m")


def test_check_config_bounds_every_element_and_names_the_rule():
    from dataclasses import dataclass

    from dfqbench.api import check_config

    @dataclass(frozen=True)
    class Config:
        steps: tuple[int, ...] = (5, 5)
        rate: float = 0.5
        mode: str = "a"

        def __post_init__(self):
            check_config(self, at_least={"steps": 1}, above={"rate": 0}, at_most={"rate": 1}, choices={"mode": ("a", "b")})

    Config(steps=(1,), rate=1.0, mode="b")  # every bound is inclusive or strict as named
    for kwargs, message in [
        ({"steps": (5, 0)}, "steps=(5, 0); valid: 1 or more"),
        ({"rate": 0.0}, "rate=0.0; valid: more than 0"),
        ({"rate": 1.5}, "rate=1.5; valid: 1 or less"),
        ({"mode": "c"}, "mode='c'; valid choices: a, b"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            Config(**kwargs)


def test_versus_a_method_no_suite_has(cli, one_record):
    results = one_record.parent.parent
    line = one_line_error(cli("table", "--results", str(results), "--versus", "nosie"))
    assert line == f"dfqbench: error: no 'nosie' records in {one_record}; methods there: noise"
    assert not list(one_record.parent.glob("versus-*"))
    # a suite without it, beside one with it: a note, and the other suite's table
    other = results / "other" / "records.jsonl"
    other.parent.mkdir()
    other.write_text(one_record.read_text().replace('"method": "noise"', '"method": "gdfq"'))
    res = cli("table", "--results", str(results), "--versus", "noise")
    assert res.code == 0 and f"note: no 'noise' records in {other}; methods there: gdfq" in res.err
    assert (one_record.parent / "versus-noise.md").exists() and not (other.parent / "versus-noise.md").exists()
    # repeatable: each baseline where it has records
    res = cli("table", "--results", str(results), "--versus", "noise", "--versus", "gdfq")
    assert res.code == 0 and f"note: no 'gdfq' records in {one_record}; methods there: noise" in res.err
    assert (other.parent / "versus-gdfq.md").exists() and not (one_record.parent / "versus-gdfq.md").exists()
