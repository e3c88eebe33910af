"""The digits CNN methods against noise over three teachers of each model.

    python tools/over_teachers.py [--versus noise] [--out results/ablations/teacher-instances/over-teachers.md]

Teacher 0 is the one the ``digits`` suite ships (records in ``results/digits/``), teachers 1
and 2 are the same architecture and recipe with recipe seeds 1 and 2 (suite
``digits-teachers``, records in ``results/ablations/teacher-instances/``). Each method's
top-1 is paired with the baseline's of the same teacher, seed, bits, budget and quantizer
(:func:`dfqbench.versus.seed_differences`); an entry gives the mean difference per teacher,
the mean ± std over every (teacher, seed) pair, and in how many pairs the method is above
the baseline; the baseline's own row gives its top-1 the same way. Only rows that every
teacher has run enter.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from dfqbench import tables, versus
from dfqbench.files import write_whole
from dfqbench.records import RecordStore
from dfqbench_suites import DIGITS_CNNS, DIGITS_TEACHERS

ROOT = Path(__file__).resolve().parents[1]
RECORDS = [ROOT / "results" / "digits" / "records.jsonl", ROOT / "results" / "ablations" / "teacher-instances" / "digits-teachers" / "records.jsonl"]
OUT = ROOT / "results" / "ablations" / "teacher-instances" / "over-teachers.md"
#: model → (the model whose teacher it is another instance of, teacher number); the shipped teachers are number 0
INSTANCE = {**{base: (base, 0) for base, _ in DIGITS_TEACHERS.values()}, **DIGITS_TEACHERS}
TEACHERS = sorted({k for _, k in INSTANCE.values()})


def over_teachers(cells: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """One row per (setting, model, bits, method) that every teacher ran, ``baseline`` first:
    per teacher the mean of ``value`` over seeds, then over all (teacher, seed) pairs, where
    ``value`` is the baseline's top-1 and every other method's difference to it."""
    cells = cells[cells["model"].isin(list(INSTANCE))]
    own = cells[(cells["method"] == baseline) & (cells["status"] == "ok")].assign(value=lambda c: c["top1"])
    values = pd.concat([own, versus.seed_differences(cells, baseline).assign(value=lambda p: p["delta"])], ignore_index=True)
    values[["base", "instance"]] = pd.DataFrame(values["model"].map(INSTANCE).tolist(), index=values.index)
    keys = [*tables.SETTING, "dataset", "base", "w_bits", "a_bits", "method"]
    per_teacher = values.pivot_table(index=keys, columns="instance", values="value", aggfunc="mean").reindex(columns=TEACHERS).dropna()
    overall = values.groupby(keys).agg(
        method_label=("method_label", "first"), mean=("value", "mean"), std=("value", "std"),
        above=("value", lambda d: int((d > 0).sum())), pairs=("value", "size"),
    )  # fmt: skip
    rows = per_teacher.join(overall, how="inner").reset_index()
    order = {"base": lambda col: col.map(list(INSTANCE).index), "method": lambda col: col != baseline}  # the suite's models, the baseline first
    return rows.sort_values(keys, key=lambda col: order.get(col.name, lambda c: c)(col), kind="stable").reset_index(drop=True)


def markdown(rows: pd.DataFrame, baseline: str) -> str:
    own = rows["method"] == baseline

    def entry(value: float, is_baseline: bool) -> str:
        return f"{value:.2f}" if is_baseline else tables.signed(value, 2)

    out = pd.DataFrame(
        {
            "Quantizer": rows["quantizer"],
            "Model": rows["base"].map(DIGITS_CNNS),
            "Bits": [f"{w}w{a}a" for w, a in zip(rows["w_bits"], rows["a_bits"], strict=True)],
            "Method": rows["method_label"],
            **{f"teacher {k}" + (" (shipped)" if k == 0 else ""): [entry(v, b) for v, b in zip(rows[k], own, strict=True)] for k in TEACHERS},
            "all pairs": [f"{entry(m, b)} ± {s:.2f}" for m, s, b in zip(rows["mean"], rows["std"], own, strict=True)],
            f"above {baseline}": ["–" if b else f"{a}/{n}" for a, n, b in zip(rows["above"], rows["pairs"], own, strict=True)],
        }
    )
    note = (
        f"Top-1 (%) minus {baseline}'s with the same teacher and seed (seeds 0, 1, 2), budget `default`: the mean per teacher, then"
        f" the mean ± std over all (teacher, seed) pairs and the number of pairs above {baseline}; {baseline}'s own row gives its"
        " top-1. Teacher 0 is the shipped one (`results/digits/`); teachers 1 and 2 are the same recipe with recipe seeds 1 and 2"
        " (`digits-teachers`). Real-calib and Real-KD are not data-free: references that read real training images."
    )
    return f"### Differences to {baseline} over teacher instances · Suite `digits`, `digits-teachers`\n\n{out.to_markdown(index=False)}\n\n{note}\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versus", default="noise", help="the baseline method (default: noise)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    cells = pd.concat([tables.frame(RecordStore(path).read()) for path in RECORDS], ignore_index=True)
    rows = over_teachers(cells, args.versus)
    if rows.empty:
        print(f"no rows where every teacher ran {args.versus!r} and another method", file=sys.stderr)
        return 1
    text = markdown(rows, args.versus)
    write_whole(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
