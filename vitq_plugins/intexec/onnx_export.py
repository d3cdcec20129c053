"""Export an :class:`~vitq_plugins.intexec.IntExecutor` to an ONNX graph of integer ops (ONNX Runtime runs it).

I-ViT (arXiv 2207.01405) integer-only inference as a standard ONNX graph: matmuls are ``MatMulInteger``
(uint8 activations with their zero points x int8 weights -> int32, eq. 4), dyadic requantization is
``Mul``/``Add`` by int64 constants and a floor division by ``2^k`` (eq. 7), Shiftmax (eqs. 9-14), ShiftGELU
(eqs. 15-17) and I-LayerNorm (eq. 18) are built from ``Add``/``Sub``/``Mul``/``Div``/``Mod``/``BitShift``/
``Min``/``Max``/``Where``/``ReduceSum``/``ReduceMax`` on int64 tensors. No floating-point tensor exists in
the graph. ONNX ``Div`` on integers truncates toward zero, so a floor division is written
``(a - Mod(a, b)) / b`` (``Mod`` with ``fmod=0`` takes the divisor's sign, i.e. Python's ``%``), and
``BitShift`` (unsigned only) runs on values cast to uint64 that are known to be non-negative. Every step
mirrors the PyTorch executor, so the outputs are equal bit for bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vitq_plugins.core.errors import VitqError
from vitq_plugins.intexec.executor import IntExecutor
from vitq_plugins.intexec.kernels import EXACT_SQRT_FRAC
from vitq_plugins.intexec.kernels import EXP_FRAC_BITS
from vitq_plugins.intexec.kernels import EXP_LO_BITS
from vitq_plugins.intexec.kernels import PTS_BIAS_FRAC
from vitq_plugins.intexec.kernels import PTS_DIV_STEP
from vitq_plugins.intexec.kernels import PTS_DIV_STEPS
from vitq_plugins.intexec.kernels import PTS_SQRT_FRAC
from vitq_plugins.intexec.layers import RESIDUAL_EXTRA_BITS
from vitq_plugins.intexec.layers import IntAttention
from vitq_plugins.intexec.layers import IntBlock
from vitq_plugins.intexec.layers import IntLayerNorm
from vitq_plugins.intexec.layers import IntLinear
from vitq_plugins.intexec.layers import IntMlp
from vitq_plugins.intexec.layers import ResidualAdd
from vitq_plugins.intexec.requant import Requant

__all__ = ["OPSET", "export_int_onnx"]

OPSET = 17
_INT31_MAX = 2**31 - 1
_ISQRT_ITERS = 10
_BIAS = 2**62


class _Graph:
    """A tiny ONNX graph builder with integer helpers mirroring the executor's torch ops."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0
        self._consts: dict[tuple[str, bytes, tuple[int, ...]], str] = {}

    def _name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, value: Any, dtype: Any = np.int64) -> str:
        from onnx import numpy_helper

        arr = np.asarray(value.numpy() if isinstance(value, torch.Tensor) else value).astype(dtype)
        key = (str(arr.dtype), arr.tobytes(), arr.shape)
        if key not in self._consts:
            name = self._name("c")
            self.inits.append(numpy_helper.from_array(arr, name))
            self._consts[key] = name
        return self._consts[key]

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        from onnx import helper

        out = self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    # --- integer helpers --------------------------------------------------------------------------
    def cast(self, x: str, to: int) -> str:
        return self.op("Cast", x, to=to)

    def floor_div(self, a: str, b: str) -> str:
        return self.op("Div", self.op("Sub", a, self.op("Mod", a, b, fmod=0)), b)

    def div_pos(self, a: str, b: str) -> str:
        """``floor(a / b)`` for ``a >= 0``, ``b > 0`` (where truncation is floor): one ``Div``."""
        return self.op("Div", a, b)

    def shr(self, x: str, shift: torch.Tensor | int) -> str:
        """``floor(x / 2^s)`` for constant ``s`` and ``-2^62 <= x < 2^62``: ``((x + 2^62) >>> s) - 2^(62 - s)``.

        A logical shift of the biased (non-negative) value, so no ``Div``/``Mod`` (slow on int64).
        """
        from onnx import TensorProto

        s_t = torch.as_tensor(shift, dtype=torch.int64)
        biased = self.cast(self.op("Add", x, self.const(_BIAS)), TensorProto.UINT64)
        shifted = self.op("BitShift", biased, self.const(s_t, np.uint64), direction="RIGHT")
        return self.op("Sub", self.cast(shifted, TensorProto.INT64), self.const(_BIAS >> s_t))

    def shl_u(self, x: str, s: str, direction: str) -> str:
        """``x << s`` or ``x >> s`` for non-negative int64 ``x`` and ``0 <= s <= 63`` (via uint64)."""
        from onnx import TensorProto

        u = self.op(
            "BitShift",
            self.cast(x, TensorProto.UINT64),
            self.cast(s, TensorProto.UINT64),
            direction=direction,
        )
        return self.cast(u, TensorProto.INT64)

    def clamp(self, x: str, lo: int, hi: int) -> str:
        return self.op("Min", self.op("Max", x, self.const(lo)), self.const(hi))

    def where(self, cond: str, a: str, b: str) -> str:
        return self.op("Where", cond, a, b)

    def b2i(self, cond: str) -> str:
        from onnx import TensorProto

        return self.cast(cond, TensorProto.INT64)

    def reduce_sum(self, x: str) -> str:
        return self.op("ReduceSum", x, self.const([-1]), keepdims=1)

    def reduce_max(self, x: str) -> str:
        return self.op("ReduceMax", x, axes=[-1], keepdims=1)


