"""``--executor ray``: tasks on a Ray instance started on this machine give the records of one
process, a task that dies loses only its cells, and the command line's errors."""

import io

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


def test_cli_tasks_give_the_records_of_one_process(cli, tmp_path):
    res = cli("run", "--methods", "noise,zeroq", "--models", "resnet20-digits", "--bits", "3,4", "--budget", "smoke",
              "--executor", "ray", "--executor-option", "num_cpus=1", "--results", str(tmp_path))  # fmt: skip
    assert res.code == 0, res.err
    assert "device auto in ray jobs" in res.err and "to run as 2 Ray tasks" in res.err
    by_tasks = {r["key"]: (r["status"], r["top1"], r["metrics"]) for r in RecordStore(tmp_path / "digits" / "records.jsonl").read()}
    session = Session(load_registry(), torch.device("cpu"))
    alone = {c.key: (r["status"], r["top1"], r["metrics"]) for c in smoke_cells() for r in [session.run(c)]}
    assert len(by_tasks) == 4 and by_tasks == alone
    again = cli("run", "--methods", "noise,zeroq", "--models", "resnet20-digits", "--bits", "3,4", "--budget", "smoke",
                "--executor", "ray", "--results", str(tmp_path))  # fmt: skip
    assert again.code == 0 and "4 already done, 0 to run" in again.err  # resumed without starting Ray
    on_gpu = cli("run", "--methods", "noise,zeroq", "--models", "resnet20-digits", "--bits", "3,4", "--budget", "smoke",
                 "--executor", "ray", "--device", "cuda", "--results", str(tmp_path))  # fmt: skip
    assert on_gpu.code == 0 and "0 to run" in on_gpu.err  # nothing to run needs no GPU


def test_a_task_that_dies_loses_only_its_cells(tmp_path):
    from dfqbench.raycluster import run_ray

    store = RecordStore(tmp_path / "records.jsonl")
    spec = WorkerSpec("cuda:99", 1, store.path, tmp_path / "cache")  # no node has a 100th GPU: no session
    shown = io.StringIO()
    session = Session(load_registry(), torch.device("cpu"))
    outcome = run_ray(smoke_cells(), session, store, True, Display(Console(file=shown, width=500)), spec, {"num_gpus": 0})
    assert outcome.lost == 4 and not outcome.statuses and store.read() == []
    lines = [line for line in shown.getvalue().splitlines() if "2 of its 2 cells without a record" in line]
    assert len(lines) == 2 and all("device 'cuda:99' is not available here" in line for line in lines)


def test_ray_options_and_cli_errors(cli, tmp_path):
    from dfqbench.raycluster import parse_parameters

    assert parse_parameters(("num_gpus=0.5", "resources={'a100': 1}")) == {"num_gpus": 0.5, "resources": {"a100": 1}}
    with pytest.raises(DfqError, match=r"unknown --executor-option for ray: 'gpus'; valid choices: accelerator_type, "):
        parse_parameters(("gpus=1",))

    def error(*args):
        res = cli("run", "--methods", "noise", "--budget", "smoke", "--results", str(tmp_path), "--executor", "ray", *args)
        assert res.code == 2 and "Traceback" not in res.err, res.err
        return res.err.strip().splitlines()[-1]

    assert error("--jobs", "2").startswith("dfqbench: error: --jobs caps local workers and Slurm jobs")
    assert error("--device", "cuda:0").startswith("dfqbench: error: --device cuda:0 with --executor ray; valid choices: auto, cpu, cuda")
    if not torch.cuda.is_available():
        assert error("--device", "cuda") == (
            "dfqbench: error: --device cuda with --executor ray, but the Ray cluster has no GPU; valid choices here: auto, cpu")
        # a task no node of the instance started here can take would wait for ever
        assert error("--executor-option", "num_gpus=1") == (
            "dfqbench: error: each Ray task asks for 1 GPU, and the Ray instance started on this machine has 0 GPU; valid: "
            "--executor-option values within it, or RAY_ADDRESS naming a cluster that has them")


def test_tasks_larger_than_a_joined_cluster_wait_with_a_note():
    from dfqbench.raycluster import check_fits

    shown = io.StringIO()
    check_fits({"num_cpus": 64, "num_gpus": 0}, {"CPU": 16.0}, joined=True, display=Display(Console(file=shown, width=500)))
    assert "note: each Ray task asks for 64 CPU and the cluster has 16 CPU now: the tasks wait until a node with them joins" in shown.getvalue()
    before = shown.getvalue()
    check_fits({"num_cpus": 1, "num_gpus": 0.5}, {"CPU": 2.0, "GPU": 1.0}, joined=False, display=Display(Console(file=shown, width=500)))
    assert shown.getvalue() == before  # fits: neither an error nor a note
