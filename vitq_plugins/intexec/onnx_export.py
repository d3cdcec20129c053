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

Cost. ONNX Runtime runs each of these as a separate kernel over int64 tensors, so the graph is written to keep
big tensors away from its slow int64 kernels (measured on a 32x3x65x65 tensor: ``Where`` 1.5-3 ms, ``Mod`` 2.6 ms,
``Div`` 0.35 ms, ``Add``/``Mul``/``Cast`` 0.05-0.15 ms): a select is ``c * a + (1 - c) * b``, a floor division
is a truncating ``Div`` of a shifted numerator, a division by a power of two is a biased ``BitShift``, a clamp
is one ``Clip``, zero points and rounding constants fold into one constant ``Add``. Functions of one bounded
code (Shiftmax's and LIS's exponentials) or of a code and its row maximum (ShiftGELU, then the requant to fc2's
grid) are exhaustive tables built from the executor's own kernels (:mod:`~vitq_plugins.intexec.tables`), one
``Gather`` each; LIS probabilities times ``v`` run as one uint8 ``MatMulInteger`` per byte of the probability.
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
from vitq_plugins.intexec.tables import byte_planes
from vitq_plugins.intexec.tables import iexp_table
from vitq_plugins.intexec.tables import lis_power_table
from vitq_plugins.intexec.tables import shift_exp_table
from vitq_plugins.intexec.tables import shiftgelu_requant_table

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
        self._values: dict[str, np.ndarray] = {}

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
            self._values[name] = arr
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
        """``floor(a / b)`` for ``b > 0``: ``Div`` truncates, so a negative ``a`` first moves down by ``b - 1``.

        No ``Mod``: ONNX Runtime's int64 ``Mod`` took 7x a ``Div`` and 40x an ``Add`` on an attention-sized tensor.
        A constant ``b < 0`` divides ``-a`` by ``-b``; a constant of mixed signs takes the ``Mod`` form.
        """
        if b in self._values:
            vb = self._values[b]
            if (vb < 0).all():
                a, b = self.op("Neg", a), self.const(-vb)
            elif not (vb > 0).all():
                return self.op("Div", self.op("Sub", a, self.op("Mod", a, b, fmod=0)), b)
        b_minus_1 = self.op("Sub", b, self.const(1))
        neg = self.b2i(self.op("Less", a, self.const(0)))
        return self.op("Div", self.op("Sub", a, self.op("Mul", neg, b_minus_1)), b)

    def mod(self, a: str, b: str) -> str:
        """``a mod b`` with the divisor's sign (Python's ``%``) for ``b > 0``, without ``Mod``."""
        return self.op("Sub", a, self.op("Mul", b, self.floor_div(a, b)))

    def div_pos(self, a: str, b: str) -> str:
        """``floor(a / b)`` for ``a >= 0``, ``b > 0`` (where truncation is floor): one ``Div``."""
        return self.op("Div", a, b)

    def shr(
        self, x: str, shift: torch.Tensor | int, pre: torch.Tensor | int = 0, post: torch.Tensor | int = 0
    ) -> str:
        """``floor((x + pre) / 2^s) + post`` for constants ``s, pre, post`` and ``-2^62 <= x + pre < 2^62``.

        ``((x + pre + 2^62) >>> s) + (post - 2^(62 - s))``: a logical shift of the biased (non-negative) value,
        so no ``Div``/``Mod`` (slow on int64); the bias folds into the two constant adds.
        """
        from onnx import TensorProto

        s_t = torch.as_tensor(shift, dtype=torch.int64)
        pre_t = torch.as_tensor(pre, dtype=torch.int64) + _BIAS
        post_t = torch.as_tensor(post, dtype=torch.int64) - (_BIAS >> s_t)
        biased = self.cast(self.op("Add", x, self.const(pre_t)), TensorProto.UINT64)
        shifted = self.op("BitShift", biased, self.const(s_t, np.uint64), direction="RIGHT")
        return self.op("Add", self.cast(shifted, TensorProto.INT64), self.const(post_t))

    def to_u64(self, x: str) -> str:
        """``x`` as uint64 (an initializer is converted here, not by a ``Cast`` node)."""
        from onnx import TensorProto

        if x in self._values:
            return self.const(self._values[x], np.uint64)
        return self.cast(x, TensorProto.UINT64)

    def shr_var(self, x: str, s: str) -> str:
        """``floor(x / 2^s)`` for a tensor ``0 <= s <= 62`` and ``-2^62 <= x < 2^62`` (biased logical shift, as
        :meth:`shr`): no ``Div``, which costs several ``Add``s on int64."""
        from onnx import TensorProto

        s_u = self.to_u64(s)
        biased = self.cast(self.op("Add", x, self.const(_BIAS)), TensorProto.UINT64)
        shifted = self.cast(self.op("BitShift", biased, s_u, direction="RIGHT"), TensorProto.INT64)
        unbias = self.cast(
            self.op("BitShift", self.const(_BIAS, np.uint64), s_u, direction="RIGHT"), TensorProto.INT64
        )
        return self.op("Sub", shifted, unbias)

    def shl_u(self, x: str, s: str, direction: str) -> str:
        """``x << s`` or ``x >> s`` for non-negative int64 ``x`` and ``0 <= s <= 63`` (via uint64)."""
        from onnx import TensorProto

        u = self.op("BitShift", self.to_u64(x), self.to_u64(s), direction=direction)
        return self.cast(u, TensorProto.INT64)

    def times_pow2(self, x: str, k: int) -> str:
        """``x * 2^k`` for a constant ``k >= 0`` (``x`` itself when ``k = 0``): a refined coarse grid's codes."""
        return self.op("Mul", x, self.const(1 << k)) if k else x

    def clamp(self, x: str, lo: int, hi: int) -> str:
        return self.op("Clip", x, self.const(lo), self.const(hi))

    def _is_zero(self, x: str) -> bool:
        return x in self._values and not self._values[x].any()

    def where(self, cond: str, a: str, b: str) -> str:
        """``Where(cond, a, b)`` as ``c * a + (1 - c) * b`` with ``c = Cast(cond)`` (one term is always 0, so
        nothing overflows): ONNX Runtime's int64 ``Where`` took 10-20x an ``Add`` plus a ``Cast``."""
        c = self.b2i(cond)
        if self._is_zero(b):
            return self.op("Mul", c, a)
        not_c = self.b2i(self.op("Not", cond))
        if self._is_zero(a):
            return self.op("Mul", not_c, b)
        return self.op("Add", self.op("Mul", c, a), self.op("Mul", not_c, b))

    def b2i(self, cond: str) -> str:
        from onnx import TensorProto

        return self.cast(cond, TensorProto.INT64)

    def reduce_sum(self, x: str) -> str:
        return self.op("ReduceSum", x, self.const([-1]), keepdims=1)

    def reduce_max(self, x: str) -> str:
        return self.op("ReduceMax", x, axes=[-1], keepdims=1)


