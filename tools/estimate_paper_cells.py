"""Estimate the GPU time of one paper-suite cell at ``--budget paper`` by counting work.

One iteration of each method's paper schedule is executed once on the CPU at batch 1 on the
real architectures (random weights: the work does not depend on them) under dfqbench's
quantizer, while torch's ``FlopCounterMode`` counts floating-point operations and a
dispatch counter counts aten operations (about one GPU kernel each). The time of an
iteration at the paper's batch size B is then estimated as

    FLOPs(batch 1) × B / R  +  operations × L

with R the effective throughput and L the cost of launching one operation from eager
PyTorch; both are assumptions, given as a low and a high value (see ``SCENARIOS``).

Schedules (from the reference codes):

* GDFQ / Qimera / AdaDFQ: 400 epochs × 200 iterations. An iteration trains the generator
  through the frozen teacher (generator forward and backward, teacher forward and backward
  to the images) and the fake-quantized student (forward and backward); AdaDFQ's generator
  loss also backpropagates through the student. The generator is a stand-in with the
  reference generator's layer shapes (GDFQ's ACGAN generator, latent 100). Under
  ``--joint`` (the default) GDFQ's and Qimera's three bit-widths share the generator's
  part, so a cell costs a third of it plus its own student's.
* ZAQ: 300 epochs × 60 iterations, each 5 student steps (generator forward; teacher and
  student forward, its two-level discrepancy, backward) and one generator step (the same
  through the generator too), batch 256 (CIFAR) or 16 (ImageNet, where its code has no
  config: dfqbench's derived one).
* ZeroQ: 500 steps on one batch of 64 images (teacher forward and backward to the images).
* PSAQ-ViT V1: 2 × 500 steps on 32 images (teacher forward and backward to the images).
* Every cell ends with one evaluation of the quantized model on the validation split
  (10,000 CIFAR / 50,000 ImageNet images) at batch 256; image decoding is not counted.

Usage: ``python tools/estimate_paper_cells.py`` (a few minutes on a CPU); prints markdown.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import pandas as pd
import timm
import torch
from pytorchcv.model_provider import get_model
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from dfqbench import quant
from dfqbench.dfq.features import StageOutputs, stage_names
from dfqbench_zaq import losses as zaq_losses
from dfqbench_zaq.method import IMAGENET_BATCH

GDFQ_STEPS = 400 * 200
JOINT_BITS = 3  #: bit-widths sharing one generator under ``--joint`` (the paper matrix's 3, 4, 5)
ZAQ_STEPS = 300 * 60


@dataclass(frozen=True)
class Scenario:
    name: str
    tflops: float  #: effective throughput R (TFLOP/s)
    launch_us: float  #: cost L of one operation (µs)


# Low: convolutions in TF32 near a third of an H100's dense tensor-core peak, fast launches.
# High: plain FP32 throughput and slow launches (deterministic kernels, a busy host).
SCENARIOS = (Scenario("optimistic", 150.0, 4.0), Scenario("pessimistic", 40.0, 10.0))


class OpCounter(TorchDispatchMode):
    """Counts aten operations (each is about one kernel launch on a GPU)."""

    def __init__(self):
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        return func(*args, **(kwargs or {}))


@dataclass
class Work:
    flops: float = 0.0  #: at batch 1
    ops: int = 0

    def __add__(self, other: Work) -> Work:
        return Work(self.flops + other.flops, self.ops + other.ops)

    def times(self, n: float) -> Work:
        return Work(self.flops * n, self.ops * n)

    def per_sample(self, batch: int) -> Work:
        """Work counted on ``batch`` samples, as FLOPs per sample (the operations stay)."""
        return Work(self.flops / batch, self.ops)

    def seconds(self, batch: int, scenario: Scenario) -> float:
        return self.flops * batch / (scenario.tflops * 1e12) + self.ops * scenario.launch_us * 1e-6


def count(step) -> Work:
    flops, ops = FlopCounterMode(display=False), OpCounter()
    with flops, ops:
        step()
    return Work(flops.get_total_flops(), ops.ops)


def generator(size: int) -> nn.Module:
    """A stand-in with the GDFQ family's generator shapes (latent 100 → 128·(s/4)² → s×s×3)."""
    s = size // 4
    return nn.Sequential(
        nn.Linear(100, 128 * s * s), nn.Unflatten(1, (128, s, s)), nn.BatchNorm2d(128), nn.Upsample(scale_factor=2),
        nn.Conv2d(128, 128, 3, padding=1), nn.BatchNorm2d(128, 0.8), nn.LeakyReLU(0.2), nn.Upsample(scale_factor=2),
        nn.Conv2d(128, 64, 3, padding=1), nn.BatchNorm2d(64, 0.8), nn.LeakyReLU(0.2),
        nn.Conv2d(64, 3, 3, padding=1), nn.Tanh(), nn.BatchNorm2d(3, affine=False),
    )


def student(teacher: nn.Module, size: int) -> nn.Module:
    qmodel = quant.wrap(teacher, 4, 4, quant.preset("gdfq")).eval()
    with quant.calibrating(qmodel), torch.no_grad():
        qmodel(torch.randn(2, 3, size, size))
    return qmodel


def forward_backward(model: nn.Module, x: torch.Tensor) -> None:
    """Forward, then backward to whatever requires a gradient (the images, the weights, or both)."""
    model(x).logsumexp(dim=1).sum().backward()


