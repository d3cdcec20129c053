"""The integer form of ``hardgelu`` (on :mod:`vitq_plugins.intexec.extension` only): fc1's accumulator ->
requant to the hard-GELU input grid -> :func:`~vitq_hardgelu.kernel.hardgelu_codes` -> requant to fc2's input
grid; the ONNX emitter writes the same integer ops."""

from __future__ import annotations

import torch

from vitq_hardgelu.kernel import CALLS
from vitq_hardgelu.kernel import FRAC_BITS
from vitq_hardgelu.kernel import gate_multiplier
from vitq_hardgelu.kernel import hardgelu_codes
from vitq_plugins.intexec.extension import GeluForm
from vitq_plugins.intexec.extension import GeluSite
from vitq_plugins.intexec.extension import OnnxGraph
from vitq_plugins.intexec.extension import QParams
from vitq_plugins.intexec.extension import Requant
from vitq_plugins.intexec.extension import grid_span
from vitq_plugins.intexec.extension import register_integer_form
from vitq_plugins.intexec.extension import requant

__all__ = ["HardGELUForm"]


@register_integer_form("gelu", "hardgelu")
class HardGELUForm(GeluForm):
    """``rq_fc2(hardgelu_codes(rq_gelu(acc) - z))``.

    Args:
        rq_gelu: requant of fc1's accumulator to the hard-GELU input grid.
        m: the gate multiplier of that grid (:func:`~vitq_hardgelu.kernel.gate_multiplier`).
        gate_bits: the gate's bits.
        rq_fc2: requant of the output (scale ``S 2^-gate_bits``) to fc2's input grid.
    """

    def __init__(self, rq_gelu: Requant, m: int, gate_bits: int, rq_fc2: Requant) -> None:
        super().__init__()
        self.rq_gelu, self.rq_fc2 = rq_gelu, rq_fc2
        self.m, self.gate_bits = int(m), int(gate_bits)

    @classmethod
    def from_brevitas(cls, site: GeluSite) -> tuple[HardGELUForm, QParams]:
        """On the GELU quantizer's grid ``in_grid``; the output requantized to fc2's input grid ``out_grid``."""
        gb, gg, g2 = int(site.module.out_bits), site.in_grid, site.out_grid
        rq_gelu = Requant(site.acc_scale / gg.scale, gg, site.acc_bound, frac=site.acc_frac)
        rq_fc2 = Requant(gg.scale * 2.0**-gb / g2.scale, g2, grid_span(gg) << gb)
        return cls(rq_gelu, gate_multiplier(gg.scale, gb), gb, rq_fc2), g2

    @classmethod
    def from_fx(cls, site: GeluSite) -> tuple[HardGELUForm, QParams]:
        """On fc1's output codes; the output requantized to its container, then to fc2's input grid."""
        assert site.rq_in is not None and site.to_fc2 is not None
        gb = int(site.module.observed.inner.gate_bits)
        g_in, g_act = site.in_grid, site.out_grid
        rq_act = Requant(g_in.scale * 2.0**-gb / g_act.scale, g_act, grid_span(g_in) << gb)
        rq_fc2 = site.to_fc2(rq_act)
        return cls(site.rq_in, gate_multiplier(g_in.scale, gb), gb, rq_fc2), rq_fc2.out

    def forward(self, acc: torch.Tensor) -> torch.Tensor:
        CALLS["integer"] += 1
        a = self.rq_gelu(acc) - self.rq_gelu.zero_point
        out: torch.Tensor = self.rq_fc2(hardgelu_codes(a, self.m, self.gate_bits))
        return out

    def emit_onnx(self, g: OnnxGraph, acc: str) -> tuple[str, bool]:
        a = requant(g, acc, self.rq_gelu, centered=True)
        t = g.shr(g.op("Mul", a, g.const(self.m)), FRAC_BITS, post=2 ** (self.gate_bits - 1))
        y = g.op("Mul", a, g.clamp(t, 0, 2**self.gate_bits))
        return requant(g, y, self.rq_fc2), False
