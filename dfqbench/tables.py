"""Records → tables: a tidy CSV and markdown in the layout of the papers' tables.

Rows are dataset / model (FP top-1) / bit-width, one column per method, mean ± std over
seeds, the best data-free method per row in bold. One table per (suite, budget,
quantizer): numbers obtained under different budgets or conventions are never mixed.
Methods that read real data are marked † and never bold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from dfqbench.records import latest

KEYS = ["suite", "budget", "quantizer", "dataset", "model", "w_bits", "a_bits", "method"]


def frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per cell (the latest record of each key)."""
    rows = []
    for r in latest(records):
        cell, labels = r["cell"], r.get("labels", {})
        rows.append(
            {
                "suite": cell["suite"],
                "budget": cell["budget"],
                "quantizer": cell["quantizer"].get("name", "?"),
                "dataset": cell["dataset"],
                "dataset_label": labels.get("dataset", cell["dataset"]),
                "model": cell["model"],
                "model_label": labels.get("model", cell["model"]),
                "w_bits": cell["w_bits"],
                "a_bits": cell["a_bits"],
                "method": cell["method"],
                "method_label": labels.get("method", cell["method"]),
                "data_free": labels.get("data_free", True),
                "year": labels.get("year", 0),
                "seed": cell["seed"],
                "status": r["status"],
                "top1": r.get("top1"),
                "top5": r.get("top5"),
                "fp_top1": r.get("fp_top1"),
                "version": r.get("versions", {}).get("dfqbench", "?"),
            }
        )
    return pd.DataFrame(rows)


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
    return out.reset_index()


def _entry(row: pd.Series) -> str:
    if row["n_ok"] == 0:
        return row["failures"] or "failed"
    text = f"{row['top1_mean']:.2f}"
    if row["n_ok"] > 1:
        text += f" ± {row['top1_std']:.2f}"
    if row["n_ok"] < row["n_seeds"]:
        text += f" ({row['n_ok']}/{row['n_seeds']} ok; {row['failures']})"
    return text


def markdown(summary: pd.DataFrame) -> str:
    parts = []
    for (suite, budget, quantizer), table in summary.groupby(["suite", "budget", "quantizer"], sort=False):
        # data-free methods by publication year (baselines first), references last
        order = table.assign(ref=~table["data_free"].astype(bool)).sort_values(["ref", "year", "method_label"], kind="stable")
        methods = list(dict.fromkeys(order["method"]))
        labels = {}
        for m in methods:
            first = table[table["method"] == m].iloc[0]
            labels[m] = first["method_label"] + ("†" if not first["data_free"] else "")
        lines = []
        for (_, _, w, a), row_group in table.groupby(["dataset", "model", "w_bits", "a_bits"], sort=False):
            first = row_group.iloc[0]
            by_method = {r["method"]: r for _, r in row_group.iterrows()}
            eligible = [r["top1_mean"] for r in by_method.values() if r["data_free"] and r["n_ok"] > 0]
            best = max(eligible) if eligible else None
            cells = []
            for m in methods:
                r = by_method.get(m)
                if r is None:
                    cells.append("–")
                    continue
                text = _entry(r)
                if best is not None and r["data_free"] and r["n_ok"] > 0 and round(r["top1_mean"], 2) == round(best, 2):
                    text = f"**{text}**"
                cells.append(text)
            fp = f"{first['fp_top1']:.2f}" if pd.notna(first["fp_top1"]) else "?"
            lines.append([first["dataset_label"], f"{first['model_label']} ({fp})", f"{w}w{a}a", *cells])
        header = ["Dataset", "Model (FP top-1)", "Bits", *(labels[m] for m in methods)]
        frame_ = pd.DataFrame(lines, columns=header)
        seeds = sorted({int(s) for ss in table["seeds"] for s in ss.split(",")})
        versions = sorted({v for vs in table["versions"] for v in vs.split(",")})
        parts.append(
            f"### Suite `{suite}` · budget `{budget}` · quantizer `{quantizer}` · seeds "
            f"{', '.join(map(str, seeds))} · dfqbench {', '.join(versions)}\n\n"
            + frame_.to_markdown(index=False, disable_numparse=True)
            + "\n\nTop-1 (%) on the validation split of the final model (no selection on it); mean ± std over seeds."
            + ("\n† not data-free: a reference calibrated on real training images, never bold." if any("†" in v for v in labels.values()) else "")
        )
    return "\n\n".join(parts) + "\n"


def write(records: list[dict[str, Any]], out_dir: Path) -> tuple[Path, Path, str]:
    """Regenerate ``table.csv`` and ``table.md`` in ``out_dir`` from ``records``."""
    summary = summarize(frame(records))
    csv_path, md_path = out_dir / "table.csv", out_dir / "table.md"
    columns = KEYS + ["top1_mean", "top1_std", "top5_mean", "n_ok", "n_seeds", "seeds", "failures", "fp_top1", "data_free"]
    summary[columns].to_csv(csv_path, index=False, float_format="%.4f")
    text = markdown(summary)
    md_path.write_text(text)
    return csv_path, md_path, text
