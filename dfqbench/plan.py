"""The plan: suite × methods × models × bits × seeds → cells, each with a stable key.

A :class:`Cell` is plain data (strings, ints, dicts): it pickles and serialises to JSON,
so any executor can ship it to another process or machine. Its key is a hash of exactly
its fields; the device is not one of them (same cell, wherever it runs).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from dfqbench import overrides
from dfqbench import precision as precision_
from dfqbench.api import Method, MethodInfo, Task, config_to_dict, load_object
from dfqbench.bits import label
from dfqbench.errors import DfqError, unknown
from dfqbench.quant.settings import ACT_SITES, DEFAULT_FOR_FAMILY, PRESETS, QuantSettings, preset
from dfqbench.registry import Registry

BUDGETS = ("paper", "default", "smoke")


@dataclass(frozen=True)
class Cell:
    suite: str
    dataset: str
    model: str
    method: str
    w_bits: int
    a_bits: int
    seed: int
    budget: str
    quantizer: dict[str, Any] = field(compare=True)
    config: dict[str, Any] = field(compare=True)
    #: the row's data settings (evaluation preprocessing etc.), see ``SuiteInfo.settings``
    data: dict[str, Any] = field(default_factory=dict)
    #: the ``--set`` changes that produced this cell, by target (method, ``quantizer``,
    #: ``data``). Their effect is already in the fields above, so they are not part of the
    #: key; tables use them to show a variant as its own column or table.
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the arithmetic of the method's passes (:mod:`dfqbench.precision`)
    precision: str = precision_.DEFAULT
    #: teacher and quantized model in channels_last layout: a speed setting that, like the
    #: device, is not part of the key
    channels_last: bool = False

    @property
    def key(self) -> str:
        identity = dataclasses.asdict(self)
        del identity["overrides"], identity["channels_last"]
        if self.precision == precision_.DEFAULT:
            del identity["precision"]  # fp32 cells keep the keys they had before the field existed
        blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    @property
    def bits(self) -> str:
        return label(self.w_bits, self.a_bits)

    @property
    def title(self) -> str:
        return f"{self.method} · {self.model} · {self.bits} · seed {self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def describe_cells(cells: list[Cell]) -> str:
    """Cells as a markdown table, one row per (method variant, dataset, model, bits, budget,
    quantizer, data settings, precision) with its seeds: what ``dfqbench run --dry-run`` would run."""
    import pandas as pd

    rows = [
        {
            "method": overrides.labelled(cell.method, cell.overrides.get(cell.method, {})),
            "dataset": cell.dataset,
            "model": cell.model,
            "bits": cell.bits,
            "budget": cell.budget,
            "quantizer": overrides.labelled(cell.quantizer["name"], cell.overrides.get("quantizer", {})),
            "data": overrides.describe(cell.overrides.get("data", {})),
            "precision": "" if cell.precision == precision_.DEFAULT else cell.precision,
            "seeds": str(cell.seed),
        }
        for cell in cells
    ]
    keys = ["method", "dataset", "model", "bits", "budget", "quantizer", "data", "precision"]
    table = pd.DataFrame(rows).groupby(keys, sort=False)["seeds"].agg(",".join).reset_index()
    unset = [column for column in ("data", "precision") if not table[column].any()]
    return table.drop(columns=unset).to_markdown(index=False, disable_numparse=True)


@dataclass
class Plan:
    cells: list[Cell]
    #: why (method, model) pairs were left out: the method does not support the model's family
    skipped: list[str]


_IMPLS: dict[str, Method] = {}


def method_impl(info: MethodInfo) -> Method:
    """The method's implementation object (imported on first use, then reused)."""
    if info.impl not in _IMPLS:
        cls = load_object(info.impl)
        _IMPLS[info.impl] = cls()
    return _IMPLS[info.impl]


def make_task(reg: Registry, suite: str, dataset: str, model: str, w_bits: int, a_bits: int, data: dict | None = None) -> Task:
    ds = reg.dataset(dataset).info
    mean, std = ds.normalization(data or {})
    return Task(
        suite=suite,
        dataset=dataset,
        model=model,
        family=reg.model(model).info.family,
        num_classes=ds.num_classes,
        input_shape=tuple(ds.input_shape),
        mean=mean,
        std=std,
        w_bits=w_bits,
        a_bits=a_bits,
    )


def quantizer_for(family: str, name: str, changes: dict[str, Any]) -> QuantSettings:
    if name == "auto":
        name = DEFAULT_FOR_FAMILY.get(family, "")
        if not name:
            raise DfqError(f"no default quantizer for model family {family!r}; pass --quantizer")
    elif name not in PRESETS:
        raise unknown("quantizer", name, ["auto", *PRESETS])
    return overrides.apply(preset(name), changes, "quantizer").validate()


def check_fits(settings: QuantSettings, family: str, model: str, changes: dict[str, Any]) -> None:
    """A quantizer's activation sites must exist in the model: placed where there are none
    (after-ReLU sites in a GELU ViT, ViT-block sites in a CNN), the activations would stay
    unquantized under a WxAx label. One line, before any cell runs."""
    where, families = ACT_SITES[settings.act_sites]
    if family in families:
        return
    if "act_sites" in changes:
        sites = [name for name, (_, fits) in ACT_SITES.items() if family in fits]
        raise DfqError(f"--set quantizer.act_sites={settings.act_sites} places activation quantizers {where}, and {model} is a {family}; "
                       f"valid choices for it: {', '.join(sites)}")  # fmt: skip
    fitting = ["auto", *(n for n, p in PRESETS.items() if family in ACT_SITES[p.act_sites][1])]
    raise DfqError(
        f"quantizer {settings.name!r} places its activation quantizers {where}, and {model} is a {family}; "
        f"valid choices for it: {', '.join(fitting)}"
    )


