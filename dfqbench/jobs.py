"""What the cluster executors (Slurm, Ray) share: one job per work unit of pending cells, a
job that builds its own session and appends its own records, executor options read from
``--executor-option KEY=VALUE``; a job that died is tallied by
:func:`~dfqbench.executor.salvage`, as a local worker process that died is.

A job appends each record to the shared records file as soon as it exists (appends are
locked), exactly as a local worker does; so a job that dies loses only its own unrecorded
cells, and running the same command again resumes them.
"""

from __future__ import annotations

import ast
import importlib
import reprlib
from types import ModuleType

from dfqbench.errors import DfqError, unknown
from dfqbench.executor import WorkerSpec, run_cells, worker_session
from dfqbench.plan import Cell


def require(module: str, executor: str) -> ModuleType:
    """The engine behind ``--executor <executor>``, or one line saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DfqError(f"--executor {executor} needs {module}: pip install 'dfqbench[{executor}]'") from None


def parse_options(items: tuple[str, ...], valid: set[str], executor: str, example: str) -> dict[str, object]:
    """``KEY=VALUE`` items → options, values read as Python literals where they are."""
    out: dict[str, object] = {}
    for item in items:
        key, eq, text = item.partition("=")
        if not (eq and key):
            raise DfqError(f"bad --executor-option {item!r}; valid form: KEY=VALUE, e.g. {example}")
        if key not in valid:
            raise unknown(f"--executor-option for {executor}:", key, sorted(valid))
        if not text.strip():
            raise DfqError(f"bad --executor-option {item!r}: an empty value; valid form: KEY=VALUE, e.g. {example}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, RecursionError, MemoryError):  # not a literal: the text itself
            value = text
        if key in out and out[key] != value:
            raise DfqError(f"--executor-option {key} is given twice, as {reprlib.repr(out[key])} and {reprlib.repr(value)}; give it once")
        out[key] = value
    return out


def run_unit(spec: WorkerSpec, cells: list[Cell], earlier: int) -> list[dict]:
    """The body of one job: a session on the job's own device, then its cells. A job that
    runs a second time (Slurm requeues a preempted job) keeps the ok records this run's
    first attempt wrote (the records after the first ``earlier``) instead of redoing them."""
    session, store = worker_session(spec, spec.device)
    recorded = {r["key"]: r for r in store.read()[earlier:] if r["status"] == "ok"}
    return run_cells(session, store, cells, recorded)
