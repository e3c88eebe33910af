"""What the cluster executors (Slurm, Ray) share: one job per work unit of pending cells, a
job that builds its own session and appends its own records, executor options read from
``--executor-option KEY=VALUE``, and the tally of a job that died.

A job appends each record to the shared records file as soon as it exists (appends are
locked), exactly as a local worker does; so a job that dies loses only its own unrecorded
cells, and running the same command again resumes them.
"""

from __future__ import annotations

import ast
import importlib
from types import ModuleType

from dfqbench.errors import DfqError, unknown
from dfqbench.executor import Outcome, WorkerSpec, run_cells, worker_session
from dfqbench.plan import Cell
from dfqbench.progress import Bar, Display
from dfqbench.records import RecordStore


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
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text
    return out


def run_unit(spec: WorkerSpec, cells: list[Cell], earlier: int) -> list[dict]:
    """The body of one job: a session on the job's own device, then its cells. A job that
    runs a second time (Slurm requeues a preempted job) keeps the ok records this run's
    first attempt wrote (the records after the first ``earlier``) instead of redoing them."""
    session, store = worker_session(spec, spec.device)
    recorded = {r["key"]: r for r in store.read()[earlier:] if r["status"] == "ok"}
    return run_cells(session, store, cells, recorded)


def salvage(
    unit: list[Cell], exc: BaseException, store: RecordStore, earlier: int, outcome: Outcome, display: Display, overall: Bar, job: str
) -> list[dict]:
    """The records a job that died wrote before it did (a time limit mid-unit); the rest of
    its cells count as lost and are reported with the job's own error."""
    written = {r["key"]: r for r in store.read()[earlier:]}
    records = [written[c.key] for c in unit if c.key in written]
    missing = len(unit) - len(records)
    outcome.lost += missing
    display.print(f"[red]✗[/red] {job}: {missing} of its {len(unit)} cells without a record (e.g. {unit[-1].title}): {_reason(exc)}")
    overall.advance(missing)
    return records


def _reason(exc: BaseException) -> str:
    """The last line of the job's own error, out of the executor's report around it."""
    lines = [line.strip() for line in str(exc).splitlines()]
    body = [line for line in lines if line and set(line) != {"-"} and not line.startswith(("- ", "You can check"))]
    return body[-1] if body else type(exc).__name__
