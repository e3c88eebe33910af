"""Bit-independent work done once: ZeroQ's distilled batch reused across bit-widths.

    python bench/shared_work.py

Runs ZeroQ at W3A3, W4A4 and W5A5 on one digits model twice: in one session (the batch is
distilled once and reused, as ``dfqbench run`` does) and in a fresh session per cell (the
batch is distilled three times). Reports both wall times and their ratio, and checks that
the accuracies are identical (reuse must not change results).
"""

from __future__ import annotations

import torch

from _common import timed
from dfqbench.plan import make_plan
from dfqbench.registry import load_registry
from dfqbench.session import Session


def main() -> None:
    reg = load_registry()
    cells = make_plan(reg, "digits", ["zeroq"], ["resnet20-digits"], [(3, 3), (4, 4), (5, 5)], [0], "default").cells
    sessions = [Session(reg, torch.device("cpu")) for _ in range(4)]
    for session in sessions:  # teacher loaded and evaluated before any timing
        session.teacher("digits", "resnet20-digits", {})
    shared, recomputed = [], []
    t_shared = timed(lambda: shared.extend(sessions[0].run(c)["top1"] for c in cells))
    t_fresh = timed(lambda: recomputed.extend(s.run(c)["top1"] for s, c in zip(sessions[1:], cells, strict=True)))
    assert shared == recomputed, (shared, recomputed)
    print("| ZeroQ at 3 bit-widths | distilled once (shared) | distilled per cell | speed-up |")
    print("|---|---|---|---|")
    print(f"| resnet20-digits | {t_shared:.1f} s | {t_fresh:.1f} s | {t_fresh / t_shared:.2f}× |")


if __name__ == "__main__":
    main()
