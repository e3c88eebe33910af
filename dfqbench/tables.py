"""Records → tables: a tidy CSV, and markdown and LaTeX in the layout of the papers' tables.

Rows are dataset / model (FP top-1) / bit-width, one column per method, mean ± std over
seeds, the best data-free method per row in bold. One table per (suite, budget,
quantizer, data settings, precision): numbers obtained under different budgets, conventions
or arithmetic are never mixed. A method run with ``--set`` changes is its own column (``GDFQ (lr_s=0.01)``);
where an entry holds records of several effective configurations (records made before a
method's defaults changed), only those of the latest one count. Methods that read real data
are marked † and never bold.

Where the suite has published numbers (:mod:`dfqbench.published`), each entry also shows
the published value and ours − published, and :func:`compare` lists ours and every
published value entry by entry, including methods that have no dfqbench plugin.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dfqbench import published as pub
from dfqbench.errors import DfqError, writing_tables
from dfqbench.files import probe_folder, write_whole
from dfqbench.overrides import describe, labelled
from dfqbench.precision import DEFAULT as DEFAULT_PRECISION
from dfqbench.precision import of as precision_of
from dfqbench.records import latest

#: what a table's numbers were obtained under: never mixed in one table
SETTING = ["budget", "quantizer", "data", "precision"]
KEYS = ["suite", *SETTING, "dataset", "model", "w_bits", "a_bits", "method"]


def setting(budget: str, quantizer: str, data: str, precision: str) -> str:
    """The :data:`SETTING` of a table, for its heading (the defaults left unsaid)."""
    return (
        f"budget `{budget}` · quantizer `{quantizer}`"
        + (f" · data `{data}`" if data else "")
        + (f" · precision `{precision}`" if precision != DEFAULT_PRECISION else "")
    )


def frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per cell (the latest record of each key, of the latest configuration)."""
    rows = []
    for r in latest(records):
        cell, labels = r["cell"], r.get("labels", {})
        overrides = cell.get("overrides", {})
        changes = overrides.get(cell["method"], {})
        variant = describe(changes)
        rows.append(
            {
                "key": r["key"],
                "suite": cell["suite"],
                "budget": cell["budget"],
                "quantizer": labelled(cell["quantizer"].get("name", "?"), overrides.get("quantizer", {})),
                "data": describe(overrides.get("data", {})),
                "precision": precision_of(cell),
                "dataset": cell["dataset"],
                "dataset_label": labels.get("dataset", cell["dataset"]),
                "model": cell["model"],
                "model_label": labels.get("model", cell["model"]),
                "w_bits": cell["w_bits"],
                "a_bits": cell["a_bits"],
                "method": cell["method"] + (f"[{variant}]" if variant else ""),
                "method_label": labelled(labels.get("method", cell["method"]), changes),
                "data_free": labels.get("data_free", True),
                "year": labels.get("year", 0),
                "seed": cell["seed"],
                "status": r["status"],
                "top1": r.get("top1"),
                "top5": r.get("top5"),
                "fp_top1": r.get("fp_top1"),
                "teacher": (r.get("teacher_sha256") or "")[:12],
                "wall_s": r.get("wall_time_s"),
                "version": r.get("versions", {}).get("dfqbench", "?"),
                "effective": json.dumps([cell["config"], cell["quantizer"], cell.get("data", {})], sort_keys=True),
            }
        )
    cells = pd.DataFrame(rows)
    if cells.empty:
        return cells
    newest = cells.groupby(KEYS, sort=False)["effective"].transform("last")
    return cells[cells["effective"] == newest].drop(columns="effective").reset_index(drop=True)


