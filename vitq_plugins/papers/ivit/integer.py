"""I-ViT's integer forms (Li & Gu, ICCV 2023, arXiv 2207.01405) for the integer program of :mod:`vitq_plugins.intexec`.

Registered with :func:`vitq_plugins.intexec.extension.register_integer_form` under the quantizer names:

* ``("layernorm", "ilayernorm")``: :class:`ILayerNorm`, I-LayerNorm (Sec. 3.5, eq. 18) with its integer bias
  computed once (``extension.layernorm_bias``), bit-identical to ``papers.ivit.ilayernorm.i_layernorm``;
* ``("softmax", "shiftmax")``: :class:`Shiftmax` (Sec. 3.3, eqs. 9-14) of the requantized logits, then the
  uint8 probabilities times ``v`` as an integer matmul;
* ``("softmax", "shiftmax_log2")``: :class:`ShiftmaxLog2`, Shiftmax's exponential with a log2 output code
  (``papers.ivit.shiftlog``), then ``2^(F - code) @ v`` as uint8 byte-plane matmuls (FQ-ViT eq. 16's shifts);
* ``("gelu", "shiftgelu_fine")``: :class:`ShiftGELUFine`, ShiftGELU on the fine exponential
  (``papers.ivit.finegelu``), then the requant to fc2's input grid (one ``Gather`` of a 1-D table in ONNX);
* ``("gelu", "shiftgelu")``: :class:`ShiftGELU` (Sec. 3.4, eqs. 15-17) of fc1's requantized accumulator, then
  the requant to fc2's input grid.

Each form carries its torch executor kernel, its ONNX emitter (exhaustive tables of the same kernels where the
input grid is small: :func:`shift_exp_table`, :func:`shiftgelu_requant_table`) and the classmethods the
converters call to build it from calibrated quantities.
"""

from __future__ import annotations

import numpy as np
import torch

from vitq_plugins.core.errors import VitqError
from vitq_plugins.intexec.extension import LN_BOUND
from vitq_plugins.intexec.extension import MAX_TABLE_SPAN
from vitq_plugins.intexec.extension import AttentionSite
from vitq_plugins.intexec.extension import GeluForm
from vitq_plugins.intexec.extension import GeluSite
from vitq_plugins.intexec.extension import LayerNormBuild
from vitq_plugins.intexec.extension import LayerNormForm
from vitq_plugins.intexec.extension import LayerNormSite
from vitq_plugins.intexec.extension import OnnxGraph
from vitq_plugins.intexec.extension import QParams
from vitq_plugins.intexec.extension import Requant
from vitq_plugins.intexec.extension import SoftmaxForm
from vitq_plugins.intexec.extension import code_span
from vitq_plugins.intexec.extension import floor_log2
from vitq_plugins.intexec.extension import grid_span
from vitq_plugins.intexec.extension import isqrt
from vitq_plugins.intexec.extension import layernorm_bias
from vitq_plugins.intexec.extension import layernorm_scale
from vitq_plugins.intexec.extension import matmul_int
from vitq_plugins.intexec.extension import max_subtracted_table
from vitq_plugins.intexec.extension import register_integer_form
from vitq_plugins.intexec.extension import requant
from vitq_plugins.intexec.extension import table_at_v
from vitq_plugins.intexec.extension import to_u8
from vitq_plugins.ops import grid_refinement
from vitq_plugins.ops._intmath import isqrt_newton
from vitq_plugins.papers.ivit.fineexp import exp_constants
from vitq_plugins.papers.ivit.fineexp import pow2_table
from vitq_plugins.papers.ivit.fineexp import shift_exp_fine
from vitq_plugins.papers.ivit.finegelu import gelu_constants
from vitq_plugins.papers.ivit.finegelu import shiftgelu_fine_unit
from vitq_plugins.papers.ivit.ilayernorm import round_div_half_even
from vitq_plugins.papers.ivit.shift import GELU_SIGMOID_FACTOR
from vitq_plugins.papers.ivit.shift import Division
from vitq_plugins.papers.ivit.shift import exp_unit
from vitq_plugins.papers.ivit.shift import shift_exp_unit
from vitq_plugins.papers.ivit.shift import shiftgelu_unit
from vitq_plugins.papers.ivit.shift import shiftmax_unit
from vitq_plugins.papers.ivit.shiftlog import LOG_FRAC
from vitq_plugins.papers.ivit.shiftlog import code_frac_bits
from vitq_plugins.papers.ivit.shiftlog import code_table
from vitq_plugins.papers.ivit.shiftlog import code_thresholds
from vitq_plugins.papers.ivit.shiftlog import log2_dequant
from vitq_plugins.papers.ivit.shiftlog import shiftmax_log2_unit

