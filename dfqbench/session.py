"""Run one cell: teacher → quantized copy → method (no real data) → evaluation → record.

A :class:`Session` lives in one worker process and keeps what cells share: each FP teacher
and its accuracy (loaded and measured once per dataset/model), the validation splits, and
bit-independent work of the methods. Whatever happens inside a method becomes the cell's
record (``ok``, ``failed`` or ``diverged``); only Ctrl-C and bad user input escape.
"""

from __future__ import annotations

import copy
import datetime
import json
import platform
import resource
import sys
import time
import traceback
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

import dfqbench
from dfqbench import precision, quant, source
from dfqbench.api import load_object
from dfqbench.context import RunContext, SharedWork
from dfqbench.errors import DfqError, Diverged
from dfqbench.evaluate import evaluate
from dfqbench.plan import Cell, make_task, method_impl, resolved_config
from dfqbench.progress import SILENT, Display
from dfqbench.quant.settings import QuantSettings
from dfqbench.records import SCHEMA
from dfqbench.registry import Registry
from dfqbench.seeding import describe_device, seed_everything
from dfqbench.zoo import ZooEnv
from dfqbench.zoo.store import weights_sha256


@dataclass
class Teacher:
    module: nn.Module
    fp_top1: float
    fp_top5: float
    sha256: str  #: of the weights (:func:`~dfqbench.zoo.store.weights_sha256`), in every record
    weights: dict[str, Any] | None = None  #: provenance of the pretrained weights, if the loader gave it


def freeze(model: nn.Module) -> nn.Module:
    model.eval()
    model.requires_grad_(False)
    return model


