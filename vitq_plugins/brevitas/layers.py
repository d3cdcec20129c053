"""Layer maps: turn a float ViT into a Brevitas-quantized one following a per-layer :class:`QuantConfig`.

Brevitas' ``layerwise_quantize`` (no tracing) runs in three passes because it stops at the first module
that matches a map key (frameworks.md §1.3):

1. transformer blocks (``attn``/``mlp``/``norm1``/``norm2``) -> :class:`~vitq_plugins.brevitas.modules.QuantBlock`;
2. LayerNorm -> ``QuantLayerNorm``, attention (``qkv`` Linear + ``num_heads``) -> ``QuantAttention``,
   ``nn.GELU`` -> ``QuantGELU``;
3. ``nn.Linear``/``nn.Conv2d`` -> ``brevitas.nn.QuantLinear``/``QuantConv2d`` (float bias).

Map keys are the dotted class names found in the model (``'timm.layers.attention.Attention'``,
``'timm.models.vision_transformer.Block'``, ``'torch.nn.modules.normalization.LayerNorm'``...), so any
FX-traceable ViT with the same structure works. Every kwarg is a ``lambda old_module, name: ...`` that looks up
the injector of ``(name, site)`` in :func:`vitq_plugins.sites.plan_sites`; layers without a planned site are
blacklisted and stay float. Shared tensors are quantized once: a pure output quantizer at ``gelu_output`` also
serves ``fc2:act`` (fc2 gets no input quantizer); see :class:`QuantBlock` for residuals vs. LayerNorm inputs.
Quantizers: FQ-ViT arXiv 2111.13824, I-ViT arXiv 2207.01405, MPTQ-ViT arXiv 2401.14895.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

from brevitas.graph.quantize import layerwise_quantize
from brevitas.nn import QuantConv2d
from brevitas.nn import QuantLinear
from torch import nn

from vitq_plugins.brevitas.modules import QuantAttention
from vitq_plugins.brevitas.modules import QuantBlock
from vitq_plugins.brevitas.modules import QuantGELU
from vitq_plugins.brevitas.modules import QuantLayerNorm
from vitq_plugins.brevitas.modules import quantizer_name
from vitq_plugins.brevitas.quant import tensor_quant_of
from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.manager import PluginHost
from vitq_plugins.core.manager import get_host
from vitq_plugins.sites import Site
from vitq_plugins.sites import is_attention
from vitq_plugins.sites import is_block
from vitq_plugins.sites import plan_sites

__all__ = ["InjectorTable", "build_quant_model", "carried_sites", "class_key"]


def class_key(cls: type) -> str:
    """``'module.QualName'`` as Brevitas' layerwise maps spell it."""
    return f"{cls.__module__}.{cls.__name__}"


class InjectorTable:
    """Injectors per ``(fqn, site)`` from a site plan (factories called once per key).

    Args:
        plan: :func:`vitq_plugins.sites.plan_sites` output.
        options: ``QuantConfig.options`` passed to every factory.
        host: plugin host holding the quantizer registry.
    """

    def __init__(self, plan: dict[str, Site], options: dict[str, Any], host: PluginHost) -> None:
        self.plan = plan
        self._cache: dict[str, Any] = {}
        self._options = options
        self._host = host

    def get(self, fqn: str, site: str) -> Any:
        """The injector of ``fqn:site`` or ``None`` if the site is not planned."""
        key = f"{fqn}:{site}"
        if key not in self.plan:
            return None
        if key not in self._cache:
            s = self.plan[key]
            factory = self._host.quantizers.get(s.quantizer).factory("brevitas")
            self._cache[key] = factory(site, s.bits, **self._options)
        return self._cache[key]

    def has(self, fqn: str, *sites: str) -> bool:
        """Whether any of ``sites`` of ``fqn`` is planned."""
        return any(f"{fqn}:{s}" in self.plan for s in sites)


def _parent(model: nn.Module, fqn: str) -> tuple[nn.Module | None, str]:
    if "." not in fqn:
        return (model if fqn else None), fqn
    head, _, tail = fqn.rpartition(".")
    return model.get_submodule(head), tail


