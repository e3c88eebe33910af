"""``--executor slurm``: the same jobs run through submitit's ``local`` cluster (each job a
process of its own, as on Slurm), a job that dies, and the command line's errors."""

import io
import os
import re
import signal

import pytest
import torch
from rich.console import Console

from dfqbench.errors import DfqError
from dfqbench.executor import WorkerSpec
from dfqbench.plan import make_plan
from dfqbench.progress import Display
from dfqbench.records import RecordStore
from dfqbench.registry import load_registry
from dfqbench.session import Session


def smoke_cells():
    return make_plan(load_registry(), "digits", ["noise", "zeroq"], ["resnet20-digits"], [(3, 3), (4, 4)], [0], "smoke").cells


def test_jobs_give_the_records_of_one_process(tmp_path, monkeypatch):
    import dfqbench.slurm as slurm

    monkeypatch.setattr(slurm, "POLL_S", 0.2)
    cells = smoke_cells()
    store = RecordStore(tmp_path / "jobs" / "records.jsonl")
    cache = tmp_path / "cache"
    spec = WorkerSpec("auto", 1, store.path, cache)
    session = Session(load_registry(), torch.device("cpu"))
    outcome = slurm.run_slurm(cells, session, store, True, Display(None), spec, {"timeout_min": 5}, cluster="local")
    assert outcome.statuses == {"ok": 4} and outcome.lost == 0
    by_jobs = {r["key"]: (r["status"], r["top1"], r["metrics"]) for r in store.read()}
    assert len(list((store.path.parent / "slurm").glob("*/*_log.out"))) == 2  # one job per method: zeroq distils once
    alone = {c.key: (r["status"], r["top1"], r["metrics"]) for c in cells for r in [session.run(c)]}
    assert by_jobs == alone
    again = slurm.run_slurm(cells, session, store, True, Display(None), spec, {}, cluster="local")
    assert again.skipped == 4 and not again.statuses  # resumed: nothing submitted


def test_a_job_that_dies_loses_only_its_cells(tmp_path, monkeypatch):
    import dfqbench.slurm as slurm

    monkeypatch.setattr(slurm, "POLL_S", 0.2)
    store = RecordStore(tmp_path / "records.jsonl")
    spec = WorkerSpec("cuda:99", 1, store.path, tmp_path / "cache")  # no node has a 100th GPU: no session
    shown = io.StringIO()
    session = Session(load_registry(), torch.device("cpu"))
    outcome = slurm.run_slurm(smoke_cells(), session, store, True, Display(Console(file=shown, width=500)), spec, {}, cluster="local")
    assert outcome.lost == 4 and not outcome.statuses and store.read() == []
    lines = [line for line in shown.getvalue().splitlines() if "2 of its 2 cells without a record" in line]
    assert len(lines) == 2 and all("DfqError: device 'cuda:99' is not available here" in line for line in lines)


def test_slurm_parameters_are_checked_before_anything_runs():
    from dfqbench.slurm import parse_parameters

    assert parse_parameters(("timeout_min=720", "slurm_partition=gpu", "gpus_per_node=1")) == {
        "timeout_min": 720, "slurm_partition": "gpu", "gpus_per_node": 1}  # fmt: skip
    with pytest.raises(DfqError, match=r"unknown --executor-option for slurm: 'partition'; valid choices: .*slurm_partition"):
        parse_parameters(("partition=gpu",))
    with pytest.raises(DfqError, match="valid form: KEY=VALUE"):
        parse_parameters(("timeout_min",))
    with pytest.raises(DfqError, match="nodes=2: a dfqbench job is one process on one node; valid choices: 1"):
        parse_parameters(("nodes=2",))  # every task would run the same cells: duplicate records
    # the types submitit declares, checked here (submitit finds them only at submission)
    for item, expected in [
        ("timeout_min=abc", "timeout_min='abc' is not an integer"),
        ("gpus_per_node=1.5", "gpus_per_node=1.5 is not an integer"),
        ("timeout_min=0", "timeout_min=0; valid: 1 or more"),
        ("gpus_per_node=-1", "gpus_per_node=-1; valid: 0 or more"),
        # ast.literal_eval gives up on this with RecursionError, not ValueError: it is text
        ("timeout_min=" + "-" * 5000 + "1", "timeout_min='------------...------------1' is not an integer"),
    ]:
        with pytest.raises(DfqError, match=f"bad --executor-option value for slurm: {re.escape(expected)}"):
            parse_parameters((item,))
    assert parse_parameters(("mem_gb=16",)) == {"mem_gb": 16.0}
    assert parse_parameters(("mem_gb=0", "timeout_min=60", "timeout_min=60")) == {"mem_gb": 0.0, "timeout_min": 60}  # 0: all of a node's
    with pytest.raises(DfqError, match="--executor-option timeout_min is given twice, as 60 and 90; give it once"):
        parse_parameters(("timeout_min=60", "timeout_min=90"))
    with pytest.raises(DfqError, match="bad --executor-option 'slurm_partition=': an empty value; valid form: KEY=VALUE"):
        parse_parameters(("slurm_partition=",))
    # sbatch's own options are passed as written, numbers included
    assert parse_parameters(("slurm_mem=16000", "slurm_gpus_per_node=a100:1")) == {"slurm_mem": 16000, "slurm_gpus_per_node": "a100:1"}


