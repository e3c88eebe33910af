"""ZeroQ's distillation loss of real training images, beside that of its distilled batch.

    python tools/zeroq_loss_of_real_images.py [--batches 8]

ZeroQ matches every *image* to the BN running statistics on its own (per-image spatial mean
and std). Real images do not reach zero either: between-image variation is part of BN's
batch statistics, and per-image statistics of small feature maps are noisy. This prints, per
digits CNN, the loss of random batches of 32 real training images (the size of ZeroQ's
batch) next to the final ``distill_loss`` that ZeroQ recorded in ``results/digits``, which
tells whether the distillation reached what real data would give.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from dfqbench.dfq.bn_stats import BNInputs, zeroq_bns_loss
from dfqbench.records import RecordStore, latest
from dfqbench.registry import load_registry
from dfqbench.session import Session

RECORDS = Path(__file__).resolve().parents[1] / "results" / "digits" / "records.jsonl"


def distilled_losses(model: str) -> list[float]:
    losses = {
        r["metrics"]["distill_loss"]["last"]
        for r in latest(RecordStore(RECORDS).read())  # the records the tables count
        if r["cell"]["method"] == "zeroq" and r["cell"]["model"] == model and r["status"] == "ok"
    }
    return sorted(losses)  # one distilled batch per seed, shared by its bit-widths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=8)
    args = parser.parse_args()
    session = Session(load_registry(), torch.device("cpu"))
    train = session.split("digits", "train", {})
    print("| model | ZeroQ loss, 32 real training images (mean ± std over batches) | ZeroQ's distilled batch (per seed) |")
    print("|---|---|---|")
    for model in ("resnet20-digits", "mobilenetv2-digits"):
        teacher = session.teacher("digits", model, {}).module
        losses = []
        draws = torch.Generator().manual_seed(0)  # the same batches whether or not the teacher was just trained
        with BNInputs(teacher) as bn, torch.no_grad():
            for _ in range(args.batches):
                images = torch.stack([train[int(i)][0] for i in torch.randperm(len(train), generator=draws)[:32]])
                bn.clear()
                teacher(images)
                losses.append(zeroq_bns_loss(bn, images).item())
        real = torch.tensor(losses)
        distilled = ", ".join(f"{v:.1f}" for v in distilled_losses(model))
        print(f"| {model} | {real.mean():.1f} ± {real.std():.1f} | {distilled} |")


if __name__ == "__main__":
    main()
