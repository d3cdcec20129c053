"""Calibrated custom-op quantizers: an observer that collects statistics while calibrating, and that
``convert_pt2e`` replaces by a ``torch.library`` custom op carrying the calibrated parameters as constants.

A non-affine quantizer with parameters found on calibration data (a searched twin scale, a calibrated maximum)
has no ``quantized_decomposed`` q/dq form. Its PT2E adapter returns a ``QuantizationSpec`` of a
:class:`CalibratedOpObserver` subclass (``spec_for(MyObserver.with_args(...))``): the wing annotates the site's
tensor with it like any observer, ``prepare_pt2e`` inserts it, the calibration pass feeds it, and torchao's
``convert_pt2e`` calls its :meth:`CalibratedOpObserver.convert`, which rewrites the observer's node into
``op(x, *observer.op_args())``. ``torch.export``, ``convert_pt2e`` and ``torch.compile`` accept the op through
its fake implementation, as for a :class:`~vitq_plugins.pt2e.extension.SiteOp`.

An observer whose parameters depend on the Linear consuming its tensor (e.g. an objective on that Linear's
output) reads its float weight with :func:`consumer_weight` inside :meth:`CalibratedOpObserver.bind`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import fx

from vitq_plugins.pt2e.observers import VitqObserver

__all__ = ["CalibratedOpObserver", "consumer_weight"]

_aten = torch.ops.aten
_PASS_THROUGH = ("quantize_per_", "dequantize_per_")


def _weight_source(model: fx.GraphModule, node: Any) -> torch.Tensor | None:
    """The float tensor behind a weight argument: through weight observers and q/dq pairs to the ``get_attr``."""
    modules = dict(model.named_modules())
    while isinstance(node, fx.Node):
        if node.op == "get_attr":
            t: Any = model
            for part in str(node.target).split("."):
                t = getattr(t, part)
            return t if isinstance(t, torch.Tensor) else None
        if node.op == "call_module" and isinstance(modules.get(str(node.target)), VitqObserver):
            node = node.args[0]
        elif node.op == "call_function" and any(p in str(node.target) for p in _PASS_THROUGH):
            node = node.args[0]
        else:
            return None
    return None


def consumer_weight(model: fx.GraphModule, node: fx.Node) -> torch.Tensor | None:
    """The float weight ``(out, C)`` of the one ``aten.linear`` that consumes ``node`` as its input, else ``None``
    (several or other consumers, or a weight that is not a graph constant)."""
    users = [u for u in node.users if u.op == "call_function"]
    if len(users) != 1 or users[0].target is not _aten.linear.default or users[0].args[0] is not node:
        return None
    w = _weight_source(model, users[0].args[1])
    return None if w is None else w.detach()


class CalibratedOpObserver(VitqObserver):
    """Base of calibrated custom-op quantizers (module docstring): subclasses implement :meth:`observe`,
    :meth:`op_args` and, where needed, :meth:`bind`.

    Args:
        quantizer: Registry name of the quantizer.
        bits: Code bits.
        op: The ``torch.library`` custom op overload ``op(x, *op_args())`` (with a fake implementation).
        dtype: Descriptive container dtype of the codes (``torch.uint8`` or ``torch.int8``).
        quant_min: Smallest code.
        quant_max: Largest code.
    """

    def __init__(
        self,
        quantizer: str,
        bits: int,
        op: Callable[..., Any],
        dtype: torch.dtype = torch.uint8,
        quant_min: int = 0,
        quant_max: int = 255,
    ) -> None:
        super().__init__(quantizer, bits, dtype, torch.per_tensor_affine, quant_min, quant_max)
        self.op = op

    def op_args(self) -> tuple[Any, ...]:
        """The op's constant arguments after the tensor, from the calibration statistics."""
        raise RuntimeError(f"{type(self).__name__} defines no op arguments")  # pragma: no cover

    def bind(self, model: fx.GraphModule, node: fx.Node) -> None:
        """Read what the graph around the observer's ``node`` tells (e.g. :func:`consumer_weight`); called by
        :meth:`convert` before :meth:`op_args`. Default: nothing."""

    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise RuntimeError(f"{type(self).__name__} is a custom op, not a uniform grid")

    def convert(self, model: fx.GraphModule, node: fx.Node) -> None:
        """``convert_pt2e``'s hook: replace this observer's ``node`` by ``op(x, *op_args())``."""
        self.bind(model, node)
        args = self.op_args()
        graph = model.graph
        with graph.inserting_before(node):
            new = graph.call_function(self.op, (node.args[0], *args))
        src = node.args[0]
        meta = src.meta if isinstance(src, fx.Node) else node.meta
        new.meta.update({k: v for k, v in meta.items() if k in ("nn_module_stack", "stack_trace", "val")})
        node.replace_all_uses_with(new)
        graph.erase_node(node)
