"""Worker processes for ``--jobs N``: each spawned process builds its state once and then
runs units of work sent to it over a pipe of its own.

Not :class:`multiprocessing.pool.Pool`: its ``terminate()`` can deadlock when a worker dies
holding one of the queue locks that all workers share (python/cpython#73945, #96995; a CI
run of this project hung 90 minutes on it), and a worker that dies in a task (the kernel's
OOM killer, a fault in a GPU driver) leaves Pool waiting forever for that task's result.
Here no lock is shared: the parent waits on every busy worker's pipe and process at once,
so a result, an error and a death are all noticed; a dead worker is replaced, and stopping
is a kill and a join.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from dfqbench.errors import DfqError


class WorkerDied(DfqError):
    """A worker process ended while it had work."""

    def __init__(self, exitcode: int | None) -> None:
        how = f"killed by {signal.Signals(-exitcode).name}" if exitcode is not None and exitcode < 0 else f"exit code {exitcode}"
        super().__init__(f"the process died ({how})")


@dataclass
class _Worker:
    name: str
    args: tuple  #: of setup
    process: multiprocessing.process.BaseProcess
    pipe: Connection
    unit: Any = None  #: the unit it is running; None while idle


class Workers:
    """One spawned process per ``(name, args)`` of ``workers``, each with the state that
    ``setup(*args)`` makes there; leaving the ``with`` block kills them all (after Ctrl-C,
    an error or the last unit alike). ``setup`` and the tasks must be importable functions:
    spawn sends them by name."""

    def __init__(self, setup: Callable[..., Any], workers: list[tuple[str, tuple]]) -> None:
        self._setup = setup
        self._workers = workers
        self._pool: list[_Worker] = []

    def __enter__(self) -> Workers:
        try:
            for name, args in self._workers:
                self._pool.append(self._start(name, args))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        for worker in self._pool:
            _stop(worker)
        self._pool = []

    def _start(self, name: str, args: tuple) -> _Worker:
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(target=_serve, args=(theirs, self._setup, args), name=f"dfqbench worker on {name}", daemon=True)
        with _stop_signals_left_to_the_parent():
            process.start()
        theirs.close()  # so that a dead worker's pipe reads as closed here
        return _Worker(name, args, process, ours)

    def map_unordered(self, task: Callable[[Any, Any], Any], units: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        """``(unit, task(state, unit))`` for every unit, as the units finish. An exception
        of ``setup`` (with a worker's first unit) or of ``task`` is raised here. A worker
        that dies is replaced by a fresh one when there is more work, and its unit comes
        back with a :class:`WorkerDied` (not raised) in place of a result: what the loss
        means is the caller's to say."""
        todo = deque(units)
        while True:
            for i, worker in enumerate(self._pool):
                if worker.unit is None and todo:
                    if not worker.process.is_alive():  # died in its last unit, or while idle: started afresh only now that there is work
                        _stop(worker)
                        worker = self._pool[i] = self._start(worker.name, worker.args)
                    worker.unit = todo.popleft()
                    try:
                        worker.pipe.send((task, worker.unit))
                    except OSError:  # it died since its last result: its sentinel and closed pipe tell, below
                        pass
            busy = [worker for worker in self._pool if worker.unit is not None]
            if not busy:
                return
            ready = wait([w.pipe for w in busy] + [w.process.sentinel for w in busy])
            for worker in busy:
                if worker.pipe in ready or worker.process.sentinel in ready:
                    unit, result = worker.unit, _result(worker)
                    worker.unit = None
                    yield unit, result


@contextlib.contextmanager
def _stop_signals_left_to_the_parent() -> Iterator[None]:
    """Ctrl-C in a terminal and a scheduler's SIGTERM reach the whole process group; the
    parent decides and kills its workers. A process started in here ignores both from its
    first instruction on (an ignored signal stays ignored through exec, and Python then
    installs no KeyboardInterrupt handler), so even a worker still importing torch prints no
    traceback. The price: one that reaches the parent in the milliseconds of a start is lost
    (a second Ctrl-C stops the run; a scheduler follows SIGTERM with SIGKILL, and the records
    are on disk)."""
    stopping = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not None]  # None: a handler Python cannot restore
    handlers = [signal.signal(s, signal.SIG_IGN) for s in stopping]
    try:
        yield
    finally:
        for s, handler in zip(stopping, handlers):
            signal.signal(s, handler)


def _result(worker: _Worker) -> Any:
    """The busy ``worker``'s answer, which it may have sent just before it ended."""
    try:
        ok, value = worker.pipe.recv() if worker.pipe.poll() else (None, None)
    except (EOFError, OSError):
        ok = None
    if ok is None:
        worker.process.join()
        return WorkerDied(worker.process.exitcode)
    if not ok:
        raise value
    return value


def _stop(worker: _Worker) -> None:
    worker.pipe.close()
    worker.process.kill()
    worker.process.join()


def _serve(pipe: Connection, setup: Callable[..., Any], args: tuple) -> None:
    try:
        state, failed = setup(*args), None
    except Exception as exc:  # noqa: BLE001 - raised in the parent with the first unit of work
        state, failed = None, exc
    while True:
        try:
            task, unit = pipe.recv()
        except EOFError:  # the parent is gone
            return
        if failed is not None:
            _send(pipe, False, failed)
            continue
        try:
            result = task(state, unit)
        except Exception as exc:  # noqa: BLE001 - raised in the parent
            _send(pipe, False, exc)
        else:
            _send(pipe, True, result)


def _send(pipe: Connection, ok: bool, value: Any) -> None:
    try:
        pipe.send((ok, value))
    except Exception as exc:  # noqa: BLE001 - e.g. an exception that does not pickle: its type and message still reach the parent
        pipe.send((False, DfqError(f"{type(value).__name__}: {value}" if not ok else f"a result did not pickle: {exc}")))
