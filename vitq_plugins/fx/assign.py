"""After ``prepare_fx``: every observer labelled with the sites its tensor serves, re-made from the winning site's
quantizer, and the sites checked.

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

import copy
from dataclasses import dataclass
from dataclasses import field
import operator
from typing import Any

import torch
from torch import fx
from torch import nn

from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.manager import PluginHost
from vitq_plugins.fx.graph import is_pass
from vitq_plugins.fx.graph import parent_fqn
from vitq_plugins.fx.graph import real_producer
from vitq_plugins.fx.graph import real_users
from vitq_plugins.fx.graph import scope_of
from vitq_plugins.fx.modules import ObservedCustom
from vitq_plugins.fx.observers import FixedScaleObserver
from vitq_plugins.fx.observers import UniformActObserver
from vitq_plugins.fx.observers import VitqObserver
from vitq_plugins.fx.observers import WeightObserver
from vitq_plugins.fx.qconfig import adapter_for
from vitq_plugins.fx.qconfig import config_options
from vitq_plugins.fx.qconfig import custom_spec_of
from vitq_plugins.sites import Site

__all__ = [
    "PRIORITY",
    "FxPrepared",
    "assign_observers",
    "check_sites",
]

#: Site priority when one tensor serves several sites (lower index wins).
PRIORITY: tuple[str, ...] = ("ln_input", "gelu_output", "softmax_output", "act", "attn_matmul", "residual")


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


def _inner(gm: fx.GraphModule, node: fx.Node) -> nn.Module:
    mod = gm.get_submodule(str(node.target))
    return mod.inner if isinstance(mod, ObservedCustom) else mod


def _labels(gm: fx.GraphModule, obs: fx.Node) -> list[str]:
    """Site keys served by the tensor that observer node ``obs`` observes."""
    keys: list[tuple[int, str]] = []

    def add(fqn: str, site: str) -> None:
        keys.append((PRIORITY.index(site), f"{fqn}:{site}"))

    for u in real_users(gm, obs):
        if u.op == "call_module":
            mod = gm.get_submodule(str(u.target))
            inner = mod.inner if isinstance(mod, ObservedCustom) else mod
            if isinstance(inner, nn.Linear | nn.Conv2d) or (  # a Linear fused with its ReLU (LinearReLU)
                isinstance(inner, nn.Sequential)
                and len(inner)
                and isinstance(inner[0], nn.Linear | nn.Conv2d)
            ):
                add(str(u.target), "act")
            elif isinstance(inner, nn.LayerNorm):
                add(str(u.target), "ln_input")
            # the attention logits (q.k^T into the softmax) are no site: a container, as Brevitas keeps them
            # in float (a softmax kernel brings its own input grid)
        elif u.op == "call_function" and u.target in (torch.matmul, operator.mul):
            add(scope_of(u), "attn_matmul")
    p = real_producer(gm, obs.args[0]) if isinstance(obs.args[0], fx.Node) else None
    if p is not None and p.op == "call_module":
        mod = gm.get_submodule(str(p.target))
        inner = mod.inner if isinstance(mod, ObservedCustom) else mod
        if isinstance(inner, nn.GELU):
            add(str(p.target), "gelu_output")
        elif isinstance(inner, nn.Softmax):
            add(parent_fqn(str(p.target)), "softmax_output")
    elif p is not None and p.op == "call_function" and p.target in (operator.add, torch.add):
        add(scope_of(p), "residual")
    elif (
        p is not None
        and p.op == "call_function"
        and p.target in (torch.matmul, operator.mul)
        and not any(
            u.op == "call_module" and isinstance(_inner(gm, u), nn.Softmax) for u in real_users(gm, obs)
        )
    ):
        add(scope_of(p), "attn_matmul")
    return [k for _, k in sorted(set(keys))]


#: bits of a container that serves no site: the widest the x86 quint8 engine holds
CONTAINER_BITS = 8


def _container() -> UniformActObserver:
    """The observer of a tensor the x86 engine must hold in a quint8 container though no site quantizes it."""
    return UniformActObserver(bits=CONTAINER_BITS)


def _observers_beyond(gm: fx.GraphModule, obs: fx.Node, *, whole: bool) -> list[fx.Node]:
    """The observer nodes that every use of observer node ``obs`` meets through shape-only/pass nodes (with
    ``whole``: only through pass nodes that keep all its values), or ``[]`` when a use reaches an operator (or,
    with ``whole``, a split such as getitem/unbind) first."""
    todo, seen, found = list(obs.users), set(), []
    while todo:
        u = todo.pop()
        if u in seen:
            continue
        seen.add(u)
        if u.op == "call_module" and isinstance(gm.get_submodule(str(u.target)), VitqObserver):
            found.append(u)
        elif is_pass(gm, u) and (not whole or _keeps_values(u)):
            todo.extend(u.users)
        else:
            return []
    return found


def _reobserved(gm: fx.GraphModule, obs: fx.Node) -> bool:
    """Whether every use of observer node ``obs`` meets another observer through shape-only/pass nodes
    before any operator (its grid is then only a container: the next observer re-rounds the values)."""
    return bool(_observers_beyond(gm, obs, whole=False))


#: pass nodes that keep every value of their input (a getitem/unbind keeps a part: q, k or v of the qkv output)
_SPLITS = {"unbind", "expand"}


def _keeps_values(node: fx.Node) -> bool:
    if node.op == "call_method":
        return node.target not in _SPLITS
    return not (node.op == "call_function" and node.target is operator.getitem)


def _downstream_observers(gm: fx.GraphModule, obs: fx.Node) -> list[fx.Node]:
    """:func:`_observers_beyond` through pass nodes that keep every value of ``obs``."""
    return _observers_beyond(gm, obs, whole=True)


def _grid_key(mod: VitqObserver) -> tuple[Any, ...]:
    return (type(mod), mod.quantizer, mod.bits, mod.qscheme, mod.quant_min, mod.quant_max, repr(mod))


def _hoist_site_grids(gm: fx.GraphModule) -> None:
    """Give a container observer the site grid that observes its tensor again behind pass modules.

    ``convert_fx`` keeps the *first* observer of a chain ``op -> obs -> Identity/Dropout/reshape -> obs'`` and
    drops ``obs'`` (those modules share their input's quantization), so a site grid placed after ``q_norm``,
    ``attn_drop``, ``attn.norm`` or ``mlp.norm`` never reached the converted model: q, k, the attention map and
    the proj/fc2 inputs ran on the 8-bit container where Brevitas rounds them on the site's grid (issue #17).
    The chain is walked backwards, so the grid climbs to the producer's output. Only per-tensor grids are
    hoisted (a reshape may move a per-channel axis), through nodes that keep every value (not q/k/v's getitem).
    """
    for node in reversed(list(gm.graph.nodes)):
        if node.op != "call_module":
            continue
        mod = gm.get_submodule(str(node.target))
        if not isinstance(mod, UniformActObserver):
            continue
        down = _downstream_observers(gm, node)
        if len(down) != 1:
            continue
        tgt = gm.get_submodule(str(down[0].target))
        if not isinstance(tgt, VitqObserver) or isinstance(tgt, FixedScaleObserver):
            continue
        if tgt.qscheme not in (torch.per_tensor_affine, torch.per_tensor_symmetric) or tgt.dtype != mod.dtype:
            continue
        if _grid_key(tgt) == _grid_key(mod):
            continue
        new = copy.deepcopy(tgt)
        for name, other in list(gm.named_children()):
            if other is mod:
                setattr(gm, name, new)


def _site_of_custom(fqn: str, mod: ObservedCustom) -> str:
    if isinstance(mod.inner, nn.Softmax):
        return f"{parent_fqn(fqn)}:softmax_output"
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
    spec = custom_spec_of(made)
    return None if spec is None else spec.input_observer


def _custom_inputs(gm: fx.GraphModule, obs: fx.Node) -> set[str]:
    """Site keys of the custom modules whose input observer node ``obs`` is."""
    out: set[str] = set()
    for u in real_users(gm, obs):
        if u.op == "call_module":
            mod = gm.get_submodule(str(u.target))
            if isinstance(mod, ObservedCustom):
                out.add(_site_of_custom(str(u.target), mod))
    return out


def assign_observers(prep: FxPrepared, config: QuantConfig, host: PluginHost) -> None:
    gm, plan, opts = prep.model, prep.plan, config_options(config)
    made = {k: adapter_for(host, s, opts) for k, s in plan.items()}
    custom = {k for k, m in made.items() if custom_spec_of(m) is not None}
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
                nxt = [u for u in real_users(gm, node) if u.op == "call_module"]
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
        # the exact fixed output container of a custom module also holds its copies behind shape-only and
        # pass modules (e.g. LIS -> attn_drop -> attn@V): re-observing them would re-round the codes
        source = real_producer(gm, producer) if producer is not None else None
        smod = (
            gm.get_submodule(str(source.target))
            if source is not None and source.op == "call_module"
            else None
        )
        fixed = _fixed_out_scale(smod)
        own_out = smod.inner.output_observer(smod) if isinstance(smod, ObservedCustom) else None
        if isinstance(smod, ObservedCustom) and fixed is not None:
            new = FixedScaleObserver(smod.quantizer, smod.bits, fixed(smod.bits))
            winner = _site_of_custom(str(source.target), smod)  # type: ignore[union-attr]
        elif isinstance(smod, ObservedCustom) and own_out is not None:
            # a module that fixes its output grid after calibration (OPT-m): its container, not the next site's
            new, winner = own_out, _site_of_custom(str(source.target), smod)  # type: ignore[union-attr]
        elif _reobserved(gm, node):
            # a container whose every use is observed again downstream (the qkv output before q, k and v get
            # their own grids): no site's grid, so the widest one, as Brevitas keeps that tensor in float
            new = _container()
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
        if new is None and (isinstance(pmod, ObservedCustom) or isinstance(mod, UniformActObserver)):
            # a container no planned site asks for, which the x86 engine needs between quantized ops (a
            # Linear's output into a residual add or a GELU, a custom module's output into a mean): the
            # widest grid, as Brevitas keeps that tensor in float
            new = _container()
        if new is not None:
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
    _hoist_site_grids(gm)
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