def _gelu_serves_fc2(model: nn.Module, gelu_fqn: str, table: InjectorTable) -> str:
    """FQN of the ``fc2`` Linear fed by a GELU whose output quantizer also serves ``fc2:act`` ("" if none)."""
    inj = table.get(gelu_fqn, "gelu_output")
    if inj is None or ("vitq_kernel" in inj and str(inj.vitq_kernel)):
        return ""
    parent, _ = _parent(model, gelu_fqn)
    fc2 = getattr(parent, "fc2", None) if parent is not None else None
    if not isinstance(fc2, nn.Linear):
        return ""
    head = gelu_fqn.rpartition(".")[0]
    fc2_fqn = f"{head}.fc2" if head else "fc2"
    return fc2_fqn if f"{fc2_fqn}:act" in table.plan else ""


def build_quant_model(
    model: nn.Module,
    config: QuantConfig,
    host: PluginHost | None = None,
    plan: Mapping[str, Site] | None = None,
) -> tuple[nn.Module, dict[str, Site]]:
    """Replace the modules of ``model`` **in place** per ``config`` (no calibration).

    ``plan``: the sites already planned (and the config validated) by the caller; default: planned here.

    Returns:
        ``(qmodel, plan)``: the quantized module tree (the same object as ``model``) and the site plan.

    Raises:
        VitqError: the config does not fit the model (a key matching nothing, a site the model lacks, a
            quantizer that cannot take a site) - raised before any module is replaced.
    """
    host = host or get_host()
    plan = dict(plan) if plan is not None else plan_sites(model, config, host, backend="brevitas")
    table = InjectorTable(plan, dict(config.options), host)
    _check_structure(model, plan)

    fc2_served: dict[str, str] = {}
    for fqn, m in model.named_modules():
        if isinstance(m, nn.GELU):
            served = _gelu_serves_fc2(model, fqn, table)
            if served:
                fc2_served[served] = fqn

    block_cls: set[type] = set()
    ln_cls: set[type] = set()
    attn_cls: set[type] = set()
    gelu_cls: set[type] = set()
    lin_black: list[str] = []
    pass2_black: list[str] = []
    for fqn, m in model.named_modules():
        if is_block(m) and fqn:
            block_cls.add(type(m))
        if isinstance(m, nn.LayerNorm):
            ln_cls.add(type(m))
            if not table.has(fqn, "ln_input"):
                pass2_black.append(fqn)
        if is_attention(m):
            attn_cls.add(type(m))
            if not table.has(fqn, "attn_matmul", "softmax_output"):
                pass2_black.append(fqn)
        if isinstance(m, nn.GELU):
            gelu_cls.add(type(m))
            if not table.has(fqn, "gelu_output"):
                pass2_black.append(fqn)
        if isinstance(m, nn.Linear | nn.Conv2d) and not table.has(fqn, "weight", "act"):
            lin_black.append(fqn)

    def inj(site: str) -> Callable[[nn.Module, str], Any]:
        return lambda _m, name: table.get(name, site)

    if block_cls:
        layerwise_quantize(
            model,
            compute_layer_map={
                class_key(c): (QuantBlock, {"source": lambda m: m, "residual_quant": inj("residual")})
                for c in block_cls
            },
        )
    pass2: dict[Any, Any] = {}
    for c in ln_cls:
        pass2[class_key(c)] = (QuantLayerNorm, {"input_quant": inj("ln_input")})
    for c in attn_cls:
        pass2[class_key(c)] = (
            QuantAttention,
            {
                "source": lambda m: m,
                "matmul_quant": inj("attn_matmul"),
                "softmax_quant": inj("softmax_output"),
            },
        )
    for c in gelu_cls:
        pass2[class_key(c)] = (QuantGELU, {"act_quant": inj("gelu_output")})
    if pass2:
        layerwise_quantize(model, compute_layer_map=pass2, name_blacklist=pass2_black)

    act_inj: Callable[[nn.Module, str], Any] = lambda _m, name: (  # noqa: E731 - Brevitas calls lambdas only
        None if name in fc2_served else table.get(name, "act")
    )
    common = {
        "weight_quant": inj("weight"),
        "input_quant": act_inj,
        "bias_quant": None,
        "return_quant_tensor": False,
    }
    layerwise_quantize(
        model,
        compute_layer_map={nn.Linear: (QuantLinear, dict(common)), nn.Conv2d: (QuantConv2d, dict(common))},
        name_blacklist=lin_black,
    )
    _wire(model, plan, fc2_served)
    return model, plan


