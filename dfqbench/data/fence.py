"""The fence that keeps real images from data-free methods, whatever path a plugin takes.

A run context gives a data-free method no data set, but a plugin can import a loader and
call it, as ZAQ's reference calibrates on the test set. So while a data-free method's
``quantize`` runs, the session holds the fence up and every loader of dfqbench's suites
refuses first thing: the cell fails with :class:`~dfqbench.errors.DataFreeViolation` instead
of quietly calibrating on real images. A third party's dataset loader joins the fence by
calling :func:`check_unfenced` before it reads anything. What no harness can stop is a method
that opens the files itself, without a loader.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from dfqbench.errors import DataFreeViolation

_running: ContextVar[str | None] = ContextVar("dfqbench_data_free_method", default=None)


@contextmanager
def fenced(method: str) -> Iterator[None]:
    """Real data is refused while the data-free ``method`` runs."""
    token = _running.set(method)
    try:
        yield
    finally:
        _running.reset(token)


def check_unfenced(dataset: str, split: str) -> None:
    """Raise if a data-free method is running: the first line of every dataset loader."""
    method = _running.get()
    if method is not None:
        raise DataFreeViolation(f"{method} is registered as data-free and tried to load {dataset} ({split} split); real data goes only to methods with data_free=False, through the run context")