def _requant_raw(g: _Graph, x: str, rq: Requant) -> str:
    if rq.pre is not None:  # a chain of grids: the earlier requant's codes minus its zero point
        x = g.op("Sub", _requant(g, x, rq.pre), g.const(rq.pre.zero_point))
    prod = g.op("Add", g.op("Mul", x, g.const(rq.mantissa)), g.const(rq.offset))
    bound = (rq.max_input + 1) * int(rq.mantissa.max()) + int(rq.offset.abs().max())
    if bound < _BIAS:
        return g.shr(prod, rq.shift)
    return g.floor_div(prod, g.const(torch.ones_like(rq.shift) << rq.shift))


def _requant(g: _Graph, x: str, rq: Requant) -> str:
    y = g.op("Add", _requant_raw(g, x, rq), g.const(rq.zero_point))
    return g.clamp(y, rq.qmin, rq.qmax) if rq.do_clamp else y


def _to_u8(g: _Graph, codes: str) -> str:
    from onnx import TensorProto

    return g.cast(codes, TensorProto.UINT8)


def _matmul_int(g: _Graph, a_u8: str, b_u8: str, a_zp: int, b_zp: int) -> str:
    from onnx import TensorProto

    out = g.op("MatMulInteger", a_u8, b_u8, g.const(a_zp, np.uint8), g.const(b_zp, np.uint8))
    return g.cast(out, TensorProto.INT64)


def _linear(g: _Graph, codes: str, lin: IntLinear) -> str:
    """``sum (x - z) w + b`` with ``MatMulInteger(uint8 x, int8 w)``."""
    from onnx import TensorProto

    if lin.center != 128:
        raise VitqError("ONNX export supports uint8 Linear inputs only")
    w = g.const(lin.weight_t, np.int8)
    acc = g.op("MatMulInteger", _to_u8(g, codes), w, g.const(int(lin.inp.zero_point), np.uint8))
    return g.op("Add", g.cast(acc, TensorProto.INT64), g.const(lin.bias))


def _shift_exp(g: _Graph, x: str, x0: int, n: int, cap: int) -> str:
    """``ops.shift.shift_exp_unit``."""
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


def _normalise(g: _Graph, num: str, den: str, out_bits: int, division: str) -> str:
    """``ops.shift._normalise`` (``official``: truncated reciprocal; ``exact``: one floor division)."""
    den = g.clamp(den, 1, _INT31_MAX)
    if division == "exact":
        return g.floor_div(g.op("Mul", num, g.const(2 ** (out_bits - 1))), den)
    factor = g.div_pos(g.const(_INT31_MAX), den)
    return g.shr(g.op("Mul", num, factor), 32 - out_bits)


def _shiftmax(g: _Graph, x: str, x0: int, n: int, out_bits: int, division: str) -> str:
    x = g.op("Sub", x, g.reduce_max(x))
    e = _shift_exp(g, x, x0, n, _INT31_MAX)
    return _normalise(g, e, g.reduce_sum(e), out_bits, division)


def _shiftgelu(g: _Graph, x: str, x0: int, n: int, out_bits: int, division: str) -> str:
    x_max = g.reduce_max(x)
    e = _shift_exp(g, g.op("Sub", x, x_max), x0, n, _INT31_MAX)
    e_max = _shift_exp(g, g.op("Neg", x_max), x0, n, _INT31_MAX)
    return g.op("Mul", x, _normalise(g, e, g.op("Add", e, e_max), out_bits, division))


