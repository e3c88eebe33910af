"""What happens when the two parts dfqbench keeps in fp32 under ``--precision bf16`` are left
to bfloat16 autocast instead: GDFQ's generator trunk and ZeroQ's distillation (README,
``--precision``).

    OMP_NUM_THREADS=1 python tools/bf16_fragile_parts.py

Runs GDFQ and ZeroQ on the digits ResNet-20 at W4A4, seed 0, default budget, in fp32, in
bf16 as dfqbench runs it, and in bf16 with that part's fp32 guard removed; prints top-1 and
ZeroQ's final distillation loss. Takes about four minutes on one CPU thread.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from unittest import mock

import torch

from dfqbench.plan import make_plan
from dfqbench.registry import load_registry
from dfqbench.seeding import make_deterministic
from dfqbench.session import Session

#: the module whose fp32 guard each method depends on
GUARDS = {"gdfq": "dfqbench.dfq.generators.full_precision", "zeroq": "dfqbench_zeroq.method.full_precision"}


def main() -> None:
    device = torch.device("cpu")
    make_deterministic(device)
    reg = load_registry()
    cells = make_plan(reg, "digits", list(GUARDS), ["resnet20-digits"], [(4, 4)], [0], "default").cells
    print("| method | fp32 | bf16 (dfqbench) | bf16, guard removed |")
    print("|---|---|---|---|")
    for cell in cells:
        runs = []
        for precision, guarded in (("fp32", True), ("bf16", True), ("bf16", False)):
            patch = contextlib.nullcontext() if guarded else mock.patch(GUARDS[cell.method], contextlib.nullcontext)
            with patch:
                record = Session(reg, device).run(replace(cell, precision=precision))
            loss = record["metrics"].get("distill_loss", {}).get("last")
            runs.append(f"{record['top1']:.2f}" + (f" (distillation loss {loss:.1f})" if loss is not None else ""))
        print(f"| {cell.method} | " + " | ".join(runs) + " |")


if __name__ == "__main__":
    main()
