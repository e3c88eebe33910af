"""The Slurm executor (submitit): one job per (dataset, model, seed, method) group of pending
cells, submitted as one job array (what a job does: :mod:`dfqbench.jobs`).

Before submitting, this process checks the data and puts every teacher's weights in the
cache (trained or downloaded once, so all jobs load the same ones). A job resolves
``--device`` on its node (``auto``/``cuda`` ask Slurm for one GPU unless a GPU option says
otherwise), measures its teachers' FP accuracy, runs its cells and appends their records to
the shared results folder; a job Slurm requeues (preemption) keeps what its first attempt
recorded. The command waits, polling Slurm; Ctrl-C cancels the jobs that have not finished,
the whole array with one ``scancel <array id>``. Each run names its jobs
uniquely (``dfqbench-<token>``, or ``<name>-<token>`` given ``--executor-option name=…``), so
``scancel --name`` finds an array whose submission Ctrl-C interrupted before its id came back.
Job logs go to ``<results>/<suite>/slurm/<job id>/``.
"""

from __future__ import annotations

import getpass
import reprlib
import subprocess
import uuid

from dfqbench.errors import DfqError
from dfqbench.executor import Outcome, WorkerSpec, pending, salvage, work_units
from dfqbench.jobs import parse_options, require, run_unit
from dfqbench.overrides import as_type, type_name
from dfqbench.plan import Cell
from dfqbench.progress import Display
from dfqbench.records import RecordStore
from dfqbench.session import Session

#: how often the parent asks Slurm whether jobs have finished (seconds)
POLL_S = 10.0
#: options that name the jobs: their value prefixes the run's unique name, so Ctrl-C still finds them
NAME_OPTIONS = ("name", "slurm_job_name")
#: options that would run one job's cells in several processes at once (duplicate records)
ONE_PROCESS = {"nodes", "tasks_per_node", "slurm_nodes", "slurm_ntasks_per_node"}
#: the least value Slurm takes for each numeric generic option (mem_gb=0: all of a node's memory)
LEAST = {"timeout_min": 1, "cpus_per_task": 1, "gpus_per_node": 0, "mem_gb": 0}
GPU_OPTIONS = {"gpus_per_node", "slurm_gpus_per_node", "slurm_gpus_per_task", "slurm_gres", "slurm_num_gpus"}


def parse_parameters(items: tuple[str, ...]) -> dict[str, object]:
    """``--executor-option KEY=VALUE`` → submitit ``AutoExecutor`` parameters (``timeout_min``,
    ``gpus_per_node``, ``slurm_partition``, …)."""
    submitit = require("submitit", "slurm")
    from submitit.slurm.slurm import SlurmExecutor

    valid = submitit.AutoExecutor._valid_parameters() | {f"slurm_{p}" for p in SlurmExecutor._valid_parameters()}
    options = parse_options(items, valid, "slurm", "slurm_partition=gpu")
    for key in ONE_PROCESS & options.keys():
        if options[key] != 1:
            raise DfqError(f"--executor-option {key}={options[key]}: a dfqbench job is one process on one node; valid choices: 1")
    for key in NAME_OPTIONS:
        if key in options and not isinstance(options[key], str):
            raise DfqError(f"--executor-option {key}={options[key]!r}: a job name must be text, e.g. {key}=dfq-cifar")
    extra = options.get("slurm_additional_parameters")
    if isinstance(extra, dict) and {"job-name", "job_name", "J"} & extra.keys():
        raise DfqError("--executor-option slurm_additional_parameters sets the job name; use name=... (it prefixes the run's unique name)")
    check_types(options)
    return options


