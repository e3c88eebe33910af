"""The Slurm executor (submitit): one job per (dataset, model, seed, method) group of pending
cells, submitted as one job array (what a job does: :mod:`dfqbench.jobs`).

A job resolves ``--device`` on its node (``auto``: the GPU Slurm gave it), loads its
teachers (digits teachers not cached yet are trained by the first jobs that need them; the
cache is written atomically) and appends its records to the shared results folder. The
command waits for the jobs, polling Slurm; Ctrl-C cancels the jobs that have not finished.
Job logs go to ``<results>/<suite>/slurm/<job id>/``.
"""

from __future__ import annotations

import subprocess

from dfqbench.errors import DfqError
from dfqbench.executor import Outcome, WorkerSpec, _pending, work_units
from dfqbench.jobs import count_unit, parse_options, require, run_unit, salvage
from dfqbench.plan import Cell
from dfqbench.progress import Display
from dfqbench.records import RecordStore

#: how often the parent asks Slurm whether jobs have finished (seconds)
POLL_S = 10.0


def parse_parameters(items: tuple[str, ...]) -> dict[str, object]:
    """``--executor-option KEY=VALUE`` → submitit ``AutoExecutor`` parameters (``timeout_min``,
    ``gpus_per_node``, ``slurm_partition``, …)."""
    submitit = require("submitit", "slurm")
    from submitit.slurm.slurm import SlurmExecutor

    valid = submitit.AutoExecutor._valid_parameters() | {f"slurm_{p}" for p in SlurmExecutor._valid_parameters()}
    return parse_options(items, valid, "slurm", "slurm_partition=gpu")


def run_slurm(
    cells: list[Cell],
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
    todo, outcome = _pending(cells, store, resume)
    units = work_units(todo, 1)
    folder = store.path.parent / "slurm"
    display.print(f"{len(cells)} cells planned, {outcome.skipped} already done, {len(todo)} to run as {len(units)} {cluster} jobs (logs: {folder})")
    if not units:
        return outcome
    earlier = len(store.read())  # records appended from here on are this run's
    try:
        executor = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster)
        executor.update_parameters(name="dfqbench", **parameters)
        jobs = executor.map_array(run_unit, [spec] * len(units), units)
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        raise DfqError(f"could not submit the jobs to {cluster}: {type(exc).__name__}: {exc}") from None
    unit_of = {job.job_id: unit for job, unit in zip(jobs, units, strict=True)}
    with display, display.bar("cells", len(todo), transient=False) as overall:
        try:
            for job in submitit.helpers.as_completed(jobs, poll_frequency=POLL_S):
                unit = unit_of[job.job_id]
                try:
                    records = job.result()
                except Exception as exc:  # noqa: BLE001 - a lost job is reported, the others go on
                    records = salvage(unit, exc, store, earlier, outcome, display, overall, f"job {job.job_id} (log: {folder / str(job.job_id)})")
                count_unit(records, outcome, display, overall)
        finally:
            for job in jobs:
                if not job.done():
                    job.cancel(check=False)
    return outcome
