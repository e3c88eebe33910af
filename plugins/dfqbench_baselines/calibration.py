"""Range calibration without training, on Gaussian noise or on real training images.

Both run the quantized model in eval mode (BN uses the pretrained statistics) for the same
number of batches; they differ only in what they feed it, which isolates the value of
real calibration data from everything else.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dfqbench.api import Method, check_config
from dfqbench.quant import calibrating

BATCHES = {"paper": 32, "default": 32, "smoke": 2}


@dataclass(frozen=True)
class CalibrationConfig:
    batches: int = 32
    batch_size: int = 64

    def __post_init__(self) -> None:
        check_config(self, at_least={"batches": 1, "batch_size": 1})


def _calibrate(qmodel, batches, ctx, description):
    qmodel.eval()
    with calibrating(qmodel), torch.no_grad(), ctx.progress(len(batches), description) as bar:
        for images in batches:
            qmodel(images.to(ctx.device))
            bar.advance()
    return qmodel


class NoiseCalibration(Method):
    Config = CalibrationConfig

    def config(self, task, budget):
        return CalibrationConfig(batches=BATCHES[budget])

    def quantize(self, teacher, qmodel, task, config, ctx):
        batches = [torch.randn(config.batch_size, *task.input_shape) for _ in range(config.batches)]
        return _calibrate(qmodel, batches, ctx, "calibrating on noise")


class RealCalibration(Method):
    Config = CalibrationConfig

    def config(self, task, budget):
        return CalibrationConfig(batches=BATCHES[budget])

    def quantize(self, teacher, qmodel, task, config, ctx):
        train = ctx.real_data("train")
        order = torch.randint(0, len(train), (config.batches, config.batch_size))
        batches = [torch.stack([train[int(i)][0] for i in idx]) for idx in order]
        return _calibrate(qmodel, batches, ctx, "calibrating on real training images")
