"""torch.ao FX adapter of ``hardgelu`` (on :mod:`vitq_plugins.fx.extension` only): a custom module that runs
the integer hard-GELU on its quantized input codes."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vitq_hardgelu.kernel import CALLS
from vitq_hardgelu.kernel import gate_multiplier
from vitq_hardgelu.kernel import hardgelu_codes
from vitq_hardgelu.kernel import hardgelu_float
from vitq_plugins.fx.extension import CustomFloat
from vitq_plugins.fx.extension import CustomModuleSpec
from vitq_plugins.fx.extension import ObservedCustom
from vitq_plugins.fx.extension import grid_codes

__all__ = ["HardGELU", "hardgelu"]


class HardGELU(nn.GELU, CustomFloat):
    """GELU site computed by the integer hard-GELU (``bits``: input grid; ``gate_bits``: gate steps)."""

    def __init__(self, bits: int = 8, gate_bits: int = 8) -> None:
        nn.GELU.__init__(self)
        self.bits, self.gate_bits = bits, gate_bits

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return hardgelu_float(x)

    def kernel(self, x: torch.Tensor, observed: ObservedCustom) -> torch.Tensor:
        """The integer hard-GELU of the input codes."""
        CALLS["fx"] += 1
        s = observed.input_observer().qparams()[0].to(torch.float64)
        y = hardgelu_codes(grid_codes(x, s), gate_multiplier(float(s), self.gate_bits), self.gate_bits)
        return (y.to(torch.float64) * (s * 2.0**-self.gate_bits)).to(x.dtype)


def hardgelu(site: str, bits: int, **options: Any) -> CustomModuleSpec:
    """The hard-GELU custom module."""
    return CustomModuleSpec(HardGELU, {"bits": bits, "gate_bits": int(options.get("hardgelu_gate_bits", 8))})
