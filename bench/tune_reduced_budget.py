"""Choose a method's reduced-budget settings on the TRAINING split, never the validation split.

    python bench/tune_reduced_budget.py gdfq "lr_s=1e-4" "lr_s=1e-3" "lr_s=3e-3"
    python bench/tune_reduced_budget.py zaq "lr_q=0.1" "lr_q=0.01" --bits 3,4

Choosing a schedule by its validation accuracy would be selection on the test set, the
very leak dfqbench exists to prevent. This script runs the method's ``default`` budget
with each candidate change (``FIELD=VALUE;FIELD=VALUE``, values as for ``--set``) on the
digits models and evaluates on the digits *training* split, which no data-free method ever
sees; the validation split is not touched. Seed 0 unless ``--seeds`` names several; then each
entry is the mean over them, followed by each seed's top-1. The README quotes the tables it
prints.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from dfqbench import overrides
from dfqbench.bits import parse_bits
from dfqbench.cli import parse_seeds
from dfqbench.errors import DfqError
from dfqbench.plan import make_plan
from dfqbench.registry import load_registry
from dfqbench.session import Session


def entry(records: list[dict]) -> str:
    """One seed's top-1 or status; over several seeds the mean and each seed's (a seed that
    did not end ok makes the mean its status)."""
    shown = [f"{r['top1']:.2f}" if r["status"] == "ok" else r["status"] for r in records]
    if len(records) == 1:
        return shown[0]
    failed = [r["status"] for r in records if r["status"] != "ok"]
    mean = failed[0] if failed else f"{statistics.mean(r['top1'] for r in records):.2f}"
    return f"{mean} ({', '.join(shown)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("method")
    parser.add_argument("candidates", nargs="+", help="FIELD=VALUE;FIELD=VALUE changes of the default config")
    parser.add_argument("--models", default="resnet20-digits,mobilenetv2-digits")
    parser.add_argument("--bits", default="3,4")
    parser.add_argument("--seeds", default="0", help="comma list of seeds")
    parser.add_argument("--check", action="store_true", help="check the arguments and candidates, run nothing")
    args = parser.parse_args()
    reg = load_registry()
    try:  # every candidate is checked (fields, types, values) before the first run
        bits, seeds = parse_bits(args.bits), parse_seeds(args.seeds)
        plans = {
            (model, candidate): make_plan(reg, "digits", [args.method], [model], bits, seeds, "default",
                                          changes=overrides.parse([f"{args.method}.{c}" for c in candidate.split(";")]))
            for model in args.models.split(",")
            for candidate in args.candidates
        }  # fmt: skip
    except DfqError as exc:
        parser.error(str(exc))
    if args.check:
        return
    session = Session(reg, torch.device("cpu"), eval_split="train")
    rows = []
    for (model, candidate), plan in plans.items():
        records = [session.run(cell) for cell in plan.cells]
        accs = [entry([r for r in records if (r["cell"]["w_bits"], r["cell"]["a_bits"]) == wa]) for wa in bits]
        rows.append(f"| {args.method} | {model} | `{candidate}` | {' | '.join(accs)} |")
        print(rows[-1], flush=True)
    header = " | ".join(f"{w}w{a}a train top-1" for w, a in bits)
    print(f"\n| method | model | change | {header} |\n|---|---|---|{'---|' * len(bits)}\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
