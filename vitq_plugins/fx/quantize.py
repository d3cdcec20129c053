"""The FX pipeline: place custom modules, build the QConfigMapping, ``prepare_fx``, assign and check sites.

Tensor ownership. FX gives one observer per tensor edge and lets the *producer's* observer win when dtypes
agree, while vitq's sites overlap (``fc2:act`` is the GELU output, ``qkv:act`` is the LayerNorm output, a
block's ``residual`` is the next ``ln_input``). After ``prepare_fx`` every observer is labelled with the
sites its tensor serves and re-instantiated from the quantizer of the highest-priority site:
``ln_input > gelu_output > softmax_output > act > attn_matmul > residual``. Sites applied by a custom
module (LIS, Shiftmax, ShiftGELU, I-LayerNorm, OPT-m) are counted from the module; the uniform containers
around it take the next site's quantizer (e.g. ShiftGELU output -> ``fc2:act``, as I-ViT's ``qact1``).
A custom module may bring its own input observer (:attr:`CustomModuleSpec.input_observer`, e.g. FQ-ViT's PTS)
or an exact fixed output container (:attr:`CustomModuleSpec.fixed_out_scale`, e.g. LIS ``2^-8``).
Whether a quantizer is a custom module is what its FX factory returns (a :class:`CustomModuleSpec`).

Then :func:`check_sites` fails loudly (:class:`~vitq_plugins.core.errors.VitqError`) when a planned site
got no observer/module, or a quantizer other than the planned one without an overlapping site explaining it.

Papers: FQ-ViT arXiv 2111.13824 (sites, Fig. 2).
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
import copy
from dataclasses import dataclass
from dataclasses import field
import operator
from typing import Any

import torch
from torch import fx
from torch import nn
from torch.ao.quantization import QConfig
from torch.ao.quantization import QConfigMapping
from torch.ao.quantization.fx.custom_config import ConvertCustomConfig
from torch.ao.quantization.fx.custom_config import PrepareCustomConfig
from torch.ao.quantization.quantize_fx import convert_fx
from torch.ao.quantization.quantize_fx import prepare_fx

from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.manager import PluginHost
from vitq_plugins.core.manager import get_host
from vitq_plugins.fx._compat import quiet
from vitq_plugins.fx.backend_config import vitq_backend_config
from vitq_plugins.fx.custom import CustomFloat
from vitq_plugins.fx.custom import CustomModuleSpec
from vitq_plugins.fx.modules import ObservedCustom
from vitq_plugins.fx.modules import QuantizedCustom
from vitq_plugins.fx.modules import custom_float_types
from vitq_plugins.fx.observers import FixedScaleObserver
from vitq_plugins.fx.observers import UniformActObserver
from vitq_plugins.fx.observers import VitqObserver
from vitq_plugins.fx.observers import WeightObserver
from vitq_plugins.fx.observers import set_fake_quant
from vitq_plugins.fx.prepare import prepare_model
from vitq_plugins.fx.prepare import trace
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

#: Site priority when one tensor serves several sites (lower index wins).
PRIORITY: tuple[str, ...] = ("ln_input", "gelu_output", "softmax_output", "act", "attn_matmul", "residual")
_SHAPE_METHODS = {
    "reshape",
    "view",
    "permute",
    "transpose",
    "flatten",
    "contiguous",
    "unbind",
    "expand",
    "squeeze",
    "unsqueeze",
}
_SHAPE_FUNCS = {operator.getitem, torch.reshape, torch.transpose, torch.flatten, torch.permute}
_PASS_MODULES = (nn.Identity, nn.Dropout)


@dataclass
class FxPrepared:
    """Result of :func:`prepare`.

    Attributes:
        model: The prepared (observed) GraphModule.
        plan: The planned sites (``plan_sites`` on the float model).
        applied: ``"<fqn>:<site>" -> quantizer`` actually applied after prepare.
        via: ``"<fqn>:<site>" -> key`` of the site whose quantizer was applied on that tensor.
        counts: Observers and custom modules per site kind.
    """

    model: fx.GraphModule
    plan: dict[str, Site]
    applied: dict[str, str] = field(default_factory=dict)
    via: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def _options(config: QuantConfig) -> dict[str, Any]:
    return dict(config.options)


def _factory(host: PluginHost, name: str) -> Any:
    return host.quantizers.get(name).factory("fx")


def _made(host: PluginHost, s: Site, opts: dict[str, Any]) -> Any:
    """What the FX factory of site ``s``'s quantizer returns: an observer constructor or a custom spec."""
    return _factory(host, s.quantizer)(s.site, s.bits, **opts)