__all__ = [
    "ILayerNorm",
    "ShiftGELU",
    "ShiftGELUFine",
    "Shiftmax",
    "ShiftmaxLog2",
    "ilayernorm_int",
    "onnx_log2_codes",
    "onnx_shift_exp_fine",
    "onnx_normalise",
    "onnx_shift_exp",
    "onnx_shiftgelu",
    "onnx_shiftmax",
    "shift_exp_table",
    "shiftgelu_requant_table",
]

_INT31_MAX = 2**31 - 1


def _division(name: str) -> Division:
    if name == "official":
        return "official"
    if name == "exact":
        return "exact"
    raise ValueError(f"division must be 'official' or 'exact', got {name!r}")


# --- kernels and tables -----------------------------------------------------------------------------------
def ilayernorm_int(x_int: torch.Tensor, bias_int: torch.Tensor, sqrt_iters: int = 10) -> torch.Tensor:
    """I-LayerNorm over the last dim with a precomputed integer bias (``sqrt_mode="exact"``).

    Args:
        x_int: integer input ``(..., C)``, ``|x| < 2^31``.
        bias_int: ``extension.layernorm_bias`` ``(C,)``.
        sqrt_iters: Newton steps of ``isqrt_newton`` (``init="auto"``).

    Returns:
        int64 ``(..., C)``, scale ``extension.layernorm_scale``; ``|y| <= 2^31 + max|bias_int|``.
    """
    c = int(x_int.shape[-1])
    x = x_int.to(torch.int64)
    mean = round_div_half_even(x.sum(dim=-1, keepdim=True), c)
    y = x - mean
    var = (y * y).sum(dim=-1, keepdim=True)
    std = isqrt_newton(var, sqrt_iters, init="auto")
    factor = torch.div(torch.full_like(std, _INT31_MAX), std.clamp(min=1), rounding_mode="floor")
    y = torch.div(y * factor, 2, rounding_mode="floor")
    return y + bias_int


def shift_exp_table(rq_logits: Requant, x0: int, n: int, in_shift: int = 0) -> torch.Tensor | None:
    """Shiftmax's exponential of ``d = x - max(x)`` for every ``d`` in ``[-span, 0]`` (int64).

    Entry ``0`` holds ``d = 0`` and entry ``span + 1 - k`` holds ``d = -k``, so ``table[d]`` with Python's (and
    ONNX ``Gather``'s) negative indexing is ``shift_exp_unit(d << in_shift, x0, n, cap=2^31 - 1)`` (``in_shift``:
    a refined coarse grid, ``Shiftmax.in_shift``). ``None`` when the logit grid is unbounded or wider than
    :data:`MAX_TABLE_SPAN`.
    """
    return max_subtracted_table(rq_logits, in_shift, lambda d: shift_exp_unit(d, x0, n, cap=_INT31_MAX))


def shiftgelu_requant_table(
    rq_gelu: Requant, rq_out: Requant, x0: int, n: int, out_bits: int, division: str, in_shift: int = 0
) -> tuple[torch.Tensor, int, int] | None:
    """ShiftGELU then ``rq_out`` as a 2-D table over (element, row maximum), flattened.

    Entry ``(a - lo) * width + (m - lo)`` is the uint8 code ``rq_out(shiftgelu(a | row max m))`` for centered
    GELU-input codes ``lo <= a <= m <= hi`` (entries with ``a > m`` cannot occur and hold the ``m = a`` value);
    ShiftGELU takes ``[a, m] << in_shift`` (a refined coarse grid, ``ShiftGELU.in_shift``).

    Returns:
        ``(table (uint8), lo, width)``, or ``None`` when a grid is unbounded, wider than
        :data:`MAX_TABLE_SPAN`, the output is not uint8 or its rescale is per channel.
    """
    span = code_span(rq_gelu)
    if span is None or span > MAX_TABLE_SPAN or not rq_out.do_clamp or rq_out.pre is not None:
        return None
    if rq_out.mantissa.numel() != 1 or rq_out.qmin < 0 or rq_out.qmax > 255:
        return None
    lo = rq_gelu.qmin - rq_gelu.zero_point
    v = torch.arange(lo, lo + span + 1, dtype=torch.int64)
    a = v.view(-1, 1).expand(-1, v.numel())
    m = torch.maximum(a, v.view(1, -1))
    rows = torch.stack([a, m], dim=-1) << in_shift  # a row [a, m] has maximum m: the kernel's stabiliser
    y = shiftgelu_unit(rows, x0, n=n, out_bits=out_bits, division=division)[..., 0]  # type: ignore[arg-type]
    codes = (rq_out.raw(y) + rq_out.zero_point).clamp(rq_out.qmin, rq_out.qmax)
    return codes.reshape(-1).to(torch.uint8), lo, int(v.numel())


