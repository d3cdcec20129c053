"""Python implementations of the ``vitq`` ONNX domain for ``qonnx.core.onnx_exec.execute_onnx``.

Only ops without a standard ONNX/QONNX equivalent live here: ``Log2Quant`` (FQ-ViT arXiv 2111.13824 eq. 13),
``Shiftmax``, ``ShiftGELU`` and ``ILayerNorm`` (I-ViT arXiv 2207.01405 §3.3-3.5). Each executes the same
``vitq_plugins.ops`` function as the Brevitas model. Importing :mod:`vitq_plugins.brevitas` maps the ``vitq``
domain to this module (``qonnx.custom_op.registry.add_domain_alias``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import helper
from qonnx.custom_op.base import CustomOp
import torch

from vitq_plugins.papers.fqvit import lis as _lis

__all__ = ["ILayerNorm", "Log2Quant", "ShiftGELU", "Shiftmax", "custom_op"]


class _VitqOp(CustomOp):  # type: ignore[misc]
    attrs: dict[str, tuple[str, bool, Any]] = {}

    def get_nodeattr_types(self) -> dict[str, tuple[str, bool, Any]]:
        return dict(self.attrs)

    def make_shape_compatible_op(self, model: Any) -> Any:
        node = self.onnx_node
        return helper.make_node("Identity", [node.input[0]], [node.output[0]])

    def infer_node_datatype(self, model: Any) -> None:
        node = self.onnx_node
        model.set_tensor_datatype(node.output[0], model.get_tensor_datatype(node.input[0]))

    def verify_node(self) -> list[str]:
        return []

    def _inputs(self, context: dict[str, Any]) -> list[torch.Tensor]:
        return [torch.from_numpy(np.asarray(context[i], dtype=np.float32)) for i in self.onnx_node.input]

    def _compute(self, *xs: torch.Tensor) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} has no implementation")

    def execute_node(self, context: dict[str, Any], graph: Any) -> None:
        out = self._compute(*self._inputs(context))
        context[self.onnx_node.output[0]] = out.detach().numpy().astype(np.float32)


class Log2Quant(_VitqOp):
    """``y = 2^-round(-log2 x)``; 0 where the code is ``>= 2^bit_width``."""

    attrs = {"bit_width": ("i", True, 4)}

    def _compute(self, *xs: torch.Tensor) -> torch.Tensor:
        bits = min(int(self.get_nodeattr("bit_width")), 6)
        return _lis.log2_quant(xs[0].clamp(0.0, 1.0), bits)[1]


class Shiftmax(_VitqOp):
    """I-ViT Shiftmax over the last axis of fake-quantized logits ``x`` with scale ``s`` (input 2)."""

    attrs = {"n": ("i", True, 15), "out_bits": ("i", True, 8)}

    def _compute(self, *xs: torch.Tensor) -> torch.Tensor:
        from vitq_plugins.brevitas.modules import _shiftmax_float

        x, s = xs[0], xs[1]
        return _shiftmax_float(
            torch.round(x / s).to(torch.int64),
            s,
            int(self.get_nodeattr("n")),
            int(self.get_nodeattr("out_bits")),
        )


class ShiftGELU(_VitqOp):
    """I-ViT ShiftGELU of a fake-quantized input ``x`` with scale ``s`` (input 2)."""

    attrs = {"n": ("i", True, 23), "out_bits": ("i", True, 8)}

    def _compute(self, *xs: torch.Tensor) -> torch.Tensor:
        from vitq_plugins.brevitas.modules import _shiftgelu_float

        x, s = xs[0], xs[1]
        return _shiftgelu_float(
            torch.round(x / s).to(torch.int64),
            s,
            int(self.get_nodeattr("n")),
            int(self.get_nodeattr("out_bits")),
        )


class ILayerNorm(_VitqOp):
    """I-ViT I-LayerNorm: inputs ``x`` (fake-quantized), ``scale``, ``weight``, ``bias``."""

    def _compute(self, *xs: torch.Tensor) -> torch.Tensor:
        from vitq_plugins.brevitas.modules import _ilayernorm_float

        x, s, w, b = xs
        return _ilayernorm_float(torch.round(x / s).to(torch.int64), s, w, b)


#: legacy qonnx registry dict (op type -> class)
custom_op: dict[str, type[CustomOp]] = {
    "Log2Quant": Log2Quant,
    "Shiftmax": Shiftmax,
    "ShiftGELU": ShiftGELU,
    "ILayerNorm": ILayerNorm,
}