def _check_structure(model: nn.Module, plan: dict[str, Site]) -> None:
    """Every planned site must belong to a module kind the maps can replace."""
    kinds = {s.site for s in plan.values()}
    needs: dict[str, tuple[str, Callable[[nn.Module], bool]]] = {
        "ln_input": ("a LayerNorm", lambda m: isinstance(m, nn.LayerNorm)),
        "softmax_output": ("an attention module with `qkv` and `num_heads`", is_attention),
        "attn_matmul": ("an attention module with `qkv` and `num_heads`", is_attention),
        "gelu_output": ("an nn.GELU", lambda m: isinstance(m, nn.GELU)),
        "residual": ("a block with attn/mlp/norm1/norm2", is_block),
    }
    for site, (what, pred) in needs.items():
        if site in kinds and not any(pred(m) for m in model.modules()):
            raise VitqError(f"site {site!r} is planned but {type(model).__name__} has no {what}")


def _wire(model: nn.Module, plan: dict[str, Site], fc2_served: dict[str, str]) -> None:
    """Post-pass links: OPT-m's consuming Linear, GELU-served fc2 keys, block outputs served by the next LN."""
    for fqn, m in model.named_modules():
        if isinstance(m, QuantGELU):
            parent, _ = _parent(model, fqn)
            fc2 = getattr(parent, "fc2", None) if parent is not None else None
            m.next_linear.clear()
            if isinstance(fc2, nn.Module) and hasattr(fc2, "weight"):
                m.next_linear.append(fc2)
            # Brevitas builds the tensor quantizer again after the module's __init__: link the list it searches
            tq = tensor_quant_of(m.quant.act_quant) if m.quant is not None else None
            if tq is not None and hasattr(tq, "next_linear"):
                tq.next_linear = m.next_linear
            m.served_keys = {
                k: plan[k].quantizer for k in (f"{f}:act" for f, g in fc2_served.items() if g == fqn)
            }
        if isinstance(m, QuantBlock):
            m.residual_name = plan[f"{fqn}:residual"].quantizer if f"{fqn}:residual" in plan else ""
            if isinstance(m.norm2, QuantLayerNorm) and m.norm2.input_quant is not None:
                m.res_quant1 = None
    for parent in model.modules():
        kids = list(parent.children())
        for prev, nxt in zip(kids, kids[1:], strict=False):
            if (
                isinstance(prev, QuantBlock)
                and isinstance(nxt, QuantBlock)
                and isinstance(nxt.norm1, QuantLayerNorm)
                and nxt.norm1.input_quant is not None
            ):
                prev.output_served_by_next = True
                prev.res_quant2 = None


def carried_sites(qmodel: nn.Module) -> dict[str, str]:
    """``"<fqn>:<site>" -> quantizer`` for every site the quantized model carries (shared tensors included)."""
    out: dict[str, str] = {}
    for fqn, m in qmodel.named_modules():
        if isinstance(m, QuantLinear | QuantConv2d):
            for site, proxy in (("weight", m.weight_quant), ("act", m.input_quant)):
                if proxy.is_quant_enabled:
                    out[f"{fqn}:{site}"] = str(proxy.quant_injector.vitq_name)
        elif isinstance(m, QuantLayerNorm) and m.input_quant is not None:
            out[f"{fqn}:ln_input"] = quantizer_name(m.input_quant)
        elif isinstance(m, QuantAttention):
            if m.q_quant is not None:
                out[f"{fqn}:attn_matmul"] = quantizer_name(m.q_quant)
            if m.softmax.quant is not None:
                out[f"{fqn}:softmax_output"] = quantizer_name(m.softmax.quant)
        elif isinstance(m, QuantGELU) and m.quant is not None:
            out[f"{fqn}:gelu_output"] = quantizer_name(m.quant)
            out.update(getattr(m, "served_keys", {}))
        elif isinstance(m, QuantBlock) and m.residual_name:
            out[f"{fqn}:residual"] = m.residual_name
    return out