def _floor_log2(g: _Graph, v: str) -> str:
    msb = g.const(0)
    for step in (32, 16, 8, 4, 2, 1):
        amount = g.op("Add", msb, g.const(step))
        hit = g.op("Greater", g.shl_u(v, amount, "RIGHT"), g.const(0))
        msb = g.op("Add", msb, g.op("Mul", g.const(step), g.b2i(hit)))
    return msb


def _isqrt(g: _Graph, v: str) -> str:
    """``ops.ilayernorm.isqrt_newton(v, 10, init="auto")``."""
    vv = g.op("Max", v, g.const(1))
    half_bits = g.shr(g.op("Add", _floor_log2(g, vv), g.const(2)), 1)
    k = g.shl_u(g.const(1), half_bits, "LEFT")
    for _ in range(max(_ISQRT_ITERS, 8)):
        k = g.op("Max", g.shr(g.op("Add", k, g.div_pos(vv, k)), 1), g.const(1))
    k = g.op("Sub", k, g.b2i(g.op("Greater", k, g.div_pos(vv, k))))
    k1 = g.op("Add", k, g.const(1))
    k = g.op("Add", k, g.b2i(g.op("LessOrEqual", k1, g.div_pos(vv, k1))))
    return g.where(g.op("Equal", v, g.const(0)), g.const(0), k)


def _pts_layernorm(g: _Graph, x: str, ln: IntLayerNorm, channels: int) -> str:
    """``kernels.pts_layernorm_int`` (then clamped to ``+-2^31``) on aligned PTS codes."""
    hm, he = g.const(ln.pts_h_mant), g.const(ln.pts_h_exp)
    sign, one = g.const(ln.pts_sign), g.const(1)
    s1 = g.reduce_sum(x)
    d = g.op("Mul", g.const(channels), g.reduce_sum(g.op("Mul", x, x)))
    d = g.op("Max", g.op("Add", g.op("Sub", d, g.op("Mul", s1, s1)), g.const(ln.eps_int)), one)
    q = g.div_pos(hm, d)
    rem = g.op("Sub", hm, g.op("Mul", q, d))
    lg = g.floor_div(g.op("Sub", _floor_log2(g, q), he), g.const(2))
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
    w = _isqrt(g, v)
    m = g.op("Min", g.shl_u(w, p, "RIGHT"), g.const(255))
    r = g.op("Sub", v, g.op("Mul", w, w))
    two_w = g.op("Mul", g.const(2), g.op("Max", w, one))
    t = g.op("Add", g.op("Mul", s1, w), g.floor_div(g.op("Mul", s1, r), two_w))
    sh = g.op("Sub", g.op("Add", n, p), g.const(PTS_BIAS_FRAC))
    beta = g.const(ln.pts_beta)
    up = g.op("Mul", beta, g.shl_u(one, g.op("Max", sh, g.const(0)), "LEFT"))
    down = g.floor_div(beta, g.shl_u(one, g.op("Max", g.op("Neg", sh), g.const(0)), "LEFT"))
    b_sh = g.where(g.op("GreaterOrEqual", sh, g.const(0)), up, down)
    den = g.op("Mul", g.const(channels), g.shl_u(one, p, "LEFT"))
    num_b = g.op("Add", g.op("Mul", g.const(2), g.op("Sub", b_sh, g.op("Mul", sign, t))), den)
    b = g.floor_div(num_b, g.op("Mul", g.const(2), den))
    pv = g.op("Add", g.op("Mul", g.op("Mul", sign, m), x), b)
    pw = g.shl_u(one, n, "LEFT")
    qv = g.floor_div(pv, pw)
    rr = g.op("Sub", pv, g.op("Mul", qv, pw))
    half = g.where(
        g.op("Greater", n, g.const(0)),
        g.shl_u(one, g.op("Max", g.op("Sub", n, one), g.const(0)), "LEFT"),
        g.const(0),
    )
    odd = g.op("Equal", g.op("Mod", qv, g.const(2), fmod=0), one)
    tie = g.op("And", g.op("And", g.op("Equal", rr, half), odd), g.op("Greater", n, g.const(0)))
    y = g.op("Add", qv, g.b2i(g.op("Or", g.op("Greater", rr, half), tie)))
    return g.clamp(y, -(2**31), 2**31)


