"""The local executors: the plan's cells in this process one after another, or in ``jobs``
worker processes (one GPU each, round-robin, or a share of the CPU threads each).

Cells whose latest record is ``ok`` and was made with the same teacher weights are skipped
(``--resume``, :func:`pending`). Each finished
cell is appended to the records at once (by the process that ran it; appends are locked),
so Ctrl-C, or a worker process that dies (:func:`salvage`), loses at most the cells in
progress (all bit-widths of a joint training, :meth:`~dfqbench.session.Session.trainings`). Workers take the cells of one (model, seed,
method) together, so work a method shares across bit-widths (ZeroQ's distilled batch, the
generator of GDFQ and Qimera) is still done once.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dfqbench.bits import label
from dfqbench.errors import DfqError, UnusedWeights
from dfqbench.plan import Cell
from dfqbench.progress import Bar, Display
from dfqbench.records import RecordStore, outcome_of, title_of
from dfqbench.registry import Registry, load_registry
from dfqbench.seeding import make_deterministic, resolve_device
from dfqbench.session import Session
from dfqbench.workers import WorkerDied, Workers
from dfqbench.zoo import ZooEnv


@dataclass
class Outcome:
    planned: int = 0
    skipped: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    lost: int = 0  #: cells left without a record by a job that died (Slurm, Ray)
    notes: list[str] = field(default_factory=list)  #: what the resume check found: cells rerun, or done with a caveat

    def announce(self, display: Display, todo: int, how: str = "") -> None:
        for note in self.notes:
            display.print(note)
        display.print(f"{self.planned} cells planned, {self.skipped} already done, {todo} to run{how}")

    def count(self, record: dict, display: Display) -> None:
        self.statuses[record["status"]] = self.statuses.get(record["status"], 0) + 1
        display.print(_summary_line(record))

    def count_all(self, records: list[dict], display: Display, overall: Bar) -> None:
        """The records a worker or job sent back, each one step of the overall bar."""
        for record in records:
            self.count(record, display)
            overall.advance()


def pending(
    cells: list[Cell], store: RecordStore, resume: bool, session: Session | None = None, registry: Registry | None = None
) -> tuple[list[Cell], Outcome]:
    """The cells still to run and the tally so far. With ``resume`` a cell is done when its
    latest record is ``ok`` and, given the ``session`` that would run it, was made with the
    teacher weights that session loads (same sha256; records from before the digest are taken
    as they are). A record made with other weights (another ``--weights`` file, a teacher
    that trained to other bits on this machine) does not count: its cell runs again, with a
    note, and its new record supersedes the old one in the tables. A record made by another
    version of the method's plugin still counts (the key holds the config, not the code), with
    a note."""
    registry = registry or (session and session.registry)
    done = store.done() if resume else {}
    todo: list[Cell] = []
    stale: Counter = Counter()
    older: Counter = Counter()
    unchecked: dict[str, str] = {}
    for cell in cells:
        record = done.get(cell.key)
        made_with = record and record.get("teacher_sha256")
        now = None
        if made_with and session is not None and cell.model not in unchecked:
            try:
                now = session.teacher_sha256(cell.dataset, cell.model, cell.data)
            except UnusedWeights:
                raise
            except Exception as exc:  # noqa: BLE001 - nothing to compare with; the cells that must run will say why
                unchecked[cell.model] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if record is None or (now and made_with != now):
            todo.append(cell)
            if record is not None:
                stale[(cell.model, made_with, now)] += 1
        elif registry and cell.method in registry.methods:
            made_by = record.get("versions", {}).get("plugin", {})
            plugin = registry.method(cell.method).plugin
            if made_by.get("version") not in (None, plugin.version):
                older[(cell.method, plugin.distribution, made_by["version"], plugin.version)] += 1
    notes = [
        f"note: {n} ok record(s) of {model} were made with other teacher weights (sha256 {old[:12]}…, this run's {new[:12]}…): "
        "those cells run again"
        for (model, old, new), n in stale.items()
    ] + [
        f"note: {n} ok record(s) of {method} were made with {distribution} {old}, this run has {new}: they count as done "
        "(--no-resume runs them again)"
        for (method, distribution, old, new), n in older.items()
    ] + [
        f"note: the teacher of {model} did not load to check which weights its records were made with ({why}); they count as done"
        for model, why in unchecked.items()
    ]
    return todo, Outcome(planned=len(cells), skipped=len(cells) - len(todo), notes=notes)


def salvage(
    unit: list[Cell], exc: BaseException, store: RecordStore, earlier: int, outcome: Outcome, display: Display, overall: Bar, job: str
) -> list[dict]:
    """The records a job or worker process that died wrote before it did (a time limit
    mid-unit); the rest of its cells count as lost and are reported with its own error."""
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


def run_local(cells: list[Cell], session: Session, store: RecordStore, resume: bool, display: Display) -> Outcome:
    todo, outcome = pending(cells, store, resume, session)
    trainings = session.trainings(todo)
    outcome.announce(display, len(todo), f" as {len(trainings)} trainings (bit-widths trained jointly)" if len(trainings) < len(todo) else "")
    with display:
        session.prepare(todo)
        with display.bar("cells", len(todo), transient=False) as overall:
            for cells in trainings:
                overall.note(_title(cells))
                records = session.run_together(cells)
                append_training(store, records)
                outcome.count_all(records, display, overall)
    return outcome


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs to build its own session (it shares no state with the parent)."""

    device: str  #: as given on the command line (``auto`` is resolved where the worker runs)
    threads: int | None  #: torch's CPU threads; None: torch's default
    results: Path
    cache_dir: Path
    data_root: Path | None = None
    weights: dict[str, Path] = field(default_factory=dict)
    download: bool = False
    joint: bool = True  #: see :class:`~dfqbench.session.Session`


