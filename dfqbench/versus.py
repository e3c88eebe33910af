"""Seed-by-seed differences to a baseline method (``dfqbench table --versus noise``).

A mean ± std per entry cannot say whether a method beats the naive baseline in every seed;
this table can. Each entry is the mean over seeds of the method's top-1 minus the baseline's
with the same seed, followed by every seed's difference in seed order. A seed fixes each
method's randomness on its own, so the pairing does not share noise between the two runs;
it lists them side by side. Where two or more seeds pair, the entry also gives the 95%
confidence interval of the mean difference (Student's t over the seeds' differences, which
are independent draws): an interval above 0 is a margin the seeds support, not one seed's
luck. Only seeds where both cells are ``ok`` and were made with the same teacher weights
count. The baseline's own column shows its top-1 and its difference to the FP teacher:
where it loses clearly is where the other methods have something to win.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

from dfqbench import tables
from dfqbench.errors import writing_tables
from dfqbench.files import write_whole

COLUMNS = tables.KEYS + ["top1_mean", "top1_std", "n_ok", "n_seeds", "n_paired", "paired_seeds", "deltas", "delta_mean", "delta_std",
                         "delta_min", "delta_ci_low", "delta_ci_high", "fp_top1", "teacher_sha256", "data_free"]  # fmt: skip


def seed_differences(cells: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """One row per (entry, seed) where the method and ``baseline`` are both ``ok`` on the
    same row of the same table, with the same seed and teacher; ``delta`` is method − baseline."""
    ok = cells[cells["status"] == "ok"]
    on = [*tables.TABLE, *tables.ROW, "teacher", "seed"]
    base = ok.loc[ok["method"] == baseline, on + ["top1"]].rename(columns={"top1": "baseline_top1"})
    pairs = ok[ok["method"] != baseline].merge(base, on=on)
    return pairs.assign(delta=pairs["top1"] - pairs["baseline_top1"]).sort_values("seed", kind="stable")


def confidence_half_width(std: pd.Series, n: pd.Series, level: float = 0.95) -> pd.Series:
    """Half the width of the two-sided ``level`` Student-t interval of a mean of ``n``
    samples with sample standard deviation ``std``; NaN below two samples."""
    n = n.astype(float).where(n >= 2)
    return student_t.ppf(0.5 + level / 2, n - 1) * std / np.sqrt(n)


def summarize(cells: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """:func:`dfqbench.tables.summarize` plus the differences to ``baseline``, for the tables
    in which ``baseline`` ran."""
    stats = (
        seed_differences(cells, baseline)
        .groupby(tables.KEYS, sort=False)
        .agg(
            n_paired=("delta", "size"),
            paired_seeds=("seed", lambda seeds: ",".join(map(str, seeds))),
            deltas=("delta", list),
            delta_mean=("delta", "mean"),
            delta_std=("delta", "std"),
            delta_min=("delta", "min"),
        )
        .reset_index()
    )
    half = confidence_half_width(stats["delta_std"], stats["n_paired"])
    stats = stats.assign(delta_ci_low=stats["delta_mean"] - half, delta_ci_high=stats["delta_mean"] + half)
    out = tables.summarize(cells).merge(stats, on=tables.KEYS, how="left").astype({"n_paired": "Int64"})
    with_baseline = out.groupby(tables.TABLE, sort=False)["method"].transform(lambda methods: (methods == baseline).any())
    return out[with_baseline.astype(bool)].reset_index(drop=True)


def layout(baseline: str, label: str) -> tables.Layout:
    def entry(row: pd.Series) -> str:
        if row["method"] == baseline:
            text, drop = tables.top1_text(row), row["top1_mean"] - row["fp_top1"]
            return text if pd.isna(drop) else f"{text} ({tables.signed(drop, 1)})"
        if pd.isna(row["n_paired"]):  # no seed where both are ok (one failed throughout, or never ran)
            return "–"
        each = ", ".join(tables.signed(d, 1) for d in row["deltas"])
        if row["n_paired"] < row["n_seeds"]:
            each += f"; seed{'s' if row['n_paired'] > 1 else ''} {row['paired_seeds'].replace(',', ', ')}"
        interval = "" if pd.isna(row["delta_ci_low"]) else f" [{tables.signed(row['delta_ci_low'], 1)}, {tables.signed(row['delta_ci_high'], 1)}]"
        return f"{tables.signed(row['delta_mean'], 2)}{interval} ({each})"

    return tables.Layout(
        entry=entry,
        score="delta_mean",
        heading=f"Differences to {label}, seed by seed · ",
        note=(
            f"Each entry: the mean over seeds of top-1 (%) minus {label}'s with the same seed and teacher, its 95% confidence"
            f" interval in brackets (Student's t over the seeds; two or more seeds), then each seed's difference in seed"
            f" order (only seeds where both are ok count); the largest mean difference of a row in bold."
            f" {label}'s column: its top-1, mean ± std, and its difference to the FP teacher."
        ),
    )


def write(records: list[dict[str, Any]], out_dir: Path, baseline: str) -> tuple[list[Path], str]:
    """Write ``versus-<baseline>.csv``, ``.md`` and ``.tex`` in ``out_dir``; returns their
    paths and the markdown. The caller checks that ``baseline`` has records (:func:`methods`)."""
    summary = summarize(tables.frame(records), baseline)
    label = summary.loc[summary["method"] == baseline, "method_label"].iloc[-1]
    how = layout(baseline, label)
    text = tables.markdown(summary, how)
    stem = "versus-" + re.sub(r"[^\w.=-]+", "_", baseline)
    paths = [out_dir / f"{stem}{suffix}" for suffix in (".csv", ".md", ".tex")]
    deltas = summary["deltas"].map(lambda ds: ",".join(f"{d:.4f}" for d in ds) if isinstance(ds, list) else "")
    with writing_tables():
        write_whole(paths[0], summary.assign(deltas=deltas)[COLUMNS].to_csv(index=False, float_format="%.4f"))
        write_whole(paths[1], text)
        write_whole(paths[2], tables.latex(summary, how))
    return paths, text


def methods(records: list[dict[str, Any]]) -> list[str]:
    """The method columns the records hold (variants as ``gdfq[lr_s=1e-05]``): the valid baselines."""
    cells = tables.frame(records)
    return sorted(set(cells["method"])) if not cells.empty else []