def _custom_spec(made: Any) -> CustomModuleSpec | None:
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
    opts = _options(config)
    for s in plan.values():
        spec = _custom_spec(_made(host, s, opts))
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


def _scope(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    last = list(stack.values())[-1]
    return str(last[0] if isinstance(last, tuple) else last)


def _qc(act: Any, weight: Any | None = None) -> QConfig:
    w = weight if weight is not None else WeightObserver.with_args(bits=8)
    return QConfig(activation=act, weight=w)  # type: ignore[no-untyped-call]


def _act_ctor(host: PluginHost, s: Site, opts: dict[str, Any], bits: int | None = None) -> Any:
    """Observer constructor of site ``s``: its quantizer's observer or, for a custom module, the module's own
    input observer if it brings one, else a uniform MinMax at ``bits`` (default the site's) capped at 8."""
    made = _made(host, s, opts)
    spec = _custom_spec(made)
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
    opts = _options(config)
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
            wq = _made(host, w, opts) if w else WeightObserver.with_args(bits=8)
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
        scope = _scope(node)
        idx = order.get(scope, 0)
        order[scope] = idx + 1
        key = f"{scope}:residual"
        if key not in plan:
            continue
        feeds_own_grid = any(
            u.op == "call_module" and _owns_input_grid(gm.get_submodule(str(u.target)))
            for u in _real_users(gm, node)
        )
        qc = None if feeds_own_grid else _qc(_act_ctor(host, plan[key], opts))
        qmap.set_module_name_object_type_order(scope, operator.add, idx, qc)
    return qmap


def _owns_input_grid(mod: nn.Module) -> bool:
    return isinstance(mod, CustomFloat) and mod.spec is not None and mod.spec.input_observer is not None


def _is_pass(gm: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_method" and node.target in _SHAPE_METHODS:
        return True
    if node.op == "call_function" and node.target in _SHAPE_FUNCS:
        return True
    if node.op == "call_module":
        mod = gm.get_submodule(str(node.target))
        return isinstance(mod, _PASS_MODULES) or isinstance(mod, VitqObserver)
    return False


def _real_users(gm: fx.GraphModule, node: fx.Node) -> list[fx.Node]:
    out: list[fx.Node] = []
    todo = list(node.users)
    seen: set[fx.Node] = set()
    while todo:
        u = todo.pop()
        if u in seen:
            continue
        seen.add(u)
        if _is_pass(gm, u):
            todo.extend(u.users)
        else:
            out.append(u)
    return out


def _real_producer(gm: fx.GraphModule, node: fx.Node) -> fx.Node:
    while _is_pass(gm, node) and node.args and isinstance(node.args[0], fx.Node):
        node = node.args[0]
    return node


def _parent(fqn: str) -> str:
    return fqn.rpartition(".")[0]


def _labels(gm: fx.GraphModule, obs: fx.Node) -> list[str]:
    """Site keys served by the tensor that observer node ``obs`` observes."""
    keys: list[tuple[int, str]] = []

    def add(fqn: str, site: str) -> None:
        keys.append((PRIORITY.index(site), f"{fqn}:{site}"))

    for u in _real_users(gm, obs):
        if u.op == "call_module":
            mod = gm.get_submodule(str(u.target))
            inner = mod.inner if isinstance(mod, ObservedCustom) else mod
            if isinstance(inner, nn.Linear | nn.Conv2d):
                add(str(u.target), "act")
            elif isinstance(inner, nn.LayerNorm):
                add(str(u.target), "ln_input")
            elif isinstance(inner, nn.Softmax):
                add(_parent(str(u.target)), "attn_matmul")
        elif u.op == "call_function" and u.target in (torch.matmul, operator.mul):
            add(_scope(u), "attn_matmul")
    p = _real_producer(gm, obs.args[0]) if isinstance(obs.args[0], fx.Node) else None
    if p is not None and p.op == "call_module":
        mod = gm.get_submodule(str(p.target))
        inner = mod.inner if isinstance(mod, ObservedCustom) else mod
        if isinstance(inner, nn.GELU):
            add(str(p.target), "gelu_output")
        elif isinstance(inner, nn.Softmax):
            add(_parent(str(p.target)), "softmax_output")
    elif p is not None and p.op == "call_function" and p.target in (operator.add, torch.add):
        add(_scope(p), "residual")
    elif p is not None and p.op == "call_function" and p.target in (torch.matmul, operator.mul):
        add(_scope(p), "attn_matmul")
    return [k for _, k in sorted(set(keys))]


def _site_of_custom(fqn: str, mod: ObservedCustom) -> str:
    if isinstance(mod.inner, nn.Softmax):
        return f"{_parent(fqn)}:softmax_output"
    if isinstance(mod.inner, nn.LayerNorm):
        return f"{fqn}:ln_input"
    return f"{fqn}:gelu_output"


def _fixed_out_scale(mod: nn.Module | None) -> Any:
    """``bits -> scale`` of an observed custom module's fixed output container, else ``None``."""
    if not isinstance(mod, ObservedCustom) or mod.inner.spec is None:
        return None
    return mod.inner.spec.fixed_out_scale


def _input_ctor(made: Any) -> Any:
    """The input-observer constructor a custom module brings, else ``None``."""
    spec = _custom_spec(made)
    return None if spec is None else spec.input_observer


def _custom_inputs(gm: fx.GraphModule, obs: fx.Node) -> set[str]:
    """Site keys of the custom modules whose input observer node ``obs`` is."""
    out: set[str] = set()
    for u in _real_users(gm, obs):
        if u.op == "call_module":
            mod = gm.get_submodule(str(u.target))
            if isinstance(mod, ObservedCustom):
                out.add(_site_of_custom(str(u.target), mod))
    return out


def _assign(prep: FxPrepared, config: QuantConfig, host: PluginHost) -> None:
    gm, plan, opts = prep.model, prep.plan, _options(config)
    made = {k: _made(host, s, opts) for k, s in plan.items()}
    custom = {k for k, m in made.items() if _custom_spec(m) is not None}
    counts: dict[str, int] = {}
    for node in list(gm.graph.nodes):
        if node.op != "call_module":
            continue
        mod = gm.get_submodule(str(node.target))
        if isinstance(mod, ObservedCustom):
            key = _site_of_custom(str(node.target), mod)
            prep.applied[key], prep.via[key] = mod.quantizer, key
            counts[key.rpartition(":")[2]] = counts.get(key.rpartition(":")[2], 0) + 1
            arg = node.args[0]
            if (
                isinstance(arg, fx.Node)
                and arg.op == "call_module"
                and isinstance(gm.get_submodule(str(arg.target)), VitqObserver)
            ):
                in_obs = gm.get_submodule(str(arg.target))
                assert isinstance(in_obs, VitqObserver)
                mod.link_input_observer(in_obs)
            if mod.inner.needs_next_linear:
                nxt = [u for u in _real_users(gm, node) if u.op == "call_module"]
                cand = [gm.get_submodule(str(u.target)) for u in nxt]
                lin = [x for x in cand if isinstance(x, nn.Linear)]
                if not lin:
                    raise VitqError(
                        f"{mod.quantizer} at {node.target!r} needs a following Linear (fc2) for its search "
                        "objective"
                    )
                mod.link_next_linear(lin[0].weight)
            continue
        if not isinstance(mod, VitqObserver):
            continue
        labels = _labels(gm, node)
        producer = node.args[0] if isinstance(node.args[0], fx.Node) else None
        pmod = (
            gm.get_submodule(str(producer.target))
            if producer is not None and producer.op == "call_module"
            else None
        )
        winner: str | None = None
        new: nn.Module | None = None
        fixed = _fixed_out_scale(pmod)
        if isinstance(pmod, ObservedCustom) and fixed is not None:
            new = FixedScaleObserver(pmod.quantizer, pmod.bits, fixed(pmod.bits))
            winner = _site_of_custom(str(producer.target), pmod)  # type: ignore[union-attr]
        else:
            # a custom module that brings its own input grid owns its input tensor (e.g. FQ-ViT's PTS)
            own = [k for k in _custom_inputs(gm, node) if k in plan and _input_ctor(made[k]) is not None]
            if own:
                winner = min(own, key=lambda k: PRIORITY.index(k.rpartition(":")[2]))
                new = _input_ctor(made[winner])()
            for key in labels if winner is None else ():
                if key in plan and key not in custom:  # a custom module applies its own site
                    winner, new = key, made[key]()
                    break
        if new is None and isinstance(pmod, ObservedCustom):
            # output container of a custom module whose consumer is no site (e.g. LayerNorm -> mean):
            # a uniform MinMax at the layer's activation bits
            recipe_q = host.recipes.get(config.recipe).quantizers
            new = UniformActObserver(bits=min(8, config.resolve(str(producer.target), recipe_q).a_bits))  # type: ignore[union-attr]
        if new is not None and (
            type(new) is not type(mod)
            or getattr(new, "bits", None) != mod.bits
            or getattr(new, "method", None) != getattr(mod, "method", None)
        ):
            if new.dtype != mod.dtype:
                raise VitqError(f"observer {node.target!r}: cannot place {new} on a {mod.dtype} edge")
            for name, other in list(gm.named_children()):
                if other is mod:
                    setattr(gm, name, new)
        final = gm.get_submodule(str(node.target))
        assert isinstance(final, VitqObserver)
        if winner is None:
            continue
        for key in labels:
            if key in plan and key not in custom and key not in prep.applied:
                prep.applied[key], prep.via[key] = final.quantizer, winner
        if winner not in prep.applied:
            prep.applied[winner], prep.via[winner] = final.quantizer, winner
        kind = winner.rpartition(":")[2]
        counts[kind] = counts.get(kind, 0) + 1
    # weights: a module whose node kept a weight observer constructor after dtype matching
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        key = f"{node.target}:weight"
        if key not in plan:
            continue
        info = node.meta.get("target_dtype_info") or {}
        ctr = info.get("weight_obs_or_fq_ctr")
        w = ctr() if ctr is not None else None
        if isinstance(w, WeightObserver):
            prep.applied[key], prep.via[key] = w.quantizer, key
            counts["weight"] = counts.get("weight", 0) + 1
    # link every custom module to its (final) output observer, for the fake-quant simulation
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        mod = gm.get_submodule(str(node.target))
        if not isinstance(mod, ObservedCustom):
            continue
        outs = [
            u
            for u in node.users
            if u.op == "call_module" and isinstance(gm.get_submodule(str(u.target)), VitqObserver)
        ]
        if outs:
            mod.link_output_observer(gm.get_submodule(str(outs[0].target)))
    gm.recompile()
    prep.counts = counts


def check_sites(prep: FxPrepared) -> None:
    """Fail loudly when a planned site was not applied as requested.

    Raises:
        VitqError: names every missing site and every silently substituted quantizer.
    """
    missing = [f"{k} ({s.quantizer})" for k, s in prep.plan.items() if k not in prep.applied]
    wrong = [
        f"{k}: requested {s.quantizer}, got {prep.applied[k]}"
        for k, s in prep.plan.items()
        if k in prep.applied and prep.applied[k] != s.quantizer and prep.via.get(k) == k
    ]
    if missing or wrong:
        parts = []
        if missing:
            parts.append(
                f"no observer/custom module was inserted for {len(missing)} site(s): {', '.join(missing[:8])}"
            )
        if wrong:
            parts.append(f"quantizer substituted at {', '.join(wrong[:8])}")
        raise VitqError(
            "fx backend: requested quantizers were not applied after prepare_fx ("
            + "; ".join(parts)
            + "); a QConfig whose observer dtype does not match the BackendConfig is silently rejected"
        )


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
    _assign(prep, config, host)
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