def _layernorm(g: _Graph, x: str, ln: IntLayerNorm, channels: int) -> str:
    """``kernels.ilayernorm_int`` / ``layernorm_exact_int`` / ``pts_layernorm_int`` (on aligned PTS codes) + requant."""
    if ln.in_rq is not None:
        x = _requant(g, x, ln.in_rq)
    if ln.aligned:
        x = g.op(
            "Mul",
            g.op("Sub", x, g.const(ln.in_zero_point)),
            g.const(torch.ones_like(ln.in_shift) << ln.in_shift),
        )
    if ln.pts:
        return _requant(g, _pts_layernorm(g, x, ln, channels), ln.out)
    s = g.reduce_sum(x)
    c = g.const(channels)
    if ln.exact_mean:
        y = g.op("Sub", g.op("Mul", x, c), s)
    else:
        q = g.floor_div(s, c)
        r2 = g.op("Mul", g.const(2), g.op("Sub", s, g.op("Mul", q, c)))
        odd = g.op("Equal", g.op("Mod", q, g.const(2), fmod=0), g.const(1))
        up = g.op("Or", g.op("Greater", r2, c), g.op("And", g.op("Equal", r2, c), odd))
        y = g.op("Sub", x, g.op("Add", q, g.b2i(up)))
    var = g.reduce_sum(g.op("Mul", y, y))
    if ln.exact_mean:  # kernels.layernorm_exact_int
        p = EXACT_SQRT_FRAC
        r = _isqrt(g, g.op("Mul", var, g.const(1 << (2 * p))))
        y = g.floor_div(g.op("Mul", y, g.const(1 << (30 + p))), g.op("Max", r, g.const(1)))
        return _requant(g, g.op("Add", y, g.const(ln.bias_int)), ln.out)
    std = _isqrt(g, var)
    factor = g.div_pos(g.const(_INT31_MAX), g.op("Max", std, g.const(1)))
    y = g.shr(g.op("Mul", y, factor), 1)
    return _requant(g, g.op("Add", y, g.const(ln.bias_int)), ln.out)


def _residual(g: _Graph, acc: str, x: str, res: ResidualAdd) -> str:
    if res.skip is None:  # the fixed-point float stream (fqvit FX): x + branch, unrounded
        return g.op("Add", x, _requant_raw(g, acc, res.branch))
    s = g.op(
        "Add",
        _requant_raw(g, acc, res.branch),
        _requant_raw(g, g.op("Sub", x, g.const(res.x_zero_point)), res.skip),
    )
    k = RESIDUAL_EXTRA_BITS
    y = g.shr(g.op("Add", s, g.const(1 << (k - 1))), k)
    return g.clamp(g.op("Add", y, g.const(int(res.out.zero_point))), res.out.qmin, res.out.qmax)


def _attention(g: _Graph, x: str, at: IntAttention, channels: int) -> str:
    h = at.num_heads
    d = channels // h
    acc = g.op("Reshape", _linear(g, x, at.qkv), g.const([0, 0, 3, h, d]))
    acc = g.op("Transpose", acc, perm=[2, 0, 3, 1, 4])
    parts = [g.op("Gather", acc, g.const(i), axis=0) for i in range(3)]
    q = _requant(g, parts[0], at.rq_q)
    k = _requant(g, parts[1], at.rq_k)
    v = _requant(g, parts[2], at.rq_v)
    kt = g.op("Transpose", _to_u8(g, k), perm=[0, 1, 3, 2])
    scores = _matmul_int(g, _to_u8(g, q), kt, at.rq_q.zero_point, at.rq_k.zero_point)
    if at.lis_table is not None:
        logits = _requant(g, scores, at.rq_logits)
        p = g.op("Gather", g.const(at.lis_table), _lis_iexp_codes(g, logits, at), axis=0)
        o = g.op("MatMul", p, g.op("Sub", v, g.const(at.rq_v.zero_point)))
    elif at.lis:
        p = _lis_probs(g, scores, at)
        v_int = g.op("Sub", v, g.const(at.rq_v.zero_point))
        o = g.op("MatMul", p, v_int)
    else:
        logits = _requant(g, scores, at.rq_logits)
        p = _shiftmax(g, logits, at.x0, at.n, at.out_bits, at.division)
        o = _matmul_int(g, _to_u8(g, p), _to_u8(g, v), 0, at.rq_v.zero_point)
    o = g.op("Reshape", g.op("Transpose", o, perm=[0, 2, 1, 3]), g.const([0, 0, channels]))
    return _linear(g, _requant(g, o, at.rq_out), at.proj)