# --- ONNX emitters ------------------------------------------------------------------------------------
def onnx_shift_exp(g: OnnxGraph, x: str, x0: int, n: int, cap: int) -> str:
    """``papers.ivit.shift.shift_exp_unit``."""
    x = g.op("Sub", g.op("Add", x, g.shr(x, 1)), g.shr(x, 4))
    x = g.op("Max", x, g.const(n * x0))
    q = g.floor_div(x, g.const(x0))
    r = g.op("Sub", x, g.op("Mul", g.const(x0), q))
    base = g.op("Sub", r, g.const(2 * x0))
    sh = g.op("Sub", g.const(n), q)
    shift = g.op("Max", g.op("Sub", sh, g.const(1)), g.const(0))
    s = g.op("Min", shift, g.const(62))
    limit = g.shl_u(g.const(cap), s, "RIGHT")
    fits = g.op(
        "And",
        g.op("LessOrEqual", base, limit),
        g.op("Or", g.op("LessOrEqual", shift, g.const(62)), g.op("Equal", base, g.const(0))),
    )
    shifted = g.shl_u(g.where(fits, base, g.const(0)), s, "LEFT")
    up = g.where(fits, g.op("Min", shifted, g.const(cap)), g.const(cap))
    alt = g.op("Min", g.shr(base, 1), g.const(cap))
    return g.where(g.op("GreaterOrEqual", sh, g.const(1)), up, alt)


def onnx_normalise(g: OnnxGraph, num: str, den: str, out_bits: int, division: str) -> str:
    """``papers.ivit.shift._normalise`` (``official``: truncated reciprocal; ``exact``: one floor division)."""
    den = g.clamp(den, 1, _INT31_MAX)
    if division == "exact":
        return g.floor_div(g.op("Mul", num, g.const(2 ** (out_bits - 1))), den)
    factor = g.div_pos(g.const(_INT31_MAX), den)
    return g.shr(g.op("Mul", num, factor), 32 - out_bits)


def onnx_shiftmax(
    g: OnnxGraph,
    x: str,
    x0: int,
    n: int,
    out_bits: int,
    division: str,
    table: torch.Tensor | None = None,
    in_shift: int = 0,
) -> str:
    """Shiftmax of logit codes (``<< in_shift``); with ``table`` (:func:`shift_exp_table`,
    built with the same shift) the exponential is one ``Gather`` indexed by ``x - max(x)`` (negative indices
    count from the table's end)."""
    x = g.op("Sub", x, g.reduce_max(x))
    if table is not None:
        e = g.op("Gather", g.const(table), x, axis=0)
    else:
        e = onnx_shift_exp(g, g.times_pow2(x, in_shift), x0, n, _INT31_MAX)
    return onnx_normalise(g, e, g.reduce_sum(e), out_bits, division)


def onnx_shift_exp_fine(g: OnnxGraph, x: str, x0: int, n: int, table: torch.Tensor) -> str:
    """``papers.ivit.fineexp.shift_exp_fine`` of max-subtracted codes ``x``."""
    x = g.op(
        "Add", g.op("Sub", g.op("Add", x, g.shr(x, 1)), g.shr(x, 4)), g.op("Add", g.shr(x, 8), g.shr(x, 10))
    )
    x = g.op("Min", g.op("Max", x, g.const(n * x0)), g.const(0))
    q = g.floor_div(x, g.const(x0))
    r = g.op("Sub", x, g.op("Mul", q, g.const(x0)))
    t = g.op("Gather", g.const(table), g.op("Neg", r), axis=0)
    return g.shl_u(t, g.op("Sub", g.const(n), q), "LEFT")