def _requant_raw(g: _Graph, x: str, rq: Requant, sub: int = 0, post: int = 0) -> str:
    """``Requant.raw(x - sub) + post``; ``sub`` and ``post`` fold into the constant adds where int64 allows."""
    if rq.pre is not None:  # a chain of grids: the earlier requant's codes minus its zero point
        x = _requant(g, x, rq.pre, centered=True, sub=sub)
        sub = 0
    m_max = int(rq.mantissa.max())
    bound = (rq.max_input + 1) * m_max + int(rq.offset.abs().max())
    if sub and bound + 2 * abs(sub) * m_max >= _BIAS:  # x * m itself must stay inside +-2^62
        x, sub = g.op("Sub", x, g.const(sub)), 0
    prod = g.op("Mul", x, g.const(rq.mantissa))
    pre = rq.offset - sub * rq.mantissa
    if bound < _BIAS:
        return g.shr(prod, rq.shift, pre=pre, post=post)
    y = g.floor_div(g.op("Add", prod, g.const(pre)), g.const(torch.ones_like(rq.shift) << rq.shift))
    return g.op("Add", y, g.const(post)) if post else y


def _requant(g: _Graph, x: str, rq: Requant, centered: bool = False, sub: int = 0) -> str:
    """``Requant(x - sub)``, or its codes minus the zero point (``centered``): one clip, no zero-point adds."""
    zp = 0 if centered else rq.zero_point
    y = _requant_raw(g, x, rq, sub=sub, post=zp)
    if not rq.do_clamp:
        return y
    return g.clamp(y, rq.qmin - rq.zero_point + zp, rq.qmax - rq.zero_point + zp)


