"""How the reduced ``default`` budget of the GDFQ family was chosen — on the TRAINING split.

    python bench/tune_reduced_budget.py

Choosing a schedule by its validation accuracy would be selection on the test set, the
very leak dfqbench exists to prevent. This script evaluates the candidates on the digits
*training* split instead (no data-free method ever sees it, and the validation split is not
touched), for GDFQ on both digits models at W3A3 and W4A4, seed 0:

* the window rule: ``fraction`` (warm-up, calibration window and LR milestones scaled with
  the epoch count, i.e. 1 warm-up epoch) vs ``phase`` (what ``dfqbench/dfq/budgets.py``
  does: a 4-epoch warm-up/calibration window, milestones kept within the student phase);
* the student-LR multiplier (×1, ×10, ×30 of the paper's 1e-4).
"""

from __future__ import annotations

import dataclasses

import torch

from dfqbench.plan import make_plan
from dfqbench.registry import load_registry
from dfqbench.session import Session

CANDIDATES = {
    "fraction ×10": dict(warmup_epochs=1, calib_epochs=1, milestones_s=(5, 10, 15), milestones_g=(5, 10, 15), lr_s=1e-3),
    "phase ×1": dict(lr_s=1e-4),
    "phase ×10": dict(lr_s=1e-3),
    "phase ×30": dict(lr_s=3e-3),
}


def main() -> None:
    reg = load_registry()
    session = Session(reg, torch.device("cpu"), eval_split="train")
    rows = []
    for model in ("resnet20-digits", "mobilenetv2-digits"):
        cells = make_plan(reg, "digits", ["gdfq"], [model], [(3, 3), (4, 4)], [0], "default").cells
        for name, changes in CANDIDATES.items():
            accs = []
            for cell in cells:
                record = session.run(dataclasses.replace(cell, config={**cell.config, **changes}))
                accs.append(f"{record['top1']:.2f}" if record["status"] == "ok" else record["status"])
            rows.append(f"| {model} | {name} | {' | '.join(accs)} |")
            print(rows[-1], flush=True)
    print("\n| model | schedule | W3A3 train top-1 | W4A4 train top-1 |\n|---|---|---|---|\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
