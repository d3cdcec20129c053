"""From the site plan to what ``prepare_fx`` takes: the custom-module markers placed in the model and the
per-FQN ``QConfigMapping`` (each site's observer from its quantizer's FX adapter)."""

from __future__ import annotations

from collections.abc import Mapping
import operator
from typing import Any

import torch
from torch import fx
from torch import nn
from torch.ao.quantization import QConfig
from torch.ao.quantization import QConfigMapping

from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.manager import PluginHost
from vitq_plugins.fx.custom import CustomFloat
from vitq_plugins.fx.custom import CustomModuleSpec
from vitq_plugins.fx.graph import owns_input_grid
from vitq_plugins.fx.graph import real_users
from vitq_plugins.fx.graph import scope_of
from vitq_plugins.fx.observers import UniformActObserver
from vitq_plugins.fx.observers import WeightObserver
from vitq_plugins.sites import Site

__all__ = [
    "adapter_for",
    "build_qconfig_mapping",
    "config_options",
    "custom_spec_of",
    "place_custom_modules",
]


def config_options(config: QuantConfig) -> dict[str, Any]:
    return dict(config.options)


def _factory(host: PluginHost, name: str) -> Any:
    return host.quantizers.get(name).factory("fx")


def adapter_for(host: PluginHost, s: Site, opts: dict[str, Any]) -> Any:
    """What the FX factory of site ``s``'s quantizer returns: an observer constructor or a custom spec."""
    return _factory(host, s.quantizer)(s.site, s.bits, **opts)


def custom_spec_of(made: Any) -> CustomModuleSpec | None:
    return made if isinstance(made, CustomModuleSpec) else None


def _set(root: nn.Module, fqn: str, new: nn.Module) -> None:
    parent, _, name = fqn.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, new)


def place_custom_modules(
    model: nn.Module, plan: Mapping[str, Site], config: QuantConfig, host: PluginHost
) -> None:
    """Swap the float module of every custom-module site for its marker, in place.

    The marker (``spec.float_cls``) replaces the site's float module: the attention's ``nn.Softmax`` for
    ``softmax_output``, the ``nn.LayerNorm`` for ``ln_input`` (its parameters are loaded), the GELU otherwise.
    """
    opts = config_options(config)
    for s in plan.values():
        spec = custom_spec_of(adapter_for(host, s, opts))
        if spec is None:
            continue
        if s.site == "softmax_output":
            fqn = f"{s.fqn}.softmax" if s.fqn else "softmax"
        else:
            fqn = s.fqn
        try:
            old = model.get_submodule(fqn)
        except AttributeError as exc:
            raise VitqError(f"site {s.key!r}: module {fqn!r} not found after model preparation") from exc
        new: CustomFloat
        if s.site == "softmax_output":
            if not isinstance(old, nn.Softmax):
                raise VitqError(
                    f"site {s.key!r}: expected an nn.Softmax at {fqn!r}, found {type(old).__name__}"
                )
            new = spec.float_cls(dim=old.dim if old.dim is not None else -1, **spec.kwargs)
        elif s.site == "ln_input":
            if not isinstance(old, nn.LayerNorm):
                raise VitqError(f"site {s.key!r}: expected nn.LayerNorm, found {type(old).__name__}")
            new = spec.float_cls(int(old.normalized_shape[-1]), eps=old.eps, **spec.kwargs)
            new.load_state_dict(old.state_dict())
        else:
            new = spec.float_cls(**spec.kwargs)
        new.quantizer, new.spec = s.quantizer, spec
        _set(model, fqn, new)


def _qc(act: Any, weight: Any | None = None) -> QConfig:
    w = weight if weight is not None else WeightObserver.with_args(bits=8)
    return QConfig(activation=act, weight=w)  # type: ignore[no-untyped-call]


def _act_ctor(host: PluginHost, s: Site, opts: dict[str, Any], bits: int | None = None) -> Any:
    """Observer constructor of site ``s``: its quantizer's observer or, for a custom module, the module's own
    input observer if it brings one, else a uniform MinMax at ``bits`` (default the site's) capped at 8."""
    made = adapter_for(host, s, opts)
    spec = custom_spec_of(made)
    if spec is None:
        return made
    if spec.input_observer is not None:
        return spec.input_observer
    return UniformActObserver.with_args(bits=min(s.bits if bits is None else bits, 8))


def build_qconfig_mapping(
    gm: fx.GraphModule, plan: Mapping[str, Site], config: QuantConfig, host: PluginHost
) -> QConfigMapping:
    """Per-FQN ``QConfigMapping`` generated from the resolved per-layer plan.

    ``set_module_name`` for Linear/Conv (act + weight), LayerNorm, GELU and softmax modules and for the
    attention scope (q/k/v matmuls), ``set_module_name_object_type_order`` for residual adds. The global
    qconfig is ``None``: only planned sites are quantized. Config regexes are resolved to exact FQNs by
    :func:`~vitq_plugins.sites.plan_sites` (a QConfig regex cannot tell site kinds apart).
    """
    opts = config_options(config)
    qmap = QConfigMapping()
    by_fqn: dict[str, dict[str, Site]] = {}
    for s in plan.values():
        by_fqn.setdefault(s.fqn, {})[s.site] = s
    recipe = host.recipes.get(config.recipe)
    for fqn, sites in by_fqn.items():
        a_bits = config.resolve(fqn, recipe.quantizers).a_bits
        if "weight" in sites or "act" in sites:
            w = sites.get("weight")
            a = sites.get("act")
            wq = adapter_for(host, w, opts) if w else WeightObserver.with_args(bits=8)
            aq = _act_ctor(host, a, opts) if a else UniformActObserver.with_args(bits=a_bits)
            qmap.set_module_name(fqn, _qc(aq, wq))
        for site in ("ln_input", "gelu_output", "attn_matmul"):
            if site in sites:
                qmap.set_module_name(fqn, _qc(_act_ctor(host, sites[site], opts)))
        if "softmax_output" in sites:
            # a custom softmax's input is the attention logits: the layer's activation bits
            qmap.set_module_name(
                f"{fqn}.softmax" if fqn else "softmax",
                _qc(_act_ctor(host, sites["softmax_output"], opts, bits=a_bits)),
            )
    # residual adds, in graph order per block scope; an add feeding a custom module that brings its own input
    # observer stays float (e.g. FQ-ViT's PTS LayerNorm: ln_input wins over residual)
    order: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target not in (operator.add, torch.add):
            continue
        scope = scope_of(node)
        idx = order.get(scope, 0)
        order[scope] = idx + 1
        key = f"{scope}:residual"
        if key not in plan:
            continue
        feeds_own_grid = any(
            u.op == "call_module" and owns_input_grid(gm.get_submodule(str(u.target)))
            for u in real_users(gm, node)
        )
        # a per-tensor input grid the consumer brings is the add's output grid (assign_observers places it)
        qc = None if feeds_own_grid else _qc(_act_ctor(host, plan[key], opts))
        qmap.set_module_name_object_type_order(scope, operator.add, idx, qc)
    return qmap