def gdfq_iteration(g: nn.Module, teacher: nn.Module, qmodel: nn.Module, size: int) -> tuple[Work, Work]:
    """(the generator's step through the teacher, one student forward and backward): an
    iteration of GDFQ is one of each; AdaDFQ's generator loss adds a second student pass."""
    g.train()
    z = torch.randn(2, 100)  # two samples for the generator's batch norms
    generator_step = count(partial(forward_backward, nn.Sequential(g, teacher), z)).per_sample(2)
    student_step = count(partial(forward_backward, qmodel, torch.randn(1, 3, size, size)))
    return generator_step, student_step


def zaq_iteration(g: nn.Module, teacher: nn.Module, qmodel: nn.Module) -> Work:
    """Five student steps on fresh generated images, then one adversarial generator step,
    each with ZAQ's two-level discrepancy (its stage-level relations, the spatial one
    HW² · C per stage and sample, are most of the work at ImageNet's stage sizes)."""
    g.train()
    z = torch.randn(2, 100)
    names = stage_names(teacher)

    def discrepancy(x: torch.Tensor) -> torch.Tensor:
        with StageOutputs(teacher, names) as fp, StageOutputs(qmodel, names) as fq:
            out = zaq_losses.output_discrepancy(qmodel(x), teacher(x))
            return out + zaq_losses.feature_discrepancy(fq.outputs, fp.outputs)

    def student_step():
        with torch.no_grad():
            x = g(z)
        discrepancy(x).backward()

    def generator_step():
        discrepancy(g(z)).backward()

    return count(student_step).per_sample(2).times(5) + count(generator_step).per_sample(2)


def eval_work(model: nn.Module, size: int) -> Work:
    with torch.no_grad():
        return count(lambda: model(torch.randn(1, 3, size, size)))


CNN_ROWS = [  # (row, pytorchcv arch, image size, validation images, batch of GDFQ/Qimera, batch of AdaDFQ)
    ("CIFAR-10/100 ResNet-20", "resnet20_cifar10", 32, 10_000, 200, 16),
    ("ImageNet ResNet-18", "resnet18", 224, 50_000, 16, 16),
    ("ImageNet MobileNetV2", "mobilenetv2_w1", 224, 50_000, 16, 16),
    ("ImageNet ResNet-50", "resnet50", 224, 50_000, 16, 16),
]
VIT_ROWS = [
    ("ImageNet DeiT-T", "deit_tiny_patch16_224"), ("ImageNet DeiT-S", "deit_small_patch16_224"),
    ("ImageNet DeiT-B", "deit_base_patch16_224"), ("ImageNet Swin-T", "swin_tiny_patch4_window7_224"),
    ("ImageNet Swin-S", "swin_small_patch4_window7_224"),
]


def line(row: str, method: str, step: Work, batch: int, steps: int, evaluation: Work, val_images: int) -> dict:
    out = {"row": row, "method": method, "batch": batch, "steps": steps,
           "GFLOP/step": step.flops * batch / 1e9, "ops/step": step.ops}
    for scenario in SCENARIOS:
        total = steps * step.seconds(batch, scenario) + evaluation.seconds(256, scenario) * val_images / 256
        out[f"cell, {scenario.name}"] = f"{total / 60:.0f} min" if total >= 60 else f"{total:.0f} s"
    return out


def cnn_lines() -> list[dict]:
    out = []
    for row, arch, size, val_images, gdfq_batch, adadfq_batch in CNN_ROWS:
        teacher = get_model(arch, pretrained=False).eval()
        qmodel = student(teacher, size)
        teacher.requires_grad_(False)
        generator_step, student_step = gdfq_iteration(generator(size), teacher, qmodel, size)
        evaluation = eval_work(qmodel, size)
        out.append(line(row, "GDFQ, Qimera (--no-joint)", generator_step + student_step, gdfq_batch, GDFQ_STEPS, evaluation, val_images))
        joint = generator_step.times(1 / JOINT_BITS) + student_step
        out.append(line(row, f"GDFQ, Qimera (--joint, {JOINT_BITS} bits)", joint, gdfq_batch, GDFQ_STEPS, evaluation, val_images))
        out.append(line(row, "AdaDFQ", generator_step + student_step.times(2), adadfq_batch, GDFQ_STEPS, evaluation, val_images))
        zaq_batch = 256 if size == 32 else IMAGENET_BATCH
        out.append(line(row, "ZAQ", zaq_iteration(generator(size), teacher, qmodel), zaq_batch, ZAQ_STEPS, evaluation, val_images))
        zeroq = count(partial(forward_backward, teacher, torch.randn(1, 3, size, size, requires_grad=True)))
        out.append(line(row, "ZeroQ", zeroq, 64, 500, evaluation, val_images))
    return out


def vit_lines() -> list[dict]:
    out = []
    for row, arch in VIT_ROWS:
        teacher = timm.create_model(arch, pretrained=False).eval().requires_grad_(False)
        step = count(partial(forward_backward, teacher, torch.randn(1, 3, 224, 224, requires_grad=True)))
        out.append(line(row, "PSAQ-ViT", step, 32, 1000, eval_work(teacher, 224), 50_000))
    return out


def main() -> None:
    torch.manual_seed(0)
    table = pd.DataFrame(cnn_lines() + vit_lines())
    print(table.to_markdown(index=False, floatfmt=".1f"))
    print("\n" + "; ".join(f"{s.name}: R = {s.tflops:g} TFLOP/s, L = {s.launch_us:g} µs" for s in SCENARIOS))


if __name__ == "__main__":
    main()
