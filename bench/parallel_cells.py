"""Cells side by side: ``dfqbench run --jobs N`` against ``--jobs 1`` on the same matrix.

    OMP_NUM_THREADS=1 python bench/parallel_cells.py [--jobs 2]

Runs one digits matrix (noise, ZeroQ and GDFQ; both CNNs; W3A3; seeds 0 and 1; default
budget; 12 cells, about 5 minutes in one process) first in one process, then in ``--jobs``
worker processes, each into a fresh results folder, through the real CLI. Reports both
wall times and their ratio (start-up of the workers included) and checks that the records
are identical: worker processes must not change results. Both runs use one thread per
process, so on a machine with at least ``--jobs`` free cores the ideal ratio is
``--jobs``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import timed

MATRIX = ["--methods", "noise,zeroq,gdfq", "--models", "resnet20-digits,mobilenetv2-digits", "--bits", "3",
          "--seeds", "0,1", "--budget", "default"]  # fmt: skip


def run(results: Path, jobs: int, matrix: list[str] = MATRIX) -> dict[str, tuple]:
    subprocess.run([sys.executable, "-m", "dfqbench", "run", *matrix, "--jobs", str(jobs), "--results", str(results)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    lines = (results / "digits" / "records.jsonl").read_text().splitlines()
    return {r["key"]: (r["status"], r["top1"], r["metrics"]) for r in map(json.loads, lines)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # Teachers are trained on first use and cached: do that before timing.
        run(Path(tmp) / "warm", 1, ["--methods", "noise", "--models", MATRIX[3], "--bits", "3", "--budget", "smoke"])
        one, many = {}, {}
        t_one = timed(lambda: one.update(run(Path(tmp) / "one", 1)))
        t_many = timed(lambda: many.update(run(Path(tmp) / "many", args.jobs)))
    assert one == many, "worker processes changed a record"
    print(f"| matrix ({len(one)} cells) | --jobs 1 | --jobs {args.jobs} | speed-up |")
    print("|---|---|---|---|")
    print(f"| noise, ZeroQ, GDFQ · 2 CNNs · W3A3 · 2 seeds | {t_one:.0f} s | {t_many:.0f} s | {t_one / t_many:.2f}× |")


if __name__ == "__main__":
    main()
