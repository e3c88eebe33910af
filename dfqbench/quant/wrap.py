"""Turn a full-precision model into its fake-quantized copy under a :class:`QuantSettings`.

Every ``nn.Conv2d`` and ``nn.Linear`` gets a weight quantizer. Activation quantizers go
where ``act_sites`` says: ``psaqvit`` places PSAQ-ViT's sites on timm ViTs
(:mod:`dfqbench.quant.vit`); ``after-relu`` is the GDFQ family's ``quantize_model``
recursion: every ReLU/ReLU6 output gets one; BN, pooling, residual sums, the input image
and the logits stay FP.

One refinement over the reference: quantizers are attached per *call site*. The reference
wraps each ReLU *module*, so a module applied twice (torchvision's ``BasicBlock.relu``)
would share one range between two tensors, and functional ``F.relu`` calls (torchvision's
Inception) would be missed. A module whose own forward reuses an activation module or calls
one functionally is traced one level deep with ``torch.fx`` (its children stay opaque, so
the module hierarchy and names are kept) and gets one quantizer per site. For pytorchcv-
style models, where every activation is its own module used once, the result is exactly
the reference's ``Sequential(ReLU, QuantAct)`` placement.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import fx, nn

from dfqbench.quant.modules import QuantAct, QuantConv2d, QuantLinear, _WeightQuant
from dfqbench.quant.settings import QuantSettings

ACT_MODULES = (nn.ReLU, nn.ReLU6)
ACT_FUNCTIONS = {F.relu, F.relu6, torch.relu, torch.relu_, F.relu_}
ACT_METHODS = {"relu", "relu_"}


def wrap(model: nn.Module, w_bits: int, a_bits: int, settings: QuantSettings) -> nn.Module:
    """Return a fake-quantized deep copy of ``model`` (the original is left untouched)."""
    settings.validate()
    qmodel = copy.deepcopy(model)
    qmodel.requires_grad_(True)
    _swap_weight_layers(qmodel, w_bits, settings.first_last_bits, settings.weight)
    codes = "unsigned" if settings.act_sites == "psaqvit" else "signed"

    def make_act() -> QuantAct:
        return QuantAct(a_bits, settings.act_range, settings.act_momentum, settings.calibrate, codes)

    qmodel = PLACEMENTS[settings.act_sites](qmodel, make_act)
    if not any(quant_acts(qmodel)):
        # a WxAx cell whose activations all stay FP would be a weights-only result under the wrong label
        raise ValueError(f"act_sites={settings.act_sites!r} found no activation site in {type(model).__name__}: its activations would stay unquantized")
    if settings.quantize_input:
        qmodel = nn.Sequential(make_act(), qmodel)
    return qmodel


def _swap_weight_layers(model: nn.Module, w_bits: int, first_last_bits: int | None, scheme: str) -> None:
    targets = []
    for name, module in model.named_modules():
        kind = type(module)
        if kind in (nn.Conv2d, nn.Linear):
            targets.append(name)
        elif isinstance(module, (nn.Conv2d, nn.Linear)) and not isinstance(module, _WeightQuant):
            raise ValueError(f"cannot quantize {name!r}: {kind.__name__} subclasses {kind.__mro__[1].__name__} with its own forward")
    for i, name in enumerate(targets):
        bits = first_last_bits if first_last_bits is not None and i in (0, len(targets) - 1) else w_bits
        parent, attr = _parent(model, name)
        layer = getattr(parent, attr)
        quant_cls = QuantConv2d if isinstance(layer, nn.Conv2d) else QuantLinear
        setattr(parent, attr, quant_cls.from_float(layer, bits, scheme))


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, attr = name.rpartition(".")
    return (model.get_submodule(path) if path else model), attr


class _OneLevelTracer(fx.Tracer):
    """Traces only a module's own forward; every submodule call stays one opaque node."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return True