def _lis_iexp_codes(g: _Graph, x: str, at: IntAttention) -> str:
    """``ops.lis.lis_softmax_unit(rounding="linear")``: I-BERT i-exp, then ``round(log2(sum / e))`` in linear space."""
    x0, b_int, c_int = at.lis_iexp
    n = at.n
    x = g.op("Max", g.op("Sub", x, g.reduce_max(x)), g.const(n * x0))
    q = g.floor_div(x, g.const(x0))
    r = g.op("Sub", x, g.op("Mul", g.const(x0), q))
    z = g.op("Add", g.op("Mul", r, g.op("Add", r, g.const(b_int))), g.const(c_int))
    neg = g.op("Less", z, g.const(0))
    e = g.shl_u(g.where(neg, g.const(0), z), g.op("Sub", g.const(n), q), "LEFT")
    total = g.reduce_sum(e)
    safe = g.op("Max", e, g.const(1))
    two = g.const(2)
    ratio = g.div_pos(g.op("Add", g.op("Mul", two, total), safe), g.op("Mul", two, safe))
    k = _floor_log2(g, ratio)
    nxt = g.op(
        "Mod", g.shl_u(ratio, g.op("Max", g.op("Sub", k, g.const(1)), g.const(0)), "RIGHT"), two, fmod=0
    )
    k = g.op("Add", k, g.where(g.op("Greater", k, g.const(0)), nxt, g.const(0)))
    zero = 2**at.out_bits
    under = g.op("Or", g.op("Equal", e, g.const(0)), g.op("GreaterOrEqual", k, g.const(zero)))
    return g.where(under, g.const(zero), k)


def _lis_probs(g: _Graph, x: str, at: IntAttention) -> str:
    """``kernels.table_exp`` + ``ops.lis.lis_codes(rounding="log")``, then ``2^(F - code)`` (0 above ``F``)."""
    t = g.op("Sub", g.reduce_max(x), x)
    tc = g.op("Min", g.op("Max", t, g.const(0)), g.const(at.t_max))
    lo_idx = g.op("Mod", tc, g.const(2**EXP_LO_BITS), fmod=0)
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
    t2 = _floor_log2(g, g.op("Max", ratio, g.const(1)))
    big = g.op("GreaterOrEqual", t2, g.const(31))
    down = g.shl_u(ratio, g.op("Max", g.op("Sub", t2, g.const(31)), g.const(0)), "RIGHT")
    up = g.shl_u(ratio, g.op("Max", g.op("Sub", g.const(31), t2), g.const(0)), "LEFT")
    mant = g.where(big, down, up)
    sqrt2 = g.const(round(2**0.5 * 2**31))
    k = g.op("Add", g.op("Sub", t2, g.const(16)), g.b2i(g.op("GreaterOrEqual", mant, sqrt2)))
    zero = 2**at.out_bits
    under = g.op("Or", g.op("Equal", e, g.const(0)), g.op("GreaterOrEqual", k, g.const(zero)))
    code = g.where(under, g.const(zero), k)
    shift = g.op("Max", g.op("Sub", g.const(at.lis_frac), code), g.const(0))
    one = g.shl_u(g.const(1), shift, "LEFT")
    return g.where(g.op("LessOrEqual", code, g.const(at.lis_frac)), one, g.const(0))


def _mlp(g: _Graph, x: str, mlp: IntMlp) -> str:
    if mlp.lut is not None:
        idx = _requant(g, _linear(g, x, mlp.fc1), mlp.rq_gelu)
        codes = g.op("Gather", g.const(mlp.lut, np.uint8), idx, axis=0)
        from onnx import TensorProto

        return _linear(g, g.cast(codes, TensorProto.INT64), mlp.fc2)
    assert mlp.rq_fc2 is not None
    a = g.op("Sub", _requant(g, _linear(g, x, mlp.fc1), mlp.rq_gelu), g.const(mlp.rq_gelu.zero_point))
    y = _shiftgelu(g, a, mlp.x0, mlp.n, mlp.out_bits, mlp.division)
    return _linear(g, _requant(g, y, mlp.rq_fc2), mlp.fc2)


def _block(g: _Graph, x: str, blk: IntBlock, channels: int) -> str:
    x2 = _residual(g, _attention(g, _layernorm(g, x, blk.ln1, channels), blk.attn, channels), x, blk.res1)
    return _residual(g, _mlp(g, _layernorm(g, x2, blk.ln2, channels), blk.mlp), x2, blk.res2)


