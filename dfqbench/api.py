"""The public plugin API of dfqbench (stable; documented in the README).

A plugin is a module registered under the entry-point group ``dfqbench``. It implements
one or more of the hooks in :mod:`dfqbench.hookspecs` and returns descriptions of what it
adds. Descriptions are cheap: the heavy code (torch models, training loops) is named by a
``"module:attribute"`` string and imported only when a cell needs it, so ``dfqbench list``
stays fast and never imports torch.

This module must not import torch.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import pluggy

from dfqbench.errors import unknown

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

    from dfqbench.context import RunContext

hookimpl = pluggy.HookimplMarker("dfqbench")

#: Model families. A method lists the families it supports; a suite's models each have one.
CNN = "cnn"
VIT = "vit"
FAMILIES = (CNN, VIT)


def load_object(ref: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute."""
    module_name, _, attr = ref.partition(":")
    obj = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class MethodInfo:
    """What a plugin says about a method; importing it must stay cheap."""

    name: str  #: short CLI name, e.g. ``gdfq``
    display_name: str  #: table column, e.g. ``GDFQ``
    paper: str  #: citation of the paper the method comes from
    families: tuple[str, ...]  #: model families it supports, e.g. ``("cnn",)``
    impl: str  #: ``"module:Class"`` of a :class:`Method` subclass, imported when a cell runs
    #: False only for reference baselines that read real training images; such methods are
    #: marked in every table and are the only ones the harness gives real data to.
    data_free: bool = True
    #: publication year; tables order method columns by it (baselines use 0)
    year: int = 0
    notes: str = ""  #: one line shown by ``dfqbench list``

    def __post_init__(self) -> None:
        # every record carries these as its labels, and the records' reader checks their types
        for name, kind in (("name", str), ("display_name", str), ("data_free", bool), ("year", int)):
            value = getattr(self, name)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise TypeError(f"MethodInfo {name}={value!r} is not {kind.__name__}")


