import os
import time
from dataclasses import dataclass

import torch

from dfqbench.api import Method
from dfqbench.errors import Diverged
from dfqbench.quant import calibrating, set_calibrating

#: what Spy saw, for a test in the same process to inspect
SEEN: list = []


@dataclass(frozen=True)
class Config:
    batches: int = 2


def noise_calibration(qmodel, task, ctx, batches=2):
    qmodel.eval()
    with calibrating(qmodel), torch.no_grad():
        for _ in range(batches):
            qmodel(torch.randn(32, *task.input_shape, device=ctx.device))
    return qmodel


class _Probe(Method):
    Config = Config

    def config(self, task, budget):
        return Config()


class Fail(_Probe):
    def quantize(self, teacher, qmodel, task, config, ctx):
        raise ValueError("probe failure\nframe #0: a stack, as torch's errors carry")


class NaN(_Probe):
    def quantize(self, teacher, qmodel, task, config, ctx):
        ctx.log(loss=float("nan"))
        return qmodel


class OutOfMemory(_Probe):
    def quantize(self, teacher, qmodel, task, config, ctx):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated by the probe)")


class Interrupt(_Probe):
    def quantize(self, teacher, qmodel, task, config, ctx):
        if os.environ.get("DFQBENCH_PROBE_INTERRUPT") and task.w_bits == 4:
            raise KeyboardInterrupt
        return noise_calibration(qmodel, task, ctx)


class Crash(_Probe):
    def quantize(self, teacher, qmodel, task, config, ctx):
        if os.environ.get("DFQBENCH_PROBE_CRASH") and task.w_bits == 4:
            os._exit(9)  # only ever run in a worker process (--jobs 2): in pytest's own it would end the test run
        return noise_calibration(qmodel, task, ctx)


class Slow(_Probe):
    def quantize(self, teacher, qmodel, task, config, ctx):
        time.sleep(float(os.environ.get("DFQBENCH_PROBE_SLEEP", "1.0")))
        return noise_calibration(qmodel, task, ctx)


class Spy(_Probe):
    def quantize(self, teacher, qmodel, task, config, ctx):
        SEEN.append({"teacher": teacher, "qmodel": qmodel, "task": task, "config": config, "ctx": ctx,
                     "autocast": {d: torch.is_autocast_enabled(d) for d in ("cpu", "cuda")}})
        return noise_calibration(qmodel, task, ctx)


class Greedy(_Probe):
    def quantize(self, teacher, qmodel, task, config, ctx):
        ctx.real_data("train")
        return qmodel


class Sneaky(_Probe):
    def quantize(self, teacher, qmodel, task, config, ctx):
        from dfqbench.data.digits import load_split

        images = load_split("val").tensors[0]  # around the run context, to the test set
        with calibrating(qmodel), torch.no_grad():
            qmodel(images)
        return qmodel


class LeaveOpen(_Probe):
    def quantize(self, teacher, qmodel, task, config, ctx):
        noise_calibration(qmodel, task, ctx)
        set_calibrating(qmodel, True)  # like ZAQ's reference: ranges never frozen
        return qmodel


class Uncalibrated(_Probe):
    def quantize(self, teacher, qmodel, task, config, ctx):
        return qmodel


class Joint(_Probe):
    """Trains its bit-widths together; the 4-bit model diverges and drops out. With
    DFQBENCH_PROBE_JOINT_SHORT set it returns one result too few."""

    joint_bits = True

    def quantize(self, teacher, qmodel, task, config, ctx):
        (result,) = self.quantize_jointly(teacher, [qmodel], [task], config, [ctx])
        if isinstance(result, BaseException):
            raise result
        return result

    def quantize_jointly(self, teacher, qmodels, tasks, config, contexts):
        SEEN.append({"joint": [task.w_bits for task in tasks]})
        results = []
        for qmodel, task, ctx in zip(qmodels, tasks, contexts):
            with torch.random.fork_rng():  # each model draws the noise it would draw alone
                results.append(Diverged("probe: the 4-bit model diverged") if task.w_bits == 4 else noise_calibration(qmodel, task, ctx))
        return results[:-1] if os.environ.get("DFQBENCH_PROBE_JOINT_SHORT") else results
