"""Rerun stored cells and list those whose records the current code does not reproduce.

    OMP_NUM_THREADS=1 python tools/rerun_committed.py [RECORDS] [--methods a,b] [--seeds 0,1]

Same seed, same device, same arithmetic → same record: a stored record that a rerun of its
cell does not give back was made by other code (a plugin changed after its cells ran, keeping
their keys) or on other arithmetic. This reruns the latest ``ok``/``diverged`` record of each
selected cell of ``RECORDS`` (default: the committed ``results/digits/records.jsonl``) in
one session, as ``dfqbench run`` would (bit-widths trained jointly where a method does),
writes nothing, and prints the cells whose status, top-1 or top-5 differ. Cells stored from
another machine (another CPU or GPU: ``machine`` in the record) are marked: there the
kernels may round otherwise, and a difference says nothing about the code. Exit status 1
when a cell made on this machine differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

from dfqbench.plan import Cell
from dfqbench.records import RecordStore, latest
from dfqbench.registry import load_registry
from dfqbench.seeding import make_deterministic
from dfqbench.session import Session

RECORDS = Path(__file__).resolve().parents[1] / "results" / "digits" / "records.jsonl"
COMPARED = ("status", "top1", "top5")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records", nargs="?", type=Path, default=RECORDS)
    parser.add_argument("--methods", help="comma-separated; default: every method with records")
    parser.add_argument("--seeds", help="comma-separated; default: every seed")
    args = parser.parse_args()
    stored = [
        r
        for r in latest(RecordStore(args.records).read())
        if r["status"] in ("ok", "diverged")
        and (not args.methods or r["cell"]["method"] in args.methods.split(","))
        and (not args.seeds or str(r["cell"]["seed"]) in args.seeds.split(","))
    ]
    cells = [Cell(**r["cell"]) for r in stored]
    assert [c.key for c in cells] == [r["key"] for r in stored], "a stored cell no longer hashes to its key"
    device = torch.device("cpu")
    make_deterministic(device)
    session = Session(load_registry(), device)
    session.prepare(cells)
    made = {r["key"]: r for r in stored}
    rows = []
    for training in session.trainings(cells):
        for record in session.run_together(training):
            old, cell = made[record["key"]], record["cell"]
            if any(record[f] != old[f] for f in COMPARED):
                other_machine = record["machine"] != old.get("machine")
                rows.append({"key": record["key"], "method": cell["method"], "model": cell["model"], "bits": f"{cell['w_bits']}w{cell['a_bits']}a",
                             "seed": cell["seed"], "stored": old["top1"], "rerun": record["top1"], "stored on": old.get("finished", "?"),
                             "other machine": other_machine})  # fmt: skip
    print(f"{len(cells)} cells rerun, {len(rows)} differ")
    if rows:
        print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".2f"))
    return 1 if any(not row["other machine"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
