"""Named budgets for the GDFQ-family loop: the paper's schedule, and reduced ones.

``paper`` is the reference configuration untouched. ``default`` and ``smoke`` shrink the
schedule for CPUs and tests with one rule shared by every method of the family, so that
their differences stay the methods' own: fewer epochs and iterations, LR milestones and the
warm-up/calibration windows kept at the same fractions of training, and the student LR
raised by a fixed factor because the reduced schedule has ~80× fewer student steps.
"""

from __future__ import annotations

import dataclasses

from dfqbench.dfq.loop import LoopConfig

#: (epochs, iterations per epoch, batch size) per reduced budget
REDUCED = {"default": (20, 50, 64), "smoke": (2, 2, 8)}
#: student LR multiplier of the reduced schedules (see the module docstring)
STUDENT_LR_FACTOR = 10.0


def scaled(paper: LoopConfig, budget: str) -> LoopConfig:
    if budget == "paper":
        return paper
    epochs, iters, batch = REDUCED[budget]
    frac = epochs / paper.epochs

    def at(epoch: int) -> int:
        return max(1, round(epoch * frac))

    return dataclasses.replace(
        paper,
        epochs=epochs,
        iters_per_epoch=iters,
        batch_size=min(batch, paper.batch_size) if budget == "smoke" else batch,
        warmup_epochs=min(at(paper.warmup_epochs), epochs - 1),
        calib_epochs=min(at(paper.calib_epochs), epochs - 1),
        milestones_s=tuple(at(m) for m in paper.milestones_s),
        milestones_g=tuple(at(m) for m in paper.milestones_g),
        lr_s=paper.lr_s * STUDENT_LR_FACTOR,
    )