def test_auto_and_cuda_jobs_ask_for_a_gpu_unless_told_otherwise():
    from dfqbench.slurm import with_gpu_default

    assert with_gpu_default({}, "auto") == {"gpus_per_node": 1} == with_gpu_default({}, "cuda")
    assert with_gpu_default({}, "cpu") == {}
    assert with_gpu_default({"gpus_per_node": 0}, "auto") == {"gpus_per_node": 0}
    assert with_gpu_default({"slurm_gres": "gpu:a100:1"}, "cuda") == {"slurm_gres": "gpu:a100:1"}


def test_a_bad_parameter_value_is_one_error_before_submission(tmp_path):
    from dfqbench.slurm import run_slurm

    store = RecordStore(tmp_path / "records.jsonl")
    session = Session(load_registry(), torch.device("cpu"))
    with pytest.raises(DfqError, match="bad --executor-option value for slurm"):
        run_slurm(smoke_cells(), session, store, True, Display(None), WorkerSpec("cpu", 1, store.path, tmp_path), {"timeout_min": "1:00"}, cluster="local")
    assert not (tmp_path / "slurm").exists() or not any((tmp_path / "slurm").iterdir())


def test_a_requeued_job_keeps_what_its_first_attempt_recorded(tmp_path, monkeypatch):
    from dfqbench.jobs import run_unit

    cells = smoke_cells()[:2]
    store = RecordStore(tmp_path / "records.jsonl")
    first = Session(load_registry(), torch.device("cpu")).run(cells[0])
    store.append({**first, "top1": 1.0})  # an earlier run's record (--no-resume): not this run's
    earlier = len(store.read())
    store.append(first)  # what the first attempt of this run's job wrote before it was preempted
    ran = []
    original = Session.run_together
    monkeypatch.setattr(Session, "run_together", lambda self, cells: ran.extend(c.key for c in cells) or original(self, cells))
    records = run_unit(WorkerSpec("cpu", 1, store.path, tmp_path / "cache"), cells, earlier)
    assert ran == [cells[1].key] and records[0] == first
    assert [r["key"] for r in store.read()] == [cells[0].key, cells[0].key, cells[1].key]


def test_cli_errors_are_one_line(cli, tmp_path):
    def error(*args):
        res = cli("run", "--methods", "noise", "--budget", "smoke", "--results", str(tmp_path), *args)
        assert res.code == 2 and "Traceback" not in res.err, res.err
        return res.err.strip().splitlines()[-1]

    assert error("--executor-option", "timeout_min=5") == (
        "dfqbench: error: --executor-option sets a Slurm job or Ray task parameter; it needs --executor slurm or ray")
    assert error("--executor", "slurm", "--device", "cuda:1").startswith("dfqbench: error: --device cuda:1 with --executor slurm; valid choices: auto, cpu, cuda")
    assert error("--executor", "slurm", "--executor-option", "walltime=5").startswith("dfqbench: error: unknown --executor-option for slurm: 'walltime'")
    # no Slurm on this machine: submission fails with one clear line, nothing is recorded
    assert error("--executor", "slurm").startswith("dfqbench: error: could not submit the jobs to slurm:")
    assert not (tmp_path / "digits" / "records.jsonl").exists() or RecordStore(tmp_path / "digits" / "records.jsonl").read() == []


def test_cli_runs_the_jobs_and_exits_1_when_cells_are_lost(cli, tmp_path, monkeypatch):
    import functools

    import dfqbench.slurm as slurm

    monkeypatch.setattr(slurm, "POLL_S", 0.2)
    monkeypatch.setattr(slurm, "run_slurm", functools.partial(slurm.run_slurm, cluster="local"))
    args = ("run", "--methods", "noise", "--models", "resnet20-digits", "--bits", "3,4", "--budget", "smoke", "--executor", "slurm")
    res = cli(*args, "--executor-option", "timeout_min=5", "--results", str(tmp_path / "ok"))
    assert res.code == 0, res.err
    assert "device auto in slurm jobs" in res.err and "to run as 1 local jobs" in res.err
    assert [r["status"] for r in RecordStore(tmp_path / "ok" / "digits" / "records.jsonl").read()] == ["ok", "ok"]
    assert (tmp_path / "ok" / "digits" / "table.md").exists()
    if torch.cuda.is_available():
        return  # the lost-job half needs a node without a GPU
    res = cli(*args, "--device", "cuda", "--results", str(tmp_path / "lost"))
    assert res.code == 1
    assert "2 cells have no record (the jobs or worker processes that ran them died); run the same command again to retry them" in res.err


