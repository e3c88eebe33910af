"""Wall time of the default-budget digits matrix per method group, on this machine.

    python bench/default_budget_time.py [--methods zeroq,gdfq,qimera] [--seeds 0]

Runs ``dfqbench run --budget default --bits 3,4,5`` on the digits suite (both models) into a
temporary folder and reports the wall time, absolute and as a multiple of a reference
workload measured in the same run (200 SGD steps of the digits ResNet-20, see _common.py),
so the figure can be compared across machines. Teachers come from the user cache.
"""

from __future__ import annotations

import argparse
import platform
import tempfile

import torch

from _common import reference_seconds, timed
from dfqbench.cli import main


def run(methods: str, seeds: str, results: str) -> None:
    try:
        main(["run", "--methods", methods, "--bits", "3,4,5", "--seeds", seeds, "--budget", "default", "--results", results, "--no-resume"])
    except SystemExit as exc:
        if exc.code:
            raise


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="zeroq,gdfq,qimera")
    parser.add_argument("--seeds", default="0")
    args = parser.parse_args()
    reference = reference_seconds()
    with tempfile.TemporaryDirectory() as results:
        run("noise", "0", results)  # warm the teacher cache so training is not timed
        seconds = timed(lambda: run(args.methods, args.seeds, results))
    reference_after = reference_seconds()
    cells = 2 * 3 * len(args.methods.split(",")) * len(args.seeds.split(","))
    print("\n| machine | threads | methods | cells | wall time | per cell | in reference units |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {platform.processor() or platform.machine()} | {torch.get_num_threads()} | {args.methods} | {cells} | "
        f"{seconds / 60:.1f} min | {seconds / cells:.0f} s | {seconds / reference:.0f}× "
        f"(reference {reference:.2f} s before, {reference_after:.2f} s after) |"
    )


if __name__ == "__main__":
    main_()
