"""Errors the CLI turns into one clear line and exit code 2 (never a traceback)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager


class DfqError(Exception):
    """Bad input or environment: the message is shown to the user as one line."""


class UnusedWeights(DfqError):
    """A ``--weights`` file for a model whose loader reads none: the user's mistake whether or
    not the model's cells still have to run."""


def unknown(kind: str, value: str, choices: Iterable[str], where: str = "") -> DfqError:
    """``unknown method 'gdfqq'; valid choices: adadfq, gdfq, ...``"""
    valid = ", ".join(sorted(choices)) or "(none)"
    return DfqError(f"unknown {kind} {value!r}{where}; valid choices: {valid}")


@contextmanager
def writing_tables() -> Iterator[None]:
    """Tables are regenerated from the records, which are written first: a table file that
    cannot be written is one line that says so, never a traceback."""
    try:
        yield
    except OSError as exc:
        raise DfqError(f"cannot write {exc.filename or 'the tables'}: {exc.strerror or exc}; the records are intact") from None


class DataFreeViolation(RuntimeError):
    """A data-free method asked the harness for real data."""


class Diverged(RuntimeError):
    """A method produced a non-finite loss or model; the cell is recorded as ``diverged``."""
