"""The Ray executor: one Ray task per (dataset, model, seed, method) group of pending cells
(what a task does: :mod:`dfqbench.jobs`).

``ray.init()`` joins the cluster named by ``RAY_ADDRESS`` (``ray start --head`` / a Ray
cluster's environment), or starts one on this machine. A task asks for one CPU, and for one
GPU when ``--device`` is ``cuda``, or ``auto`` on a cluster that has GPUs (Ray then makes
that GPU the task's only visible one); ``--executor-option num_gpus=0.5`` and the like
override this. Tasks are not retried (``max_retries=0``): a retried task would redo cells
whose records are already written; the same command resumes what a dead task lost. Ctrl-C
cancels the tasks that have not finished. On an autoscaling cluster whose GPU nodes are not up
yet, ``auto`` finds no GPU and asks for none: give ``--executor-option num_gpus=1``.
"""

from __future__ import annotations

import logging
import os
import signal

from dfqbench.errors import DfqError
from dfqbench.executor import Outcome, WorkerSpec, pending, salvage, work_units
from dfqbench.jobs import parse_options, require, run_unit
from dfqbench.plan import Cell
from dfqbench.progress import Display
from dfqbench.records import RecordStore
from dfqbench.session import Session

#: the ``ray.remote`` options a user may set
OPTIONS = {"num_cpus", "num_gpus", "memory", "resources", "accelerator_type", "max_retries", "retry_exceptions", "runtime_env"}


def parse_parameters(items: tuple[str, ...]) -> dict[str, object]:
    ray = require("ray", "ray")
    options = parse_options(items, OPTIONS, "ray", "num_gpus=1")
    try:  # ray checks the values where the task is declared; no cluster is needed for that
        ray.remote(max_calls=1)(run_unit).options(**options)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DfqError(f"bad --executor-option value for ray: {exc}") from None
    return options


def check_fits(asked: dict[str, object], have: dict[str, float], joined: bool, display: Display) -> None:
    """A task that asks for more CPUs or GPUs than the cluster has would wait for ever. On the
    instance this run started that is an error; a cluster it joined may be autoscaling and add
    such a node, so there it is a note."""
    short = {unit: asked[option] for option, unit in (("num_cpus", "CPU"), ("num_gpus", "GPU")) if (asked.get(option) or 0) > have.get(unit, 0)}
    if not short:
        return
    wants = ", ".join(f"{amount:g} {unit}" for unit, amount in short.items())
    there = ", ".join(f"{have.get(unit, 0):g} {unit}" for unit in short)
    if not joined:
        raise DfqError(f"each Ray task asks for {wants}, and the Ray instance started on this machine has {there}; valid: "
                       "--executor-option values within it, or RAY_ADDRESS naming a cluster that has them")
    display.print(f"note: each Ray task asks for {wants} and the cluster has {there} now: the tasks wait until a node with them joins")


def run_ray(
    cells: list[Cell], session: Session, store: RecordStore, resume: bool, display: Display, spec: WorkerSpec, options: dict[str, object]
) -> Outcome:
    ray = require("ray", "ray")
    todo, outcome = pending(cells, store, resume, session)
    units = work_units(todo, 1)
    if not units:
        outcome.announce(display, 0)
        return outcome
    session.prepare(todo, evaluate=False)  # missing data stops us here; weights cached once, for every task
    started = not ray.is_initialized()
    if started:
        ours = signal.getsignal(signal.SIGTERM)
        try:
            ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise DfqError(f"could not start or join a Ray cluster (RAY_ADDRESS={os.environ.get('RAY_ADDRESS', '')!r}): {exc}") from None
        finally:
            signal.signal(signal.SIGTERM, ours)  # ray.init installs its own, which kills the driver: SIGTERM stops a run like Ctrl-C
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        if spec.device == "cuda" and not gpus and "num_gpus" not in options:
            raise DfqError("--device cuda with --executor ray, but the Ray cluster has no GPU; valid choices here: auto, cpu")
        wants_gpu = spec.device == "cuda" or (spec.device == "auto" and gpus > 0)
        asked = {"num_cpus": 1, "num_gpus": 1 if wants_gpu else 0, "max_retries": 0, **options}
        check_fits(asked, ray.cluster_resources(), joined=not started or bool(os.environ.get("RAY_ADDRESS")), display=display)
        # max_calls=1: a fresh worker process per task, so no task inherits another's CUDA context
        task = ray.remote(max_calls=1)(run_unit).options(**asked)
        cpus = ray.cluster_resources().get("CPU", 0)
        outcome.announce(display, len(todo), f" as {len(units)} Ray tasks on {cpus:.0f} CPUs, {gpus:.0f} GPUs")
        earlier = len(store.read())  # records appended from here on are this run's
        unit_of = {task.remote(spec, unit, earlier): unit for unit in units}
        waiting = list(unit_of)
        with display, display.bar("cells", len(todo), transient=False) as overall:
            try:
                while waiting:
                    (ref,), waiting = ray.wait(waiting, num_returns=1)
                    try:
                        records = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        records = salvage(unit_of[ref], exc, store, earlier, outcome, display, overall, f"Ray task {ref.task_id().hex()[:12]}")
                    outcome.count_all(records, display, overall)
            finally:
                for ref in waiting:
                    ray.cancel(ref, force=True)
        return outcome
    finally:
        if started and ray.is_initialized():
            ray.shutdown()
