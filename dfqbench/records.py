"""Run records: one JSON object per cell, appended to ``records.jsonl``, never rewritten.

Records are the single source of truth; every table is regenerated from them. A record
is appended with one ``write`` call under an exclusive lock and flushed to disk, so
concurrent writers (several executors on one file system) cannot interleave lines and a
crash cannot lose a completed cell.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import reprlib
from pathlib import Path
from typing import Any, NamedTuple

from dfqbench.bits import label
from dfqbench.errors import DfqError
from dfqbench.files import probe_folder, write_whole

SCHEMA = 1
STATUSES = ("ok", "failed", "diverged")
REQUIRED = ("key", "status", "cell")
#: the fields of ``cell`` that every record has and tables, ``show`` and resuming read
CELL_FIELDS = {
    **dict.fromkeys(("suite", "dataset", "model", "method", "budget"), str),
    **dict.fromkeys(("w_bits", "a_bits", "seed"), int),
    **dict.fromkeys(("quantizer", "config"), dict),
}
#: what tables compute with
NUMBERS = ("top1", "top5", "fp_top1", "fp_top5", "wall_time_s")


class Maybe(NamedTuple):
    """The shape, or null."""

    shape: Any


class Each(NamedTuple):
    """A JSON object whose every value has the shape (a name → value map)."""

    shape: Any


class ListOf(NamedTuple):
    shape: Any


NUMBER = float  #: in a shape: a finite number, integer or not
#: The shapes of everything tables, ``show`` and resuming read from a record: a JSON type, or
#: ``{field: shape}`` for an object whose listed fields are checked where present (older
#: records lack some; the required ones are checked first). A value of another shape would
#: fail in the middle of a command that already did work, so the reader refuses its line.
SHAPE = {
    "key": str,
    "cell": {**CELL_FIELDS, "quantizer": {"name": str}, "overrides": Each(dict), "data": dict, "precision": str},
    "teacher_sha256": Maybe(str),
    **dict.fromkeys(NUMBERS, Maybe(NUMBER)),
    "labels": {"data_free": bool, "year": int, **dict.fromkeys(("dataset", "model", "method"), str)},
    "metrics": Each({"last": NUMBER, "count": int}),
    "versions": {**dict.fromkeys(("dfqbench", "torch", "python"), str), "source": Maybe(str), "plugin": Each(Maybe(str))},
    "machine": Each(str),
    "error": Maybe(Each(str)),
    "joint": {"keys": ListOf(str), "wall_time_s": NUMBER},
    **dict.fromkeys(("log", "log_error", "device", "finished"), str),
}
#: folder of the per-cell metric histories, beside ``records.jsonl``
LOGS = "logs"


class RecordStore:
    def __init__(self, path: Path):
        self.path = Path(path)

    def check_writable(self, create: bool = True) -> None:
        """Fail early, before any work, if records cannot be written. Writes nothing that
        stays; ``create=False`` (a dry run) does not create the results folder either."""
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            # a link counts as there even when it leads nowhere: the append would follow it
            existing = next(p for p in (self.path, *self.path.parents) if p.exists() or p.is_symlink())
            if existing == self.path and not self.path.exists():  # a link that leads nowhere (yet)
                try:
                    os.stat(self.path)  # a loop says so here
                except FileNotFoundError:  # where it leads must take a file; a dry run creates none
                    probe_folder((self.path.parent / os.readlink(self.path)).parent)
            elif existing == self.path:
                with open(self.path, "a"):
                    pass
            elif existing.is_dir():
                probe_folder(existing)
            else:
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        except OSError as exc:
            raise DfqError(
                f"cannot write records to {self.path}: {exc.strerror or exc}; choose a writable folder with --results"
            ) from None
        logs = self.path.parent / LOGS
        try:
            if logs.exists():
                probe_folder(logs)
        except OSError as exc:
            raise DfqError(f"cannot write metric logs to {logs}: {exc.strerror or exc}; it must be a writable folder (or absent)") from None

    def append(self, record: dict[str, Any]) -> None:
        """Append ``record``. Its ``history`` (every value the method logged, in order) moves
        to a log file of its own, named in the record as ``log``: curves can be long (one
        point per PSAQ-ViT V2 cycle) and tables never read them."""
        history = record.pop("history", None)
        if history:
            try:
                record["log"] = self._write_log(record["key"], history)
            except OSError as exc:  # the cell's result matters more than its curves
                record["log_error"] = f"{type(exc).__name__}: {exc}"
        line = (json.dumps(record, sort_keys=True, allow_nan=False) + "\n").encode()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            end = os.fstat(fd).st_size
            if end and os.pread(fd, 1, end - 1) != b"\n":  # e.g. an editor dropped the final newline
                line = b"\n" + line
            try:
                rest = memoryview(line)
                while rest:  # a short write (a full disk, a quota, a size limit) raises at the next one
                    written = os.write(fd, rest)
                    if not written:
                        raise OSError(errno.EIO, "the file system took none of the record")
                    rest = rest[written:]
                os.fsync(fd)
            except OSError as exc:  # a part of a line would make every later read refuse the file
                what = f"{title_of(record)} ({outcome_of(record)})"
                try:
                    os.ftruncate(fd, end)
                    after = "the file is as it was, so that cell runs again"
                except OSError as cut:
                    after = f"and cutting the partial line off failed too ({cut.strerror or cut}): delete the file's last line"
                raise DfqError(f"cannot append the record of {what} to {self.path}: {exc.strerror or exc}; {after}") from None
        finally:
            os.close(fd)  # closing releases the lock

    def _write_log(self, key: str, history: dict[str, list[float]]) -> str:
        relative = f"{LOGS}/{key}.json"
        path = self.path.parent / relative
        path.parent.mkdir(exist_ok=True)
        write_whole(path, json.dumps({"key": key, "history": history}, allow_nan=False))  # over a rerun's log of the same cell
        return relative

    def history(self, record: dict[str, Any]) -> dict[str, list[float]]:
        """The metric history of ``record`` ({} for records made before logs existed)."""
        if not record.get("log"):
            return {}
        path = self.path.parent / record["log"]
        try:
            history = json.loads(path.read_text())["history"]
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            reason = f"no {exc}" if isinstance(exc, KeyError) else f"{exc}"
            raise DfqError(f"cannot read the log of cell {record['key']} ({path}): {reason}") from None
        if _mismatch(history, Each(ListOf(Maybe(NUMBER))), ()):
            raise DfqError(f"cannot read the log of cell {record['key']} ({path}): its history is not a name → list of numbers")
        return history

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        if not self.path.is_file():
            raise DfqError(f"{self.path} is not a file; it must be dfqbench's records (one JSON object per line)")
        records = []
        with open(self.path, "rb") as f:
            for number, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise DfqError(f"{self.path} line {number} is not UTF-8 text; fix or delete that line, the others are intact") from None
                records.append(parse_line(line, self.path, number))
        return records

    def done(self) -> dict[str, dict[str, Any]]:
        """The cells whose latest record is ``ok``, by key (a failed rerun undoes an earlier ``ok``,
        as it does in the tables; the earlier record stays in the file)."""
        return {r["key"]: r for r in latest(self.read()) if r["status"] == "ok"}


def title_of(record: dict[str, Any]) -> str:
    """``gdfq · resnet20-digits · 3w3a · seed 2``, as :attr:`Cell.title` names a planned cell."""
    cell = record["cell"]
    return f"{cell['method']} · {cell['model']} · {label(cell['w_bits'], cell['a_bits'])} · seed {cell['seed']}"


def outcome_of(record: dict[str, Any]) -> str:
    """``top-1 87.65``, or the status of a cell without one."""
    return f"top-1 {record['top1']:.2f}" if record.get("top1") is not None else record["status"]


def parse_line(line: str, path: Path, number: int) -> dict[str, Any]:
    where = f"{path} line {number}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DfqError(f"{where} is not valid JSON ({exc.msg}); fix or delete that line, the others are intact") from None
    except ValueError as exc:  # an integer of more digits than Python converts (its advice after ";" is for programmers)
        raise DfqError(f"{where} cannot be read ({str(exc).split(';')[0]}); fix or delete that line, the others are intact") from None
    except RecursionError:
        raise DfqError(f"{where} is nested too deeply to be a dfqbench record; fix or delete that line") from None
    if not isinstance(record, dict) or any(k not in record for k in REQUIRED):
        raise DfqError(f"{where} is not a dfqbench record (needs {', '.join(REQUIRED)}); fix or delete that line")
    if record.get("schema", SCHEMA) != SCHEMA:  # first: another schema's fields may differ in any way
        raise DfqError(f"{where} has record schema {reprlib.repr(record['schema'])}, this dfqbench reads schema {SCHEMA}; "
                       "use the dfqbench version that wrote it")
    if record["status"] not in STATUSES:
        raise DfqError(f"{where} has unknown status {record['status']!r}; valid choices: {', '.join(STATUSES)}")
    if not isinstance(record["cell"], dict):
        raise DfqError(f"{where} has cell {reprlib.repr(record['cell'])}, not a JSON object; fix or delete that line")
    for name in CELL_FIELDS:
        if name not in record["cell"]:
            raise DfqError(f"{where} has a cell without {name!r}; fix or delete that line")
    for name in NUMBERS:  # named apart: NaN and numbers beyond a float are what damages these
        value = record.get(name)
        if value is not None and not _finite(value):
            raise DfqError(f"{where} has {name} {reprlib.repr(value)}; valid: a finite number or null. Fix or delete that line")
    if record["status"] == "ok" and record.get("top1") is None:
        raise DfqError(f"{where} is ok without a top1; valid: a finite number. Fix or delete that line")
    mismatch = _mismatch(record, SHAPE, ())
    if mismatch:
        path, value, shape = mismatch
        raise DfqError(f"{where} has {' '.join(path)} {reprlib.repr(value)}, not {_kind(shape)}; fix or delete that line")
    return record


def _mismatch(value: Any, shape: Any, path: tuple[str, ...]) -> tuple[tuple[str, ...], Any, Any] | None:
    """The first place where ``value`` does not have ``shape``: (field path, value, shape)."""
    if isinstance(shape, Maybe):
        found = None if value is None else _mismatch(value, shape.shape, path)
        return (path, value, shape) if found and found[0] == path else found
    if isinstance(shape, (dict, Each)):
        if not isinstance(value, dict):
            return path, value, shape
        fields = value.items() if isinstance(shape, Each) else ((k, value[k]) for k in shape if k in value)
        for name, item in fields:
            found = _mismatch(item, shape.shape if isinstance(shape, Each) else shape[name], (*path, name))
            if found:
                return found
        return None
    if isinstance(shape, ListOf):
        if not isinstance(value, list):
            return path, value, shape
        return next(filter(None, (_mismatch(item, shape.shape, (*path, f"[{i}]")) for i, item in enumerate(value))), None)
    if shape is NUMBER:
        return None if _finite(value) else (path, value, shape)
    ok = isinstance(value, shape) and not (shape is int and isinstance(value, bool))
    return None if ok else (path, value, shape)


def _finite(value: Any) -> bool:
    try:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    except OverflowError:  # an integer beyond any float
        return False


def _kind(shape: Any) -> str:
    if isinstance(shape, Maybe):
        return f"{_kind(shape.shape)} or null"
    if isinstance(shape, (dict, Each)):
        return "a JSON object" + (f" of {_plural(shape.shape)}" if isinstance(shape, Each) and shape.shape is not dict else "")
    if isinstance(shape, ListOf):
        return f"a list of {_plural(shape.shape)}"
    return {str: "a string", dict: "a JSON object", int: "an integer", bool: "true or false", NUMBER: "a finite number"}[shape]


def _plural(shape: Any) -> str:
    if isinstance(shape, Maybe):
        return f"{_plural(shape.shape)} or nulls"
    return "strings" if shape is str else "finite numbers" if shape is NUMBER else "JSON objects"


def latest(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last record of each cell key (a rerun with ``--no-resume`` supersedes)."""
    by_key: dict[str, dict[str, Any]] = {}
    for record in records:
        by_key.pop(record["key"], None)
        by_key[record["key"]] = record
    return list(by_key.values())
