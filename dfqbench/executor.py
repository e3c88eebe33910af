"""The local executor: runs the plan's cells in this process, one after another.

Cells whose key already has an ``ok`` record are skipped (``--resume``). Each finished
cell is appended to the records at once, so Ctrl-C loses at most the cell in progress.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dfqbench.plan import Cell
from dfqbench.progress import Display
from dfqbench.records import RecordStore
from dfqbench.session import Session


@dataclass
class Outcome:
    planned: int = 0
    skipped: int = 0
    statuses: dict[str, int] = field(default_factory=dict)


def run_local(cells: list[Cell], session: Session, store: RecordStore, resume: bool, display: Display) -> Outcome:
    done = store.ok_keys() if resume else set()
    todo = [cell for cell in cells if cell.key not in done]
    outcome = Outcome(planned=len(cells), skipped=len(cells) - len(todo))
    display.print(f"{len(cells)} cells planned, {outcome.skipped} already done, {len(todo)} to run")
    with display:
        session.prepare(todo)
        with display.bar("cells", len(todo), transient=False) as overall:
            for cell in todo:
                overall.note(cell.title)
                record = session.run(cell)
                store.append(record)
                outcome.statuses[record["status"]] = outcome.statuses.get(record["status"], 0) + 1
                display.print(_summary_line(record))
                overall.advance()
    return outcome


def _summary_line(record: dict) -> str:
    cell = record["cell"]
    title = f"{cell['method']} · {cell['model']} · {cell['w_bits']}w{cell['a_bits']}a · seed {cell['seed']}"
    if record["status"] == "ok":
        return f"[green]✓[/green] {title}: top-1 {record['top1']:.2f}% (FP {record['fp_top1']:.2f}%) in {record['wall_time_s']:.0f}s"
    error = record["error"] or {}
    return f"[red]✗[/red] {title}: {record['status']}: {error.get('type', '')}: {error.get('message', '')}"