class Session:
    """``eval_split`` is ``val`` for every benchmark run; ``train`` serves tuning protocols
    (choose a budget on the training split, report on the validation split)."""

    def __init__(
        self,
        registry: Registry,
        device: torch.device,
        zoo: ZooEnv | None = None,
        display: Display = SILENT,
        eval_split: str = "val",
    ):
        self.registry = registry
        self.eval_split = eval_split
        self.device = device
        self.zoo = zoo or ZooEnv(display=display)
        self.display = display
        self.shared = SharedWork()
        self._teachers: dict[tuple, Teacher] = {}
        self._digests: dict[tuple, str] = {}
        #: modules loaded only for their digest (the resume check), kept for prepare() to claim
        self._spare: dict[tuple, nn.Module] = {}
        self._splits: dict[tuple, Dataset] = {}

    # -- shared state -------------------------------------------------------------------
    def split(self, dataset: str, split: str, settings: dict[str, Any]) -> Dataset:
        key = (dataset, split, _frozen(settings))
        if key not in self._splits:
            info = self.registry.dataset(dataset).info
            self._splits[key] = load_object(info.loader)(split, self.zoo, settings)
        return self._splits[key]

    def teacher(self, dataset: str, model: str, settings: dict[str, Any]) -> Teacher:
        """The frozen FP teacher and its accuracy on the evaluation split, once per (dataset, model)."""
        key = (dataset, model, _frozen(settings))
        if key not in self._teachers:
            split, (module, sha256) = self._load(dataset, model, settings)
            module = freeze(module.to(self.device))
            top1, top5 = evaluate(module, split, self.device)
            self._teachers[key] = Teacher(module, top1, top5, sha256, self.zoo.weights_used.get((dataset, model)))
            self.display.print(f"teacher {model} on {dataset}: FP top-1 {top1:.2f}%")
        return self._teachers[key]

    def teacher_sha256(self, dataset: str, model: str, settings: dict[str, Any]) -> str:
        """The digest of the teacher's weights, loading (or training) them but neither the data
        nor the FP accuracy. The module waits for :meth:`prepare`, which takes it instead of
        loading it again or drops it (a controller of cluster jobs holds no model)."""
        key = (dataset, model, _frozen(settings))
        if key not in self._digests:
            self._spare[key] = self._module(dataset, model, settings)[0]
        return self._digests[key]

    def _load(self, dataset: str, model: str, settings: dict[str, Any]):
        # the split first: missing data is reported before any download of weights
        return self.split(dataset, self.eval_split, settings), self._module(dataset, model, settings)

    def _module(self, dataset: str, model: str, settings: dict[str, Any]) -> tuple[nn.Module, str]:
        key = (dataset, model, _frozen(settings))
        if key in self._spare:  # loaded for the resume check a moment ago: not loaded (or trained) again
            return self._spare.pop(key), self._digests[key]
        info = self.registry.model(model).info
        module = load_object(info.loader)(self.registry.dataset(dataset).info, self.zoo, settings)
        if model in self.zoo.weights and model not in self.zoo.weights_asked:
            raise DfqError(f"--weights {model}=…: the {model} loader takes no weights file (it trains or fetches its own); leave it out")
        sha256 = self._digests[key] = weights_sha256(module)
        return module, sha256

    def prepare(self, cells: list[Cell], evaluate: bool = True) -> None:
        """Load every teacher the cells need (weights, validation split, FP accuracy) up
        front, and the training split where a reference baseline (``data_free=False``) will
        ask for it, so that missing data or weights stop a run with one clear error before any
        cell runs. Any other failure is left to the cells, which record it as theirs.

        ``evaluate=False`` (before cluster jobs): only check the data and put the weights in
        the cache (trained or downloaded once, here, so every job loads the same ones); the
        jobs measure the FP accuracy on their own devices."""
        rows = {(c.dataset, c.model, _frozen(c.data)): c for c in cells}
        real = {(c.dataset, _frozen(c.data)): c for c in cells if not self.registry.method(c.method).info.data_free}
        loads = [partial(self.split, c.dataset, "train", c.data) for c in real.values()] + [
            partial(self.teacher if evaluate else self._load, c.dataset, c.model, c.data) for c in rows.values()
        ]
        for load in loads:
            try:
                load()
            except DfqError:
                raise
            except Exception:  # noqa: BLE001 - each cell of this row records the error
                continue
        self._spare.clear()  # the teachers of finished models: only their digests were needed

    # -- one cell -----------------------------------------------------------------------
    def run(self, cell: Cell) -> dict[str, Any]:
        entry = self.registry.method(cell.method)
        record = self._skeleton(cell, entry)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        ctx = None
        try:
            teacher = self.teacher(cell.dataset, cell.model, cell.data)
            record.update(fp_top1=teacher.fp_top1, fp_top5=teacher.fp_top5, teacher_sha256=teacher.sha256, weights=teacher.weights)
            seed_everything(cell.seed)
            task = make_task(self.registry, cell.suite, cell.dataset, cell.model, cell.w_bits, cell.a_bits, cell.data)
            config = resolved_config(self.registry, cell)
            qmodel = quant.wrap(teacher.module, cell.w_bits, cell.a_bits, QuantSettings(**cell.quantizer))
            record["quant_sites"] = quant.describe(qmodel)
            fp_model = freeze(copy.deepcopy(teacher.module))
            if cell.channels_last:
                fp_model, qmodel = (m.to(memory_format=torch.channels_last) for m in (fp_model, qmodel))
            real_data = None if entry.info.data_free else (lambda split: self.split(cell.dataset, split, cell.data))
            ctx = RunContext(task, self.device, cell.seed, cell.budget, self.display, self.shared, real_data, cell.precision)
            impl = method_impl(entry.info)
            with precision.autocast(self.device, precision.check(cell.precision, self.device)):
                result = impl.quantize(fp_model, qmodel, task, config, ctx)
            result = self._checked(result)  # and evaluated in fp32, outside autocast
            record["top1"], record["top5"] = evaluate(result, self.split(cell.dataset, self.eval_split, cell.data), self.device)
            record["status"] = "ok"
        except (KeyboardInterrupt, DfqError):
            raise
        except Diverged as exc:
            record.update(status="diverged", error=_error(exc))
        except Exception as exc:  # any failure inside a method is this cell's outcome
            record.update(status="failed", error=_error(exc))
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        finally:
            record["wall_time_s"] = round(time.perf_counter() - start, 3)
            record["finished"] = _now()
            record["peak_mem_mb"], record["peak_mem_scope"] = self._peak_memory()
            if ctx is not None:
                record["metrics"], record["history"] = ctx.metrics, ctx.history
        return record

    def _checked(self, result: Any) -> nn.Module:
        if not isinstance(result, nn.Module):
            raise TypeError(f"quantize() must return the quantized model, got {type(result).__name__}")
        missing = quant.uncalibrated(result)
        if missing:
            raise RuntimeError(f"method left {len(missing)} activation quantizer(s) uncalibrated, e.g. {missing[0]}")
        quant.set_calibrating(result, False)  # evaluation never moves a range
        for name, tensor in [*result.named_parameters(), *result.named_buffers()]:
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise Diverged(f"non-finite values in {name}")
        return result

    def _skeleton(self, cell: Cell, entry: Any) -> dict[str, Any]:
        models, datasets = self.registry.models, self.registry.datasets
        return {
            "schema": SCHEMA,
            "key": cell.key,
            "cell": cell.to_dict(),
            "status": "failed",
            "top1": None,
            "top5": None,
            "fp_top1": None,
            "fp_top5": None,
            "teacher_sha256": None,
            "weights": None,
            "labels": {
                "method": entry.info.display_name,
                "data_free": entry.info.data_free,
                "year": entry.info.year,
                "model": models[cell.model].info.display_name if cell.model in models else cell.model,
                "dataset": datasets[cell.dataset].info.display_name if cell.dataset in datasets else cell.dataset,
            },
            "eval_split": self.eval_split,
            "device": describe_device(self.device),
            "versions": {
                "dfqbench": dfqbench.__version__,
                "source": source.revision(),
                "torch": torch.__version__,
                "python": platform.python_version(),
                "plugin": {"name": entry.plugin.name, "distribution": entry.plugin.distribution, "version": entry.plugin.version},
            },
            "error": None,
            "started": _now(),
        }

    def _peak_memory(self) -> tuple[float, str]:
        if self.device.type == "cuda":
            return round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1), "cuda allocated, this cell"
        scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20, 1), "process RSS, whole run"


def _frozen(settings: dict[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True, default=str)


def _error(exc: BaseException) -> dict[str, str]:
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)[-8:]),
    }


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
