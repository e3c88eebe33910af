"""Wall time of one cell under ``--precision bf16`` and ``--channels-last``, as a ratio to the
same cell in fp32 and the default layout, measured in the same run on the same device.

    python bench/precision.py [--method gdfq] [--model resnet20-digits] [--bits 4]
                              [--suite digits] [--budget default] [--device auto] [--data-root DIR]

Prints one row per setting: wall time, ratio to fp32, and top-1 (bf16 changes the
arithmetic, so its top-1 is a different number, not a rounding of the fp32 one). The
teacher is loaded and evaluated, and the setting warmed up with a smoke-budget run of the cell, before
anything is timed, in a fresh session per setting. On the project's CPU bf16 gained nothing
(README); the setting is meant for GPUs with bf16 tensor cores.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from dfqbench.plan import make_plan
from dfqbench.registry import load_registry
from dfqbench.seeding import describe_device, make_deterministic, resolve_device
from dfqbench.session import Session
from dfqbench.zoo import ZooEnv

SETTINGS = [("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)]


def loaded(reg, device: torch.device, data_root: Path | None, cell) -> Session:
    """A new session with the cell's teacher already loaded and evaluated."""
    session = Session(reg, device, ZooEnv(data_root=data_root))
    session.prepare([cell])
    return session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="gdfq")
    parser.add_argument("--model", default="resnet20-digits")
    parser.add_argument("--bits", type=int, default=4)
    parser.add_argument("--suite", default="digits")
    parser.add_argument("--budget", default="default")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-root", type=Path, default=None, help="real data sets (paper suites)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    make_deterministic(device)
    reg = load_registry()
    (cell,) = make_plan(reg, args.suite, [args.method], [args.model], [(args.bits, args.bits)], [0], args.budget).cells
    rows = []
    for precision, channels_last in SETTINGS:
        variant = replace(cell, precision=precision, channels_last=channels_last)
        # untimed: one-time start-up costs land on no setting
        loaded(reg, device, args.data_root, variant).run(replace(variant, budget="smoke"))
        session = loaded(reg, device, args.data_root, variant)  # fresh: no shared work (ZeroQ's batch) carried over
        start = time.perf_counter()
        record = session.run(variant)
        seconds = time.perf_counter() - start
        if record["status"] != "ok":
            raise SystemExit(f"{precision}, channels_last={channels_last}: {record['status']}: {record['error']['message']}")
        rows.append((precision, channels_last, seconds, record["top1"]))
    base = rows[0][2]
    print(f"\n{cell.method} · {cell.model} · {cell.bits} · budget {cell.budget} · {describe_device(device)} · torch {torch.__version__}\n")
    print("| precision | channels_last | wall time | ratio to fp32 | top-1 |")
    print("|---|---|---|---|---|")
    for precision, channels_last, seconds, top1 in rows:
        print(f"| {precision} | {channels_last} | {seconds:.1f} s | {seconds / base:.2f}× | {top1:.2f} |")


if __name__ == "__main__":
    main()
