"""Progress display with rich: overall cells with ETA, and the current job's inner steps."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class Bar:
    """A handle on one progress line; methods call :meth:`advance` once per step."""

    def __init__(self, progress: Progress | None = None, task_id: int | None = None):
        self._progress, self._task = progress, task_id

    def advance(self, steps: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, steps)

    def note(self, text: str) -> None:
        """Short status shown beside the bar (e.g. the latest loss)."""
        if self._progress is not None:
            self._progress.update(self._task, info=text)


class Display:
    """Wraps one ``rich.progress.Progress``; a ``None`` console makes it silent (tests)."""

    def __init__(self, console: Console | None):
        self.console = console
        self._progress = (
            Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=console,
                disable=not console.is_terminal,  # logs get one line per finished cell instead
            )
            if console is not None
            else None
        )

    def __enter__(self) -> Display:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def print(self, *args: object) -> None:
        if self.console is not None:
            self.console.print(*args, highlight=False)

    @contextmanager
    def bar(self, description: str, total: int | None, transient: bool = True) -> Iterator[Bar]:
        if self._progress is None:
            yield Bar()
            return
        task = self._progress.add_task(description, total=total, info="")
        try:
            yield Bar(self._progress, task)
        finally:
            if transient:
                self._progress.remove_task(task)


SILENT = Display(None)
