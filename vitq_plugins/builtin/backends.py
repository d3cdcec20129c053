"""Registers the framework wings: Brevitas, torch.ao FX and torchao PT2E (imported only when used)."""

from __future__ import annotations

from vitq_plugins.core.hookspecs import hookimpl
from vitq_plugins.core.registry import Registry
from vitq_plugins.core.specs import BackendSpec


@hookimpl
def vitq_register_backends(registry: Registry[BackendSpec]) -> None:
    """``brevitas``, ``fx`` and ``pt2e``."""
    registry.register(
        "brevitas",
        BackendSpec(
            "brevitas",
            "vitq_plugins.brevitas.backend:BACKEND",
            "Brevitas 0.13 quant modules via layerwise_quantize; QONNX/QCDQ export",
        ),
    )
    registry.register(
        "fx",
        BackendSpec(
            "fx",
            "vitq_plugins.fx.backend:BACKEND",
            "torch.ao FX graph mode: prepare_fx/convert_fx with vitq qconfigs, x86 int8 kernels",
        ),
    )
    registry.register(
        "pt2e",
        BackendSpec(
            "pt2e",
            "vitq_plugins.pt2e.backend:BACKEND",
            "torchao PT2E: torch.export + prepare_pt2e/convert_pt2e; torch.compile lowers to x86 int8 (extra pt2e)",
        ),
    )
