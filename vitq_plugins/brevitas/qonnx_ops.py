"""The ``vitq`` ONNX domain for ``qonnx.core.onnx_exec.execute_onnx``: Python executors of custom nodes.

Only ops without a standard ONNX/QONNX equivalent are ``vitq`` nodes (e.g. FQ-ViT's ``Log2Quant``, arXiv
2111.13824 eq. 13; I-ViT's integer kernels, arXiv 2207.01405 §3.3-3.5). A paper subclasses :class:`VitqCustomOp`
and registers it with :func:`register_custom_op` in its Brevitas adapter; each executes the same numerics as
the Brevitas model. Importing :mod:`vitq_plugins.brevitas` maps the ``vitq`` domain to this module
(``qonnx.custom_op.registry.add_domain_alias``); qonnx then finds an op class through this module's
``__all__`` and attributes, which are computed from the registry (the Brevitas adapters of the registered
quantizers are imported on first use, so a file also executes in a fresh process).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from typing import TypeVar

import numpy as np
from onnx import helper
from qonnx.custom_op.base import CustomOp
import torch

from vitq_plugins.core.errors import DuplicateNameError

#: the ONNX domain of vitq's custom nodes (``g.op(f"{DOMAIN}::Op", ...)``)
DOMAIN = "vitq"

_API = ["DOMAIN", "VitqCustomOp", "custom_op", "register_custom_op"]


class VitqCustomOp(CustomOp):  # type: ignore[misc]
    """Base of a ``vitq`` node executor: the output has the shape and datatype of input 0.

    A subclass sets :attr:`attrs` (``name -> (type, required, default)``) and implements :meth:`_compute` on
    float32 torch tensors (one per node input).
    """

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


#: legacy qonnx registry dict (op type -> class), filled by :func:`register_custom_op`
custom_op: dict[str, type[CustomOp]] = {}

C = TypeVar("C", bound=type[VitqCustomOp])


def register_custom_op(op_type: str) -> Callable[[C], C]:
    """Class decorator: execute ``vitq::<op_type>`` nodes with the decorated :class:`VitqCustomOp`.

    Raises:
        DuplicateNameError: ``op_type`` is already registered.
    """

    def deco(cls: C) -> C:
        if op_type in custom_op:
            raise DuplicateNameError(
                f"vitq custom op {op_type!r} is already registered by {custom_op[op_type].__module__}"
            )
        # qonnx derives the op type from the class name: register a subclass named ``op_type`` if needed
        named = cls if cls.__name__ == op_type else type(op_type, (cls,), {"__module__": cls.__module__})
        custom_op[op_type] = named
        return cls

    return deco


def _loaded() -> dict[str, type[CustomOp]]:
    from vitq_plugins.brevitas.adapters import load_adapters

    load_adapters()
    return custom_op


def __getattr__(name: str) -> Any:
    """``__all__`` and the op classes, looked up by qonnx (imports the papers' adapters on first use)."""
    if name == "__all__":
        return [*_API, *sorted(_loaded())]
    if name.startswith("_"):  # import machinery probes (``__path__``, ``__wrapped__``...)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    ops = custom_op if name in custom_op else _loaded()
    if name in ops:
        return ops[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
