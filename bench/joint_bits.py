"""Bit-widths trained jointly: one GDFQ/Qimera generator for the quantized models of
W3A3, W4A4 and W5A5.

    OMP_NUM_THREADS=1 python bench/joint_bits.py [MODEL]

For GDFQ and Qimera, runs the three default-budget cells of one digits model (seed 0;
default ``resnet20-digits``) twice, each in a session of its own with the teacher loaded
before timing: one cell at a time (``--no-joint``) and as one joint training (what
``dfqbench run`` does). Reports both wall times and their ratio, and checks that the two
give the same records (top-1, top-5, every logged value) and, where results/digits has
them, the committed ones.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from _common import timed
from dfqbench.plan import make_plan
from dfqbench.records import RecordStore
from dfqbench.registry import load_registry
from dfqbench.session import Session

COMMITTED = Path(__file__).resolve().parents[1] / "results" / "digits" / "records.jsonl"
COMPARED = ("status", "top1", "top5", "metrics", "history")


def measure(reg, method: str, model: str, committed: dict[str, dict]) -> str:
    """One method's markdown row: both wall times, their ratio, and the checks."""
    cells = make_plan(reg, "digits", [method], [model], [(3, 3), (4, 4), (5, 5)], [0], "default").cells
    alone, joint = Session(reg, torch.device("cpu"), joint=False), Session(reg, torch.device("cpu"))
    for session in (alone, joint):
        session.teacher("digits", model, {})
    (training,) = joint.trainings(cells)  # all three bit-widths in one
    separate: list[dict] = []
    together: list[dict] = []
    t_alone = timed(lambda: separate.extend(alone.run(cell) for cell in cells))
    t_joint = timed(lambda: together.extend(joint.run_together(training)))
    for a, b in zip(separate, together, strict=True):
        assert {f: a.get(f) for f in COMPARED} == {f: b.get(f) for f in COMPARED}, (a["key"], a["top1"], b["top1"])
    known = [r for r in together if r["key"] in committed]
    assert all(r["top1"] == committed[r["key"]]["top1"] for r in known), [(r["top1"], committed[r["key"]]["top1"]) for r in known]
    return f"| {method} · {model} | {t_alone:.1f} s | {t_joint:.1f} s | {t_alone / t_joint:.2f}× | yes | {len(known)} of 3 |"


def main(model: str) -> None:
    reg = load_registry()
    committed = {r["key"]: r for r in RecordStore(COMMITTED).read()}
    print("| method, 3 bit-widths | one cell at a time | joint | speed-up | same records | = committed |")
    print("|---|---|---|---|---|---|")
    for method in ("gdfq", "qimera"):
        print(measure(reg, method, model, committed))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "resnet20-digits")