@dataclass(frozen=True)
class DatasetInfo:
    """A labelled image classification data set."""

    name: str
    display_name: str
    num_classes: int
    input_shape: tuple[int, int, int]  #: (channels, height, width) as the model sees it
    mean: tuple[float, ...]  #: per-channel normalisation of the model input
    std: tuple[float, ...]
    #: ``"module:function"``; ``function(split, env, settings)`` returns a torch ``Dataset``
    #: of (normalised image tensor, label) for ``split`` in ``{"train", "val"}``, prepared
    #: as the row's data ``settings`` say (see :attr:`SuiteInfo.settings`).
    loader: str
    notes: str = ""
    #: Named alternative normalisations ``{name: (mean, std)}`` (the reference codes of
    #: some data sets disagree); a row selects one with the data setting ``normalization``.
    normalizations: Mapping[str, tuple[tuple[float, ...], tuple[float, ...]]] = field(default_factory=dict)

    def normalization(self, settings: Mapping[str, Any]) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) of the model input under a row's data ``settings``.

        Explicit ``mean``/``std`` settings win, then a named ``normalization``, then the
        data set's own constants.
        """
        mean, std = self.mean, self.std
        name = settings.get("normalization")
        if name is not None:
            if name not in self.normalizations:
                raise unknown("normalization", name, self.normalizations, f" of dataset {self.name!r}")
            mean, std = self.normalizations[name]
        return tuple(settings.get("mean", mean)), tuple(settings.get("std", std))


@dataclass(frozen=True)
class ModelInfo:
    """A full-precision model architecture and where its pretrained weights come from."""

    name: str
    display_name: str
    family: str  #: one of :data:`FAMILIES`
    #: ``"module:function"``; ``function(dataset, env, settings)`` returns the pretrained FP
    #: model for ``dataset`` (a :class:`DatasetInfo`) in eval mode. A ``--weights`` file is
    #: read with ``env.weights_file(model)``: one given for a model whose loader never asks
    #: is refused.
    loader: str
    notes: str = ""


@dataclass(frozen=True)
class SuiteInfo:
    """A benchmark matrix: which (dataset, model) rows, at which bit-widths by default."""

    name: str
    description: str
    rows: tuple[tuple[str, str], ...]  #: (dataset, model) pairs in table order
    bits: tuple[str, ...] = ("3", "4", "5")  #: default ``--bits`` entries
    #: Published numbers to show beside ours: ``"package:relative/path.csv"`` files in the
    #: format of :mod:`dfqbench.published`, one per paper, in priority order (where two
    #: sources give the same entry, the table shows the first; the compare view shows all).
    published: tuple[str, ...] = ()
    #: Data settings of every row (e.g. evaluation preprocessing), recorded with each cell
    #: and changeable with ``--set data.FIELD=VALUE``. ``mean``/``std`` entries override
    #: the dataset's normalisation.
    settings: Mapping[str, Any] = field(default_factory=dict)
    #: Per-model additions to :attr:`settings` (e.g. a ViT's own resize before cropping).
    model_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    notes: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.published, str) or self.published is None:  # one file, or none, given bare
            object.__setattr__(self, "published", (self.published,) if self.published else ())

    def data_settings(self, model: str) -> dict[str, Any]:
        return {**self.settings, **self.model_settings.get(model, {})}


@dataclass(frozen=True)
class Task:
    """Everything a method may know about the cell it works on. Holds no data."""

    suite: str
    dataset: str
    model: str
    family: str
    num_classes: int
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    w_bits: int
    a_bits: int


class Method:
    """Base class of a method implementation (the ``impl`` of a :class:`MethodInfo`).

    Subclasses set :attr:`Config` to a dataclass holding every hyper-parameter, implement
    :meth:`config` (defaults for a task and a named budget) and :meth:`quantize`.
    """

    Config: ClassVar[type] = type(None)
    #: True when :meth:`quantize_jointly` can train the quantized models of several
    #: bit-widths of one (model, seed, config) together, each ending exactly as
    #: :meth:`quantize` would leave it alone (e.g. a generator that never sees the student)
    joint_bits: ClassVar[bool] = False

    def config(self, task: Task, budget: str) -> Any:
        """The default configuration for ``task`` under budget ``paper``/``default``/``smoke``."""
        raise NotImplementedError

    def quantize(
        self,
        teacher: torch.nn.Module,
        qmodel: torch.nn.Module,
        task: Task,
        config: Any,
        ctx: RunContext,
    ) -> torch.nn.Module:
        """Calibrate and/or fine-tune ``qmodel`` without real data; return the result.

        ``teacher`` is the frozen full-precision model (eval mode, no gradients).
        ``qmodel`` is a fake-quantized copy of it whose activation ranges are not yet
        calibrated. ``ctx`` gives the device, seed, progress and metric logging.
        """
        raise NotImplementedError

    def quantize_jointly(
        self,
        teacher: torch.nn.Module,
        qmodels: list[torch.nn.Module],
        tasks: list[Task],
        config: Any,
        contexts: list[RunContext],
    ) -> list[torch.nn.Module | BaseException]:
        """:meth:`quantize` for several bit-widths at once (only where :attr:`joint_bits`):
        ``qmodels``, ``tasks`` and ``contexts`` have one entry per bit-width; everything else
        about the cells is the same. Returns one result per entry, each the quantized model or
        the exception that ended its training alone (e.g. ``Diverged``) while the others went
        on; an exception raised here is every cell's."""
        raise NotImplementedError


def check_config(
    config: Any,
    at_least: dict[str, float] | None = None,
    above: dict[str, float] | None = None,
    at_most: dict[str, float] | None = None,
    below: dict[str, float] | None = None,
    choices: dict[str, tuple] | None = None,
) -> None:
    """For a config's ``__post_init__``: ``ValueError`` naming the first field out of its
    range (every element of a tuple field is checked) or not among its choices, so that a bad
    ``--set`` value is one line before any cell runs instead of a failed cell."""
    rules = [
        (at_least, lambda v, b: v >= b, "{} or more"),
        (above, lambda v, b: v > b, "more than {}"),
        (at_most, lambda v, b: v <= b, "{} or less"),
        (below, lambda v, b: v < b, "less than {}"),
    ]
    for bounds, holds, valid in rules:
        for name, bound in (bounds or {}).items():
            value = getattr(config, name)
            if not all(holds(v, bound) for v in (value if isinstance(value, tuple) else (value,))):
                raise ValueError(f"{name}={value!r}; valid: {valid.format(bound)}")
    for name, options in (choices or {}).items():
        if getattr(config, name) not in options:
            raise ValueError(f"{name}={getattr(config, name)!r}; valid choices: {', '.join(map(str, options))}")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A method config as plain JSON-able data (tuples become lists)."""
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    if isinstance(config, dict):
        return dict(config)
    raise TypeError(f"a method config must be a dataclass or a dict, not {type(config).__name__}")