@pytest.fixture
def sigint_as_in_a_terminal():
    """submitit's local jobs are cancelled with SIGINT. A process started in the background by
    a shell (``pytest &``, nohup) ignores SIGINT, and its children inherit that, so there no
    cancel could reach them: the test gives its jobs a terminal's SIGINT."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("sigint_as_in_a_terminal")
def test_ctrl_c_cancels_the_jobs_that_have_not_finished(tmp_path, monkeypatch):
    import submitit

    import dfqbench.slurm as slurm

    submitted = []
    map_array = submitit.AutoExecutor.map_array

    def keep(self, *args):
        submitted.extend(map_array(self, *args))
        return submitted

    def interrupt(jobs, poll_frequency):
        raise KeyboardInterrupt
        yield

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", keep)
    monkeypatch.setattr(submitit.helpers, "as_completed", interrupt)
    store = RecordStore(tmp_path / "digits" / "records.jsonl")
    spec = WorkerSpec("cpu", 1, store.path, tmp_path / "cache")
    with pytest.raises(KeyboardInterrupt):
        slurm.run_slurm(smoke_cells(), Session(load_registry(), torch.device("cpu"), tmp_path / "cache"), store, True, Display(None), spec, {}, cluster="local")
    assert len(submitted) == 2
    for job in submitted:
        job._process.wait(timeout=120)
    assert "FINISHED" not in {job.state for job in submitted}
    assert store.read() == []


def test_on_slurm_one_scancel_reaches_the_whole_run(tmp_path, monkeypatch):
    import getpass

    from dfqbench.slurm import cancel_unfinished

    log = tmp_path / "scancel.log"
    fake = tmp_path / "bin" / "scancel"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")

    class Job:
        def __init__(self, job_id, done):
            self.job_id, self._done, self.cancelled = job_id, done, False

        def done(self):
            return self._done

        def cancel(self, check):
            self.cancelled = True

    cancel_unfinished([], "slurm", "dfqbench-1a2b3c4d")  # Ctrl-C while sbatch was submitting: no ids yet
    cancel_unfinished([Job("123_0", True), Job("123_1", False), Job("123_2", False), Job("124_0", False)], "slurm", "dfqbench-5e6f7a8b")
    cancel_unfinished([Job("125_0", True), Job("125_1", True)], "slurm", "dfqbench-finished")  # nothing left to cancel
    assert log.read_text().splitlines() == [f"--name dfqbench-1a2b3c4d --user {getpass.getuser()}", "123 124"]
    jobs = [Job("1", True), Job("2", False)]
    cancel_unfinished(jobs, "local", "dfqbench-local")
    assert [job.cancelled for job in jobs] == [False, True]


def test_a_job_name_option_prefixes_the_runs_unique_name():
    from dfqbench.slurm import parse_parameters

    assert parse_parameters(("slurm_job_name=cifar",)) == {"slurm_job_name": "cifar"}
    with pytest.raises(DfqError, match=r"--executor-option name=5: a job name must be text"):
        parse_parameters(("name=5",))
    with pytest.raises(DfqError, match=r"slurm_additional_parameters sets the job name; use name="):
        parse_parameters(("slurm_additional_parameters={'job-name': 'x'}",))


def test_on_slurm_the_array_is_named_asks_for_a_gpu_and_ctrl_c_cancels_it(tmp_path, monkeypatch):
    """The real Slurm backend of submitit, with sbatch/sacct mocked by submitit's own test helper."""
    import subprocess

    import submitit

    import dfqbench.slurm as slurm

    mocked_slurm = pytest.importorskip("submitit.slurm.test_slurm", reason="submitit no longer ships its Slurm mock").mocked_slurm

    cancels = []
    monkeypatch.setattr(subprocess, "call", cancels.append)

    def interrupt(jobs, poll_frequency):
        raise KeyboardInterrupt
        yield

    monkeypatch.setattr(submitit.helpers, "as_completed", interrupt)
    store = RecordStore(tmp_path / "digits" / "records.jsonl")
    session = Session(load_registry(), torch.device("cpu"), tmp_path / "cache")
    with mocked_slurm(), pytest.raises(KeyboardInterrupt):
        slurm.run_slurm(smoke_cells(), session, store, True, Display(None), WorkerSpec("auto", None, store.path, tmp_path / "cache"),
                        {"name": "digits", "timeout_min": 60}, cluster="slurm")
    (script,) = (tmp_path / "digits" / "slurm").rglob("*_submission.sh")
    lines = script.read_text().splitlines()
    assert any(re.fullmatch(r"#SBATCH --job-name=digits-[0-9a-f]{8}", line) for line in lines)
    assert "#SBATCH --array=0-1%2" in lines and "#SBATCH --gpus-per-node=1" in lines and "#SBATCH --time=60" in lines
    assert cancels == [["scancel", "12"]]  # the mock's first array id: one call for the whole array
