"""What a method receives besides the models and the task: the run context.

The context is how the harness keeps its guarantees:

* data-free by construction: it holds no data, and :meth:`RunContext.real_data` refuses
  every method that did not declare itself as a non-data-free reference;
* divergence is detected where it happens: :meth:`RunContext.log` raises
  :class:`~dfqbench.errors.Diverged` on a non-finite value;
* shared work is done once: :meth:`RunContext.shared` memoises bit-independent results
  (e.g. ZeroQ's distilled batch) per (dataset, model, seed) under a fixed RNG state, so a
  cached result equals a recomputed one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
from torch.utils.data import Dataset

from dfqbench import precision as precision_
from dfqbench.api import Task
from dfqbench.errors import DataFreeViolation, Diverged
from dfqbench.progress import SILENT, Bar, Display
from dfqbench.seeding import seeded

T = TypeVar("T")


class SharedWork:
    """Results that several cells reuse, kept for one (dataset, model, seed) at a time."""

    def __init__(self) -> None:
        self._scope: tuple = ()
        self._items: dict[str, Any] = {}
        self.hits = 0

    def get(self, scope: tuple, key: str, seed: int, device: torch.device, fn: Callable[[], T]) -> T:
        if scope != self._scope:
            self._scope, self._items = scope, {}
        if key in self._items:
            self.hits += 1
        else:
            with seeded(seed, device):
                self._items[key] = fn()
        return self._items[key]


class RunContext:
    def __init__(
        self,
        task: Task,
        device: torch.device,
        seed: int,
        budget: str,
        display: Display = SILENT,
        shared: SharedWork | None = None,
        real_data: Callable[[str], Dataset] | None = None,
        precision: str = precision_.DEFAULT,
    ):
        self.task = task
        self.device = device
        self.seed = seed
        self.budget = budget
        self._display = display
        self._shared = shared or SharedWork()
        self._real_data = real_data
        #: ``fp32`` or ``bf16`` (:mod:`dfqbench.precision`): the method already runs under it
        self.precision = precision
        self._bar: Bar | None = None
        #: last value and count of every logged metric, stored in the record
        self.metrics: dict[str, dict[str, float]] = {}
        #: every logged value of every metric, in order: the record's log file
        self.history: dict[str, list[float]] = {}

    @contextmanager
    def progress(self, total: int | None, description: str) -> Iterator[Bar]:
        """A progress line for the method's inner loop; call ``bar.advance()`` per step."""
        with self._display.bar(f"  {description}", total) as bar:
            self._bar = bar
            try:
                yield bar
            finally:
                self._bar = None

    def log(self, **values: float | torch.Tensor) -> None:
        """Record scalar metrics (losses, accuracies on synthetic data, ...).

        A non-finite value means the method diverged: the cell stops and is recorded as
        ``diverged``.
        """
        for name, value in values.items():
            number = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
            if not math.isfinite(number):
                raise Diverged(f"{name} became {number}")
            entry = self.metrics.setdefault(name, {"last": number, "count": 0})
            entry["last"] = number
            entry["count"] += 1
            self.history.setdefault(name, []).append(number)
        if self._bar is not None:
            self._bar.note("  ".join(f"{k} {self.metrics[k]['last']:.4g}" for k in values))

    def shared(self, key: str, fn: Callable[[], T]) -> T:
        """``fn()``, computed once per (dataset, model, seed, key) and reused across cells.

        ``key`` must name everything ``fn`` depends on besides the model, the seed and the
        precision (typically the method and its bit-independent config). ``fn`` runs with the RNG
        seeded from the run seed, so the result does not depend on which cell computed it.
        """
        scope = (self.task.suite, self.task.dataset, self.task.model, self.seed, self.precision)
        return self._shared.get(scope, key, self.seed, self.device, fn)

    def real_data(self, split: str = "train") -> Dataset:
        """Real training images, for reference baselines that declared ``data_free=False``."""
        if self._real_data is None:
            raise DataFreeViolation(
                "this method is registered as data-free; the harness gives real data only to "
                "methods whose MethodInfo says data_free=False"
            )
        if split != "train":
            raise DataFreeViolation(f"only the training split is ever given to a method, not {split!r}")
        return self._real_data(split)


class JointContext:
    """The contexts of cells trained together (one per bit-width), seen as one by the work
    they share, such as building the generator: :meth:`log` goes into every cell's record;
    device, seed, budget, precision, progress and shared work are the same for all and are
    the first context's. ``task`` is refused: the cells' tasks differ in their bits."""

    def __init__(self, contexts: list[RunContext]):
        self.contexts = contexts

    def __getattr__(self, name: str) -> Any:
        if name == "task":
            raise AttributeError("JointContext.task: the cells trained together differ in their bits; use their own contexts")
        return getattr(self.contexts[0], name)

    def log(self, **values: float | torch.Tensor) -> None:
        for ctx in self.contexts:
            ctx.log(**values)