def _activation_sites(module: nn.Module) -> tuple[fx.Graph, list[fx.Node]] | None:
    try:
        graph = _OneLevelTracer().trace(module)
    except Exception:  # data-dependent control flow etc.: fall back to module wrapping
        return None
    sites = []
    for node in graph.nodes:
        if node.op == "call_module" and isinstance(module.get_submodule(node.target), ACT_MODULES):
            sites.append(node)
        elif node.op == "call_function" and node.target in ACT_FUNCTIONS:
            sites.append(node)
        elif node.op == "call_method" and node.target in ACT_METHODS:
            sites.append(node)
    return graph, sites


def _insert_after_activations(module: nn.Module, make_act: Callable[[], QuantAct]) -> nn.Module:
    if isinstance(module, (QuantAct, *ACT_MODULES)):
        return module
    for name, child in list(module.named_children()):
        new = _insert_after_activations(child, make_act)
        if new is not child:
            setattr(module, name, new)
    if not any(True for _ in module.children()) or isinstance(module, (nn.ModuleList, nn.ModuleDict)):
        return module
    traced = _activation_sites(module)
    if traced is None:
        for name, child in list(module.named_children()):
            if isinstance(child, ACT_MODULES):
                setattr(module, name, nn.Sequential(child, make_act()))
        return module
    graph, sites = traced
    targets = [node.target for node in sites if node.op == "call_module"]
    if len(targets) == len(sites) and len(set(targets)) == len(targets):
        for target in targets:  # every site is its own module, used once: reference placement
            parent, attr = _parent(module, target)
            setattr(parent, attr, nn.Sequential(getattr(parent, attr), make_act()))
        return module
    gm = fx.GraphModule(module, graph, class_name=type(module).__name__)
    for i, node in enumerate(sites):
        name = f"act_quant{i}"
        gm.add_submodule(name, make_act())
        with gm.graph.inserting_after(node):
            quant = gm.graph.call_module(name, (node,))
        node.replace_all_uses_with(quant, delete_user_cb=lambda user, q=quant: user is not q)
    gm.recompile()
    return gm


def _psaqvit_sites(model: nn.Module, make_act: Callable[[], QuantAct]) -> nn.Module:
    from dfqbench.quant import vit  # imports timm (seconds); only ViT cells pay for it

    return vit.place(model, make_act)


#: activation-site placements of :class:`QuantSettings` (``act_sites``)
PLACEMENTS: dict[str, Callable[[nn.Module, Callable[[], QuantAct]], nn.Module]] = {
    "after-relu": _insert_after_activations,
    "psaqvit": _psaqvit_sites,
}


def quant_acts(model: nn.Module) -> Iterator[tuple[str, QuantAct]]:
    for name, module in model.named_modules():
        if isinstance(module, QuantAct):
            yield name, module


def weight_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    for name, module in model.named_modules():
        if isinstance(module, _WeightQuant):
            yield name, module


def set_calibrating(model: nn.Module, flag: bool) -> None:
    """Start (True) or stop (False) activation-range updates everywhere in ``model``."""
    acts = [act for _, act in quant_acts(model)]
    for act in acts:
        act.calibrating = flag
    # In ``fp`` mode the network is observed unquantized, weights included.
    observe_fp = flag and any(act.calibrate_mode == "fp" for act in acts)
    for _, layer in weight_layers(model):
        layer.quant_enabled = not observe_fp


@contextmanager
def calibrating(model: nn.Module) -> Iterator[nn.Module]:
    """Update activation ranges inside the block, freeze them on exit."""
    set_calibrating(model, True)
    try:
        yield model
    finally:
        set_calibrating(model, False)


def uncalibrated(model: nn.Module) -> list[str]:
    return [name for name, act in quant_acts(model) if not act.calibrated]


def describe(model: nn.Module) -> dict[str, int]:
    """How many quantizers of each kind a wrapped model holds (recorded per cell)."""
    return {
        "weight_layers": sum(1 for _ in weight_layers(model)),
        "act_quantizers": sum(1 for _ in quant_acts(model)),
    }