def check_types(options: dict[str, object]) -> None:
    """The generic options (``timeout_min``, ``gpus_per_node``, …) against the types submitit
    enforces for them, before the teachers are prepared (submitit checks them only when the
    jobs are submitted). ``slurm_*`` options go to sbatch as written (``slurm_mem=16000``)."""
    import submitit

    for key, value in options.items():
        kind = submitit.AutoExecutor._typed_parameters().get(key)
        if kind is None:
            continue
        try:
            options[key] = as_type(value, kind)
        except (TypeError, OverflowError):
            raise DfqError(f"bad --executor-option value for slurm: {key}={reprlib.repr(value)} is not {type_name(kind)}") from None
        if key in LEAST and options[key] < LEAST[key]:
            raise DfqError(f"bad --executor-option value for slurm: {key}={value}; valid: {LEAST[key]} or more")


def with_gpu_default(options: dict[str, object], device: str) -> dict[str, object]:
    """``--device auto|cuda`` asks Slurm for one GPU per job unless a GPU option says otherwise
    (``gpus_per_node=0`` for a CPU-only partition)."""
    if device == "cpu" or GPU_OPTIONS & options.keys():
        return options
    return {"gpus_per_node": 1, **options}


def cancel_unfinished(jobs: list, cluster: str, name: str) -> None:
    """Cancel the run's jobs that have not finished. On Slurm one ``scancel`` for the whole
    array (its id), or, when submission was interrupted before the id came back, one for the
    run's unique job name."""
    unfinished = [job for job in jobs if not job.done()]
    if jobs and not unfinished:
        return
    if cluster != "slurm":
        for job in unfinished:
            job.cancel(check=False)
        return
    arrays = sorted({str(job.job_id).split("_")[0] for job in unfinished})
    try:
        subprocess.call(["scancel", *arrays] if arrays else ["scancel", "--name", name, "--user", getpass.getuser()])
    except OSError:  # no scancel: nothing can have been submitted
        pass


def run_slurm(
    cells: list[Cell],
    session: Session,
    store: RecordStore,
    resume: bool,
    display: Display,
    spec: WorkerSpec,
    parameters: dict[str, object],
    cluster: str = "slurm",
) -> Outcome:
    """Run the pending cells as a job array on ``cluster`` (submitit's ``local`` runs the same
    jobs as local processes: the tests use it) and wait for them."""
    submitit = require("submitit", "slurm")
    todo, outcome = pending(cells, store, resume, session)
    units = work_units(todo, 1)
    folder = store.path.parent / "slurm"
    outcome.announce(display, len(todo), f" as {len(units)} {cluster} jobs (logs: {folder})")
    if not units:
        return outcome
    session.prepare(todo, evaluate=False)  # missing data stops us here; weights cached once, for every job
    earlier = len(store.read())  # records appended from here on are this run's
    options = dict(with_gpu_default(parameters, spec.device))
    prefix = [options.pop(key) for key in NAME_OPTIONS if key in options]
    name = f"{prefix[-1] if prefix else 'dfqbench'}-{uuid.uuid4().hex[:8]}"
    jobs: list = []
    try:
        try:
            executor = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster)
            try:
                executor.update_parameters(name=name, **options)
            except (AssertionError, TypeError, ValueError) as exc:  # submitit checks the values' types with assert
                raise DfqError(f"bad --executor-option value for slurm: {type(exc).__name__}: {exc}") from None
            jobs = executor.map_array(run_unit, [spec] * len(units), units, [earlier] * len(units))
        except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
            raise DfqError(f"could not submit the jobs to {cluster}: {type(exc).__name__}: {exc}") from None
        unit_of = {job.job_id: unit for job, unit in zip(jobs, units, strict=True)}
        with display, display.bar("cells", len(todo), transient=False) as overall:
            for job in submitit.helpers.as_completed(jobs, poll_frequency=POLL_S):
                unit = unit_of[job.job_id]
                try:
                    records = job.result()
                except Exception as exc:  # noqa: BLE001 - a lost job is reported, the others go on
                    records = salvage(unit, exc, store, earlier, outcome, display, overall, f"job {job.job_id} (log: {folder / str(job.job_id)})")
                outcome.count_all(records, display, overall)
    finally:
        cancel_unfinished(jobs, cluster, name)
    return outcome