def onnx_log2_codes(g: OnnxGraph, e: str, bits: int) -> str:
    """``papers.ivit.shiftlog.log2_codes`` of the int64 exponentials ``e`` (last axis)."""
    total = g.reduce_sum(e)
    safe = g.op("Max", e, g.const(1))
    ratio = g.op("Max", g.div_pos(g.shl_u(total, g.const(LOG_FRAC), "LEFT"), safe), g.const(1))
    t = floor_log2(g, ratio)
    down = g.shl_u(ratio, g.op("Max", g.op("Sub", t, g.const(31)), g.const(0)), "RIGHT")
    up = g.shl_u(ratio, g.op("Max", g.op("Sub", g.const(31), t), g.const(0)), "LEFT")
    mant = g.where(g.op("GreaterOrEqual", t, g.const(31)), down, up)
    k = g.op("Mul", g.op("Sub", t, g.const(LOG_FRAC)), g.const(2 ** code_frac_bits(bits)))
    for thr in code_thresholds(bits):
        k = g.op("Add", k, g.b2i(g.op("GreaterOrEqual", mant, g.const(thr))))
    zero = 2**bits
    under = g.op("Or", g.op("Equal", e, g.const(0)), g.op("GreaterOrEqual", k, g.const(zero)))
    return g.where(under, g.const(zero), g.op("Max", k, g.const(0)))


def onnx_shiftgelu(g: OnnxGraph, x: str, x0: int, n: int, out_bits: int, division: str) -> str:
    """``papers.ivit.shift.shiftgelu_unit`` (row-max stabiliser)."""
    x_max = g.reduce_max(x)
    e = onnx_shift_exp(g, g.op("Sub", x, x_max), x0, n, _INT31_MAX)
    e_max = onnx_shift_exp(g, g.op("Neg", x_max), x0, n, _INT31_MAX)
    return g.op("Mul", x, onnx_normalise(g, e, g.op("Add", e, e_max), out_bits, division))


