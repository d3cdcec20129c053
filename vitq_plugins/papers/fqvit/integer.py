"""FQ-ViT's integer forms (Lin et al., IJCAI 2022, arXiv 2111.13824) for the integer program of :mod:`vitq_plugins.intexec`.

Registered with :func:`vitq_plugins.intexec.extension.register_integer_form` under the quantizer names:

* ``("layernorm", "pts")``: :class:`PtsLayerNorm`, FQ-ViT's integer LayerNorm on Power-of-Two-Factor codes
  (Sec. 3.2, eqs. 9-10; ``papers.fqvit.pts.pts_int_layernorm``) derived with integer ops only
  (:func:`pts_layernorm_int`); where the fake-quant model runs a float LayerNorm on PTS inputs the
  converter uses the generic ``extension.ExactLayerNorm`` on the aligned codes instead;
* ``("softmax", "lis")``: Log-Int-Softmax (Sec. 3.3, eqs. 11-16) and its ``attn @ v``: :class:`LisLogSoftmax`
  (log2 codes of a table exponential of the exact scores, rounded in the log domain like the fake-quant
  ``round(-log2 p)``; ``attn @ v`` with ``2^(F - code)`` weights) and :class:`LisSoftmax` (the same codes,
  :func:`lis_table_codes`, of the FX wing's requantized logits, then a table of the quantized ``2^-code``);
* ``("grid", "pts")``: :class:`PtsGrid`, the per-channel ``s 2^alpha_c`` grid of a PTS activation quantizer.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from vitq_plugins.core.errors import VitqError
from vitq_plugins.intexec.extension import EXP_FRAC_BITS
from vitq_plugins.intexec.extension import EXP_LO_BITS
from vitq_plugins.intexec.extension import AttentionSite
from vitq_plugins.intexec.extension import ExactLayerNorm
from vitq_plugins.intexec.extension import LayerNormBuild
from vitq_plugins.intexec.extension import LayerNormForm
from vitq_plugins.intexec.extension import LayerNormSite
from vitq_plugins.intexec.extension import OnnxGraph
from vitq_plugins.intexec.extension import QParams
from vitq_plugins.intexec.extension import Requant
from vitq_plugins.intexec.extension import SoftmaxForm
from vitq_plugins.intexec.extension import exp_tables
from vitq_plugins.intexec.extension import floor_log2
from vitq_plugins.intexec.extension import grid_span
from vitq_plugins.intexec.extension import isqrt
from vitq_plugins.intexec.extension import layernorm_bias
from vitq_plugins.intexec.extension import layernorm_scale
from vitq_plugins.intexec.extension import max_subtracted_table
from vitq_plugins.intexec.extension import register_integer_form
from vitq_plugins.intexec.extension import requant
from vitq_plugins.intexec.extension import table_at_v
from vitq_plugins.intexec.extension import table_exp
from vitq_plugins.ops._intmath import floor_log2 as floor_log2_int
from vitq_plugins.ops._intmath import isqrt_newton
from vitq_plugins.ops._intmath import round_shift
from vitq_plugins.papers.fqvit.lis import iexp_unit
from vitq_plugins.papers.fqvit.lis import lis_codes
from vitq_plugins.papers.fqvit.lis import lis_dequant

__all__ = [
    "PTS_BIAS_FRAC",
    "PTS_DIV_STEP",
    "PTS_DIV_STEPS",
    "PTS_SQRT_FRAC",
    "LisLogSoftmax",
    "LisSoftmax",
    "PtsGrid",
    "PtsLayerNorm",
    "iexp_table",
    "lis_frac",
    "lis_power_table",
    "lis_table_codes",
    "onnx_lis_log_codes",
    "onnx_pts_layernorm",
    "pts_layernorm_constants",
    "pts_layernorm_int",
]


def lis_frac(bits: int) -> int:
    """Fraction bits ``F`` of LIS probabilities ``2^(F - code)``: ``min(2^b - 1, 24)``."""
    return int(min(2**bits - 1, 24))


# --- kernels and tables -----------------------------------------------------------------------------------
#: fraction bits of ``sqrt(Q)`` in :func:`pts_layernorm_int` (``Q = (A 2^N)^2``) and of the bias constant
PTS_SQRT_FRAC = 23
PTS_BIAS_FRAC = 40
#: bits per step of the long division ``floor(Hm 2^u / D)`` (needs ``D < 2^(62 - 16)``) and its step count
PTS_DIV_STEP = 16
PTS_DIV_STEPS = 4


def pts_layernorm_int(
    x: torch.Tensor,
    sign: torch.Tensor,
    h_mant: torch.Tensor,
    h_exp: torch.Tensor,
    beta_fix: torch.Tensor,
    eps_int: int,
    mantissa_bits: int = 8,
) -> torch.Tensor:
    """``papers.fqvit.pts.pts_int_layernorm`` (before the zero point) with integer ops only.

    The reference derives, per token and channel, ``A = C gamma / (sqrt(D) S_out)``, ``N = clamp(mb - 1 -
    floor(log2 |A|), 0, 31)``, ``M = floor(|A| 2^N)`` and ``B = round((beta - S1 gamma / sqrt(D)) / S_out 2^N)``
    in float64; here ``Q = (A 2^N)^2 = H 2^(2N) / D`` with ``H = (C gamma / S_out)^2 = h_mant 2^-h_exp``
    (per channel, ``h_mant`` in ``[2^60, 2^61)``) is formed by an exact long division, ``sqrt(Q)`` to
    ``2^-23`` by an integer square root plus its first-order remainder, so ``M``, ``N`` and ``B`` differ from
    the float64 ones only where those lie within float64 precision of a rounding boundary.

    Args:
        x: aligned codes ``(x_q - zp) << (alpha_c - min alpha)`` ``(..., C)``, int64.
        sign: ``sign(gamma)`` ``(C,)``; ``beta_fix``: ``round(beta / S_out * C * 2^40)`` ``(C,)``.
        eps_int: the integer epsilon of the reference (``ceil(eps C^2 / s_min^2)``).

    Returns:
        int64 ``y`` (the reference's output before ``+ zero point`` and the clamp).
    """
    c = int(x.shape[-1])
    x = x.to(torch.int64)
    s1 = x.sum(dim=-1, keepdim=True)
    d = (c * (x * x).sum(dim=-1, keepdim=True) - s1 * s1 + eps_int).clamp(min=1)
    q = torch.div(h_mant, d, rounding_mode="floor")
    rem = h_mant - q * d
    lg = torch.div(floor_log2_int(q) - h_exp, 2, rounding_mode="floor")
    n = (mantissa_bits - 1 - lg).clamp(0, 31)
    p = (30 - lg - n).clamp(0, PTS_SQRT_FRAC)
    u = 2 * n + 2 * p - h_exp
    # floor(h_mant 2^u / d): a right shift of q for u <= 0, else a long division in 16-bit steps
    v = q >> (-u).clamp(min=0)
    left = u.clamp(min=0)
    for _ in range(PTS_DIV_STEPS):
        step = left.clamp(max=PTS_DIV_STEP)
        num = rem << step
        v = (v << step) + torch.div(num, d, rounding_mode="floor")
        rem = num - torch.div(num, d, rounding_mode="floor") * d
        left = left - step
    w = isqrt_newton(v, 10, init="auto")
    m = (w >> p).clamp(max=2**mantissa_bits - 1)
    r = v - w * w
    t = s1 * w + torch.div(s1 * r, 2 * w.clamp(min=1), rounding_mode="floor")
    sh = n + p - PTS_BIAS_FRAC
    b_sh = torch.where(
        sh >= 0,
        beta_fix * (torch.ones_like(sh) << sh.clamp(min=0)),
        torch.div(beta_fix, torch.ones_like(sh) << (-sh).clamp(min=0), rounding_mode="floor"),
    )
    den = c * (torch.ones_like(p) << p)
    b = torch.div(2 * (b_sh - sign * t) + den, 2 * den, rounding_mode="floor")
    return round_shift(sign * m * x + b, n, "half_even")


def pts_layernorm_constants(
    weight: torch.Tensor, bias: torch.Tensor, out_scale: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(sign, h_mant, h_exp, beta_fix)`` of :func:`pts_layernorm_int` (exact rationals, computed once).

    Raises:
        ValueError: a zero ``gamma`` or a ``beta / S_out`` too large for the fixed-point bias.
    """
    from fractions import Fraction

    c = int(weight.shape[-1])
    osc = Fraction(float(out_scale))
    sign, mant, exp, beta = [], [], [], []
    for g, b in zip(weight.detach().double().tolist(), bias.detach().double().tolist(), strict=True):
        if g == 0:
            raise ValueError("PTS LayerNorm with a zero gamma has no integer form here")
        h = (c * Fraction(g) / osc) ** 2
        e = h.numerator.bit_length() - h.denominator.bit_length()
        e = e if Fraction(2) ** e <= h else e - 1  # floor(log2 h)
        f = 60 - e
        hm = math.floor(h * Fraction(2) ** f)
        sign.append(1 if g > 0 else -1)
        mant.append(hm)
        exp.append(f)
        bf = round(Fraction(b) / osc * c * 2**PTS_BIAS_FRAC)
        if abs(bf) >= 2**61:
            raise ValueError(f"PTS LayerNorm bias / output scale too large ({float(b) / float(osc):.3g})")
        beta.append(bf)
    return (
        torch.tensor(sign, dtype=torch.int64),
        torch.tensor(mant, dtype=torch.int64),
        torch.tensor(exp, dtype=torch.int64),
        torch.tensor(beta, dtype=torch.int64),
    )


def lis_table_codes(
    logits: torch.Tensor, tables: tuple[torch.Tensor, torch.Tensor, int], bits: int, dim: int = -1
) -> torch.Tensor:
    """LIS codes ``round(-log2 p)`` of the softmax of integer logits at scale ``S`` (eq. 13, the float path
    ``papers.fqvit.lis.log2_quant``) in integer ops: ``extension.table_exp`` of ``max - x`` with ``tables`` =
    ``extension.exp_tables(S)``, then ``papers.fqvit.lis.lis_codes(rounding="log")``. Codes ``0..2^b``
    (``2^b``: underflow). Both wings' LIS and both integer forms compute these codes.
    """
    hi, lo, t_max = tables
    dist = logits.amax(dim=dim, keepdim=True) - logits
    return lis_codes(table_exp(dist, hi, lo, t_max), bits, dim, "log")


def lis_power_table(out_bits: int, frac: int) -> torch.Tensor:
    """LIS probabilities ``2^(frac - code)`` for codes ``0..2^b`` (0 above ``frac``, and for the underflow code)."""
    codes = torch.arange(0, 2**out_bits + 1, dtype=torch.int64)
    one = torch.ones_like(codes) << (frac - codes).clamp(min=0)
    return torch.where(codes <= frac, one, torch.zeros_like(codes))


def iexp_table(
    rq_logits: Requant, constants: tuple[int, int, int], n: int, in_shift: int = 0
) -> torch.Tensor | None:
    """``papers.fqvit.lis.iexp_unit(d << in_shift, constants, n)`` for every ``d`` in ``[-span, 0]``, indexed like
    ``papers.ivit.integer.shift_exp_table`` (``None`` on an unbounded or too wide logit grid)."""
    return max_subtracted_table(rq_logits, in_shift, lambda d: iexp_unit(d, constants, n))


# --- ONNX emitters ------------------------------------------------------------------------------------
def onnx_pts_layernorm(g: OnnxGraph, x: str, ln: PtsLayerNorm, channels: int) -> str:
    """:func:`pts_layernorm_int` (then clamped to ``+-2^31``) on aligned PTS codes."""
    hm, he = g.const(ln.h_mant), g.const(ln.h_exp)
    sign, one = g.const(ln.sign), g.const(1)
    s1 = g.reduce_sum(x)
    d = g.op("Mul", g.const(channels), g.reduce_sum(g.op("Mul", x, x)))
    d = g.op("Max", g.op("Add", g.op("Sub", d, g.op("Mul", s1, s1)), g.const(ln.eps_int)), one)
    q = g.div_pos(hm, d)
    rem = g.op("Sub", hm, g.op("Mul", q, d))
    lg = g.floor_div(g.op("Sub", floor_log2(g, q), he), g.const(2))
    n = g.clamp(g.op("Sub", g.const(7), lg), 0, 31)
    p = g.clamp(g.op("Sub", g.op("Sub", g.const(30), lg), n), 0, PTS_SQRT_FRAC)
    u = g.op("Sub", g.op("Mul", g.const(2), g.op("Add", n, p)), he)
    v = g.shl_u(q, g.op("Max", g.op("Neg", u), g.const(0)), "RIGHT")
    left = g.op("Max", u, g.const(0))
    for _ in range(PTS_DIV_STEPS):
        step = g.op("Min", left, g.const(PTS_DIV_STEP))
        num = g.shl_u(rem, step, "LEFT")
        qq = g.div_pos(num, d)
        v = g.op("Add", g.shl_u(v, step, "LEFT"), qq)
        rem = g.op("Sub", num, g.op("Mul", qq, d))
        left = g.op("Sub", left, step)
    w = isqrt(g, v)
    m = g.op("Min", g.shl_u(w, p, "RIGHT"), g.const(255))
    r = g.op("Sub", v, g.op("Mul", w, w))
    two_w = g.op("Mul", g.const(2), g.op("Max", w, one))
    t = g.op("Add", g.op("Mul", s1, w), g.floor_div(g.op("Mul", s1, r), two_w))
    sh = g.op("Sub", g.op("Add", n, p), g.const(PTS_BIAS_FRAC))
    beta = g.const(ln.beta)
    up = g.op("Mul", beta, g.shl_u(one, g.op("Max", sh, g.const(0)), "LEFT"))
    down = g.floor_div(beta, g.shl_u(one, g.op("Max", g.op("Neg", sh), g.const(0)), "LEFT"))
    b_sh = g.where(g.op("GreaterOrEqual", sh, g.const(0)), up, down)
    den = g.op("Mul", g.const(channels), g.shl_u(one, p, "LEFT"))
    num_b = g.op("Add", g.op("Mul", g.const(2), g.op("Sub", b_sh, g.op("Mul", sign, t))), den)
    b = g.floor_div(num_b, g.op("Mul", g.const(2), den))
    pv = g.op("Add", g.op("Mul", g.op("Mul", sign, m), x), b)
    pw = g.shl_u(one, n, "LEFT")
    qv = g.shr_var(pv, n)
    rr = g.op("Sub", pv, g.op("Mul", qv, pw))
    half = g.where(
        g.op("Greater", n, g.const(0)),
        g.shl_u(one, g.op("Max", g.op("Sub", n, one), g.const(0)), "LEFT"),
        g.const(0),
    )
    odd = g.op("Equal", g.mod(qv, g.const(2)), one)
    tie = g.op("And", g.op("And", g.op("Equal", rr, half), odd), g.op("Greater", n, g.const(0)))
    y = g.op("Add", qv, g.b2i(g.op("Or", g.op("Greater", rr, half), tie)))
    return g.clamp(y, -(2**31), 2**31)


def onnx_lis_log_codes(g: OnnxGraph, x: str, at: LisLogSoftmax | LisSoftmax) -> str:
    """``extension.table_exp`` + ``papers.fqvit.lis.lis_codes(rounding="log")``: codes ``0..2^b`` (``2^b``: underflow)."""
    t = g.op("Sub", g.reduce_max(x), x)
    tc = g.op("Min", g.op("Max", t, g.const(0)), g.const(at.t_max))
    lo_idx = g.mod(tc, g.const(2**EXP_LO_BITS))
    hi_idx = g.shl_u(tc, g.const(EXP_LO_BITS), "RIGHT")
    prod = g.op(
        "Mul",
        g.op("Gather", g.const(at.exp_hi), hi_idx, axis=0),
        g.op("Gather", g.const(at.exp_lo), lo_idx, axis=0),
    )
    e = g.shl_u(prod, g.const(EXP_FRAC_BITS), "RIGHT")
    e = g.where(g.op("GreaterOrEqual", tc, g.const(at.t_max)), g.const(0), e)
    total = g.reduce_sum(e)
    safe = g.op("Max", e, g.const(1))
    ratio = g.div_pos(g.shl_u(total, g.const(16), "LEFT"), safe)
    t2 = floor_log2(g, g.op("Max", ratio, g.const(1)))
    big = g.op("GreaterOrEqual", t2, g.const(31))
    down = g.shl_u(ratio, g.op("Max", g.op("Sub", t2, g.const(31)), g.const(0)), "RIGHT")
    up = g.shl_u(ratio, g.op("Max", g.op("Sub", g.const(31), t2), g.const(0)), "LEFT")
    mant = g.where(big, down, up)
    sqrt2 = g.const(round(2**0.5 * 2**31))
    k = g.op("Add", g.op("Sub", t2, g.const(16)), g.b2i(g.op("GreaterOrEqual", mant, sqrt2)))
    zero = 2**at.out_bits
    under = g.op("Or", g.op("Equal", e, g.const(0)), g.op("GreaterOrEqual", k, g.const(zero)))
    return g.where(under, g.const(zero), k)


# --- forms ------------------------------------------------------------------------------------------------
@register_integer_form("layernorm", "pts")
class PtsLayerNorm(LayerNormForm):
    """FQ-ViT's integer LayerNorm (eqs. 9-10) on aligned PTS codes: :func:`pts_layernorm_int` clamped to
    ``+-2^31``, on the scale of its output container (the converter's requant after it has ratio 1)."""

    sign: torch.Tensor
    h_mant: torch.Tensor
    h_exp: torch.Tensor
    beta: torch.Tensor

    def __init__(
        self, sign: torch.Tensor, h_mant: torch.Tensor, h_exp: torch.Tensor, beta: torch.Tensor, eps_int: int
    ) -> None:
        super().__init__()
        for name, t in (("sign", sign), ("h_mant", h_mant), ("h_exp", h_exp), ("beta", beta)):
            self.register_buffer(name, t.to(torch.int64))
        self.eps_int = int(eps_int)

    @classmethod
    def from_brevitas(cls, site: LayerNormSite) -> LayerNormBuild:
        """The fake-quant LayerNorm is float on PTS inputs: ``extension.ExactLayerNorm`` on the codes aligned to
        the smallest channel scale, ``(x - z) << (alpha_c - min alpha)``."""
        assert site.weight is not None and site.bias is not None and site.in_grid is not None
        in_grid = site.in_grid
        bias_int = layernorm_bias(site.weight, site.bias)
        c = int(bias_int.shape[0])
        alpha = torch.tensor(in_grid.alpha or (0,) * c, dtype=torch.int64)
        y_max = 2 * c * grid_span(in_grid) * 2 ** int(alpha.max() - alpha.min())
        if y_max >= 2**26 or c * y_max * y_max >= 2**48:
            raise VitqError(
                f"{site.where}: integer LayerNorm range too large (C = {c}, aligned code span {y_max // (2 * c)})"
            )
        scale = layernorm_scale(site.weight).double()
        shift = alpha - alpha.min()
        return LayerNormBuild(
            ExactLayerNorm(bias_int), scale, in_zero_point=in_grid.zero_point, in_shift=shift
        )

    @classmethod
    def from_fx(cls, site: LayerNormSite) -> LayerNormBuild:
        """The graph's PTS kernel (``papers.fqvit.pts.pts_int_layernorm``) on the per-channel quantized stream."""
        where, mod = site.where, site.module
        scales, zps, qpc = site.channel_scales, site.channel_zero_points, site.channel_node
        if scales is None or zps is None or qpc is None:
            raise VitqError(f"{where}: its input is not a per-channel (PTS) quantize of the stream")
        p = mod.observed.input_observer().params()
        c = int(p.num_channels)
        zp = int(p.zero_point)
        if site.channel_dtype != torch.quint8 or scales.shape != (c,) or bool((zps != zp).any()):
            raise VitqError(f"{where}: unexpected per-channel quantize {qpc.format_node()}")
        if not torch.equal(scales.double(), p.scale.double()):
            raise VitqError(f"{where}: the PTS kernel's channel scales differ from its input tensor's")
        alpha = p.alpha.to(torch.int64)
        grid = QParams(float(p.scale_base), zp, 0, 255, qpc.name, tuple(int(a) for a in alpha.tolist()))
        inner = mod.observed.inner
        amin = int(alpha.min())
        xmax = max(zp, 255 - zp) << int(alpha.max() - amin)
        if c * c * xmax * xmax >= 2**46 or c * xmax >= 2**20:
            raise VitqError(f"{where}: integer LayerNorm range too large (C = {c}, aligned code span {xmax})")
        try:
            sign, h_mant, h_exp, beta = pts_layernorm_constants(inner.weight, inner.bias, mod.out_scale)
        except ValueError as exc:
            raise VitqError(f"{where}: {exc}") from None
        s_min = float(p.scale_base) * 2.0**amin
        eps = float(inner.eps)
        eps_int = math.ceil(eps * c * c / (s_min * s_min)) if eps > 0 else 0
        assert site.out_grid is not None
        form = cls(sign, h_mant, h_exp, beta, eps_int)
        return LayerNormBuild(
            form, site.out_grid.scale, in_zero_point=zp, in_shift=alpha - amin, in_grid=grid
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = pts_layernorm_int(x, self.sign, self.h_mant, self.h_exp, self.beta, self.eps_int)
        return y.clamp(-(2**31), 2**31)

    def out_bound(self) -> int:
        return 2**31

    def emit_onnx(self, g: OnnxGraph, x: str, channels: int) -> str:
        return onnx_pts_layernorm(g, x, self, channels)


class LisLogSoftmax(SoftmaxForm):
    """LIS of the exact scores (scale ``S_q S_k``): ``extension.table_exp`` of ``max - s``, log2 codes rounded in
    the log domain (``papers.fqvit.lis.lis_codes(rounding="log")``), then ``2^(F - code) @ v`` (``F`` =
    :func:`lis_frac`; codes above ``F``, and the underflow code ``2^b``, count as 0). Result scale ``2^-F S_v``.

    Args:
        exp_hi, exp_lo, t_max: ``extension.exp_tables(S_q S_k)``.
        out_bits: the log2 code width ``b``.
    """

    exp_hi: torch.Tensor
    exp_lo: torch.Tensor

    def __init__(self, exp_hi: torch.Tensor, exp_lo: torch.Tensor, t_max: int, out_bits: int) -> None:
        super().__init__()
        self.register_buffer("exp_hi", exp_hi)
        self.register_buffer("exp_lo", exp_lo)
        self.t_max, self.out_bits = int(t_max), int(out_bits)
        self.frac = lis_frac(self.out_bits)

    def forward(self, scores: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        codes = lis_table_codes(scores, (self.exp_hi, self.exp_lo, self.t_max), self.out_bits)
        # 2^-code = 2^(F - code) / 2^F; codes above F (p < 2^-F, and the underflow code 2^b) count as 0
        frac = self.frac
        p = torch.where(codes <= frac, torch.ones_like(codes) << (frac - codes).clamp(min=0), 0)
        return p @ v

    def emit_onnx(self, g: OnnxGraph, scores: str, v: str, v_zero_point: int, tokens: int) -> str:
        powers = lis_power_table(self.out_bits, self.frac)
        return table_at_v(g, powers, onnx_lis_log_codes(g, scores, self), v, v_zero_point, tokens)


@register_integer_form("softmax", "lis")
class LisSoftmax(SoftmaxForm):
    """LIS as the FX kernel runs it: the codes ``round(-log2 p)`` of the requantized logits
    (:func:`lis_table_codes`: exact table exponential, log-domain rounding, as Brevitas' float LIS), then
    ``table[code]``: the code of ``2^-code`` on the output container (centered), times ``v``.

    Args:
        rq_logits: requant of the scores to the LIS input grid (scale ``S``).
        exp_hi, exp_lo, t_max: ``extension.exp_tables(S)``.
        out_bits: the log2 code width ``b``; ``table``: ``2^b + 1`` centered container codes.
    """

    exp_hi: torch.Tensor
    exp_lo: torch.Tensor
    table: torch.Tensor

    def __init__(
        self,
        rq_logits: Requant,
        exp_hi: torch.Tensor,
        exp_lo: torch.Tensor,
        t_max: int,
        out_bits: int,
        table: torch.Tensor,
    ) -> None:
        super().__init__()
        self.rq_logits = rq_logits
        self.register_buffer("exp_hi", exp_hi)
        self.register_buffer("exp_lo", exp_lo)
        self.t_max, self.out_bits = int(t_max), int(out_bits)
        self.register_buffer("table", table.to(torch.int64))

    @classmethod
    def from_brevitas(cls, site: AttentionSite) -> tuple[LisLogSoftmax, Requant]:
        """:class:`LisLogSoftmax` of the exact scores (the fake-quant softmax is float, then ``round(-log2 p)``)."""
        bits = int(site.out_quant.code_bits)
        hi, lo, t_max = exp_tables(site.gq.scale * site.gk.scale)
        frac = lis_frac(bits)
        g_o, gv = site.out_grid, site.gv
        rq_out = Requant(gv.scale * 2.0**-frac / g_o.scale, g_o, 2**frac * grid_span(gv) * site.tokens)
        return LisLogSoftmax(hi, lo, t_max, bits), rq_out

    @classmethod
    def from_fx(cls, site: AttentionSite) -> tuple[LisSoftmax, Requant]:
        """LIS on the logit codes (:func:`lis_table_codes` with the tables of the logit scale); its ``2^-code``
        quantized onto the output container (a ``2^b + 1``-entry table)."""
        assert site.rq_logits is not None
        sm = site.module
        bits = int(sm.observed.inner.bits)
        s_in = float(sm.observed.input_observer().qparams()[0])
        hi, lo, t_max = exp_tables(s_in)
        codes = torch.arange(2**bits + 1)
        table = torch.quantize_per_tensor(
            lis_dequant(codes, bits).float(), sm.out_scale, sm.out_zero_point, torch.quint8
        )
        probs = table.int_repr().to(torch.int64) - sm.out_zero_point
        gv, g_o = site.gv, site.out_grid
        span_p = int(probs.abs().max())
        rq_out = Requant(sm.out_scale * gv.scale / g_o.scale, g_o, span_p * grid_span(gv) * site.tokens)
        return cls(site.rq_logits, hi, lo, t_max, bits, probs), rq_out

    def forward(self, scores: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        codes = lis_table_codes(self.rq_logits(scores), (self.exp_hi, self.exp_lo, self.t_max), self.out_bits)
        return self.table[codes] @ v

    def emit_onnx(self, g: OnnxGraph, scores: str, v: str, v_zero_point: int, tokens: int) -> str:
        logits = requant(g, scores, self.rq_logits)
        return table_at_v(g, self.table, onnx_lis_log_codes(g, logits, self), v, v_zero_point, tokens)


@register_integer_form("grid", "pts")
class PtsGrid:
    """The grid of a PTS activation quantizer (eqs. 9-10): channel ``c`` at ``s 2^alpha_c``, one zero point."""

    @staticmethod
    def read_brevitas(tq: Any, name: str) -> QParams:
        """``QParams(s, z, qmin, qmax, name, alpha)`` of a calibrated Brevitas PTS tensor quantizer."""
        p = tq.params()
        alpha = tuple(int(a) for a in tq.alpha.tolist())
        zp = int(round(float(tq.zero_point)))
        return QParams(float(tq.scale_base), zp, int(p.qmin), int(p.qmax), name, alpha)