def _to_u8(g: _Graph, codes: str) -> str:
    from onnx import TensorProto

    return g.cast(codes, TensorProto.UINT8)


def _matmul_int(g: _Graph, a_u8: str, b_u8: str, a_zp: int, b_zp: int) -> str:
    from onnx import TensorProto

    out = g.op("MatMulInteger", a_u8, b_u8, g.const(a_zp, np.uint8), g.const(b_zp, np.uint8))
    return g.cast(out, TensorProto.INT64)


def _linear(g: _Graph, codes: str, lin: IntLinear, u8: bool = False) -> str:
    """``sum (x - z) w + b`` with ``MatMulInteger(uint8 x, int8 w)`` (``u8``: ``codes`` are uint8 already)."""
    from onnx import TensorProto

    if lin.center != 128:
        raise VitqError("ONNX export supports uint8 Linear inputs only")
    w = g.const(lin.weight_t, np.int8)
    x = codes if u8 else _to_u8(g, codes)
    acc = g.op("MatMulInteger", x, w, g.const(int(lin.inp.zero_point), np.uint8))
    return g.op("Add", g.cast(acc, TensorProto.INT64), g.const(lin.bias))


def _shift_exp(g: _Graph, x: str, x0: int, n: int, cap: int) -> str:
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


def _normalise(g: _Graph, num: str, den: str, out_bits: int, division: str) -> str:
    """``papers.ivit.shift._normalise`` (``official``: truncated reciprocal; ``exact``: one floor division)."""
    den = g.clamp(den, 1, _INT31_MAX)
    if division == "exact":
        return g.floor_div(g.op("Mul", num, g.const(2 ** (out_bits - 1))), den)
    factor = g.div_pos(g.const(_INT31_MAX), den)
    return g.shr(g.op("Mul", num, factor), 32 - out_bits)


def _shiftmax(
    g: _Graph,
    x: str,
    x0: int,
    n: int,
    out_bits: int,
    division: str,
    table: torch.Tensor | None = None,
    in_shift: int = 0,
) -> str:
    """Shiftmax of logit codes (``<< in_shift``); with ``table`` (:func:`~vitq_plugins.intexec.tables.shift_exp_table`,
    built with the same shift) the exponential is one ``Gather`` indexed by ``x - max(x)`` (negative indices
    count from the table's end)."""
    x = g.op("Sub", x, g.reduce_max(x))
    if table is not None:
        e = g.op("Gather", g.const(table), x, axis=0)
    else:
        e = _shift_exp(g, g.times_pow2(x, in_shift), x0, n, _INT31_MAX)
    return _normalise(g, e, g.reduce_sum(e), out_bits, division)


def _shiftgelu(g: _Graph, x: str, x0: int, n: int, out_bits: int, division: str) -> str:
    x_max = g.reduce_max(x)
    e = _shift_exp(g, g.op("Sub", x, x_max), x0, n, _INT31_MAX)
    e_max = _shift_exp(g, g.op("Neg", x_max), x0, n, _INT31_MAX)
    return g.op("Mul", x, _normalise(g, e, g.op("Add", e, e_max), out_bits, division))


def _floor_log2(g: _Graph, v: str) -> str:
    """``floor(log2 v)`` for ``0 <= v < 2^63`` (0 for ``v = 0``): where ``v >= 2^step``, shift ``v`` right by
    ``step`` and add it to the result (steps 32, 16, ..., 1), all on uint64 without ``Where``."""
    from onnx import TensorProto

    vu = g.to_u64(v)
    msb = None
    for step in (32, 16, 8, 4, 2, 1):
        hit = g.cast(g.op("Greater", vu, g.const((1 << step) - 1, np.uint64)), TensorProto.UINT64)
        amount = g.op("Mul", hit, g.const(step, np.uint64))
        vu = g.op("BitShift", vu, amount, direction="RIGHT")
        msb = amount if msb is None else g.op("Add", msb, amount)
    assert msb is not None
    return g.cast(msb, TensorProto.INT64)


