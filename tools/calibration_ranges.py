"""Why noise calibrates the digits CNNs about as well as real images at W3A3: the ranges.

    python tools/calibration_ranges.py [--bits 3 | 8w3a | ...] [--models resnet20-digits-t1,...]

The shared quantizer calibrates the *quantized* network (GDFQ family: every forward of the
calibration window already runs on quantized weights and ranges), and each range is an EMA
of batch maxima. This prints, per digits CNN, seed-0 draws of 32 batches of 64 images:

* each calibration's activation ranges (x_max) relative to those of real images observed
  on the full-precision network, as geometric means over the first and last third of the
  sites (after the ReLUs, in network order);
* the top-1 each set of ranges gives on the digits *training* split (no data-free method
  sees it; the validation split is not touched), and that of the real images' ranges
  scaled down, which shows whether max-based ranges are too wide at this bit-width.

The validation-split counterpart of the calibrate-on-fp rows, 3 seeds, is
``results/ablations/calibrate-on-fp/``.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from dfqbench import quant
from dfqbench.bits import parse_bits
from dfqbench.errors import DfqError
from dfqbench.evaluate import evaluate
from dfqbench.quant import calibrating, quant_acts
from dfqbench.quant.settings import QuantSettings
from dfqbench.registry import load_registry
from dfqbench.session import Session
from dfqbench_suites import DIGITS_CNNS, DIGITS_TEACHERS

BATCHES, BATCH_SIZE = 32, 64
MODELS = tuple(DIGITS_CNNS)
SHRINK = (0.9, 0.8, 0.7)


def calibrated(teacher, batches, bits: tuple[int, int], mode: str):
    qmodel = quant.wrap(teacher, *bits, QuantSettings(calibrate=mode)).eval()
    with calibrating(qmodel), torch.no_grad():
        for images in batches:
            qmodel(images)
    return qmodel


def x_max(qmodel) -> list[float]:
    return [float(act.x_max) for _, act in quant_acts(qmodel)]


def thirds(ranges: list[float], reference: list[float]) -> tuple[float, float]:
    ratios = [r / ref for r, ref in zip(ranges, reference, strict=True)]
    third = len(ratios) // 3
    return statistics.geometric_mean(ratios[:third]), statistics.geometric_mean(ratios[-third:])


def measure(bits: tuple[int, int], models: tuple[str, ...] = MODELS) -> tuple[list[dict], dict[str, list[float]]]:
    """Rows (model, calibration set, network, x_max ratio of the first and last third of the
    sites, train top-1), and per model the train top-1 of real images' ranges × :data:`SHRINK`."""
    session = Session(load_registry(), torch.device("cpu"), eval_split="train")
    train = session.split("digits", "train", {})
    draws = torch.Generator().manual_seed(0)
    noise = [torch.randn(BATCH_SIZE, *train[0][0].shape, generator=draws) for _ in range(BATCHES)]
    order = torch.randint(0, len(train), (BATCHES, BATCH_SIZE), generator=draws)
    real = [torch.stack([train[int(i)][0] for i in idx]) for idx in order]
    rows, shrunk = [], {}
    for model in models:
        teacher = session.teacher("digits", model, {}).module
        qmodels = {(name, mode): calibrated(teacher, batches, bits, mode) for name, batches in (("real", real), ("noise", noise)) for mode in ("fp", "quantized")}
        reference = x_max(qmodels["real", "fp"])
        for (name, mode), qmodel in qmodels.items():
            first, last = thirds(x_max(qmodel), reference)
            top1 = evaluate(qmodel, train, torch.device("cpu"))[0]
            rows.append({"model": model, "set": name, "network": mode, "first": first, "last": last, "top1": top1})
        qmodel = qmodels["real", "quantized"]
        calibrated_max = x_max(qmodel)
        shrunk[model] = []
        for k in SHRINK:
            for (_, act), value in zip(quant_acts(qmodel), calibrated_max, strict=True):
                act.x_max.fill_(value * k)
            shrunk[model].append(evaluate(qmodel, train, torch.device("cpu"))[0])
    return rows, shrunk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bits", default="3", help="one entry as for dfqbench run --bits: 3 = W3A3, 8w3a = W8A3")
    parser.add_argument("--models", default=",".join(MODELS), help="comma list of digits CNNs, e.g. the digits-teachers suite's")
    args = parser.parse_args()
    models = tuple(args.models.split(","))
    unknown = [m for m in models if m not in DIGITS_CNNS and m not in DIGITS_TEACHERS]
    if unknown:
        parser.error(f"unknown --models entry {unknown[0]!r}; valid: {', '.join([*DIGITS_CNNS, *DIGITS_TEACHERS])}")
    try:
        entries = parse_bits(args.bits)
    except DfqError as exc:
        parser.error(str(exc))
    if len(entries) != 1:
        parser.error(f"--bits takes one entry, got {args.bits!r}")
    (w_bits, a_bits), = entries
    rows, shrunk = measure((w_bits, a_bits), models)
    print(f"W{w_bits}A{a_bits}; x_max relative to real images on the FP network: first / last third of the sites\n")
    print("| model | calibration set | calibrated on | x_max ratio | train top-1 |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['set']} | {r['network']} network | {r['first']:.2f} / {r['last']:.2f} | {r['top1']:.2f} |")
    print("\nReal images' ranges (calibrated on the quantized network) scaled down, train top-1:\n")
    print("| model | " + " | ".join(f"×{k}" for k in SHRINK) + " |\n|---|" + "---|" * len(SHRINK))
    for model, top1s in shrunk.items():
        print(f"| {model} | " + " | ".join(f"{top1:.2f}" for top1 in top1s) + " |")


if __name__ == "__main__":
    main()