def worker_devices(device: torch.device, jobs: int) -> list[str]:
    """Worker i's device: the i-th GPU round-robin for ``cuda``, the given device otherwise."""
    if device.type == "cuda" and device.index is None:
        return [f"cuda:{i % torch.cuda.device_count()}" for i in range(jobs)]
    return [str(device)] * jobs


def run_parallel(
    cells: list[Cell], session: Session, store: RecordStore, resume: bool, display: Display, jobs: int, spec: WorkerSpec
) -> Outcome:
    todo, outcome = pending(cells, store, resume, session)
    units = work_units(todo, jobs, session.trainings)
    jobs = min(jobs, len(units))  # a worker without work would only cost its start-up
    outcome.announce(display, len(todo), f" in {jobs} processes" if jobs > 1 else "")
    if not units:
        return outcome
    if torch.device(spec.device).type == "cpu":  # an equal share of this process's threads each
        spec = dataclasses.replace(spec, threads=max(1, torch.get_num_threads() // jobs))
    starts = [(device, (spec, device)) for device in worker_devices(torch.device(spec.device), jobs)]
    earlier = len(store.read())  # records appended from here on are this run's
    with display:
        # Teachers downloaded on first use are cached here, once, before the workers load them.
        session.prepare(todo)
        with display.bar("cells", len(todo), transient=False) as overall, Workers(_start_worker, starts) as workers:
            for unit, records in workers.map_unordered(_run_unit, units):
                if isinstance(records, WorkerDied):  # a fresh worker takes its place; the run goes on, as with a dead Slurm job
                    records = salvage(unit, records, store, earlier, outcome, display, overall, "a worker process")
                outcome.count_all(records, display, overall)
    return outcome


def work_units(
    cells: list[Cell], jobs: int, trainings: Callable[[list[Cell]], list[list[Cell]]] | None = None
) -> list[list[Cell]]:
    """The cells of one (dataset, model, seed, method) go to one worker, so that what the
    method shares across bit-widths is computed once, unless there are fewer such groups
    than workers: then every training is a unit of its own and every worker has work. A
    training is one cell, or the bit-widths a method trains jointly (``trainings``, e.g.
    :meth:`Session.trainings`; split, they would cost a generator each)."""

    def group(cell: Cell) -> tuple:
        return (cell.dataset, cell.model, cell.seed, cell.method)

    groups = [list(g) for _, g in itertools.groupby(sorted(cells, key=group), key=group)]
    if len(groups) >= jobs:
        return groups
    return trainings(cells) if trainings else [[cell] for cell in cells]


def worker_session(spec: WorkerSpec, device: str) -> tuple[Session, RecordStore]:
    """A session of its own for a worker process, a Slurm job or a Ray task, on ``device``."""
    if spec.threads is not None:
        torch.set_num_threads(spec.threads)
    torch_device = resolve_device(device)
    if torch_device.type == "cuda" and torch_device.index is not None:
        torch.cuda.set_device(torch_device)  # code that allocates on "the current GPU" stays on this worker's
    make_deterministic(torch_device)
    zoo = ZooEnv(cache_dir=spec.cache_dir, data_root=spec.data_root, weights=dict(spec.weights), download=spec.download)
    return Session(load_registry(), torch_device, zoo, joint=spec.joint), RecordStore(spec.results)


def run_cells(session: Session, store: RecordStore, cells: list[Cell], recorded: dict[str, dict] | None = None) -> list[dict]:
    """Run ``cells`` one after another, appending each record as soon as it exists; a cell
    with a record in ``recorded`` (key → record) is not run again."""
    records = [recorded[cell.key] for cell in cells if recorded and cell.key in recorded]
    for training in session.trainings([cell for cell in cells if not (recorded and cell.key in recorded)]):
        made = session.run_together(training)
        append_training(store, made)
        records += made
    return records


def append_training(store: RecordStore, records: list[dict]) -> None:
    """A training's records (several where bit-widths trained jointly), in order; where the
    disk refuses one, the error names the results of those after it too."""
    for i, record in enumerate(records):
        try:
            store.append(record)
        except DfqError as exc:
            rest = records[i + 1 :]
            if not rest:
                raise
            results = ", ".join(f"{label(r['cell']['w_bits'], r['cell']['a_bits'])} {outcome_of(r)}" for r in rest)
            raise DfqError(f"{exc}; nor were the records of the rest of its joint training ({results})") from None


def _start_worker(spec: WorkerSpec, device: str) -> tuple[Session, RecordStore]:
    try:
        return worker_session(spec, device)
    except Exception as exc:
        raise DfqError(f"a worker process on {device} could not start: {type(exc).__name__}: {exc}") from None


def _run_unit(worker: tuple[Session, RecordStore], cells: list[Cell]) -> list[dict]:
    return run_cells(*worker, cells)


def _title(cells: list[Cell]) -> str:
    """A training's cells: one title, or the bits of a joint training in one."""
    first = cells[0]
    if len(cells) == 1:
        return first.title
    return f"{first.method} · {first.model} · {', '.join(cell.bits for cell in cells)} jointly · seed {first.seed}"


def _summary_line(record: dict) -> str:
    title = title_of(record)
    if record["status"] == "ok":
        return f"[green]✓[/green] {title}: top-1 {record['top1']:.2f}% (FP {record['fp_top1']:.2f}%) in {record['wall_time_s']:.0f}s"
    error = record["error"] or {}
    # the first line: torch's errors go on with a C++ stack (the record keeps all of it)
    message = next(iter(str(error.get("message", "")).splitlines()), "")
    return f"[red]✗[/red] {title}: {record['status']}: {error.get('type', '')}: {message}"
