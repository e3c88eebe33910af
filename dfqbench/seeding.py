"""Seeds and devices: the two things that decide whether a record is reproducible."""

from __future__ import annotations

import os
import platform
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from dfqbench.errors import DfqError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def rng_kept(device: torch.device) -> Iterator[None]:
    """Run a block and restore the caller's RNG state afterwards: what the block draws is
    not drawn for the caller."""
    devices = [device.index or 0] if device.type == "cuda" else []
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Run a block under a fixed RNG state and restore the caller's state afterwards."""
    with rng_kept(device):
        seed_everything(seed)
        yield


def resolve_device(spec: str) -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` → an available device, or one clear error."""
    spec = spec.strip().lower()
    n_gpu = torch.cuda.device_count() if torch.cuda.is_available() else 0
    valid = ["auto", "cpu"] + (["cuda"] + [f"cuda:{i}" for i in range(n_gpu)] if n_gpu else [])
    if spec == "auto":
        return torch.device("cuda" if n_gpu else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        device = None
    if (device is None or device.type not in ("cpu", "cuda") or (device.type == "cuda" and (device.index or 0) >= n_gpu)
            or (device.type == "cpu" and device.index is not None)):  # torch takes cpu:99 and ignores the index  # fmt: skip
        raise DfqError(f"device {spec!r} is not available here; valid choices: {', '.join(valid)}")
    return device


def make_deterministic(device: torch.device) -> None:
    """Same seed, same device → same numbers (at some cost in speed on GPUs)."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def describe_machine(device: torch.device) -> dict[str, str]:
    """What decides the arithmetic beyond the seed: the CPU and the kernels torch picks for
    it (``cpu_capability``: DEFAULT, AVX2, AVX512…), or the GPU, its compute capability and
    the CUDA and cuDNN versions. Two machines that differ here can round differently, and a
    training run then takes another path from the same seed."""
    machine = {"cpu": _cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        machine.update(gpu=torch.cuda.get_device_name(device), compute_capability=f"{major}.{minor}",
                       cuda=str(torch.version.cuda), cudnn=str(torch.backends.cudnn.version()))  # fmt: skip
    return machine


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
