"""The FX pipeline: place the custom-module markers and build the ``QConfigMapping`` (:mod:`.qconfig`), run
``prepare_fx``, label, re-make and check every observer (:mod:`.assign`: which site owns each tensor), then
calibrate, convert and build the fake-quant twin of the converted model.

Papers: FQ-ViT arXiv 2111.13824 (sites, Fig. 2).
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
import copy
import operator

import torch
from torch import fx
from torch import nn
from torch.ao.quantization.fx.custom_config import ConvertCustomConfig
from torch.ao.quantization.fx.custom_config import PrepareCustomConfig
from torch.ao.quantization.quantize_fx import convert_fx
from torch.ao.quantization.quantize_fx import prepare_fx

from vitq_plugins.adapters.apply import adapt_model
from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.manager import PluginHost
from vitq_plugins.core.manager import get_host
from vitq_plugins.fx._compat import quiet
from vitq_plugins.fx.assign import PRIORITY
from vitq_plugins.fx.assign import FxPrepared
from vitq_plugins.fx.assign import assign_observers
from vitq_plugins.fx.assign import check_sites
from vitq_plugins.fx.backend_config import vitq_backend_config
from vitq_plugins.fx.modules import ObservedCustom
from vitq_plugins.fx.modules import QuantizedCustom
from vitq_plugins.fx.modules import custom_float_types
from vitq_plugins.fx.observers import VitqObserver
from vitq_plugins.fx.observers import WeightObserver
from vitq_plugins.fx.observers import set_fake_quant
from vitq_plugins.fx.prepare import prepare_model
from vitq_plugins.fx.prepare import trace
from vitq_plugins.fx.qconfig import build_qconfig_mapping
from vitq_plugins.fx.qconfig import place_custom_modules
from vitq_plugins.sites import Site
from vitq_plugins.sites import plan_sites
from vitq_plugins.transforms import apply_recipe_transforms
from vitq_plugins.transforms.gptq import apply_gptq
from vitq_plugins.transforms.gptq import gptq_layers
from vitq_plugins.transforms.gptq import rounding_options

__all__ = [
    "PRIORITY",
    "FxPrepared",
    "apply_transforms",
    "build_qconfig_mapping",
    "calibrate",
    "check_sites",
    "convert",
    "fake_quant_model",
    "place_custom_modules",
    "prepare",
    "set_fake_quant",
]


def apply_transforms(
    model: nn.Module, config: QuantConfig, calib: Iterable[torch.Tensor], host: PluginHost
) -> None:
    """Apply the recipe's model transforms in place (the shared :func:`apply_recipe_transforms`)."""
    recipe = host.recipes.get(config.recipe)
    out = apply_recipe_transforms(
        model, recipe, config.options, calib, host, w_bits=config.w_bits, a_bits=config.a_bits
    )
    if out is not model:
        raise VitqError(f"recipe {recipe.name!r}: the fx backend needs transforms that work in place")