def _isqrt(g: _Graph, v: str) -> str:
    """``papers.ivit.ilayernorm.isqrt_newton(v, 10, init="auto")``."""
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
        odd = g.op("Equal", g.mod(q, g.const(2)), g.const(1))
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
    s = g.op("Add", _requant_raw(g, acc, res.branch), _requant_raw(g, x, res.skip, sub=res.x_zero_point))
    k = RESIDUAL_EXTRA_BITS
    y = g.shr(s, k, pre=1 << (k - 1), post=int(res.out.zero_point))
    return g.clamp(y, res.out.qmin, res.out.qmax)


def _table_at_v(g: _Graph, table: torch.Tensor, codes: str, v: str, v_zp: int, tokens: int) -> str:
    """``table[codes] @ (v - v_zp)`` (int64) for a non-negative probability table indexed by LIS codes.

    Each uint8 byte plane of the table (:func:`~vitq_plugins.intexec.tables.byte_planes`) is gathered and
    multiplied by the uint8 ``v`` codes in one ``MatMulInteger`` (int32: ``tokens * 255 * 255 < 2^31``); the
    planes' products are shifted into place and summed, which equals the int64 product exactly. Sequences too
    long for int32 take an int64 ``MatMul``.
    """
    if tokens * 255 * 255 >= 2**31:
        p = g.op("Gather", g.const(table), codes, axis=0)
        return g.op("MatMul", p, g.op("Sub", v, g.const(v_zp)))
    v_u8 = _to_u8(g, v)
    out = None
    for k, plane in byte_planes(table):
        p = g.op("Gather", g.const(plane, np.uint8), codes, axis=0)
        prod = _matmul_int(g, p, v_u8, 0, v_zp)
        if k:
            prod = g.op("Mul", prod, g.const(1 << (8 * k)))
        out = prod if out is None else g.op("Add", out, prod)
    assert out is not None
    return out


def _attention(g: _Graph, x: str, at: IntAttention, channels: int, tokens: int) -> str:
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
        o = _table_at_v(g, at.lis_table, _lis_iexp_codes(g, logits, at), v, at.rq_v.zero_point, tokens)
    elif at.lis:
        powers = lis_power_table(at.out_bits, at.lis_frac)
        o = _table_at_v(g, powers, _lis_log_codes(g, scores, at), v, at.rq_v.zero_point, tokens)
    else:
        logits = _requant(g, scores, at.rq_logits)
        table = shift_exp_table(at.rq_logits, at.x0, at.n, at.in_shift)
        p = _shiftmax(g, logits, at.x0, at.n, at.out_bits, at.division, table, at.in_shift)
        o = _matmul_int(g, _to_u8(g, p), _to_u8(g, v), 0, at.rq_v.zero_point)
    o = g.op("Reshape", g.op("Transpose", o, perm=[0, 2, 1, 3]), g.const([0, 0, channels]))
    return _linear(g, _requant(g, o, at.rq_out), at.proj)


def _lis_iexp_codes(g: _Graph, x: str, at: IntAttention) -> str:
    """``papers.fqvit.lis.lis_softmax_unit(rounding="linear")``: I-BERT i-exp, then ``round(log2(sum / e))`` in linear space."""
    x0, b_int, c_int = at.lis_iexp
    n = at.n
    d = g.op("Sub", x, g.reduce_max(x))
    table = iexp_table(at.rq_logits, (x0, b_int, c_int), n, at.in_shift)
    if table is not None:  # the i-exp of every possible d, one Gather (negative indices from the end)
        e = g.op("Gather", g.const(table), d, axis=0)
    else:
        x = g.op("Max", g.times_pow2(d, at.in_shift), g.const(n * x0))
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
    nxt = g.mod(g.shl_u(ratio, g.op("Max", g.op("Sub", k, g.const(1)), g.const(0)), "RIGHT"), two)
    k = g.op("Add", k, g.where(g.op("Greater", k, g.const(0)), nxt, g.const(0)))
    zero = 2**at.out_bits
    under = g.op("Or", g.op("Equal", e, g.const(0)), g.op("GreaterOrEqual", k, g.const(zero)))
    return g.where(under, g.const(zero), k)


