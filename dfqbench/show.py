"""``dfqbench show``: find cells among the stored records, and print one cell in full — its
settings, outcome, error and the history of everything its method logged."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from dfqbench import precision, tables
from dfqbench.bits import label
from dfqbench.records import latest

#: a record whose cell the tables leave out: a later configuration of its entry supersedes it
SUPERSEDED = "superseded (a later configuration of this entry is the one tabled)"


def select(records: list[dict[str, Any]], key: str | None, bits: tuple[int, int] | None, **fields: Any) -> list[dict[str, Any]]:
    """The latest record of every cell whose key starts with ``key`` and whose cell has
    ``bits`` and the given field values (None: any)."""
    out = []
    for record in latest(records):
        cell = record["cell"]
        if key and not record["key"].startswith(key):
            continue
        if bits and (cell["w_bits"], cell["a_bits"]) != bits:
            continue
        values = {**cell, "precision": precision.of(cell)}
        if any(value is not None and values.get(name) != value for name, value in fields.items()):
            continue
        out.append(record)
    return out


def nothing_matches(records: list[dict[str, Any]], key: str | None, bits: tuple[int, int] | None, fields: dict[str, Any], results: Any) -> str:
    """Why no cell was selected: the first option that no record has, with the values they
    have, else the combination."""
    if not records:
        return f"no records under {results}; run `dfqbench run` first"
    if key and not any(r["key"].startswith(key) for r in records):
        return f"no cell under {results} has a key starting with {key!r}; `dfqbench show` with no key lists them"
    if bits and not select(records, None, bits):
        have = sorted({(r["cell"]["w_bits"], r["cell"]["a_bits"]) for r in records})
        return f"no cell under {results} has --bits {label(*bits)}; valid choices: {', '.join(label(*b) for b in have)}"
    for name, value in fields.items():
        if value is not None and not select(records, None, None, **{name: value}):
            have = sorted({str({**r["cell"], "precision": precision.of(r["cell"])}[name]) for r in records}, key=_natural)
            return f"no cell under {results} has --{name} {value}; valid choices: {', '.join(have)}"
    return f"no cell under {results} matches all of these options together; `dfqbench show` with fewer options lists them"


def _natural(text: str) -> tuple:
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


def tabled(records: list[dict[str, Any]]) -> set[str]:
    """The keys whose records the tables count (of ``records``, all of one results file)."""
    cells = tables.frame(records)
    return set(cells["key"]) if not cells.empty else set()


def listing(records: list[dict[str, Any]], counted: set[str]) -> str:
    """Several cells, one line each: enough to pick one by its key; ``counted``: the keys the
    tables count (:func:`tabled`), the others marked superseded."""
    rows = [
        {
            "key": r["key"],
            "method": r["cell"]["method"],
            "model": r["cell"]["model"],
            "bits": label(r["cell"]["w_bits"], r["cell"]["a_bits"]),
            "seed": r["cell"]["seed"],
            "budget": r["cell"]["budget"],
            "quantizer": r["cell"]["quantizer"].get("name", "?"),
            "precision": precision.of(r["cell"]),
            "status": r["status"],
            "top-1": "–" if r.get("top1") is None else f"{r['top1']:.2f}",
            "finished": r.get("finished", "?"),  # a cell rerun under newer defaults is a newer line
            "tabled": "yes" if r["key"] in counted else "superseded",
        }
        for r in records
    ]
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)


def details(record: dict[str, Any], history: dict[str, list[float]], counted: bool = True) -> str:
    """One cell: settings, outcome and its metric history (one row per ``ctx.log`` call);
    ``counted``: whether the tables count it (:func:`tabled`)."""
    cell = record["cell"]
    top1 = "–" if record.get("top1") is None else f"{record['top1']:.2f} (FP {_number(record.get('fp_top1'), '.2f')})"
    lines = [
        f"cell {record['key']}: {cell['method']} · {cell['dataset']}/{cell['model']} · {label(cell['w_bits'], cell['a_bits'])} · "
        f"seed {cell['seed']} · budget {cell['budget']} · precision {precision.of(cell)}",
        f"status {record['status']} · top-1 {top1} · {_number(record.get('wall_time_s'), '.0f')} s on {record.get('device', '?')} · "
        f"finished {record.get('finished', '?')}",
        f"quantizer {json.dumps(cell['quantizer'], sort_keys=True)}",
        f"config {json.dumps(cell['config'], sort_keys=True)}",
        f"teacher weights sha256 {record.get('teacher_sha256') or '– (the record predates the digest)'}",
        f"made with {_versions(record.get('versions', {}))}",
        f"machine {' · '.join(record['machine'].values()) if record.get('machine') else '– (the record predates it)'}",
    ]
    if record.get("joint"):
        joint = record["joint"]
        lines.append(
            f"trained jointly with {len(joint.get('keys', [])) - 1} other bit-width(s) on one generator "
            f"({joint.get('wall_time_s', 0):.0f} s for all; the time above is this cell's equal share)"
        )
    if not counted:
        lines.append(SUPERSEDED)
    if record.get("error"):
        lines += [f"error {record['error'].get('type')}: {record['error'].get('message')}", record["error"].get("traceback", "").rstrip()]
    if record.get("log_error"):
        lines.append(f"its metric log could not be written ({record['log_error']})")
    if history:
        frame = pd.DataFrame({name: pd.Series(values, dtype=float) for name, values in history.items()})
        frame.index.name = "log"
        lines += ["", frame.to_markdown(floatfmt=".6g")]
    elif record.get("metrics"):
        last = {name: m.get("last") for name, m in record["metrics"].items()}
        lines.append(f"no metric history (the record predates logs, or its log is gone); last values {json.dumps(last, sort_keys=True)}")
    else:
        lines.append("no metric history (the method logged nothing)")
    return "\n".join(lines)


def _number(value: float | None, spec: str) -> str:
    return "?" if value is None else format(value, spec)


def _versions(versions: dict[str, Any]) -> str:
    plugin = versions.get("plugin", {})
    source = f" (source {versions['source']})" if versions.get("source") else ""
    return (
        f"dfqbench {versions.get('dfqbench', '?')}{source} · torch {versions.get('torch', '?')} · "
        f"plugin {plugin.get('distribution', '?')} {plugin.get('version', '?')}"
    )
