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
import tempfile
from pathlib import Path
from typing import Any

from dfqbench.errors import DfqError
from dfqbench.files import write_whole

SCHEMA = 1
STATUSES = ("ok", "failed", "diverged")
REQUIRED = ("key", "status", "cell")
#: the fields of ``cell`` that tables, ``show`` and resuming read, with their JSON types
CELL_FIELDS = {
    **dict.fromkeys(("suite", "dataset", "model", "method", "budget"), str),
    **dict.fromkeys(("w_bits", "a_bits", "seed"), int),
    **dict.fromkeys(("quantizer", "config"), dict),
}
#: optional fields of a record and of its cell, checked where present (older records lack them)
OPTIONAL_FIELDS = {"labels": dict, "metrics": dict, "joint": dict}
OPTIONAL_CELL_FIELDS = {"overrides": dict, "data": dict, "precision": str}
#: what tables compute with
NUMBERS = ("top1", "top5", "fp_top1", "fp_top5", "wall_time_s")
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
            existing = next(p for p in (self.path, *self.path.parents) if p.exists())
            if existing == self.path:
                with open(self.path, "a"):
                    pass
            elif existing.is_dir():
                with tempfile.TemporaryFile(dir=existing):  # gone on close; os.access would trust root
                    pass
            else:
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        except OSError as exc:
            raise DfqError(
                f"cannot write records to {self.path}: {exc.strerror or exc}; choose a writable folder with --results"
            ) from None
        logs = self.path.parent / LOGS
        try:
            if logs.exists():
                with tempfile.TemporaryFile(dir=logs):
                    pass
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
            os.write(fd, line)
            os.fsync(fd)
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
        if not isinstance(history, dict) or not all(isinstance(v, list) for v in history.values()):
            raise DfqError(f"cannot read the log of cell {record['key']} ({path}): its history is not a name → list of values")
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


def parse_line(line: str, path: Path, number: int) -> dict[str, Any]:
    where = f"{path} line {number}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DfqError(f"{where} is not valid JSON ({exc.msg}); fix or delete that line, the others are intact") from None
    except RecursionError:
        raise DfqError(f"{where} is nested too deeply to be a dfqbench record; fix or delete that line") from None
    if not isinstance(record, dict) or any(k not in record for k in REQUIRED):
        raise DfqError(f"{where} is not a dfqbench record (needs {', '.join(REQUIRED)}); fix or delete that line")
    if record.get("schema", SCHEMA) != SCHEMA:  # first: another schema's fields may differ in any way
        raise DfqError(f"{where} has record schema {reprlib.repr(record['schema'])}, this dfqbench reads schema {SCHEMA}; "
                       "use the dfqbench version that wrote it")
    if record["status"] not in STATUSES:
        raise DfqError(f"{where} has unknown status {record['status']!r}; valid choices: {', '.join(STATUSES)}")
    for name, kinds in (("key", str), ("cell", dict), ("teacher_sha256", (str, type(None)))):
        if not isinstance(record.get(name), kinds):
            raise DfqError(f"{where} has {name} {reprlib.repr(record.get(name))}, not {_kind(kinds)}; fix or delete that line")
    for name in NUMBERS:
        value = record.get(name)
        if value is not None and not _finite(value):
            raise DfqError(f"{where} has {name} {reprlib.repr(value)}; valid: a finite number or null. Fix or delete that line")
    if record["status"] == "ok" and record.get("top1") is None:
        raise DfqError(f"{where} is ok without a top1; valid: a finite number. Fix or delete that line")
    cell = record["cell"]
    for name, kind in CELL_FIELDS.items():
        if name not in cell:
            raise DfqError(f"{where} has a cell without {name!r}; fix or delete that line")
        if not _is(cell[name], kind):
            raise DfqError(f"{where} has cell {name} {reprlib.repr(cell[name])}, not {_kind(kind)}; fix or delete that line")
    for holder, fields in ((record, OPTIONAL_FIELDS), (cell, OPTIONAL_CELL_FIELDS)):
        for name, kind in fields.items():
            if name in holder and not _is(holder[name], kind):
                raise DfqError(f"{where} has {name} {reprlib.repr(holder[name])}, not {_kind(kind)}; fix or delete that line")
    return record


def _is(value: Any, kind: type) -> bool:
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _finite(value: Any) -> bool:
    try:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    except OverflowError:  # an integer beyond any float
        return False


def _kind(kinds: type | tuple[type, ...]) -> str:
    names = {str: "a string", dict: "a JSON object", int: "an integer", type(None): "null"}
    return " or ".join(names[k] for k in (kinds if isinstance(kinds, tuple) else (kinds,)))


def latest(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last record of each cell key (a rerun with ``--no-resume`` supersedes)."""
    by_key: dict[str, dict[str, Any]] = {}
    for record in records:
        by_key.pop(record["key"], None)
        by_key[record["key"]] = record
    return list(by_key.values())
