"""Leaderboards from stored records: methods ranked within every table row, then averaged.

A row is one (suite, dataset, model, bit-width) under one table setting (budget, quantizer,
data settings, precision); within it the data-free methods with an ``ok`` result are ranked
by mean top-1 (1 = best, ties share the average rank). Settings are never mixed. References
that read real data are left out of the ranking.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from dfqbench import tables

ROW = ["suite", "dataset", "model", "w_bits", "a_bits"]


def leaderboard(records: list[dict[str, Any]]) -> pd.DataFrame:
    summary = tables.summarize(tables.frame(records))
    ranked = summary[summary["data_free"] & (summary["n_ok"] > 0)].copy()
    ranked["rank"] = ranked.groupby([*tables.SETTING, *ROW])["top1_mean"].rank(ascending=False, method="average")
    ranked["drop"] = ranked["fp_top1"] - ranked["top1_mean"]
    board = (
        ranked.groupby([*tables.SETTING, "method"])
        .agg(
            method_label=("method_label", "last"),
            rows=("rank", "size"),
            mean_rank=("rank", "mean"),
            wins=("rank", lambda r: int((r == 1).sum())),
            mean_drop=("drop", "mean"),
            suites=("suite", lambda s: ",".join(sorted(set(s)))),
        )
        .reset_index()
    )
    return board.sort_values([*tables.SETTING, "mean_rank", "mean_drop"], kind="stable")


def markdown(board: pd.DataFrame) -> str:
    parts = []
    for how, group in board.groupby(tables.SETTING, sort=False):
        view = pd.DataFrame(
            {
                "Method": group["method_label"],
                "Rows": group["rows"],
                "Mean rank": group["mean_rank"].map("{:.2f}".format),
                "Wins": group["wins"],
                "Mean drop from FP (points)": group["mean_drop"].map("{:.2f}".format),
                "Suites": group["suites"],
            }
        )
        parts.append(
            f"### Leaderboard · {tables.setting(*how)}\n\n"
            + view.to_markdown(index=False, disable_numparse=True)
            + "\n\nRank within each dataset/model/bit-width row (1 = best top-1 of the data-free methods run on it), averaged over rows."
        )
    return "\n\n".join(parts) + "\n"
