"""Choose a method's reduced-budget settings on the TRAINING split, never the validation split.

    python bench/tune_reduced_budget.py gdfq "lr_s=1e-4" "lr_s=1e-3" "lr_s=3e-3"
    python bench/tune_reduced_budget.py zaq "lr_q=0.1" "lr_q=0.01" --bits 3,4

Choosing a schedule by its validation accuracy would be selection on the test set, the
very leak dfqbench exists to prevent. This script runs the method's ``default`` budget
with each candidate change (``FIELD=VALUE;FIELD=VALUE``, values as for ``--set``) on the
digits models and evaluates on the digits *training* split, which no data-free method ever
sees; the validation split is not touched. Seed 0. The README quotes the tables it prints.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from dfqbench import overrides
from dfqbench.bits import parse_bits
from dfqbench.plan import make_plan
from dfqbench.registry import load_registry
from dfqbench.session import Session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("method")
    parser.add_argument("candidates", nargs="+", help="FIELD=VALUE;FIELD=VALUE changes of the default config")
    parser.add_argument("--models", default="resnet20-digits,mobilenetv2-digits")
    parser.add_argument("--bits", default="3,4")
    args = parser.parse_args()
    reg = load_registry()
    session = Session(reg, torch.device("cpu"), eval_split="train")
    bits = parse_bits(args.bits)
    rows = []
    for model in args.models.split(","):
        cells = make_plan(reg, "digits", [args.method], [model], bits, [0], "default").cells
        for candidate in args.candidates:
            changes = overrides.parse([f"{args.method}.{c}" for c in candidate.split(";")])[args.method]
            accs = []
            for cell in cells:
                record = session.run(dataclasses.replace(cell, config={**cell.config, **changes}))
                accs.append(f"{record['top1']:.2f}" if record["status"] == "ok" else record["status"])
            rows.append(f"| {args.method} | {model} | `{candidate}` | {' | '.join(accs)} |")
            print(rows[-1], flush=True)
    header = " | ".join(f"{w}w{a}a train top-1" for w, a in bits)
    print(f"\n| method | model | change | {header} |\n|---|---|---|{'---|' * len(bits)}\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
