"""Train the digits suite's teachers from their recipes and write the files dfqbench ships.

    python tools/train_digits_teachers.py [--check] [MODEL ...]

Each model is trained from scratch on one thread (``dfqbench_suites.digits.train``) and
written to ``plugins/dfqbench_suites/teachers/MODEL.safetensors`` with the fingerprint of
its architecture, recipe and split, its validation top-1, the torch version and the CPU it
was trained on. Training is deterministic on one machine; another CPU can round differently
and end with other weights, and every committed digits record names the weights it was made
with (``teacher_sha256``), so new files mean rerunning the committed digits results.

``--check`` writes nothing: it trains and says whether each shipped file holds the same
weights (exit status 1 where one differs).
"""

from __future__ import annotations

import argparse
import sys

import torch
from rich.console import Console
from safetensors.torch import save_file

from dfqbench.progress import Display
from dfqbench.registry import load_registry
from dfqbench.seeding import describe_machine
from dfqbench.zoo import ZooEnv
from dfqbench.zoo.store import fingerprint, weights_sha256
from dfqbench_suites import digits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=list(digits.ARCHITECTURES), help="default: all of them")
    parser.add_argument("--check", action="store_true", help="compare with the shipped files instead of writing them")
    args = parser.parse_args()
    machine = describe_machine(torch.device("cpu"))
    dataset = load_registry().dataset("digits").info
    differ = 0
    for name in args.models:
        with Display(Console(stderr=True)) as display:
            model, top1 = digits.train(name, display)
        sha256 = weights_sha256(model)
        if args.check:
            shipped = weights_sha256(digits.load(name, dataset, ZooEnv()))
            same = shipped == sha256
            differ += not same
            print(f"{name}: {'the same weights as' if same else 'other weights than'} the shipped file (trained here: {sha256[:12]}…, shipped: {shipped[:12]}…)")
            continue
        meta = {"fingerprint": fingerprint(digits.spec(name)), "val_top1": repr(top1), "torch": torch.__version__,
                "cpu": machine["cpu"], "cpu_capability": machine["cpu_capability"], "teacher_sha256": sha256}  # fmt: skip
        path = digits.teacher_file(name)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path, metadata=meta)
        print(f"{name}: FP top-1 {top1:.2f}%, teacher_sha256 {sha256[:12]}… → {path}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
