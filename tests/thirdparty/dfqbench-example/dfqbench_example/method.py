"""The method itself, imported only when a cell runs."""

from dataclasses import dataclass

import torch

from dfqbench.api import Method
from dfqbench.quant import calibrating


@dataclass(frozen=True)
class Config:
    batches: int = 16
    batch_size: int = 64


class UniformCalibration(Method):
    Config = Config

    def config(self, task, budget):
        return Config(batches=2 if budget == "smoke" else 16)

    def quantize(self, teacher, qmodel, task, config, ctx):
        mean = torch.tensor(task.mean, device=ctx.device).view(-1, 1, 1)
        std = torch.tensor(task.std, device=ctx.device).view(-1, 1, 1)
        qmodel.eval()
        with calibrating(qmodel), torch.no_grad(), ctx.progress(config.batches, "uniform noise") as bar:
            for _ in range(config.batches):
                pixels = torch.rand(config.batch_size, *task.input_shape, device=ctx.device)
                qmodel((pixels - mean) / std)
                bar.advance()
        return qmodel
