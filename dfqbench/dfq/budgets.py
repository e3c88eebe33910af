"""Named budgets for the GDFQ-family loop: the paper's schedule, and reduced ones.

``paper`` is the reference configuration untouched. ``default`` and ``smoke`` shrink it for
CPUs and tests with one rule shared by every method of the family, so that their
differences stay the methods' own. The rule keeps the *phases* of the paper's schedule
rather than its proportions:

* a generator-only warm-up that is also the activation-calibration window, of the paper's
  800 iterations (16 epochs of 50). Scaled by the epoch ratio it would be 50 iterations, far
  too few for the generator to produce images worth calibrating on (measured on digits:
  W3A3 83 vs 89 with a 200-iteration window). Until 2026-12-06 it was 200 iterations, after
  which GDFQ's generator still scored a teacher cross-entropy near ln 10 on its own labels;
  the paper's 800 lift GDFQ and Qimera on the digits training split (docs/budgets.md);
* then the student phase, with the paper's LR milestones kept at the same positions
  *within that phase* (CIFAR's first milestone, epoch 100 of 400 after a 4-epoch warm-up,
  stays a quarter into the student phase; ImageNet's, after a 50-epoch warm-up, an eighth);
* a batch of 64, or the paper's where that is smaller: a reduced budget never grows a
  batch. This matters for AdaDFQ (paper batch 16, whose entropy hinge normalises by the
  batch minimum): on the digits training split its paper batch beats 64 by a wide margin
  (docs/budgets.md);
* the paper's student LR, times the factor a method's training-split check chose where it
  chose one (``GeneratorMethod.student_lr_factor``: GDFQ ×10, Qimera ×0.3, AdaDFQ ×3). The
  reduced schedule gives the student ~100× fewer steps than the paper's, but a larger LR
  does not simply make up for them; docs/budgets.md lists the measurements.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dfqbench.dfq.loop import LoopConfig


@dataclass(frozen=True)
class Reduced:
    epochs: int
    iters_per_epoch: int
    batch_size: int
    warmup_epochs: int  #: generator-only epochs, which are also the calibration window


#: the student phase is ``epochs - warmup_epochs``: 16 epochs of 50 iterations in ``default``
REDUCED = {"default": Reduced(32, 50, 64, 16), "smoke": Reduced(2, 2, 8, 1)}
#: student LR multiplier of the reduced schedules where a method chose none (see the module docstring)
STUDENT_LR_FACTOR = 1.0


def in_student_phase(milestone: int, paper: LoopConfig, reduced: Reduced) -> int:
    """Map a paper LR milestone to the reduced schedule, keeping its position in the student phase."""
    frac = (milestone - paper.warmup_epochs) / (paper.epochs - paper.warmup_epochs)
    return reduced.warmup_epochs + round(max(frac, 0.0) * (reduced.epochs - reduced.warmup_epochs))


def reduced_batch(paper_batch: int, budget: str) -> int:
    """A reduced budget's batch: its own, unless the paper's is smaller (never grown)."""
    return min(REDUCED[budget].batch_size, paper_batch)


def scaled(paper: LoopConfig, budget: str, student_lr_factor: float = STUDENT_LR_FACTOR) -> LoopConfig:
    if budget == "paper":
        return paper
    reduced = REDUCED[budget]
    return dataclasses.replace(
        paper,
        epochs=reduced.epochs,
        iters_per_epoch=reduced.iters_per_epoch,
        batch_size=reduced_batch(paper.batch_size, budget),
        warmup_epochs=reduced.warmup_epochs,
        calib_epochs=reduced.warmup_epochs,
        milestones_s=tuple(in_student_phase(m, paper, reduced) for m in paper.milestones_s),
        milestones_g=tuple(in_student_phase(m, paper, reduced) for m in paper.milestones_g),
        lr_s=paper.lr_s * student_lr_factor,
    )