def build_int_onnx(executor: IntExecutor, input_shape: tuple[int, int, int]) -> Any:
    """The ``onnx.ModelProto`` of ``executor`` for uint8 inputs ``(batch, *input_shape)`` (batch dynamic)."""
    import onnx
    from onnx import TensorProto
    from onnx import helper

    if executor.input_grid.qmin < 0 or executor.input_grid.qmax > 255:
        raise VitqError("ONNX export needs a uint8 input grid")
    blocks = [b for b in executor.blocks if isinstance(b, IntBlock)]
    for blk in blocks:
        if blk.attn.out_bits > 9:
            raise VitqError("ONNX export needs Shiftmax outputs of <= 9 bits (uint8 probabilities)")
    g = _Graph()
    c_in, hh, ww = input_shape
    em = executor.embed
    p = em.patch
    channels = int(em.cls_codes.shape[0])
    patches = g.op("Reshape", "input", g.const([0, c_in, hh // p, p, ww // p, p]))
    patches = g.op("Transpose", patches, perm=[0, 2, 4, 1, 3, 5])
    patches = g.op("Reshape", patches, g.const([0, (hh // p) * (ww // p), c_in * p * p]))
    lin = em.proj
    acc = g.op(
        "MatMulInteger", patches, g.const(lin.weight_t, np.int8), g.const(int(lin.inp.zero_point), np.uint8)
    )
    acc = g.op("Add", g.cast(acc, TensorProto.INT64), g.const(lin.bias))
    if em.fine:  # the fixed-point float stream (fqvit FX): unrounded, no clamp
        tokens = g.op("Add", _requant_raw(g, acc, em.rq), g.const(em.pos_int))
    elif em.pos_bits:  # position embedding added on the fine stream scale, then one rounding (IntEmbed)
        fine = g.op("Add", _requant_raw(g, acc, em.rq), g.const(em.pos_int))
        raw = g.shr(g.op("Add", fine, g.const(1 << (em.pos_bits - 1))), em.pos_bits)
    else:
        raw = _requant_raw(g, g.op("Add", acc, g.const(em.pos_int)), em.rq)
    if not em.fine:
        tokens = g.clamp(g.op("Add", raw, g.const(em.rq.zero_point)), em.rq.qmin, em.rq.qmax)
    shape = g.op("Shape", tokens)
    batch = g.op("Slice", shape, g.const([0]), g.const([1]))
    cls_shape = g.op("Concat", batch, g.const([1, channels]), axis=0)
    cls = g.op("Expand", g.const(em.cls_codes.reshape(1, 1, -1)), cls_shape)
    x = g.op("Concat", cls, tokens, axis=1)
    for blk in blocks:
        x = _block(g, x, blk, channels)
    hd = executor.head
    if hd.pre is not None:
        x = _requant(g, g.op("Sub", x, g.const(hd.pre_zero_point)), hd.pre)
    x = g.op("Gather", x, g.const(0), axis=1)
    logits = _requant(g, _linear(g, _layernorm(g, x, hd.ln, channels), hd.head), hd.rq_out)
    out = g.cast(logits, TensorProto.INT32)
    g.nodes.append(helper.make_node("Identity", [out], ["logits"]))
    classes = int(hd.head.bias.shape[0])
    graph = helper.make_graph(
        g.nodes,
        "vitq_int_program",
        [helper.make_tensor_value_info("input", TensorProto.UINT8, ["batch", c_in, hh, ww])],
        [helper.make_tensor_value_info("logits", TensorProto.INT32, ["batch", classes])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="vitq")
    model.ir_version = min(model.ir_version, 9)
    meta = {"logit_scale": repr(executor.out_scale), "input_scale": repr(executor.input_grid.scale)}
    meta["input_zero_point"] = str(executor.input_grid.zero_point)
    meta["recipe"] = executor.recipe
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    return model


def export_int_onnx(executor: IntExecutor, path: Path | str, example_input: torch.Tensor) -> Path:
    """Write the integer ONNX program of ``executor``; ``example_input`` gives ``(C, H, W)`` (float or codes).

    The model's metadata carries ``logit_scale``, ``input_scale`` and ``input_zero_point``.
    """
    import onnx

    model = build_int_onnx(executor, tuple(int(v) for v in example_input.shape[1:]))  # type: ignore[arg-type]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out
