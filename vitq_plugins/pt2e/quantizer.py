"""A torchao PT2E :class:`~torchao.quantization.pt2e.quantizer.Quantizer` built from vitq's planned sites.

Tensor ownership (as in the Brevitas and FX wings): one observer per tensor, whose quantizer is that of the
highest-priority planned site the tensor serves, ``ln_input > gelu_output > softmax_output > act >
attn_matmul > residual``; every consumer sees the same quantized tensor (e.g. a block's residual sum enters
the next LayerNorm and the skip path on the LayerNorm input grid, as FQ-ViT does). The sites a tensor serves:

* consumers: ``aten.linear``/``aten.conv2d`` input -> ``<module>:act``; ``aten.layer_norm`` input ->
  ``<module>:ln_input``; an attention's ``aten.matmul`` operands (q, k, v and the map) -> ``<attn>:attn_matmul``;
* producers: ``aten.gelu`` -> ``<module>:gelu_output``; an attention's ``aten.softmax`` ->
  ``<attn>:softmax_output``; a block's ``aten.add`` -> ``<block>:residual``.

Weights are annotated on the ``aten.linear``/``aten.conv2d`` weight edge (``<module>:weight``). A site whose
adapter returned a :class:`~vitq_plugins.pt2e.extension.SiteOp` (a non-affine quantizer as a custom op) gets the
op inserted on its output tensor in :meth:`VitqQuantizer.transform_for_annotation`; the op's output then carries
the site (and its ``output_spec``, if any, instead of an observer). Papers: FQ-ViT arXiv 2111.13824 (sites,
Fig. 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field

import torch
from torch import fx
from torch import nn
from torchao.quantization.pt2e.quantizer import QuantizationAnnotation
from torchao.quantization.pt2e.quantizer import QuantizationSpec
from torchao.quantization.pt2e.quantizer import Quantizer
from torchao.quantization.pt2e.quantizer import SharedQuantizationSpec

from vitq_plugins.core.errors import VitqError
from vitq_plugins.pt2e.calibrated import KernelOpObserver
from vitq_plugins.pt2e.extension import SiteOp
from vitq_plugins.pt2e.graph import scope_of
from vitq_plugins.pt2e.graph import strip_eval_dropout
from vitq_plugins.sites import Site
from vitq_plugins.sites import is_attention
from vitq_plugins.sites import is_block

__all__ = ["PRIORITY", "SiteReport", "VitqQuantizer"]

#: Site priority when one tensor serves several sites (lower index wins); the same order as the other wings.
PRIORITY: tuple[str, ...] = ("ln_input", "gelu_output", "softmax_output", "act", "attn_matmul", "residual")

_aten = torch.ops.aten
_WEIGHTED = (_aten.linear.default, _aten.conv2d.default)
_SOFTMAX = (_aten.softmax.int, _aten._softmax.default)


@dataclass
class SiteReport:
    """What :meth:`VitqQuantizer.annotate` applied.

    Attributes:
        applied: ``"<fqn>:<site>" -> quantizer`` of the observer on that site's tensor.
        via: ``"<fqn>:<site>" -> key`` of the site whose quantizer won on that tensor.
        counts: Observers per winning site kind.
    """

    applied: dict[str, str] = field(default_factory=dict)
    via: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


class VitqQuantizer(Quantizer):  # type: ignore[misc]  # torchao ships no stubs
    """Annotates the planned sites of one model with the specs the quantizers' PT2E adapters returned.

    Args:
        model: The float model the graph was exported from (to tell attentions and blocks by their FQN).
        plan: The planned sites (:func:`vitq_plugins.sites.plan_sites`).
        specs: ``"<fqn>:<site>" -> QuantizationSpec`` for every planned site.
    """

    def __init__(
        self, model: nn.Module, plan: Mapping[str, Site], specs: Mapping[str, QuantizationSpec]
    ) -> None:
        super().__init__()
        self.plan = dict(plan)
        self.specs = dict(specs)
        mods = dict(model.named_modules())
        self._attn = {f for f, m in mods.items() if is_attention(m)}
        self._block = {f for f, m in mods.items() if is_block(m)}
        self.report = SiteReport()
        #: output sites whose quantizer is a kernel replacing the float operator -> whether its output takes
        #: the next site's quantizer (:class:`~vitq_plugins.pt2e.calibrated.KernelOpObserver`)
        self._kernels: dict[str, bool] = {}
        for key, made in self.specs.items():
            if isinstance(made, QuantizationSpec):
                obs = made.observer_or_fake_quant_ctr()
                if isinstance(obs, KernelOpObserver):
                    self._kernels[key] = bool(obs.output_container)

    def _output_site(self, t: fx.Node) -> str | None:
        """The output site ``t`` produces (GELU, an attention's softmax, a block's add), else ``None``."""
        if t.op != "call_function":
            return None
        scope = scope_of(t)
        if t.target is _aten.gelu.default:
            return f"{scope}:gelu_output"
        if t.target in _SOFTMAX and scope in self._attn:
            return f"{scope}:softmax_output"
        if t.target is _aten.add.Tensor and scope in self._block:
            return f"{scope}:residual"
        return None

    def transform_for_annotation(self, model: fx.GraphModule) -> fx.GraphModule:
        """Drop evaluation-mode dropouts so each site's tensor feeds its consumer directly, and insert every
        planned :class:`SiteOp` on its site's output tensor."""
        strip_eval_dropout(model)
        graph = model.graph
        for t in list(graph.nodes):
            key = self._output_site(t)
            made = self.specs.get(key) if key is not None and key in self.plan else None
            if not isinstance(made, SiteOp):
                continue
            with graph.inserting_after(t):
                new = graph.call_function(made.op, (t, *made.args))
            for meta in ("nn_module_stack", "stack_trace", "val", "tensor_meta"):
                if meta in t.meta:
                    new.meta[meta] = t.meta[meta]
            new.meta["vitq_site"] = key
            t.meta["vitq_site_moved"] = key
            t.replace_all_uses_with(new, delete_user_cb=lambda u, new=new: u is not new)
        graph.lint()
        model.recompile()
        return model

    def _labels(self, t: fx.Node) -> list[str]:
        keys: set[str] = set()
        for u in t.users:
            if u.op != "call_function" or not u.args:
                continue
            scope = scope_of(u)
            if u.target in _WEIGHTED and u.args[0] is t:
                keys.add(f"{scope}:act")
            elif u.target is _aten.layer_norm.default and u.args[0] is t:
                keys.add(f"{scope}:ln_input")
            elif u.target is _aten.matmul.default and scope in self._attn:
                keys.add(f"{scope}:attn_matmul")
            if u.args[0] is t and (k := self._output_site(u)) in self._kernels and k in self.plan:
                keys.add(k)  # a kernel replacing the operator u quantizes u's input
        produced = t.meta.get("vitq_site") or (None if "vitq_site_moved" in t.meta else self._output_site(t))
        if produced is not None and not self._kernels.get(str(produced), False):
            keys.add(str(produced))
        return sorted(keys, key=lambda k: (PRIORITY.index(k.rpartition(":")[2]), k))

    def annotate(self, model: fx.GraphModule) -> fx.GraphModule:
        """Put one observer on every tensor that serves a planned site, and a weight observer on every planned
        weight; fills :attr:`report`."""
        rep = self.report = SiteReport()
        inputs: dict[fx.Node, dict[fx.Node, QuantizationSpec | SharedQuantizationSpec]] = {}
        outputs: dict[fx.Node, QuantizationSpec] = {}
        for t in model.graph.nodes:
            labels = [k for k in self._labels(t) if k in self.plan]
            if not labels:
                continue
            winner = labels[0]
            made = self.specs[winner]
            if isinstance(made, SiteOp):  # the op quantizes; its output keeps the op's values or a container
                if made.output_spec is not None:
                    outputs[t] = made.output_spec
            elif winner in self._kernels and self._output_site(t) == winner:
                pass  # a kernel's output without a container: the kernel's values as they are
            elif t.op == "call_function":
                outputs[t] = made
            else:  # a graph input: annotate the consumers' input edges, all sharing the first one's observer
                first: fx.Node | None = None
                for u in t.users:
                    if u.op != "call_function":
                        continue
                    if first is None:
                        inputs.setdefault(u, {})[t] = made
                        first = u
                    else:
                        inputs.setdefault(u, {})[t] = SharedQuantizationSpec((t, first))
            for key in labels:  # a site's own quantizer wins over one that serves it through another site
                if key not in rep.applied or (key == winner and rep.via[key] != key):
                    rep.applied[key], rep.via[key] = self.plan[winner].quantizer, winner
            kind = winner.rpartition(":")[2]
            rep.counts[kind] = rep.counts.get(kind, 0) + 1
        for u in model.graph.nodes:
            if u.op != "call_function" or u.target not in _WEIGHTED or len(u.args) < 2:
                continue
            key = f"{scope_of(u)}:weight"
            w = u.args[1]
            made = self.specs.get(key)
            if key in self.plan and isinstance(w, fx.Node) and isinstance(made, QuantizationSpec):
                inputs.setdefault(u, {})[w] = made
                rep.applied[key], rep.via[key] = self.plan[key].quantizer, key
                rep.counts["weight"] = rep.counts.get("weight", 0) + 1
        for node in set(inputs) | set(outputs):
            node.meta["quantization_annotation"] = QuantizationAnnotation(
                input_qspec_map=dict(inputs.get(node, {})), output_qspec=outputs.get(node), _annotated=True
            )
        return model

    def validate(self, model: fx.GraphModule) -> None:
        """Fail loudly when a planned site got no observer, or another quantizer than planned.

        Raises:
            VitqError: names every missing site and every silently substituted quantizer.
        """
        rep = self.report
        missing = [f"{k} ({s.quantizer})" for k, s in self.plan.items() if k not in rep.applied]
        wrong = [
            f"{k}: requested {s.quantizer}, got {rep.applied[k]}"
            for k, s in self.plan.items()
            if k in rep.applied and rep.applied[k] != s.quantizer and rep.via.get(k) == k
        ]
        if missing or wrong:
            parts = []
            if missing:
                parts.append(f"no observer for {len(missing)} site(s): {', '.join(missing[:8])}")
            if wrong:
                parts.append(f"quantizer substituted at {', '.join(wrong[:8])}")
            raise VitqError("pt2e backend: planned sites were not annotated (" + "; ".join(parts) + ")")