def check_image_size(data: dict[str, Any], size: int) -> None:
    """Evaluation resize and crop settings (ImageNet rows) against the model's input size:
    another crop would evaluate at a size the generators and the FP accuracy do not use."""
    crop, resize = data.get("crop"), data.get("resize")
    if crop is not None and crop != size:
        raise DfqError(f"--set data.crop={crop}: the model takes {size}×{size} images; valid choices: {size}")
    if resize is not None and not (crop or size) <= resize:
        raise DfqError(f"--set data.resize={resize}: the shorter side must be resized to at least the crop; valid: {crop or size} or more")


def make_plan(
    reg: Registry,
    suite: str,
    methods: list[str],
    models: list[str] | None,
    bits: list[tuple[int, int]],
    seeds: list[int],
    budget: str,
    quantizer: str = "auto",
    changes: dict[str, dict[str, Any]] | None = None,
    precision: str = precision_.DEFAULT,
    channels_last: bool = False,
) -> Plan:
    """Expand the matrix in the order that reuses work: model → seed → method → bits."""
    if budget not in BUDGETS:
        raise unknown("budget", budget, BUDGETS)
    precision_.check(precision)
    changes = dict(changes or {})
    suite_info = reg.suite(suite).info
    infos = [reg.method(name).info for name in methods]
    for target in changes:
        if target in reg.methods and target not in methods:
            raise DfqError(f"--set {target}.…: method {target!r} is not in this run's --methods; valid targets: data, quantizer, {', '.join(methods)}")
        if target not in ("quantizer", "data") and target not in methods:
            raise unknown("--set target", target, ["data", "quantizer", *methods])
    rows = list(suite_info.rows)
    if models is not None:
        suite_models = [m for _, m in rows]
        for name in models:
            if name not in suite_models:
                raise unknown("model", name, suite_models, f" in suite {suite!r}")
        rows = [(d, m) for d, m in rows if m in models]
    cells: list[Cell] = []
    skipped: list[str] = []
    for dataset, model in rows:
        family = reg.model(model).info.family
        qsettings = quantizer_for(family, quantizer, changes.get("quantizer", {}))
        data_defaults = suite_info.data_settings(model)
        data = overrides.apply_to_dict(data_defaults, changes.get("data", {}), "data", f"the data settings of suite {suite!r}")
        shared = {
            "quantizer": effective(changes.get("quantizer", {}), quantizer_for(family, quantizer, {}).to_dict(), qsettings.to_dict()),
            "data": effective(changes.get("data", {}), data_defaults, data),
        }
        check_image_size(data, reg.dataset(dataset).info.input_shape[-1])
        for seed in seeds:
            for info in infos:
                if family not in info.families:
                    if seed == seeds[0]:
                        skipped.append(f"{info.name} supports {'/'.join(info.families)} models, {model} is a {family}")
                    continue
                check_fits(qsettings, family, model, changes.get("quantizer", {}))
                impl = method_impl(info)
                for w_bits, a_bits in bits:
                    task = make_task(reg, suite, dataset, model, w_bits, a_bits, data)
                    defaults = impl.config(task, budget)
                    config = config_to_dict(overrides.apply(defaults, changes.get(info.name, {}), info.name))
                    used = {info.name: effective(changes.get(info.name, {}), config_to_dict(defaults), config), **shared}
                    cells.append(
                        Cell(suite, dataset, model, info.name, w_bits, a_bits, seed, budget, qsettings.to_dict(),
                             config, data, {t: c for t, c in used.items() if c}, precision, channels_last)
                    )
    running = {cell.method for cell in cells}
    for info in infos:  # a typo in --set is an error even for a method that runs no cell here
        unused = changes.get(info.name)
        if unused and info.name not in running:
            try:
                defaults = method_impl(info).Config()
            except TypeError:  # a third party's config without defaults: nothing to check against
                continue
            if dataclasses.is_dataclass(defaults):
                overrides.apply(defaults, unused, info.name)
    return Plan(cells, skipped)


def effective(changes: dict[str, Any], defaults: dict[str, Any], resolved: dict[str, Any]) -> dict[str, Any]:
    """The ``--set`` changes that change something in this cell. One that restates a default
    (``gdfq.lr_s`` at the budget's own LR) makes no variant: the cell keeps the key and the
    label of the default run, and its record cannot relabel the default's column."""
    return {name: value for name, value in changes.items() if defaults.get(name) != resolved.get(name)}


def resolved_config(reg: Registry, cell: Cell) -> Any:
    """The method's config object for ``cell`` (rebuilt from the cell's plain data)."""
    impl = method_impl(reg.method(cell.method).info)
    task = make_task(reg, cell.suite, cell.dataset, cell.model, cell.w_bits, cell.a_bits, cell.data)
    default = impl.config(task, cell.budget)
    values = {k: tuple(v) if isinstance(getattr(default, k, None), tuple) else v for k, v in cell.config.items()}
    return dataclasses.replace(default, **values) if dataclasses.is_dataclass(default) else values