def prepare(
    model: nn.Module,
    config: QuantConfig,
    example: torch.Tensor,
    *,
    host: PluginHost | None = None,
    transform_batches: Iterable[torch.Tensor] | None = None,
    plan: Mapping[str, Site] | None = None,
) -> FxPrepared:
    """Copy, prepare, trace and ``prepare_fx`` ``model``; assign site observers and check them.

    Args:
        model: Float model (not modified).
        config: Quantization config.
        example: One example input batch.
        host: Plugin host (default: the process host).
        transform_batches: Batches for recipe transforms (SQ-b statistics).
        plan: The sites planned (and the config validated) by the caller; default: planned here.

    Raises:
        VitqError: untraceable model, bad config, or requested quantizers that were not applied.
    """
    host = host or get_host()
    model = adapt_model(model, host)  # a foreign family in vitq's canonical form (a copy, or model itself)
    plan = dict(plan) if plan is not None else plan_sites(model, config, host, backend="fx")
    work = prepare_model(copy.deepcopy(model).eval())
    if host.recipes.get(config.recipe).transforms:
        apply_transforms(work, config, transform_batches or [example], host)
    gptq = rounding_options(config.options)
    if gptq is not None and transform_batches is not None:
        # after the recipe's transforms (SQ-b): GPTQ rounds the weights the WeightObserver will see
        apply_gptq(work, transform_batches, gptq_layers(plan, work), gptq)
    place_custom_modules(work, plan, config, host)
    gm = trace(work)  # fails early with a clear VitqError naming the node
    qmap = build_qconfig_mapping(gm, plan, config, host)
    pcc = PrepareCustomConfig()
    for f_cls in custom_float_types(work):
        pcc.set_float_to_observed_mapping(f_cls, ObservedCustom)
    with quiet():
        pm = prepare_fx(
            work, qmap, (example,), prepare_custom_config=pcc, backend_config=vitq_backend_config()
        )
    prep = FxPrepared(pm, dict(plan))
    assign_observers(prep, config, host)
    check_sites(prep)
    return prep


@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable[torch.Tensor], *, progress: bool = True) -> int:
    """One calibration pass (tqdm on stderr); returns the number of images seen."""
    from vitq_plugins.core.progress import track
    from vitq_plugins.data.finite import require_finite

    n = 0
    model.eval()
    set_fake_quant(model, False)
    for x in track(batches, "fx calibrate", "batch", show=progress):
        require_finite(x, f"calibration batch after {n} images")
        model(x)
        n += int(x.shape[0])
    if n == 0:
        raise VitqError("calibration got no batches: pass at least one calibration batch")
    return n


def convert(prepared: nn.Module) -> nn.Module:
    """``convert_fx`` with vitq's custom modules and BackendConfig (in place on ``prepared``)."""
    ccc = ConvertCustomConfig()
    ccc.set_observed_to_quantized_mapping(ObservedCustom, QuantizedCustom)
    set_fake_quant(prepared, False)
    with quiet():
        torch.backends.quantized.engine = "x86"
        qm = convert_fx(prepared, convert_custom_config=ccc, backend_config=vitq_backend_config())  # type: ignore[arg-type]
    return qm


@torch.no_grad()
def fake_quant_model(prep: FxPrepared) -> nn.Module:
    """A calibrated copy of the prepared model that *simulates* the converted one.

    Activation observers and custom modules switch to fake-quant mode, and every weight the converted model
    will quantize is replaced by its fake-quantized value (:class:`WeightObserver`, FQ-ViT MinMax).
    """
    sim = copy.deepcopy(prep.model)
    set_fake_quant(sim, True)
    # x86 quantized::mul_scalar rescales exactly (output scale = input scale * |c|); FX shares the
    # input observer there, which would re-round the product: model it as exact.
    for node in list(sim.graph.nodes):
        p = node.args[0] if node.op == "call_module" and node.args else None
        if (
            isinstance(p, fx.Node)
            and p.op == "call_function"
            and p.target in (operator.mul, torch.mul)
            and any(not isinstance(a, fx.Node) for a in p.args)
            and isinstance(sim.get_submodule(str(node.target)), VitqObserver)
        ):
            name = f"{node.target}_exact"
            sim.add_submodule(name, nn.Identity())
            node.target = name
    sim.recompile()
    for node in sim.graph.nodes:
        if node.op != "call_module" or f"{node.target}:weight" not in prep.applied:
            continue
        ctr = (node.meta.get("target_dtype_info") or {}).get("weight_obs_or_fq_ctr")
        mod = sim.get_submodule(str(node.target))
        obs = ctr() if ctr is not None else None
        weight = getattr(mod, "weight", None)
        if isinstance(obs, WeightObserver) and isinstance(weight, torch.Tensor):
            obs(weight)
            obs.fake_quant_enabled = True
            weight.copy_(obs(weight))
    return sim