# --- forms ------------------------------------------------------------------------------------------------
@register_integer_form("layernorm", "ilayernorm")
class ILayerNorm(LayerNormForm):
    """I-LayerNorm (eq. 18): :func:`ilayernorm_int` with a precomputed integer bias (output scale
    ``extension.layernorm_scale(gamma)``)."""

    bias_int: torch.Tensor

    def __init__(self, bias_int: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("bias_int", bias_int.to(torch.int64))

    @classmethod
    def _build(cls, site: LayerNormSite, in_zero_point: int) -> LayerNormBuild:
        assert site.weight is not None and site.bias is not None
        form = cls(layernorm_bias(site.weight, site.bias))
        return LayerNormBuild(form, layernorm_scale(site.weight).double(), in_zero_point=in_zero_point)

    @classmethod
    def from_brevitas(cls, site: LayerNormSite) -> LayerNormBuild:
        """The fake-quant I-LayerNorm runs on the input codes themselves."""
        return cls._build(site, 0)

    @classmethod
    def from_fx(cls, site: LayerNormSite) -> LayerNormBuild:
        """On the centred input codes ``x - z`` (as the graph's kernel sees them: I-LayerNorm rounds the mean half
        to even, which an odd zero point would flip on ties)."""
        if site.in_grid is None:
            raise VitqError(f"{site.where}: I-LayerNorm needs a per-tensor quantized input")
        return cls._build(site, int(site.in_grid.zero_point))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ilayernorm_int(x, self.bias_int)

    def out_bound(self) -> int:
        return LN_BOUND + int(self.bias_int.abs().max())

    def emit_onnx(self, g: OnnxGraph, x: str, channels: int) -> str:
        s = g.reduce_sum(x)
        c = g.const(channels)
        q = g.floor_div(s, c)
        r2 = g.op("Mul", g.const(2), g.op("Sub", s, g.op("Mul", q, c)))
        odd = g.op("Equal", g.mod(q, g.const(2)), g.const(1))
        up = g.op("Or", g.op("Greater", r2, c), g.op("And", g.op("Equal", r2, c), odd))
        y = g.op("Sub", x, g.op("Add", q, g.b2i(up)))
        var = g.reduce_sum(g.op("Mul", y, y))
        std = isqrt(g, var)
        factor = g.div_pos(g.const(_INT31_MAX), g.op("Max", std, g.const(1)))
        y = g.shr(g.op("Mul", y, factor), 1)
        return g.op("Add", y, g.const(self.bias_int))


@register_integer_form("softmax", "shiftmax")
class Shiftmax(SoftmaxForm):
    """Shiftmax (eqs. 9-14) of ``rq_logits(scores) << in_shift``, then ``P @ v``.

    Args:
        rq_logits: requant of the exact scores to the Shiftmax input grid.
        x0: ``I0 = floor(-1 / S)`` of the (refined) logit scale; ``n``, ``out_bits``, ``division``: Shiftmax's.
        in_shift: ``k`` of a coarse logit grid refined for the kernel (``ops.grid_refinement``): Shiftmax takes
            the codes ``<< k``, and ``x0`` belongs to the scale ``S / 2^k``.

    ``P`` has scale ``2^-(out_bits - 1)``, so the result's scale is ``2^-(out_bits - 1) S_v``.
    """

    def __init__(
        self,
        rq_logits: Requant,
        x0: int,
        n: int,
        out_bits: int,
        division: str = "official",
        in_shift: int = 0,
    ) -> None:
        super().__init__()
        self.rq_logits = rq_logits
        self.x0, self.n, self.out_bits = int(x0), int(n), int(out_bits)
        self.division = _division(division)
        self.in_shift = int(in_shift)

    @classmethod
    def from_brevitas(cls, site: AttentionSite) -> tuple[Shiftmax, Requant]:
        """Shiftmax on the softmax quantizer's logit grid (refined if coarse, ``ops.grid_refinement``)."""
        assert site.grid is not None
        sm = site.module
        gq, gk, gv = site.gq, site.gk, site.gv
        gl = site.grid(sm.quant.act_quant, site.where)
        rq_logits = Requant(gq.scale * gk.scale / gl.scale, gl, grid_span(gq) * grid_span(gk) * site.head_dim)
        k_in = grid_refinement(gl.scale, 1.0)  # a coarse logit grid runs Shiftmax on codes << k
        ob, n, x0 = int(sm.out_bits), int(sm.n), exp_unit(gl.scale / 2**k_in)
        g_o = site.out_grid
        rq_out = Requant(
            gv.scale * 2.0 ** -(ob - 1) / g_o.scale, g_o, 2 ** (ob - 1) * grid_span(gv) * site.tokens
        )
        division = str(getattr(sm, "division", "official"))
        return cls(rq_logits, x0, n, ob, division, in_shift=k_in), rq_out

    @classmethod
    def from_fx(cls, site: AttentionSite) -> tuple[Shiftmax, Requant]:
        """Shiftmax of the logit container's codes; its output container must be the exact ``2^-(b-1)`` grid."""
        assert site.rq_logits is not None and site.logits_grid is not None
        sm = site.module
        ob, n = int(sm.observed.inner.bits), int(sm.observed.inner.n)
        if sm.out_scale != 2.0 ** -(ob - 1) or sm.out_zero_point != 0:
            raise VitqError(
                f"{site.where}: Shiftmax output container ({sm.out_scale}, {sm.out_zero_point}) is not "
                f"the exact 2^-{ob - 1} grid"
            )
        gv, g_o = site.gv, site.out_grid
        rq_out = Requant(
            2.0 ** -(ob - 1) * gv.scale / g_o.scale, g_o, 2 ** (ob - 1) * grid_span(gv) * site.tokens
        )
        s_l = float(site.logits_grid.scale)
        k_in = grid_refinement(s_l, 1.0)  # a coarse logit grid: Shiftmax on codes << k
        return cls(site.rq_logits, exp_unit(s_l / 2**k_in), n, ob, in_shift=k_in), rq_out

    def forward(self, scores: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        logits = self.rq_logits(scores) << self.in_shift
        p = shiftmax_unit(logits, self.x0, n=self.n, out_bits=self.out_bits, division=self.division)
        if self.recorder.count:
            self._count_sum(logits)
        return p @ v

    def _count_sum(self, logits: torch.Tensor) -> None:
        e = shift_exp_unit(logits - logits.amax(dim=-1, keepdim=True), self.x0, self.n, cap=_INT31_MAX)
        self.recorder.counters["softmax_sum"] += int((e.sum(dim=-1) >= _INT31_MAX).sum())

    def check_onnx(self) -> None:
        if self.out_bits > 9:
            raise VitqError("ONNX export needs Shiftmax outputs of <= 9 bits (uint8 probabilities)")

    def emit_onnx(self, g: OnnxGraph, scores: str, v: str, v_zero_point: int, tokens: int) -> str:
        logits = requant(g, scores, self.rq_logits)
        table = shift_exp_table(self.rq_logits, self.x0, self.n, self.in_shift)
        p = onnx_shiftmax(g, logits, self.x0, self.n, self.out_bits, self.division, table, self.in_shift)
        return matmul_int(g, to_u8(g, p), to_u8(g, v), 0, v_zero_point)


@register_integer_form("softmax", "shiftmax_log2")
class ShiftmaxLog2(SoftmaxForm):
    """Shiftmax's exponential of ``rq_logits(scores) << in_shift``, its log2 codes, then ``table[code] @ v``.

    Args:
        rq_logits: requant of the exact scores to the logit grid of the kernel.
        x0: ``I0`` of the refined logit scale (``papers.ivit.shiftlog.exp_constants``); ``n``: the exponential's
            octaves; ``in_shift``: the refinement ``k`` (the kernel takes the codes ``<< k``).
        bits: the log2 code width ``b``.
        table: the integer probability of each code ``0..2^b``: ``shiftlog.code_table`` (Brevitas, scale
            ``2^-F``) or the centred codes of the FX output container.
    """

    table: torch.Tensor
    pow2: torch.Tensor

    def __init__(
        self, rq_logits: Requant, x0: int, n: int, bits: int, table: torch.Tensor, in_shift: int = 0
    ) -> None:
        super().__init__()
        self.rq_logits = rq_logits
        self.x0, self.n, self.bits, self.in_shift = int(x0), int(n), int(bits), int(in_shift)
        self.register_buffer("table", table.to(torch.int64))
        self.register_buffer("pow2", pow2_table(self.x0, self.n))

    @classmethod
    def from_brevitas(cls, site: AttentionSite) -> tuple[ShiftmaxLog2, Requant]:
        """On the softmax quantizer's logit grid; probabilities ``shiftlog.code_table`` at scale ``2^-F``."""
        assert site.grid is not None
        sm = site.module
        gl = site.grid(sm.quant.act_quant, site.where)
        rq_logits = Requant(
            site.gq.scale * site.gk.scale / gl.scale,
            gl,
            grid_span(site.gq) * grid_span(site.gk) * site.head_dim,
        )
        k_in, x0 = exp_constants(gl.scale)
        bits, n = int(sm.out_bits), int(sm.n)
        table, frac = code_table(bits)
        g_o, gv = site.out_grid, site.gv
        rq_out = Requant(gv.scale * 2.0**-frac / g_o.scale, g_o, 2**frac * grid_span(gv) * site.tokens)
        return cls(rq_logits, x0, n, bits, table, in_shift=k_in), rq_out

    @classmethod
    def from_fx(cls, site: AttentionSite) -> tuple[ShiftmaxLog2, Requant]:
        """On the logit container's codes; the probability of each code quantized onto the output container."""
        assert site.rq_logits is not None and site.logits_grid is not None
        sm = site.module
        bits, n = int(sm.observed.inner.bits), int(sm.observed.inner.n)
        probs = log2_dequant(torch.arange(2**bits + 1), bits)
        container = torch.quantize_per_tensor(probs, sm.out_scale, sm.out_zero_point, torch.quint8)
        table = container.int_repr().to(torch.int64) - int(sm.out_zero_point)
        gv, g_o = site.gv, site.out_grid
        span_p = max(int(table.abs().max()), 1)
        rq_out = Requant(sm.out_scale * gv.scale / g_o.scale, g_o, span_p * grid_span(gv) * site.tokens)
        k_in, x0 = exp_constants(float(site.logits_grid.scale))
        return cls(site.rq_logits, x0, n, bits, table, in_shift=k_in), rq_out

    def _exp(self, d: torch.Tensor) -> torch.Tensor:
        return shift_exp_fine(d << self.in_shift, self.x0, self.n, self.pow2)

    def forward(self, scores: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        logits = self.rq_logits(scores) << self.in_shift
        codes = shiftmax_log2_unit(logits, self.x0, self.pow2, n=self.n, bits=self.bits)
        return self.table[codes] @ v

    def emit_onnx(self, g: OnnxGraph, scores: str, v: str, v_zero_point: int, tokens: int) -> str:
        logits = requant(g, scores, self.rq_logits)
        d = g.op("Sub", logits, g.reduce_max(logits))
        exp_table = max_subtracted_table(self.rq_logits, 0, self._exp)
        if exp_table is not None:
            e = g.op("Gather", g.const(exp_table), d, axis=0)
        else:
            e = onnx_shift_exp_fine(g, g.times_pow2(d, self.in_shift), self.x0, self.n, self.pow2)
        codes = onnx_log2_codes(g, e, self.bits)
        return table_at_v(g, self.table, codes, v, v_zero_point, tokens)


@register_integer_form("gelu", "shiftgelu")
class ShiftGELU(GeluForm):
    """``rq_fc2(ShiftGELU((rq_gelu(acc) - z) << in_shift))`` (eqs. 15-17).

    Args:
        rq_gelu: requant of fc1's accumulator to the ShiftGELU input grid.
        x0: ``I0`` of ``1.702 S / 2^k``; ``n``, ``out_bits``, ``division``: ShiftGELU's.
        rq_fc2: requant of the output (scale ``S / 2^k 2^-(out_bits - 1)``) to fc2's input grid.
        in_shift: ``k`` of a coarse GELU-input grid refined for ShiftGELU (it takes the codes ``<< k``).
    """

    def __init__(
        self,
        rq_gelu: Requant,
        x0: int,
        n: int,
        out_bits: int,
        rq_fc2: Requant,
        division: str = "official",
        in_shift: int = 0,
    ) -> None:
        super().__init__()
        self.rq_gelu, self.rq_fc2 = rq_gelu, rq_fc2
        self.x0, self.n, self.out_bits = int(x0), int(n), int(out_bits)
        self.division = _division(division)
        self.in_shift = int(in_shift)

    @classmethod
    def from_brevitas(cls, site: GeluSite) -> tuple[ShiftGELU, QParams]:
        """ShiftGELU on the GELU quantizer's grid ``in_grid``, then the requant to fc2's input grid ``out_grid``."""
        act, gg, g2 = site.module, site.in_grid, site.out_grid
        rq_gelu = Requant(site.acc_scale / gg.scale, gg, site.acc_bound, frac=site.acc_frac)
        ob = int(act.out_bits)
        k_in = grid_refinement(gg.scale * GELU_SIGMOID_FACTOR, 1.0)  # ShiftGELU on codes << k
        s_in = gg.scale / 2**k_in
        rq_fc2 = Requant(s_in * 2.0 ** -(ob - 1) / g2.scale, g2, (grid_span(gg) << k_in) * 2 ** (ob - 1))
        x0 = exp_unit(s_in * GELU_SIGMOID_FACTOR)
        division = str(getattr(act, "division", "official"))
        return cls(rq_gelu, x0, int(act.n), ob, rq_fc2, division, k_in), g2

    @classmethod
    def from_fx(cls, site: GeluSite) -> tuple[ShiftGELU, QParams]:
        """ShiftGELU of fc1's output codes, its output container, then fc2's input grid (``site.to_fc2``)."""
        assert site.rq_in is not None and site.to_fc2 is not None
        act, g_fc1, g_act = site.module, site.in_grid, site.out_grid
        ob, n = int(act.observed.inner.bits), int(act.observed.inner.n)
        k_in = grid_refinement(g_fc1.scale * GELU_SIGMOID_FACTOR, 1.0)  # ShiftGELU on codes << k
        s_in = g_fc1.scale / 2**k_in
        rq_act = Requant(
            s_in * 2.0 ** -(ob - 1) / g_act.scale, g_act, (grid_span(g_fc1) << k_in) * 2 ** (ob - 1)
        )
        rq_fc2 = site.to_fc2(rq_act)
        x0 = exp_unit(s_in * GELU_SIGMOID_FACTOR)
        return cls(site.rq_in, x0, n, ob, rq_fc2, in_shift=k_in), rq_fc2.out

    def forward(self, acc: torch.Tensor) -> torch.Tensor:
        g = (self.rq_gelu(acc) - self.rq_gelu.zero_point) << self.in_shift
        y = shiftgelu_unit(g, self.x0, n=self.n, out_bits=self.out_bits, division=self.division)
        out: torch.Tensor = self.rq_fc2(y)
        return out

    def emit_onnx(self, g: OnnxGraph, acc: str) -> tuple[str, bool]:
        a = requant(g, acc, self.rq_gelu, centered=True)
        lut = shiftgelu_requant_table(
            self.rq_gelu, self.rq_fc2, self.x0, self.n, self.out_bits, self.division, self.in_shift
        )
        if (
            lut is not None
        ):  # ShiftGELU + requant to fc2's grid: one Gather at (a - lo) * width + (max(a) - lo)
            table, lo, width = lut
            row = g.op("Add", g.reduce_max(a), g.const(-lo * (width + 1)))
            idx = g.op("Add", g.op("Mul", a, g.const(width)), row)
            return g.op("Gather", g.const(table, np.uint8), idx, axis=0), True
        y = onnx_shiftgelu(g, g.times_pow2(a, self.in_shift), self.x0, self.n, self.out_bits, self.division)
        return requant(g, y, self.rq_fc2), False


@register_integer_form("gelu", "shiftgelu_fine")
class ShiftGELUFine(GeluForm):
    """``rq_fc2(shiftgelu_fine((rq_gelu(acc) - z) << in_shift))`` (``papers.ivit.finegelu``).

    Args:
        rq_gelu: requant of fc1's accumulator to the GELU input grid ``S``.
        x0: ``I0`` of ``1.702 S / 2^k`` (``finegelu.gelu_constants``); ``n``, ``out_bits``: the kernel's.
        rq_fc2: requant of the output (scale ``S 2^-(k + out_bits - 1)``) to fc2's input grid.
        in_shift: the refinement ``k`` (the kernel takes the codes ``<< k``).
    """

    pow2: torch.Tensor

    def __init__(
        self, rq_gelu: Requant, x0: int, n: int, out_bits: int, rq_fc2: Requant, in_shift: int
    ) -> None:
        super().__init__()
        self.rq_gelu, self.rq_fc2 = rq_gelu, rq_fc2
        self.x0, self.n, self.out_bits, self.in_shift = int(x0), int(n), int(out_bits), int(in_shift)
        self.register_buffer("pow2", pow2_table(self.x0, self.n))

    @staticmethod
    def _rq_out(s_in: float, grid: QParams, span: int, k: int, ob: int) -> Requant:
        return Requant(s_in * 2.0 ** -(k + ob - 1) / grid.scale, grid, (span << k) * 2 ** (ob - 1))

    @classmethod
    def from_brevitas(cls, site: GeluSite) -> tuple[ShiftGELUFine, QParams]:
        """On the GELU quantizer's grid ``in_grid``, then the requant to fc2's input grid ``out_grid``."""
        act, gg, g2 = site.module, site.in_grid, site.out_grid
        rq_gelu = Requant(site.acc_scale / gg.scale, gg, site.acc_bound, frac=site.acc_frac)
        ob, n = int(act.out_bits), int(act.n)
        k, x0 = gelu_constants(gg.scale)
        rq_fc2 = cls._rq_out(gg.scale, g2, grid_span(gg), k, ob)
        return cls(rq_gelu, x0, n, ob, rq_fc2, k), g2

    @classmethod
    def from_fx(cls, site: GeluSite) -> tuple[ShiftGELUFine, QParams]:
        """On fc1's output codes, its output container, then fc2's input grid (``site.to_fc2``)."""
        assert site.rq_in is not None and site.to_fc2 is not None
        act, g_fc1, g_act = site.module, site.in_grid, site.out_grid
        ob, n = int(act.observed.inner.bits), int(act.observed.inner.n)
        k, x0 = gelu_constants(g_fc1.scale)
        rq_fc2 = site.to_fc2(cls._rq_out(g_fc1.scale, g_act, grid_span(g_fc1), k, ob))
        return cls(site.rq_in, x0, n, ob, rq_fc2, k), rq_fc2.out

    def _kernel(self, centred: torch.Tensor) -> torch.Tensor:
        return shiftgelu_fine_unit(
            centred << self.in_shift, self.x0, self.pow2, n=self.n, out_bits=self.out_bits
        )

    def forward(self, acc: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.rq_fc2(self._kernel(self.rq_gelu(acc) - self.rq_gelu.zero_point))
        return out

    def _table(self) -> tuple[torch.Tensor, int] | None:
        """The uint8 fc2 code of every centred GELU-input code, and the lowest code (``None``: no table)."""
        span, rq = code_span(self.rq_gelu), self.rq_fc2
        if span is None or span > MAX_TABLE_SPAN or not rq.do_clamp or rq.pre is not None:
            return None
        if rq.mantissa.numel() != 1 or rq.qmin < 0 or rq.qmax > 255:
            return None
        lo = self.rq_gelu.qmin - self.rq_gelu.zero_point
        y = self._kernel(torch.arange(lo, lo + span + 1, dtype=torch.int64))
        return (rq.raw(y) + rq.zero_point).clamp(rq.qmin, rq.qmax).to(torch.uint8), lo

    def emit_onnx(self, g: OnnxGraph, acc: str) -> tuple[str, bool]:
        a = requant(g, acc, self.rq_gelu, centered=True)
        lut = self._table()
        if lut is not None:
            table, lo = lut
            return g.op("Gather", g.const(table, np.uint8), g.op("Sub", a, g.const(lo)), axis=0), True
        x = g.times_pow2(a, self.in_shift)
        m = g.op("Max", x, g.const(0))
        e_x = onnx_shift_exp_fine(g, g.op("Sub", x, m), self.x0, self.n, self.pow2)
        e_m = onnx_shift_exp_fine(g, g.op("Neg", m), self.x0, self.n, self.pow2)
        num = g.shl_u(e_x, g.const(self.out_bits - 1), "LEFT")
        sigma = g.floor_div(num, g.op("Add", e_x, e_m))
        return requant(g, g.op("Mul", x, sigma), self.rq_fc2), False
