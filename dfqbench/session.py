"""Run one cell: teacher → quantized copy → method (no real data) → evaluation → record.

A :class:`Session` lives in one worker process and keeps what cells share: each FP teacher
and its accuracy (loaded and measured once per dataset/model), the validation splits, and
bit-independent work of the methods. Whatever happens inside a method becomes the cell's
record (``ok``, ``failed`` or ``diverged``); only Ctrl-C and bad user input escape.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import itertools
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
from dfqbench.data.fence import fenced
from dfqbench.errors import DfqError, Diverged, UnusedWeights
from dfqbench.evaluate import evaluate
from dfqbench.plan import Cell, make_task, method_impl, resolved_config
from dfqbench.progress import SILENT, Display
from dfqbench.quant.settings import QuantSettings
from dfqbench.records import SCHEMA
from dfqbench.registry import Registry
from dfqbench.seeding import describe_device, describe_machine, rng_kept, seed_everything
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
    (choose a budget on the training split, report on the validation split). ``joint``: the
    bit-widths of a method that trains them jointly (``Method.joint_bits``) run as one training
    (:meth:`trainings`)."""

    def __init__(
        self,
        registry: Registry,
        device: torch.device,
        zoo: ZooEnv | None = None,
        display: Display = SILENT,
        eval_split: str = "val",
        joint: bool = True,
    ):
        self.registry = registry
        self.joint = joint
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
            raise UnusedWeights(f"--weights {model}=…: the {model} loader takes no weights file (it trains or fetches its own); leave it out")
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

    # -- cells ---------------------------------------------------------------------------
    def trainings(self, cells: list[Cell]) -> list[list[Cell]]:
        """``cells`` as the trainings that run them: the bit-widths of one cell that differ in
        nothing else go together where the method trains them jointly (and :attr:`joint`),
        every other cell alone; in the order of their first cells."""
        groups: dict[str, list[Cell]] = {}
        for cell in cells:
            identity = {**cell.to_dict(), "w_bits": None, "a_bits": None, "overrides": None} if self._joint(cell.method) else cell.key
            groups.setdefault(json.dumps(identity, sort_keys=True, default=str), []).append(cell)
        return list(groups.values())

    def _joint(self, method: str) -> bool:
        try:
            return self.joint and bool(method_impl(self.registry.method(method).info).joint_bits)
        except Exception:  # noqa: BLE001 - an implementation that does not import fails each cell, in its record
            return False

    def run(self, cell: Cell) -> dict[str, Any]:
        return self.run_together([cell])[0]

    def run_together(self, cells: list[Cell]) -> list[dict[str, Any]]:
        """The records of one training (see :meth:`trainings`): one cell, or several
        bit-widths trained jointly, each recorded as if it had run alone, with the training's
        wall time shared equally and its keys under ``joint``."""
        entry = self.registry.method(cells[0].method)
        records = [self._skeleton(cell, entry) for cell in cells]
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        contexts: list[RunContext] = []
        try:
            results = self._quantize(cells, entry, records, contexts)
        except (KeyboardInterrupt, DfqError):
            raise
        except Exception as exc:  # any failure inside a method is its cells' outcome
            results = [exc] * len(cells)
        for cell, record, result in zip(cells, records, results, strict=True):
            self._outcome(cell, record, result)
        wall = time.perf_counter() - start
        peak = self._peak_memory("this cell" if len(cells) == 1 else "the joint training")
        for record, ctx in itertools.zip_longest(records, contexts):
            record["wall_time_s"] = round(wall / len(cells), 3)
            record["finished"] = _now()
            record["peak_mem_mb"], record["peak_mem_scope"] = peak
            if ctx is not None:
                record["metrics"], record["history"] = ctx.metrics, ctx.history
            if len(cells) > 1:
                record["joint"] = {"keys": [c.key for c in cells], "wall_time_s": round(wall, 3)}
        return records

    def _quantize(self, cells: list[Cell], entry: Any, records: list[dict], contexts: list[RunContext]) -> list[Any]:
        """Teacher, quantized copies and the method's training: a model, or an exception, per
        cell; ``contexts`` gets the cells' run contexts as they exist."""
        first = cells[0]
        teacher = self.teacher(first.dataset, first.model, first.data)
        for record in records:
            record.update(fp_top1=teacher.fp_top1, fp_top5=teacher.fp_top5, teacher_sha256=teacher.sha256, weights=teacher.weights)
        seed_everything(first.seed)
        tasks = [make_task(self.registry, c.suite, c.dataset, c.model, c.w_bits, c.a_bits, c.data) for c in cells]
        config = resolved_config(self.registry, first)
        qmodels = [quant.wrap(teacher.module, c.w_bits, c.a_bits, QuantSettings(**c.quantizer)) for c in cells[:1]]
        with rng_kept(self.device):  # a wrap draws (its layers' discarded init): the method starts as after one, as alone
            qmodels += [quant.wrap(teacher.module, c.w_bits, c.a_bits, QuantSettings(**c.quantizer)) for c in cells[1:]]
        for record, qmodel in zip(records, qmodels):
            record["quant_sites"] = quant.describe(qmodel)
        fp_model = freeze(copy.deepcopy(teacher.module))
        if first.channels_last:
            fp_model = fp_model.to(memory_format=torch.channels_last)
            qmodels = [q.to(memory_format=torch.channels_last) for q in qmodels]
        real_data = None if entry.info.data_free else (lambda split: self.split(first.dataset, split, first.data))
        contexts += [RunContext(task, self.device, first.seed, first.budget, self.display, self.shared, real_data, first.precision) for task in tasks]
        impl = method_impl(entry.info)
        fence = fenced(entry.info.name) if entry.info.data_free else contextlib.nullcontext()
        with fence, precision.autocast(self.device, precision.check(first.precision, self.device)):
            if len(cells) == 1:
                return [impl.quantize(fp_model, qmodels[0], tasks[0], config, contexts[0])]
            results = list(impl.quantize_jointly(fp_model, qmodels, tasks, config, contexts))
        if len(results) != len(cells):
            raise TypeError(f"quantize_jointly() must return one result per bit-width ({len(cells)}), got {len(results)}")
        return results

    def _outcome(self, cell: Cell, record: dict[str, Any], result: Any) -> None:
        """``ok`` with the accuracy of a returned model (evaluated in fp32, outside
        autocast), or the exception that took its place: ``diverged`` or ``failed``."""
        if not isinstance(result, BaseException):
            try:
                model = self._checked(result)
                record["top1"], record["top5"] = evaluate(model, self.split(cell.dataset, self.eval_split, cell.data), self.device)
                record["status"] = "ok"
                return
            except (KeyboardInterrupt, DfqError):
                raise
            except Exception as exc:  # noqa: BLE001 - this cell's outcome
                result = exc
        if isinstance(result, (KeyboardInterrupt, DfqError)):
            raise result
        record.update(status="diverged" if isinstance(result, Diverged) else "failed", error=_error(result))
        if record["status"] == "failed" and self.device.type == "cuda":
            torch.cuda.empty_cache()

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
            "machine": describe_machine(self.device),
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

    def _peak_memory(self, scope: str) -> tuple[float, str]:
        if self.device.type == "cuda":
            return round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1), f"cuda allocated, {scope}"
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