def summarize(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per table entry: mean/std of top-1 over the ``ok`` seeds, and what failed."""

    def reduce(group: pd.DataFrame) -> pd.Series:
        ok = group[group["status"] == "ok"]
        return pd.Series(
            {
                "top1_mean": ok["top1"].mean() if len(ok) else float("nan"),
                "top1_std": ok["top1"].std(ddof=1) if len(ok) > 1 else float("nan"),
                "top5_mean": ok["top5"].mean() if len(ok) else float("nan"),
                "n_ok": len(ok),
                "n_seeds": len(group),
                "seeds": ",".join(str(s) for s in sorted(group["seed"])),
                "failures": ",".join(sorted(set(group["status"]) - {"ok"})),
                "fp_top1": group["fp_top1"].dropna().mean(),
                "teacher_sha256": ",".join(sorted(set(group["teacher"]) - {""})),
                "wall_s": group["wall_s"].sum(),  # every seed's cell, failed ones too: what the entry cost
                "dataset_label": group["dataset_label"].iloc[-1],
                "model_label": group["model_label"].iloc[-1],
                "method_label": group["method_label"].iloc[-1],
                "data_free": bool(group["data_free"].iloc[-1]),
                "year": int(group["year"].iloc[-1]),
                "versions": ",".join(sorted(set(group["version"]))),
            }
        )

    rows = [reduce(group).rename(key) for key, group in cells.groupby(KEYS, sort=False)]
    out = pd.DataFrame(rows)
    out.index = pd.MultiIndex.from_tuples(out.index, names=KEYS)
    out = out.reset_index()
    # tables and models in the order they first ran; a model's bit settings ascending, whatever
    # order their cells ran in (a later run may add W3A3 below W4A4)
    first_seen = out.groupby([*TABLE, "dataset", "model"], sort=False).ngroup()
    return out.assign(first_seen=first_seen).sort_values(["first_seen", "w_bits", "a_bits"], kind="stable").drop(columns="first_seen").reset_index(drop=True)


TABLE = ["suite", *SETTING]
ROW = ["dataset", "model", "w_bits", "a_bits"]
RERUN = "‡"
MINUS = "\N{MINUS SIGN}"


def with_published(summary: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """``summary`` plus, per entry, the highest-priority published value and ours − published."""
    first = pub.primary(published)
    entry = first[pub.ENTRY + ["top1", "rerun", "source"]].rename(
        columns={"top1": "pub_top1", "rerun": "pub_rerun", "source": "pub_source"}
    )
    # the published FP teacher of a row: from its highest-priority source
    fp = first.drop_duplicates(["dataset", "model"])[["dataset", "model", "fp_top1"]].rename(columns={"fp_top1": "pub_fp_top1"})
    out = summary.merge(entry, on=pub.ENTRY, how="left").merge(fp, on=["dataset", "model"], how="left")
    out["delta"] = out["top1_mean"] - out["pub_top1"]
    return out


def signed(value: float, digits: int) -> str:
    return f"{value:+.{digits}f}".replace("-", MINUS)


def top1_text(row: pd.Series) -> str:
    if row["n_ok"] == 0:
        return row["failures"] or "failed"
    text = f"{row['top1_mean']:.2f}"
    if row["n_ok"] > 1:
        text += f" ± {row['top1_std']:.2f}"
    if row["n_ok"] < row["n_seeds"]:
        text += f" ({row['n_ok']}/{row['n_seeds']} ok; {row['failures']})"
    return text


def _published(value: float, std: float, rerun: bool) -> str:
    text = f"{value:.2f}" + (f" ± {std:.2f}" if pd.notna(std) else "")
    return text + (RERUN if rerun else "")


def _entry(row: pd.Series) -> str:
    text = top1_text(row)
    if pd.isna(row.get("pub_top1")):
        return text
    published = _published(row["pub_top1"], float("nan"), bool(row["pub_rerun"]))
    if row["n_ok"] == 0:
        return f"{text} (pub {published})"
    return f"{text} (pub {published}, {signed(row['delta'], 1)})"


@dataclass(frozen=True)
class Layout:
    """What the entries of a paper table show, which entry of a row is bold, and what the
    table says of itself: the summary's layout by default, :mod:`dfqbench.versus` another."""

    entry: Callable[[pd.Series], str] = _entry
    #: the column whose highest value among a row's data-free entries is bold
    score: str = "top1_mean"
    heading: str = ""
    note: str = "Top-1 (%) on the validation split of the final model (no selection on it); mean ± std over seeds."


@dataclass
class PaperTable:
    """One table of the papers' layout, before it is written as markdown or LaTeX."""

    #: "Suite `digits` · budget `default` · quantizer `gdfq` · seeds 0, 1, 2 · dfqbench 0.1.0"
    title: str
    header: list[str]
    rows: list[list[str]]
    #: (row, column) of the best data-free entry of each row
    best: set[tuple[int, int]]
    notes: list[str]

    def marked(self, best: Callable[[str], str], other: Callable[[str], str] = str) -> list[list[str]]:
        """The rows with ``best`` applied to each row's best entry and ``other`` to the rest."""
        return [[(best if (i, j) in self.best else other)(text) for j, text in enumerate(row)] for i, row in enumerate(self.rows)]


def paper_tables(summary: pd.DataFrame, layout: Layout = Layout()) -> list[PaperTable]:
    out = []
    for (suite, *how), table in summary.groupby(TABLE, sort=False):
        # data-free methods by publication year (baselines first), references last
        order = table.assign(ref=~table["data_free"].astype(bool)).sort_values(["ref", "year", "method_label"], kind="stable")
        methods = list(dict.fromkeys(order["method"]))
        labels = {}
        for m in methods:
            first = table[table["method"] == m].iloc[0]
            labels[m] = first["method_label"] + ("†" if not first["data_free"] else "")
        rows, best = [], set()
        for (_, _, w, a), row_group in table.groupby(["dataset", "model", "w_bits", "a_bits"], sort=False):
            first = row_group.iloc[0]
            by_method = {r["method"]: r for _, r in row_group.iterrows()}
            eligible = [r[layout.score] for r in by_method.values() if r["data_free"] and pd.notna(r[layout.score])]
            top = max(eligible) if eligible else None
            fp = f"{first['fp_top1']:.2f}" if pd.notna(first["fp_top1"]) else "?"
            if pd.notna(first.get("pub_fp_top1")):
                fp += f"; pub {first['pub_fp_top1']:.2f}"
            cells = [first["dataset_label"], f"{first['model_label']} ({fp})", f"{w}w{a}a"]
            for m in methods:
                r = by_method.get(m)
                if r is not None and top is not None and r["data_free"] and round(r[layout.score], 2) == round(top, 2):
                    best.add((len(rows), len(cells)))
                cells.append("–" if r is None else layout.entry(r))
            rows.append(cells)
        notes = [layout.note]
        if any("†" in v for v in labels.values()):
            notes.append("† not data-free: a reference that reads real training images, never bold.")
        seeds = sorted({int(s) for ss in table["seeds"] for s in ss.split(",")})
        versions = sorted({v for vs in table["versions"] for v in vs.split(",")})
        out.append(
            PaperTable(
                title=f"{layout.heading}Suite `{suite}` · {setting(*how)} · seeds {', '.join(map(str, seeds))} · dfqbench {', '.join(versions)}",
                header=["Dataset", "Model (FP top-1)", "Bits", *(labels[m] for m in methods)],
                rows=rows,
                best=best,
                notes=notes + _mixed_teacher_notes(table) + _published_notes(table, how[0]),
            )
        )
    return out


def markdown(summary: pd.DataFrame, layout: Layout = Layout()) -> str:
    parts = []
    for t in paper_tables(summary, layout):
        parts.append(
            f"### {t.title}\n\n"
            + pd.DataFrame(t.marked(lambda text: f"**{text}**"), columns=t.header).to_markdown(index=False, disable_numparse=True)
            + "\n\n"
            + "\n".join(t.notes)
        )
    return "\n\n".join(parts) + "\n"


#: what LaTeX cannot take as it is, character by character
_TEX = {
    **{c: "\\" + c for c in "&%$#_{}"},
    "\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "†": r"$^\dagger$",
    "‡": r"$^\ddagger$", MINUS: "$-$", "–": "--", "·": r"$\cdot$", "<": r"\textless{}", ">": r"\textgreater{}", '"': "''",
}  # fmt: skip


def _tex(text: str) -> str:
    return re.sub(r"`([^`]*)`", r"\\texttt{\1}", "".join(_TEX.get(c, c) for c in text))


def latex(summary: pd.DataFrame, layout: Layout = Layout()) -> str:
    """The same tables as :func:`markdown`, as LaTeX ``table`` floats (booktabs rules), ready
    to paste into a paper: the best data-free entry of each row in bold."""
    parts = []
    for t in paper_tables(summary, layout):
        frame_ = pd.DataFrame(t.marked(lambda text: rf"\textbf{{{_tex(text)}}}", _tex), columns=[_tex(h) for h in t.header])
        caption = _tex(f"{t.title}. " + " ".join(t.notes))
        parts.append(frame_.to_latex(index=False, escape=False, column_format="lll" + "c" * (len(t.header) - 3), caption=caption))
    return "\n".join(parts)


def _mixed_teacher_notes(table: pd.DataFrame) -> list[str]:
    """A model whose entries were made with different weights (a ``--weights`` file changed
    between runs into one results folder) cannot be read across its row."""
    notes = []
    for (_, model), group in table.groupby(["dataset", "model_label"], sort=False):
        digests = sorted({d for joined in group["teacher_sha256"] for d in joined.split(",") if d})
        if len(digests) > 1:
            notes.append(
                f"Not comparable: the {model} entries were made with {len(digests)} different teacher weights "
                f"(sha256 {', '.join(d + '…' for d in digests)}); rerun them with one."
            )
    return notes


def _published_notes(table: pd.DataFrame, budget: str) -> list[str]:
    if "pub_top1" not in table or table["pub_top1"].isna().all():
        return []
    sources = ", ".join(sorted(table["pub_source"].dropna().unique()))
    notes = [
        f"(pub P, ±D): the published top-1 ({sources}) and ours − published; FP \"pub\" is the published teacher."
        " Published numbers follow each paper's own protocol (several report the best epoch on the test set)."
    ]
    if table["pub_rerun"].fillna(False).astype(bool).any():
        notes.append(f"{RERUN} re-run by the citing paper's authors with the original code (marked † there).")
    if budget != "paper":
        notes.append(f"Budget `{budget}` is not the papers' schedule: these differences are not a reproduction check.")
    return notes


def compare(summary: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Ours against every published value, one line per (entry, source).

    Covers the rows (dataset, model, bits) we ran; within them, published methods that we
    did not run (or that have no dfqbench plugin) are listed with no number of ours.
    """
    rows = summary[TABLE + ROW + ["dataset_label", "model_label"]].drop_duplicates(TABLE + ROW)
    theirs = rows.merge(published, on=ROW).rename(
        columns={c: f"pub_{c}" for c in ("top1", "top1_std", "fp_top1", "label", "rerun", "source")}
    )
    ours = summary[TABLE + ROW + ["method", "method_label", "year", "top1_mean", "top1_std", "n_ok", "n_seeds", "failures", "fp_top1"]]
    out = ours.merge(theirs, on=TABLE + ROW + ["method"], how="outer")
    for column in ("dataset_label", "model_label"):  # published-only lines take the row's labels
        out[column] = out[TABLE + ROW].merge(rows, on=TABLE + ROW, how="left")[column].to_numpy()
    out["label"] = out["method_label"].fillna(out["pub_label"])
    out["ours"] = out["n_ok"].notna()
    out["delta"] = out["top1_mean"] - out["pub_top1"]
    # rows in table order; in a row ours first (by year), then the other methods in the order
    # of the sources' columns, the lines of one method together
    rows_order = {key: i for i, key in enumerate(dict.fromkeys(zip(summary["dataset"], summary["model"], strict=True)))}
    columns = published.sort_values("priority", kind="stable").reset_index(drop=True).reset_index(names="method_order")
    out = out.merge(columns.groupby(ROW + ["method"], as_index=False)["method_order"].min(), on=ROW + ["method"], how="left")
    out["row_order"] = [rows_order[key] for key in zip(out["dataset"], out["model"], strict=True)]
    order = [*TABLE, "row_order", "w_bits", "a_bits", "ours", "year", "method_order", "label", "priority"]
    out = out.sort_values(order, ascending=[key != "ours" for key in order], kind="stable")
    return out.drop(columns=["row_order", "method_order", "method_label", "pub_label"]).reset_index(drop=True)


def compare_markdown(comparison: pd.DataFrame) -> str:
    parts = []
    for (suite, *how), table in comparison.groupby(TABLE, sort=False):
        budget = how[0]
        # a method whose cells of a row all ran with --set changes: its published line has no match, but it ran
        variants = {(*row, m.split("[", 1)[0]) for *row, m in table[[*ROW, "method"]].itertuples(index=False) if "[" in m}
        lines = []
        for _, r in table.iterrows():
            has_pub = pd.notna(r["pub_top1"])
            unmatched = "run only with --set changes" if (*r[ROW], r["method"]) in variants else "not run"
            lines.append(
                [
                    r["dataset_label"],
                    r["model_label"],
                    f"{r['w_bits']}w{r['a_bits']}a",
                    r["label"] if r["ours"] else f"{r['label']} ({unmatched})",
                    top1_text(r) if r["ours"] else "–",
                    f"{r['fp_top1']:.2f}" if pd.notna(r["fp_top1"]) else "–",
                    _published(r["pub_top1"], r["pub_top1_std"], bool(r["pub_rerun"])) if has_pub else "–",
                    f"{r['pub_fp_top1']:.2f}" if has_pub else "–",
                    signed(r["delta"], 2) if pd.notna(r["delta"]) else "–",
                    r["pub_source"] if has_pub else "–",
                ]
            )
        header = ["Dataset", "Model", "Bits", "Method", "Ours", "FP ours", "Published", "FP pub", "Δ (ours − pub)", "Source"]
        note = (
            "Ours: top-1 (%) of the final model, mean ± std over seeds."
            " Published: as printed in the source, under its own protocol and schedule."
        )
        if table["pub_rerun"].fillna(False).astype(bool).any():
            note += f" {RERUN} re-run by the citing paper's authors with the original code (marked † there)."
        if budget != "paper":
            note += f" Budget `{budget}` is not the papers' schedule: the differences are not a reproduction check."
        parts.append(
            f"### Ours vs published · suite `{suite}` · {setting(*how)}\n\n"
            + pd.DataFrame(lines, columns=header).to_markdown(index=False, disable_numparse=True)
            + f"\n\n{note}"
        )
    return "\n\n".join(parts) + "\n"


SUMMARY_COLUMNS = KEYS + ["top1_mean", "top1_std", "top5_mean", "n_ok", "n_seeds", "seeds", "failures", "fp_top1", "teacher_sha256",
                          "data_free", "wall_s", "pub_top1", "pub_rerun", "pub_source", "pub_fp_top1", "delta"]
COMPARE_COLUMNS = KEYS + ["label", "ours", "top1_mean", "top1_std", "n_ok", "fp_top1", "pub_top1", "pub_top1_std",
                          "pub_fp_top1", "pub_rerun", "pub_source", "delta"]


FILES = ("table.csv", "table.md", "table.tex")


def check_writable(out_dir: Path) -> None:
    """Before a run: what would stop its tables after the cells have run is one line now. Each
    table is written beside its old file and renamed over it, so the folder must take a new
    file, and no folder or file that is not the user's to write may stand in a table's place."""

    def refuse(path: Path, reason: str) -> DfqError:
        return DfqError(f"cannot write {path}: {reason}; the run writes its tables there: move it, or choose another --results")

    for path in (out_dir / name for name in FILES):
        if path.exists():  # a folder, or another user's file in a shared (sticky) folder, cannot be renamed over
            try:
                with open(path, "a"):
                    pass
            except OSError as exc:
                raise refuse(path, exc.strerror or str(exc)) from None
    if out_dir.is_dir():  # absent: a dry run, which creates nothing
        try:
            probe_folder(out_dir)
        except OSError as exc:
            raise refuse(out_dir / FILES[0], exc.strerror or str(exc)) from None


def write(records: list[dict[str, Any]], out_dir: Path, published: pd.DataFrame | None = None) -> tuple[list[Path], str]:
    """Regenerate ``table.csv``, ``table.md`` and ``table.tex`` in ``out_dir`` from ``records``;
    returns their paths and the markdown."""
    summary = with_published(summarize(frame(records)), pub.load(()) if published is None else published)
    paths = [out_dir / name for name in FILES]
    text = markdown(summary)
    with writing_tables():
        write_whole(paths[0], summary[SUMMARY_COLUMNS].to_csv(index=False, float_format="%.4f"))
        write_whole(paths[1], text)
        write_whole(paths[2], latex(summary))
    return paths, text


def write_compare(records: list[dict[str, Any]], out_dir: Path, published: pd.DataFrame) -> tuple[Path, Path, str]:
    """Regenerate ``compare.csv`` and ``compare.md`` (ours vs published) in ``out_dir``."""
    comparison = compare(summarize(frame(records)), published)
    csv_path, md_path = out_dir / "compare.csv", out_dir / "compare.md"
    text = compare_markdown(comparison)
    with writing_tables():
        write_whole(csv_path, comparison[COMPARE_COLUMNS].to_csv(index=False, float_format="%.4f"))
        write_whole(md_path, text)
    return csv_path, md_path, text
