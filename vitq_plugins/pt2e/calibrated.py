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

:class:`KernelOpObserver` is the input-side variant: an integer kernel that replaces the site's float
operator (softmax, GELU, LayerNorm) and runs on its input quantized on a calibrated uniform grid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from typing import ClassVar

import torch
from torch import fx

from vitq_plugins.ops import uniform as ops_uniform
from vitq_plugins.pt2e.observers import VitqObserver

__all__ = ["CalibratedOpObserver", "KernelOpObserver", "consumer_weight"]

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


class KernelOpObserver(CalibratedOpObserver):
    """Base of integer kernels that *replace* a site's float operator (softmax, GELU, LayerNorm) and run on its
    input quantized on a signed symmetric per-tensor MinMax grid (:func:`vitq_plugins.ops.uniform.qparams_from_minmax`;
    up to 8 bits held as uint8 codes with zero point ``2^(b-1)``).

    The wing puts this observer on the operator's *input* tensor (for ``softmax_output``/``gelu_output`` the
    input of the softmax/GELU; for ``ln_input`` the LayerNorm input, as for any spec). At ``convert_pt2e`` it
    becomes a ``quantized_decomposed`` q/dq pair of that grid (every consumer sees the quantized tensor, as in
    the other wings) and the float operator consuming it is replaced by
    ``op(x_dq, scale, *kernel_args(operator_node))``.

    Class attributes:
        replaces: ATen overloads of the float operator the kernel stands for.
        output_container: whether the kernel's output takes the next site's quantizer (e.g. a Linear's input
            quantizer after an integer GELU); ``False`` keeps it as the kernel wrote it (e.g. log2 codes feeding
            ``attn @ v``).

    Args:
        quantizer: Registry name.
        bits: Code bits of the input grid (2..16).
        op: The kernel's ``torch.library`` custom op (with a fake implementation).
    """

    replaces: ClassVar[tuple[Any, ...]] = ()
    output_container: ClassVar[bool] = False

    def __init__(self, quantizer: str, bits: int, op: Callable[..., Any]) -> None:
        if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 16:
            raise ValueError(f"{quantizer}: kernel input bits must be in 2..16, got {bits!r}")
        qmin, qmax = ops_uniform.qrange(bits, signed=True)
        # up to 8 bits the signed grid travels as uint8 codes with zero point 2^(b-1) (the same values): the
        # x86 Inductor int8 patterns take uint8 activations only
        self.zero_point = -qmin if bits <= 8 else 0
        dtype = torch.uint8 if bits <= 8 else torch.int32
        super().__init__(quantizer, bits, op, dtype, qmin + self.zero_point, qmax + self.zero_point)
        self._minmax = ops_uniform.MinMaxObserver(None)

    def observe(self, x: torch.Tensor) -> None:
        self._minmax.update(x.detach().float())

    def input_scale(self) -> float:
        """Step of the input grid (symmetric, zero point 0)."""
        scale, _ = ops_uniform.qparams_from_minmax(
            self._minmax.min, self._minmax.max, self.bits, symmetric=True, signed=True
        )
        return float(scale)

    def kernel_args(self, operator: fx.Node) -> tuple[Any, ...]:
        """The kernel's arguments after ``(x, scale)``, read from the float operator's node (e.g. a LayerNorm's
        weight and bias nodes). Default: :meth:`op_args`."""
        return self.op_args()

    def op_args(self) -> tuple[Any, ...]:
        return ()

    def convert(self, model: fx.GraphModule, node: fx.Node) -> None:
        """``convert_pt2e``'s hook: q/dq of the input grid, then the kernel in place of the float operator."""
        graph, qd = model.graph, torch.ops.quantized_decomposed
        scale = self.input_scale()
        qargs = (scale, self.zero_point, self.quant_min, self.quant_max, self.dtype)
        with graph.inserting_before(node):
            q = graph.call_function(qd.quantize_per_tensor.default, (node.args[0], *qargs))
            dq = graph.call_function(qd.dequantize_per_tensor.default, (q, *qargs))
        src = node.args[0]
        if isinstance(src, fx.Node) and "val" in src.meta:
            dq.meta["val"] = src.meta["val"]
        node.replace_all_uses_with(dq)
        graph.erase_node(node)
        for user in [u for u in dq.users if u.op == "call_function" and u.target in self.replaces]:
            if user.args[0] is not dq:
                continue
            with graph.inserting_before(user):
                new = graph.call_function(self.op, (dq, scale, *self.kernel_args(user)))
            new.meta.update(
                {k: v for k, v in user.meta.items() if k in ("nn_module_stack", "stack_trace", "val")}
            )
            user.replace_all_uses_with(new)
            graph.erase_node(user)
