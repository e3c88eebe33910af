"""The Slurm executor (submitit): one job per (dataset, model, seed, method) group of pending
cells, submitted as one job array.

A job builds its own session on the device Slurm gave it (``--device auto`` is resolved in
the job, not on the login node), runs its cells and appends their records to the shared
records file itself (appends are locked), exactly as a local worker does; so a job that
dies loses only its own unfinished cells, and running the same command again resumes them.
Teachers are loaded by the jobs (digits teachers not cached yet are trained by the first
jobs that need them; the cache is written atomically). Ctrl-C cancels the jobs that have
not finished. Job logs go to ``<results>/<suite>/slurm/<job id>/``.
"""

from __future__ import annotations

import ast
import subprocess

from dfqbench.errors import DfqError, unknown
from dfqbench.executor import Outcome, WorkerSpec, _pending, run_cells, work_units, worker_session
from dfqbench.plan import Cell
from dfqbench.progress import Display
from dfqbench.records import RecordStore

#: how often the parent asks Slurm whether jobs have finished (seconds)
POLL_S = 10.0


def _submitit():
    try:
        import submitit
    except ImportError:
        raise DfqError("--executor slurm needs submitit: pip install 'dfqbench[slurm]'") from None
    return submitit


def parse_parameters(items: tuple[str, ...]) -> dict[str, object]:
    """``--slurm KEY=VALUE`` → submitit's ``AutoExecutor`` parameters (``timeout_min``,
    ``gpus_per_node``, ``slurm_partition``, …), values read as Python literals where they are."""
    submitit = _submitit()
    from submitit.slurm.slurm import SlurmExecutor

    valid = sorted(submitit.AutoExecutor._valid_parameters() | {f"slurm_{p}" for p in SlurmExecutor._valid_parameters()})
    out: dict[str, object] = {}
    for item in items:
        key, eq, text = item.partition("=")
        if not (eq and key):
            raise DfqError(f"bad --slurm {item!r}; valid form: KEY=VALUE, e.g. slurm_partition=gpu")
        if key not in valid:
            raise unknown("--slurm parameter", key, valid)
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text
    return out


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
    submitit = _submitit()
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
        jobs = executor.map_array(_run_unit, [spec] * len(units), units)
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
                    # what it recorded before it died (a time limit mid-unit) stays recorded
                    written = {r["key"]: r for r in store.read()[earlier:]}
                    records = [written[c.key] for c in unit if c.key in written]
                    outcome.lost += len(unit) - len(records)
                    display.print(
                        f"[red]✗[/red] job {job.job_id} ({len(unit) - len(records)} of its {len(unit)} cells without a record, "
                        f"e.g. {unit[-1].title}): {_reason(exc)} (log: {folder / str(job.job_id)})"
                    )
                    overall.advance(len(unit) - len(records))
                for record in records:
                    outcome.count(record, display)
                    overall.advance()
        finally:
            for job in jobs:
                if not job.done():
                    job.cancel(check=False)
    return outcome


def _reason(exc: Exception) -> str:
    """The last line of the job's own error, out of submitit's report around it."""
    lines = [line.strip() for line in str(exc).splitlines()]
    body = [line for line in lines if line and set(line) != {"-"} and not line.startswith(("- ", "You can check"))]
    return body[-1] if body else type(exc).__name__


def _run_unit(spec: WorkerSpec, cells: list[Cell]) -> list[dict]:
    session, store = worker_session(spec, spec.device)
    return run_cells(session, store, cells)
