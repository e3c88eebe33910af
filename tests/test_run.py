"""``dfqbench run`` end to end on the digits suite: records, resume, isolation, guarantees."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dfqbench.records import RecordStore


def records(results, suite="digits"):
    return RecordStore(results / suite / "records.jsonl").read()


def test_baselines_smoke_matrix_end_to_end(cli, tmp_path):
    results = tmp_path / "results"
    res = cli("run", "--methods", "noise,real-calib", "--models", "resnet20-digits,mobilenetv2-digits", "--bits", "2,3,4",
              "--budget", "smoke", "--results", str(results))
    assert res.code == 0, res.err
    recs = records(results)
    assert len(recs) == 2 * 2 * 3  # models × methods × bits
    assert {r["status"] for r in recs} == {"ok"}
    for r in recs:
        assert r["fp_top1"] >= 97.0
        assert r["cell"]["budget"] == "smoke"
        assert r["versions"]["torch"] == torch.__version__
        assert r["machine"]["cpu"] and r["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
        assert r["wall_time_s"] > 0 and r["peak_mem_mb"] > 0
        assert r["cell"]["quantizer"]["act_range"] == "ema"
    four_bit = [r for r in recs if r["cell"]["w_bits"] == 4]
    assert all(r["top1"] > 80.0 for r in four_bit)  # calibration alone keeps 4-bit usable
    two_bit = [r for r in recs if r["cell"]["w_bits"] == 2]
    assert all(r["top1"] < r["fp_top1"] - 30 for r in two_bit)  # and 2-bit is badly hurt
    table = (results / "digits" / "table.md").read_text()
    assert "budget `smoke`" in table and "quantizer `gdfq`" in table and "dfqbench 0.1.0" in table
    fp = next(r["fp_top1"] for r in recs if r["cell"]["model"] == "resnet20-digits")
    assert f"ResNet-20 (4/8/16) ({fp:.2f})" in table
    assert "Real-calib†" in table
    assert "### Suite `digits`" in res.out  # the table is printed
    assert "plugins: " in res.err and "baselines (dfqbench 0.1.0)" in res.err
    csv = (results / "digits" / "table.csv").read_text().splitlines()
    assert len(csv) == 1 + 12


def test_second_run_does_no_work(cli, tmp_path):
    args = ("run", "--methods", "noise", "--models", "resnet20-digits", "--bits", "3,4", "--budget", "smoke", "--results", str(tmp_path))
    assert cli(*args).code == 0
    before = (tmp_path / "digits" / "records.jsonl").read_text()
    again = cli(*args)
    assert again.code == 0
    assert "2 cells planned, 2 already done, 0 to run" in again.err
    assert (tmp_path / "digits" / "records.jsonl").read_text() == before
    rerun = cli(*args, "--no-resume")
    assert "0 already done, 2 to run" in rerun.err
    assert len(records(tmp_path)) == 4  # appended, never rewritten


def test_records_made_with_other_teacher_weights_do_not_count_as_done(cli, tmp_path):
    """--resume skips a cell only if its record was made with the weights this run loads: a
    changed --weights file (here: a forged digest) reruns the cell; a record from before the
    digest is taken as it is."""
    from dfqbench.registry import load_registry
    from dfqbench.session import Session

    args = ("run", "--methods", "noise", "--models", "resnet20-digits", "--bits", "3,4,5", "--budget", "smoke", "--results", str(tmp_path))
    assert cli(*args).code == 0
    first = records(tmp_path)
    sha256 = Session(load_registry(), torch.device("cpu")).teacher_sha256("digits", "resnet20-digits", {})
    assert {r["teacher_sha256"] for r in first} == {sha256}
    first[0]["teacher_sha256"] = "0" * 64  # made with other weights
    del first[1]["teacher_sha256"]  # made before records carried the digest
    path = tmp_path / "digits" / "records.jsonl"
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in first))
    again = cli(*args)
    assert again.code == 0, again.err
    assert f"note: 1 ok record(s) of resnet20-digits were made with other teacher weights (sha256 000000000000…, this run's {sha256[:12]}…)" in again.err
    assert "3 cells planned, 2 already done, 1 to run" in again.err
    rerun = records(tmp_path)[3:]
    assert [(r["key"], r["teacher_sha256"]) for r in rerun] == [(first[0]["key"], sha256)]
    assert "Not comparable" not in again.out  # the rerun superseded the odd record
    assert "3 cells planned, 3 already done, 0 to run" in cli(*args).err


def test_a_teacher_loads_once_for_the_resume_check_and_the_run(cli, tmp_path, monkeypatch):
    """The resume check loads a model's weights for their digest; the run takes that module
    instead of loading (on a real suite: reading or downloading) it again, and a model whose
    cells are all done is not kept after the check."""
    import dfqbench.session

    loads = []
    real = dfqbench.session.load_object

    def spy(path):
        target = real(path)
        if not path.startswith("dfqbench_suites.digits:"):  # the digits models' loaders
            return target
        return lambda *a, **k: loads.append(path) or target(*a, **k)

    args = ("run", "--methods", "noise", "--bits", "3", "--budget", "smoke", "--results", str(tmp_path))
    assert cli(*args, "--models", "resnet20-digits,mobilenetv2-digits").code == 0
    assert cli(*args, "--models", "mobilenetv2-digits", "--bits", "4").code == 0
    monkeypatch.setattr(dfqbench.session, "load_object", spy)
    captured = {}
    prepare = dfqbench.session.Session.prepare

    def prepare_and_look(self, cells, evaluate=True):
        prepare(self, cells, evaluate)
        captured["spare"] = dict(getattr(self, "_spare", {}))

    monkeypatch.setattr(dfqbench.session.Session, "prepare", prepare_and_look)
    again = cli(*args, "--models", "resnet20-digits,mobilenetv2-digits", "--bits", "3,4")
    assert again.code == 0, again.err
    assert "4 cells planned, 3 already done, 1 to run" in again.err
    assert sorted(loads) == sorted(set(loads)) and len(loads) == 2, loads  # each model's weights once
    assert captured["spare"] == {}


def test_dry_run_lists_what_would_run_and_runs_nothing(cli, tmp_path):
    args = ("run", "--methods", "noise,gdfq", "--models", "resnet20-digits", "--bits", "3,4w8a", "--seeds", "0,1", "--budget", "smoke",
            "--results", str(tmp_path))
    assert cli(*args, "--seeds", "0", "--methods", "noise").code == 0  # the last --seeds/--methods win: noise, seed 0 done
    before = (tmp_path / "digits" / "records.jsonl").read_text()
    cache = tmp_path / "empty-cache"
    dry = cli(*args, "--set", "gdfq.lr_s=0.002", "--dry-run", "--cache-dir", str(cache))
    assert dry.code == 0, dry.err
    assert "8 cells planned, 2 already done, 6 to run; dry run: nothing runs" in dry.err
    rows = [line.split("|")[1:-1] for line in dry.out.splitlines()[2:]]
    assert [[c.strip() for c in row] for row in rows] == [
        ["gdfq (lr_s=0.002)", "digits", "resnet20-digits", "3w3a", "smoke", "gdfq", "0,1"],
        ["gdfq (lr_s=0.002)", "digits", "resnet20-digits", "4w8a", "smoke", "gdfq", "0,1"],
        ["noise", "digits", "resnet20-digits", "3w3a", "smoke", "gdfq", "1"],
        ["noise", "digits", "resnet20-digits", "4w8a", "smoke", "gdfq", "1"],
    ]
    assert (tmp_path / "digits" / "records.jsonl").read_text() == before
    assert not cache.exists()  # no teacher was trained or loaded
    fresh = tmp_path / "fresh"
    assert cli(*args[:-1], str(fresh), "--dry-run").code == 0
    assert not fresh.exists()  # a dry run leaves the file system as it was
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / "records.jsonl").write_text("")  # e.g. a run stopped before its first cell
    table = cli("table", "--results", str(tmp_path))
    assert table.code == 0 and "### Suite `digits`" in table.out  # an empty suite is skipped, not an error


def test_interrupted_run_keeps_completed_cells_and_resumes(cli, probes, tmp_path, monkeypatch):
    args = ("run", "--methods", "probe-interrupt", "--models", "resnet20-digits", "--bits", "3,4,5", "--results", str(tmp_path))
    monkeypatch.setenv("DFQBENCH_PROBE_INTERRUPT", "1")
    first = cli(*args)
    assert first.code == 130
    assert "interrupted" in first.err
    done = records(tmp_path)
    assert [r["cell"]["w_bits"] for r in done] == [3]  # the cell before Ctrl-C is kept
    assert (tmp_path / "digits" / "table.md").exists()
    monkeypatch.delenv("DFQBENCH_PROBE_INTERRUPT")
    second = cli(*args)
    assert second.code == 0
    assert "3 cells planned, 1 already done, 2 to run" in second.err
    assert sorted(r["cell"]["w_bits"] for r in records(tmp_path)) == [3, 4, 5]


@pytest.mark.parametrize(
    "executor, stop, code",
    [(("--jobs", "1"), signal.SIGINT, 130), (("--jobs", "2"), signal.SIGINT, 130), (("--executor", "ray"), signal.SIGINT, 130),
     # a scheduler's preemption or time limit
     (("--jobs", "1"), signal.SIGTERM, 143), (("--jobs", "2"), signal.SIGTERM, 143), (("--executor", "ray"), signal.SIGTERM, 143)],
)
def test_real_sigint_stops_cleanly(probes, tmp_path, executor, stop, code):
    env = dict(os.environ, DFQBENCH_PROBE_SLEEP="2")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dfqbench", "run", "--methods", "probe-slow", "--models", "resnet20-digits",
         "--bits", "3,4,5,6,7,8", *executor, "--results", str(tmp_path)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a background job of a non-interactive shell (some CI runners) inherits SIGINT
        # ignored, and Python then never installs its handler: restore what a terminal gives
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    path = tmp_path / "digits" / "records.jsonl"
    deadline = time.time() + 300  # a Ray cluster starts slowly on a loaded 2-core machine
    while time.time() < deadline and not (path.exists() and path.read_text().strip()):
        time.sleep(0.2)
    started = path.exists() and bool(path.read_text().strip())
    proc.send_signal(stop)
    out, err = proc.communicate(timeout=60)
    assert started, "no cell had finished within 300 s: the machine is too slow for this test"
    assert proc.returncode == code, err
    assert "Traceback" not in err and "interrupted: completed cells are kept" in err
    assert (tmp_path / "digits" / "table.md").exists()
    kept = records(tmp_path)
    assert 1 <= len(kept) < 6 and all(r["status"] == "ok" for r in kept)
    time.sleep(3)  # nothing runs on (a probe cell takes 2 s): workers and tasks were stopped, not orphaned
    assert len(records(tmp_path)) == len(kept)


def test_worker_processes_give_the_same_records_as_one_process(cli, tmp_path):
    runs = []
    for name, jobs in (("one", "1"), ("two", "2")):
        res = cli("run", "--methods", "noise,zeroq,gdfq", "--models", "resnet20-digits,mobilenetv2-digits", "--bits", "3,4",
                  "--budget", "smoke", "--jobs", jobs, "--results", str(tmp_path / name))
        assert res.code == 0, res.err
        runs.append({r["key"]: (r["status"], r["top1"], r["metrics"], r["device"]) for r in records(tmp_path / name)})
    assert len(runs[0]) == 12 and runs[0] == runs[1]


def test_work_units_keep_a_methods_bit_widths_together_while_every_worker_has_work():
    from dfqbench.executor import work_units
    from dfqbench.plan import make_plan
    from dfqbench.registry import load_registry

    cells = make_plan(load_registry(), "digits", ["zeroq", "noise"], ["resnet20-digits"], [(3, 3), (4, 4)], [0, 1], "smoke").cells
    units = work_units(cells, jobs=2)
    assert len(units) == 4 and all(len({(c.method, c.seed) for c in u}) == 1 and len(u) == 2 for u in units)
    assert sorted(c.key for u in units for c in u) == sorted(c.key for c in cells)
    assert work_units(cells, jobs=8) == [[c] for c in cells]  # fewer groups than workers: one cell each
    # ... but bit-widths trained jointly stay one unit: split, each would train its own generator
    from dfqbench.session import Session

    gdfq = make_plan(load_registry(), "digits", ["gdfq", "zeroq"], ["resnet20-digits"], [(3, 3), (4, 4)], [0], "smoke").cells
    units = work_units(gdfq, jobs=4, trainings=Session(load_registry(), torch.device("cpu")).trainings)
    assert sorted((u[0].method, len(u)) for u in units) == [("gdfq", 2), ("zeroq", 1), ("zeroq", 1)]


def test_a_worker_that_cannot_start_is_one_clear_error(tmp_path):
    from dfqbench.errors import DfqError
    from dfqbench.executor import WorkerSpec, run_parallel
    from dfqbench.plan import make_plan
    from dfqbench.progress import Display
    from dfqbench.registry import load_registry
    from dfqbench.session import Session

    reg = load_registry()
    cells = make_plan(reg, "digits", ["noise"], ["resnet20-digits"], [(3, 3), (4, 4)], [0], "smoke").cells
    store = RecordStore(tmp_path / "records.jsonl")
    spec = WorkerSpec("cuda:99", 1, store.path, tmp_path / "cache")  # no machine has a 100th GPU
    with pytest.raises(DfqError, match="a worker process on cuda:99 could not start"):
        run_parallel(cells, Session(reg, torch.device("cpu")), store, True, Display(None), 2, spec)


def test_a_worker_that_dies_loses_only_its_cell_and_the_run_goes_on(cli, probes, tmp_path, monkeypatch):
    """A worker killed in a cell (here it ends itself, as the OOM killer would) is replaced
    and the other cells run, as with a Slurm job or Ray task that dies (multiprocessing's
    Pool, used before, waited forever for the dead worker's result)."""
    args = ("run", "--methods", "probe-crash", "--models", "resnet20-digits", "--bits", "3,4,5", "--jobs", "2", "--results", str(tmp_path))
    monkeypatch.setenv("DFQBENCH_PROBE_CRASH", "1")
    first = cli(*args)
    err = " ".join(first.err.split())
    assert first.code == 1 and "Traceback" not in err
    assert ("✗ a worker process: 1 of its 1 cells without a record (e.g. probe-crash · resnet20-digits · 4w4a · seed 0): "
            "the process died (exit code 9)") in err
    assert "1 cells have no record (the jobs or worker processes that ran them died); run the same command again to retry them" in err
    assert sorted(r["cell"]["w_bits"] for r in records(tmp_path)) == [3, 5]
    assert (tmp_path / "digits" / "table.md").exists()
    monkeypatch.delenv("DFQBENCH_PROBE_CRASH")
    second = cli(*args)
    assert second.code == 0, second.err
    assert "3 cells planned, 2 already done, 1 to run" in second.err


def test_worker_devices_round_robin_over_the_gpus(monkeypatch):
    from dfqbench.executor import worker_devices

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert worker_devices(torch.device("cuda"), 3) == ["cuda:0", "cuda:1", "cuda:0"]
    assert worker_devices(torch.device("cuda:1"), 2) == ["cuda:1", "cuda:1"]  # a named GPU is shared
    assert worker_devices(torch.device("cpu"), 2) == ["cpu", "cpu"]


def test_each_cell_is_isolated(cli, probes, tmp_path):
    res = cli("run", "--methods", "probe-fail,probe-nan,probe-oom,probe-uncalibrated,noise",
              "--models", "resnet20-digits", "--bits", "3", "--results", str(tmp_path))
    assert res.code == 1  # the run went on, recorded everything, and says that cells failed
    assert f"3 cells failed: `dfqbench show --results {tmp_path}` lists them with their errors" in res.err
    assert "Traceback" not in res.err
    status = {r["cell"]["method"]: r for r in records(tmp_path)}
    assert status["probe-fail"]["status"] == "failed"
    assert status["probe-fail"]["error"]["type"] == "ValueError"
    assert status["probe-fail"]["error"]["message"].endswith("frame #0: a stack, as torch's errors carry")
    # the run's line for the cell gives the message's first line only
    assert "✗ probe-fail · resnet20-digits · 3w3a · seed 0: failed: ValueError: probe failure\n" in res.err and "frame #0" not in res.err
    assert status["probe-nan"]["status"] == "diverged"
    assert "loss became nan" in status["probe-nan"]["error"]["message"]
    assert status["probe-oom"]["status"] == "failed"
    assert status["probe-oom"]["error"]["type"] == "OutOfMemoryError"
    assert status["probe-uncalibrated"]["status"] == "failed"
    assert "uncalibrated" in status["probe-uncalibrated"]["error"]["message"]
    assert status["noise"]["status"] == "ok"  # the run went on after every failure
    table = (tmp_path / "digits" / "table.md").read_text()
    assert "| failed" in table and "| diverged" in table
    res = cli("show", "--results", str(tmp_path), "--method", "probe-fail")  # the error, with where it happened
    assert res.code == 0 and "status failed · top-1 –" in res.out and "error ValueError: probe failure" in res.out
    assert 'raise ValueError("probe failure' in res.out
    res = cli("show", "--results", str(tmp_path), "--method", "probe-nan")  # what was logged up to the divergence
    assert res.code == 0 and "status diverged" in res.out and "loss became nan" in res.out


def test_third_party_plugin_runs_in_a_matrix(cli, example_plugin, tmp_path):
    res = cli("run", "--methods", "uniform-calib,noise", "--bits", "4", "--budget", "smoke", "--results", str(tmp_path))
    assert res.code == 0, res.err
    ours = [r for r in records(tmp_path) if r["cell"]["method"] == "uniform-calib"]
    assert len(ours) == 2 and all(r["status"] == "ok" for r in ours)
    assert ours[0]["versions"]["plugin"] == {"name": "example", "distribution": "dfqbench-example", "version": "0.2.0"}
    assert all(r["top1"] > 50 for r in ours)
    assert "Uniform-calib" in (tmp_path / "digits" / "table.md").read_text()
    assert "example (dfqbench-example 0.2.0)" in res.err
    # the author ships 0.3.0: its records still count (the key holds the config, not the
    # code), and the run says which ones came from the older version
    path = tmp_path / "digits" / "records.jsonl"
    path.write_text(path.read_text().replace('"version": "0.2.0"', '"version": "0.1.0"'))
    args = ("run", "--methods", "uniform-calib,noise", "--bits", "4", "--budget", "smoke", "--results", str(tmp_path))
    for again in (cli(*args), cli(*args, "--dry-run")):
        assert again.code == 0, again.err
        note = "note: 2 ok record(s) of uniform-calib were made with dfqbench-example 0.1.0, this run has 0.2.0: they count as done"
        assert note in again.err and "5 already done, 0 to run" in again.err
        assert "record(s) of noise" not in again.err


def test_same_seed_same_device_same_record(cli, tmp_path):
    """On a method that trains, so the losses it logs are compared too: GDFQ's generator and
    student losses to the last digit."""
    outs = []
    for name in ("a", "b"):
        res = cli("run", "--methods", "gdfq", "--models", "mobilenetv2-digits", "--bits", "3", "--seeds", "0,1",
                  "--budget", "smoke", "--results", str(tmp_path / name))
        assert res.code == 0
        outs.append([(r["key"], r["top1"], r["top5"], r["metrics"]) for r in records(tmp_path / name)])
    assert outs[0] == outs[1]
    assert {"g_loss", "s_loss"} <= set(outs[0][0][3])
    assert outs[0][0][3] != outs[0][1][3]  # and the seed matters


def test_key_is_a_hash_of_exactly_the_cell():
    from dfqbench.plan import Cell

    base = dict(suite="digits", dataset="digits", model="m", method="noise", w_bits=4, a_bits=4, seed=0,
                budget="default", quantizer={"name": "gdfq"}, config={"batches": 32})
    key = Cell(**base).key
    assert Cell(**dict(base)).key == key
    for field, value in [("seed", 1), ("budget", "smoke"), ("a_bits", 8), ("config", {"batches": 31}),
                         ("quantizer", {"name": "zeroq"}), ("data", {"normalization": "pytorchcv"})]:
        assert Cell(**{**base, field: value}).key != key
    # how a configuration was reached (--set or defaults) is not part of the cell's identity
    assert Cell(**base, overrides={"noise": {"batches": 32}}).key == key
    # nor is the memory layout (a speed setting, like the device); the arithmetic is
    assert Cell(**base, channels_last=True).key == key
    assert Cell(**base, precision="bf16").key != key


class TestDataFree:
    def test_data_free_methods_never_get_real_data(self, cli, probes, tmp_path, monkeypatch):
        from dfqbench.data import digits
        from dfqbench.errors import DataFreeViolation

        requested = []
        original = digits.load_split
        monkeypatch.setattr(digits, "load_split", lambda split, env=None, settings=None: requested.append(split) or original(split, env, settings))
        from dfqbench_probes import methods

        methods.SEEN.clear()
        res = cli("run", "--methods", "probe-spy,probe-greedy,probe-sneaky,noise", "--models", "resnet20-digits", "--bits", "4",
                  "--results", str(tmp_path))
        assert res.code == 1  # probe-greedy and probe-sneaky failed
        assert "train" not in requested  # the training split is not even loaded
        (seen,) = methods.SEEN
        with pytest.raises(DataFreeViolation):
            seen["ctx"].real_data("train")
        for value in vars(seen["ctx"]).values():
            assert not isinstance(value, (torch.utils.data.Dataset, torch.utils.data.DataLoader))
        by_method = {r["cell"]["method"]: r for r in records(tmp_path)}
        assert by_method["probe-greedy"]["status"] == "failed" and by_method["probe-greedy"]["error"]["type"] == "DataFreeViolation"
        # a loader called directly, around the run context, is fenced off while a data-free method runs
        sneaky = by_method["probe-sneaky"]
        assert sneaky["status"] == "failed" and sneaky["error"]["type"] == "DataFreeViolation"
        assert "probe-sneaky is registered as data-free and tried to load Digits (val split)" in sneaky["error"]["message"]
        assert by_method["noise"]["status"] == by_method["probe-spy"]["status"] == "ok"

    def test_the_built_in_methods_run_without_real_data(self, cli, tmp_path, monkeypatch):
        from dfqbench.data import digits
        from dfqbench.registry import load_registry

        builtin = {n: e.info.data_free for n, e in load_registry().methods.items() if e.plugin.distribution == "dfqbench"}
        assert {n for n, free in builtin.items() if not free} == {"real-calib", "real-kd"}  # the declared references only
        requested = []
        original = digits.load_split
        monkeypatch.setattr(digits, "load_split", lambda split, env=None, settings=None: requested.append(split) or original(split, env, settings))
        data_free = sorted(n for n, free in builtin.items() if free)
        res = cli("run", "--methods", ",".join(data_free), "--models", "resnet20-digits,vit-digits", "--bits", "4",
                  "--budget", "smoke", "--results", str(tmp_path))
        assert res.code == 0, res.err
        recs = records(tmp_path)
        assert sorted({r["cell"]["method"] for r in recs}) == data_free  # each on the model family it supports
        assert all(r["status"] == "ok" and r["labels"]["data_free"] for r in recs)
        assert "train" not in requested and requested  # only the harness's evaluation read real images

    def test_every_dataset_loader_of_the_suites_refuses_while_a_data_free_method_runs(self, tmp_path):
        from dfqbench.api import load_object
        from dfqbench.data.fence import fenced
        from dfqbench.errors import DataFreeViolation
        from dfqbench.registry import load_registry
        from dfqbench.zoo import ZooEnv

        datasets = load_registry().datasets
        assert {"digits", "cifar10", "cifar100", "imagenet"} <= set(datasets)
        for name, entry in datasets.items():
            with fenced("m"), pytest.raises(DataFreeViolation, match=f"m is registered as data-free and tried to load {entry.info.display_name}"):
                load_object(entry.info.loader)("train", ZooEnv(data_root=tmp_path), {})
        assert len(load_object(datasets["digits"].info.loader)("train")) == 1198  # the fence is down again

    @pytest.mark.parametrize("reference", ["real-calib", "real-kd"])
    def test_only_the_declared_references_read_the_training_split(self, cli, tmp_path, monkeypatch, reference):
        from dfqbench.data import digits

        requested = []
        original = digits.load_split
        monkeypatch.setattr(digits, "load_split", lambda split, env=None, settings=None: requested.append(split) or original(split, env, settings))
        res = cli("run", "--methods", reference, "--models", "resnet20-digits", "--bits", "4", "--budget", "smoke",
                  "--results", str(tmp_path))
        assert res.code == 0
        (record,) = records(tmp_path)
        assert "train" in requested and record["labels"]["data_free"] is False
        assert record["top1"] > 80  # a working model (both 95-96 when written; chance is 10)

    def test_evaluation_never_moves_activation_ranges(self, probes, tmp_path):
        from dfqbench.plan import make_plan
        from dfqbench.quant import quant_acts
        from dfqbench.registry import load_registry
        from dfqbench.session import Session

        reg = load_registry()
        (cell,) = make_plan(reg, "digits", ["probe-leave-open"], ["resnet20-digits"], [(3, 3)], [0], "default").cells
        session = Session(reg, torch.device("cpu"))
        captured = {}
        original = session._checked

        def spy(result):
            captured["before"] = [(a.x_min.item(), a.x_max.item()) for _, a in quant_acts(result)]
            captured["model"] = original(result)
            return captured["model"]

        session._checked = spy
        record = session.run(cell)
        assert record["status"] == "ok"
        after = [(a.x_min.item(), a.x_max.item()) for _, a in quant_acts(captured["model"])]
        assert after == captured["before"]  # no validation image ever reached a range


def test_set_changes_are_recorded_and_shown_as_a_variant(cli, tmp_path):
    args = ("run", "--models", "resnet20-digits", "--bits", "3", "--budget", "smoke", "--results", str(tmp_path))
    assert cli(*args, "--methods", "noise").code == 0
    assert cli(*args, "--methods", "noise", "--set", "noise.batches=3").code == 0
    recs = records(tmp_path)
    assert [r["cell"]["overrides"] for r in recs] == [{}, {"noise": {"batches": 3}}]
    assert recs[1]["cell"]["config"]["batches"] == 3
    table = (tmp_path / "digits" / "table.md").read_text()
    header = next(l for l in table.splitlines() if l.startswith("| Dataset"))
    assert [c.strip() for c in header.strip("|").split("|")][3:] == ["Noise", "Noise (batches=3)"]
    # a --set that restates the budget's default (smoke: 2 batches) is the default run: done already,
    # and run again it keeps the default's key and label instead of relabelling its column
    res = cli(*args, "--methods", "noise", "--set", "noise.batches=2", "--dry-run")
    assert res.code == 0 and "1 cells planned, 1 already done, 0 to run" in res.err
    assert cli(*args, "--methods", "noise", "--set", "noise.batches=2", "--no-resume").code == 0
    recs = records(tmp_path)
    assert recs[2]["key"] == recs[0]["key"] and recs[2]["cell"]["overrides"] == {}
    assert next(l for l in (tmp_path / "digits" / "table.md").read_text().splitlines() if l.startswith("| Dataset")) == header


def test_records_are_plain_json_lines(cli, tmp_path):
    cli("run", "--methods", "noise", "--models", "resnet20-digits", "--bits", "3", "--budget", "smoke", "--results", str(tmp_path))
    (line,) = (tmp_path / "digits" / "records.jsonl").read_text().splitlines()
    record = json.loads(line)
    for field in ("key", "cell", "status", "top1", "top5", "fp_top1", "wall_time_s", "device", "peak_mem_mb",
                  "versions", "error", "labels", "quant_sites"):
        assert field in record
    assert record["cell"]["config"] == {"batches": 2, "batch_size": 64}


def test_leaderboard_from_stored_records(cli, tmp_path):
    assert cli("leaderboard", "--results", str(tmp_path)).code == 2  # nothing recorded yet
    cli("run", "--methods", "noise,real-calib", "--models", "resnet20-digits", "--bits", "3", "--budget", "smoke", "--results", str(tmp_path))
    res = cli("leaderboard", "--results", str(tmp_path))
    assert res.code == 0
    board = (tmp_path / "leaderboard.md").read_text()
    assert "| Noise " in board and "Real-calib" not in board  # references are never ranked


def test_tuning_sessions_evaluate_on_the_training_split_and_say_so(monkeypatch):
    from dfqbench.data import digits
    from dfqbench.plan import make_plan
    from dfqbench.registry import load_registry
    from dfqbench.session import Session

    requested = []
    original = digits.load_split
    monkeypatch.setattr(digits, "load_split", lambda split, env=None, settings=None: requested.append(split) or original(split, env, settings))
    reg = load_registry()
    (cell,) = make_plan(reg, "digits", ["noise"], ["resnet20-digits"], [(4, 4)], [0], "smoke").cells
    record = Session(reg, torch.device("cpu"), eval_split="train").run(cell)
    assert record["eval_split"] == "train" and record["status"] == "ok"
    assert requested == ["train"]  # teacher and quantized model measured on it; validation never loaded
    assert record["fp_top1"] > 99.0  # a teacher is near-perfect on its own training images


def test_every_logged_value_is_kept_and_shown(cli, tmp_path):
    res = cli("run", "--methods", "gdfq,noise", "--models", "resnet20-digits", "--bits", "3,4", "--budget", "smoke",
              "--results", str(tmp_path))
    assert res.code == 0, res.err
    store = RecordStore(tmp_path / "digits" / "records.jsonl")
    gdfq = [r for r in store.read() if r["cell"]["method"] == "gdfq"]
    for record in gdfq:
        history = store.history(record)
        assert set(history) == set(record["metrics"])
        for name, values in history.items():  # one value per epoch, the last one the record's
            assert len(values) == record["metrics"][name]["count"] and values[-1] == record["metrics"][name]["last"]
    assert len(history["g_loss"]) == 2  # the smoke budget's 2 epochs

    res = cli("show", "--results", str(tmp_path), "--method", "gdfq")
    assert res.code == 0 and "2 cells match" in res.err
    assert {gdfq[0]["key"], gdfq[1]["key"]} <= set(res.out.split())
    res = cli("show", gdfq[1]["key"][:8], "--results", str(tmp_path))
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    assert lines[0].startswith(f"cell {gdfq[1]['key']}: gdfq · digits/resnet20-digits · 4w4a · seed 0 · budget smoke")
    assert f"teacher weights sha256 {gdfq[1]['teacher_sha256']}" in lines
    assert f"made with dfqbench 0.1.0{' (source ' + gdfq[1]['versions']['source'] + ')' if gdfq[1]['versions']['source'] else ''}" in res.out
    assert f"machine {gdfq[1]['machine']['cpu']} · {torch.backends.cpu.get_cpu_capability()}" in lines
    header = next(line for line in lines if "g_loss" in line)
    assert [c.strip() for c in header.strip("|").split("|")][1:] == list(store.history(gdfq[1]))
    row = lines[lines.index(header) + 3]  # header, rule, epoch 0, epoch 1
    assert float(row.strip("|").split("|")[1]) == pytest.approx(store.history(gdfq[1])["g_loss"][1], rel=1e-5)
    res = cli("show", "--results", str(tmp_path), "--method", "noise", "--bits", "3")
    assert res.code == 0 and "noise · digits/resnet20-digits · 3w3a" in res.out

    log = tmp_path / "digits" / gdfq[1]["log"]
    log.unlink()  # a lost log: the record is still shown, with a note
    res = cli("show", gdfq[1]["key"][:8], "--results", str(tmp_path))
    assert res.code == 0 and res.out.startswith(f"cell {gdfq[1]['key']}") and "no metric history (the record predates logs, or its log is gone)" in res.out
    assert res.err.startswith(f"note: cannot read the log of cell {gdfq[1]['key']} ({log}): ")

    for args, message in [
        (("zzz",), "no cell under"),
        (("--bits", "3,4"), "--bits 3,4 names 2 settings; valid: one, such as 4 or 4w8a"),
        (("--suite", "cifar10"), "unknown suite 'cifar10' with records under"),
    ]:
        res = cli("show", "--results", str(tmp_path), *args)
        assert res.code == 2 and len(res.err.strip().splitlines()) == 1 and message in res.err, res.err


def test_records_made_before_logs_show_without_history(cli):
    """AdaDFQ's committed MobileNetV2 records of its earlier default (2026-11-22) predate
    both logs and the machine field: shown with the last values the record keeps."""
    from dfqbench.records import latest

    results = Path(__file__).parent.parent / "results"
    old = [r for r in latest(RecordStore(results / "digits" / "records.jsonl").read()) if r["cell"]["method"] == "adadfq" and "log" not in r]
    record = min(old, key=lambda r: r["finished"])
    res = cli("show", record["key"], "--results", str(results))
    assert res.code == 0 and "no metric history" in res.out and "status ok" in res.out
    assert "machine – (the record predates it)" in res.out.splitlines()
    assert f'"g_loss": {record["metrics"]["g_loss"]["last"]}' in res.out  # the last values the record keeps


def test_show_marks_records_the_tables_no_longer_count(cli):
    """ZAQ's committed records include cells made under an earlier default (lr_q 0.01), which
    the current default (the paper's 0.1) superseded: listed and shown as such."""
    results = Path(__file__).parent.parent / "results"
    res = cli("show", "--results", str(results), "--method", "zaq", "--model", "resnet20-digits", "--bits", "3", "--seed", "0",
              "--precision", "fp32")
    rows = {line.split("|")[1].strip(): line.split("|")[-2].strip() for line in res.out.splitlines()[2:]}
    records = {r["key"]: r for r in RecordStore(results / "digits" / "records.jsonl").read()}
    superseded = [records[k] for k, v in rows.items() if v == "superseded"]  # one per quantizer
    assert sorted((r["cell"]["quantizer"]["name"], r["cell"]["config"]["lr_q"]) for r in superseded) == [("gdfq", 0.01), ("zeroq", 0.01)]
    assert all(records[k]["cell"]["config"]["lr_q"] == 0.1 for k, v in rows.items() if v == "yes")
    old = next(k for k, v in rows.items() if v == "superseded")
    assert "superseded (a later configuration of this entry is the one tabled)" in cli("show", old, "--results", str(results)).out


def test_a_record_names_the_source_it_was_made_with(cli, tmp_path):
    from dfqbench.source import CHECKOUT, revision

    res = cli("run", "--methods", "noise", "--models", "resnet20-digits", "--bits", "4", "--budget", "smoke", "--results", str(tmp_path))
    assert res.code == 0, res.err
    (record,) = records(tmp_path)
    assert record["versions"]["source"] == revision()
    if (CHECKOUT / ".git").exists():  # an editable install in a checkout (else: None, a regular install)
        head = subprocess.run(["git", "-C", str(CHECKOUT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
        assert record["versions"]["source"].removesuffix("+dirty") == head[:12]


def test_more_jobs_than_work_start_no_idle_workers_and_methods_count_once(cli, tmp_path):
    res = cli("run", "--methods", "noise,noise", "--models", "resnet20-digits", "--bits", "4", "--budget", "smoke", "--jobs", "64",
              "--results", str(tmp_path))  # fmt: skip
    assert res.code == 0, res.err
    assert "1 cells planned, 0 already done, 1 to run\n" in res.err  # one worker: one group of cells
    (record,) = records(tmp_path)
    assert record["device"] == f"cpu ({torch.get_num_threads()} threads)"  # and it gets every thread, not 1/64 of them


def test_joint_bit_widths_give_the_records_of_separate_runs(cli, tmp_path):
    runs = {}
    for name, flag in (("joint", "--joint"), ("alone", "--no-joint")):
        res = cli("run", "--methods", "gdfq,qimera,adadfq", "--models", "resnet20-digits", "--bits", "3,4,5", "--budget", "smoke",
                  "--results", str(tmp_path / name), flag)
        assert res.code == 0, res.err
        assert ("9 to run as 5 trainings (bit-widths trained jointly)" in res.err) == (name == "joint")
        store = RecordStore(tmp_path / name / "digits" / "records.jsonl")
        runs[name] = {r["key"]: r | {"history": store.history(r)} for r in store.read()}
    same = ("status", "top1", "top5", "metrics", "history", "quant_sites", "fp_top1")
    assert len(runs["joint"]) == 9 and {k: [r[f] for f in same] for k, r in runs["joint"].items()} == {
        k: [r[f] for f in same] for k, r in runs["alone"].items()
    }
    assert not any("joint" in r for r in runs["alone"].values())
    for method in ("gdfq", "qimera"):  # one training of three bit-widths, its time shared equally
        group = [r for r in runs["joint"].values() if r["cell"]["method"] == method]
        joint = group[0]["joint"]
        assert sorted(joint["keys"]) == sorted(r["key"] for r in group) and all(r["joint"] == joint for r in group)
        assert sum(r["wall_time_s"] for r in group) == pytest.approx(joint["wall_time_s"], abs=0.01)
    assert not any("joint" in r for r in runs["joint"].values() if r["cell"]["method"] == "adadfq")  # its generator sees the student
    res = cli("show", group[0]["key"], "--results", str(tmp_path / "joint"))
    assert res.code == 0 and "trained jointly with 2 other bit-width(s) on one generator" in res.out


def test_only_cells_that_differ_in_nothing_but_bits_train_jointly():
    from dfqbench.plan import make_plan
    from dfqbench.registry import load_registry
    from dfqbench.session import Session

    reg = load_registry()
    session = Session(reg, torch.device("cpu"))
    digits = make_plan(reg, "digits", ["gdfq", "zeroq", "zaq"], ["resnet20-digits"], [(3, 3), (4, 4)], [0, 1], "smoke").cells
    groups = session.trainings(digits)
    assert sorted(len(g) for g in groups) == [1] * 8 + [2] * 2  # GDFQ per seed; ZeroQ and ZAQ cell by cell
    assert all(len({(c.method, c.seed) for c in g}) == 1 for g in groups)
    # Qimera's CIFAR-100 settings differ by bit-width (K = 10 at 4 bits, 50 at 5): no joint training
    cifar100 = make_plan(reg, "cifar100", ["qimera"], ["resnet20"], [(4, 4), (5, 5)], [0], "smoke").cells
    assert [len(g) for g in session.trainings(cifar100)] == [1, 1]
    session.joint = False
    assert [len(g) for g in session.trainings(digits)] == [1] * 12


def test_a_method_that_does_not_import_where_it_runs_fails_its_cells_one_by_one(cli, tmp_path, monkeypatch):
    def broken(info):  # planned here, but its code does not import where the cells run (a cluster node)
        raise ImportError(f"no module for {info.name}")

    monkeypatch.setattr("dfqbench.session.method_impl", broken)
    res = cli("run", "--methods", "gdfq", "--models", "resnet20-digits", "--bits", "3,4", "--budget", "smoke", "--results", str(tmp_path))
    assert res.code == 1 and "Traceback" not in res.err
    assert [(r["status"], r["error"]["message"]) for r in records(tmp_path)] == [("failed", "no module for gdfq")] * 2


def test_a_joint_training_records_each_bit_width_on_its_own(cli, probes, tmp_path, monkeypatch):
    from dfqbench_probes.methods import SEEN

    args = ("run", "--methods", "probe-joint", "--models", "resnet20-digits", "--bits", "3,4,5", "--budget", "smoke")
    SEEN.clear()
    res = cli(*args, "--results", str(tmp_path / "joint"))
    assert res.code == 0 and "done: 1 diverged, 2 ok" in res.err  # a diverged cell is a result, not a failure
    assert SEEN == [{"joint": [3, 4, 5]}]
    status = {r["cell"]["w_bits"]: r for r in records(tmp_path / "joint")}
    assert {b: r["status"] for b, r in status.items()} == {3: "ok", 4: "diverged", 5: "ok"}
    assert status[4]["error"]["message"] == "probe: the 4-bit model diverged" and len(status[4]["joint"]["keys"]) == 3
    SEEN.clear()
    res = cli(*args, "--results", str(tmp_path / "alone"), "--no-joint")
    assert SEEN == [{"joint": [3]}, {"joint": [4]}, {"joint": [5]}]
    alone = {r["cell"]["w_bits"]: r for r in records(tmp_path / "alone")}
    assert {b: (r["status"], r["top1"]) for b, r in alone.items()} == {b: (r["status"], r["top1"]) for b, r in status.items()}
    monkeypatch.setenv("DFQBENCH_PROBE_JOINT_SHORT", "1")  # a plugin's bug: every cell of the training fails, with why
    res = cli(*args, "--results", str(tmp_path / "short"))
    assert res.code == 1 and "Traceback" not in res.err
    short = records(tmp_path / "short")
    assert [r["status"] for r in short] == ["failed"] * 3
    assert short[0]["error"]["message"] == "quantize_jointly() must return one result per bit-width (3), got 2"