def _lis_log_codes(g: _Graph, x: str, at: IntAttention) -> str:
    """``kernels.table_exp`` + ``papers.fqvit.lis.lis_codes(rounding="log")``: codes ``0..2^b`` (``2^b``: underflow)."""
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
    t2 = _floor_log2(g, g.op("Max", ratio, g.const(1)))
    big = g.op("GreaterOrEqual", t2, g.const(31))
    down = g.shl_u(ratio, g.op("Max", g.op("Sub", t2, g.const(31)), g.const(0)), "RIGHT")
    up = g.shl_u(ratio, g.op("Max", g.op("Sub", g.const(31), t2), g.const(0)), "LEFT")
    mant = g.where(big, down, up)
    sqrt2 = g.const(round(2**0.5 * 2**31))
    k = g.op("Add", g.op("Sub", t2, g.const(16)), g.b2i(g.op("GreaterOrEqual", mant, sqrt2)))
    zero = 2**at.out_bits
    under = g.op("Or", g.op("Equal", e, g.const(0)), g.op("GreaterOrEqual", k, g.const(zero)))
    return g.where(under, g.const(zero), k)


def _mlp(g: _Graph, x: str, mlp: IntMlp) -> str:
    if mlp.lut is not None:
        idx = _requant(g, _linear(g, x, mlp.fc1), mlp.rq_gelu)
        codes = g.op("Gather", g.const(mlp.lut, np.uint8), idx, axis=0)
        from onnx import TensorProto

        return _linear(g, g.cast(codes, TensorProto.INT64), mlp.fc2)
    assert mlp.rq_fc2 is not None
    a = _requant(g, _linear(g, x, mlp.fc1), mlp.rq_gelu, centered=True)
    lut = shiftgelu_requant_table(
        mlp.rq_gelu, mlp.rq_fc2, mlp.x0, mlp.n, mlp.out_bits, mlp.division, mlp.in_shift
    )
    if lut is not None:  # ShiftGELU + requant to fc2's grid: one Gather at (a - lo) * width + (max(a) - lo)
        table, lo, width = lut
        row = g.op("Add", g.reduce_max(a), g.const(-lo * (width + 1)))
        idx = g.op("Add", g.op("Mul", a, g.const(width)), row)
        return _linear(g, g.op("Gather", g.const(table, np.uint8), idx, axis=0), mlp.fc2, u8=True)
    y = _shiftgelu(g, g.times_pow2(a, mlp.in_shift), mlp.x0, mlp.n, mlp.out_bits, mlp.division)
    return _linear(g, _requant(g, y, mlp.rq_fc2), mlp.fc2)


def _block(g: _Graph, x: str, blk: IntBlock, channels: int, tokens: int) -> str:
    attn = _attention(g, _layernorm(g, x, blk.ln1, channels), blk.attn, channels, tokens)
    x2 = _residual(g, attn, x, blk.res1)
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
        raw = g.shr(fine, em.pos_bits, pre=1 << (em.pos_bits - 1), post=em.rq.zero_point)
    else:
        raw = _requant_raw(g, g.op("Add", acc, g.const(em.pos_int)), em.rq, post=em.rq.zero_point)
    if not em.fine:
        tokens = g.clamp(raw, em.rq.qmin, em.rq.qmax)
    shape = g.op("Shape", tokens)
    batch = g.op("Slice", shape, g.const([0]), g.const([1]))
    cls_shape = g.op("Concat", batch, g.const([1, channels]), axis=0)
    cls = g.op("Expand", g.const(em.cls_codes.reshape(1, 1, -1)), cls_shape)
    x = g.op("Concat", cls, tokens, axis=1)
    for blk in blocks:
        x = _block(g, x, blk, channels, tokens=(hh // p) * (ww // p) + 1)
    hd = executor.head
    if hd.pre is not None:
        x = _requant(g, x, hd.pre, sub=hd.pre_zero_point)
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
