"""Export an :class:`~vitq_plugins.intexec.IntExecutor` to an ONNX graph of integer ops (ONNX Runtime runs it).

I-ViT (arXiv 2207.01405) integer-only inference as a standard ONNX graph: matmuls are ``MatMulInteger``
(uint8 activations with their zero points x int8 weights -> int32, eq. 4), dyadic requantization is
``Mul``/``Add`` by int64 constants and a floor division by ``2^k`` (eq. 7); each integer form (LayerNorm, the
softmax of attention, GELU) emits its own nodes (``emit_onnx``, built with :class:`OnnxGraph` and the helpers
here), from ``Add``/``Sub``/``Mul``/``Div``/``Mod``/``BitShift``/
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
code (softmax exponentials) or of a code and its row maximum (a GELU, then the requant to fc2's grid) are
exhaustive tables built from the executor's own kernels (:mod:`~vitq_plugins.intexec.tables`), one ``Gather``
each; probability tables times ``v`` run as one uint8 ``MatMulInteger`` per byte (:func:`table_at_v`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vitq_plugins.core.errors import VitqError
from vitq_plugins.intexec.executor import IntExecutor
from vitq_plugins.intexec.layers import RESIDUAL_EXTRA_BITS
from vitq_plugins.intexec.layers import IntAttention
from vitq_plugins.intexec.layers import IntBlock
from vitq_plugins.intexec.layers import IntLayerNorm
from vitq_plugins.intexec.layers import IntLinear
from vitq_plugins.intexec.layers import IntMlp
from vitq_plugins.intexec.layers import ResidualAdd
from vitq_plugins.intexec.requant import Requant
from vitq_plugins.intexec.tables import byte_planes

__all__ = [
    "OPSET",
    "OnnxGraph",
    "build_int_onnx",
    "export_int_onnx",
    "floor_log2",
    "isqrt",
    "linear",
    "matmul_int",
    "requant",
    "requant_raw",
    "table_at_v",
    "to_u8",
]

OPSET = 17
_INT31_MAX = 2**31 - 1
_ISQRT_ITERS = 10
_BIAS = 2**62


class OnnxGraph:
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


def requant_raw(g: OnnxGraph, x: str, rq: Requant, sub: int = 0, post: int = 0) -> str:
    """``Requant.raw(x - sub) + post``; ``sub`` and ``post`` fold into the constant adds where int64 allows."""
    if rq.pre is not None:  # a chain of grids: the earlier requant's codes minus its zero point
        x = requant(g, x, rq.pre, centered=True, sub=sub)
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


def requant(g: OnnxGraph, x: str, rq: Requant, centered: bool = False, sub: int = 0) -> str:
    """``Requant(x - sub)``, or its codes minus the zero point (``centered``): one clip, no zero-point adds."""
    zp = 0 if centered else rq.zero_point
    y = requant_raw(g, x, rq, sub=sub, post=zp)
    if not rq.do_clamp:
        return y
    return g.clamp(y, rq.qmin - rq.zero_point + zp, rq.qmax - rq.zero_point + zp)


def to_u8(g: OnnxGraph, codes: str) -> str:
    from onnx import TensorProto

    return g.cast(codes, TensorProto.UINT8)


def matmul_int(g: OnnxGraph, a_u8: str, b_u8: str, a_zp: int, b_zp: int) -> str:
    from onnx import TensorProto

    out = g.op("MatMulInteger", a_u8, b_u8, g.const(a_zp, np.uint8), g.const(b_zp, np.uint8))
    return g.cast(out, TensorProto.INT64)


def linear(g: OnnxGraph, codes: str, lin: IntLinear, u8: bool = False) -> str:
    """``sum (x - z) w + b`` with ``MatMulInteger(uint8 x, int8 w)`` (``u8``: ``codes`` are uint8 already)."""
    from onnx import TensorProto

    if lin.center != 128:
        raise VitqError("ONNX export supports uint8 Linear inputs only")
    w = g.const(lin.weight_t, np.int8)
    x = codes if u8 else to_u8(g, codes)
    acc = g.op("MatMulInteger", x, w, g.const(int(lin.inp.zero_point), np.uint8))
    return g.op("Add", g.cast(acc, TensorProto.INT64), g.const(lin.bias))


def floor_log2(g: OnnxGraph, v: str) -> str:
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


def isqrt(g: OnnxGraph, v: str) -> str:
    """``papers.ivit.ilayernorm.isqrt_newton(v, 10, init="auto")``."""
    vv = g.op("Max", v, g.const(1))
    half_bits = g.shr(g.op("Add", floor_log2(g, vv), g.const(2)), 1)
    k = g.shl_u(g.const(1), half_bits, "LEFT")
    for _ in range(max(_ISQRT_ITERS, 8)):
        k = g.op("Max", g.shr(g.op("Add", k, g.div_pos(vv, k)), 1), g.const(1))
    k = g.op("Sub", k, g.b2i(g.op("Greater", k, g.div_pos(vv, k))))
    k1 = g.op("Add", k, g.const(1))
    k = g.op("Add", k, g.b2i(g.op("LessOrEqual", k1, g.div_pos(vv, k1))))
    return g.where(g.op("Equal", v, g.const(0)), g.const(0), k)


def _layernorm(g: OnnxGraph, x: str, ln: IntLayerNorm, channels: int) -> str:
    """``IntLayerNorm``: input requant and alignment, its form's emitter, the output requant."""
    if ln.in_rq is not None:
        x = requant(g, x, ln.in_rq)
    if ln.aligned:
        x = g.op(
            "Mul",
            g.op("Sub", x, g.const(ln.in_zero_point)),
            g.const(torch.ones_like(ln.in_shift) << ln.in_shift),
        )
    return requant(g, ln.kernel.emit_onnx(g, x, channels), ln.out)


def _residual(g: OnnxGraph, acc: str, x: str, res: ResidualAdd) -> str:
    if res.skip is None:  # the fixed-point float stream (fqvit FX): x + branch, unrounded
        return g.op("Add", x, requant_raw(g, acc, res.branch))
    s = g.op("Add", requant_raw(g, acc, res.branch), requant_raw(g, x, res.skip, sub=res.x_zero_point))
    k = RESIDUAL_EXTRA_BITS
    y = g.shr(s, k, pre=1 << (k - 1), post=int(res.out.zero_point))
    return g.clamp(y, res.out.qmin, res.out.qmax)


def table_at_v(g: OnnxGraph, table: torch.Tensor, codes: str, v: str, v_zp: int, tokens: int) -> str:
    """``table[codes] @ (v - v_zp)`` (int64) for a non-negative probability table indexed by LIS codes.

    Each uint8 byte plane of the table (:func:`~vitq_plugins.intexec.tables.byte_planes`) is gathered and
    multiplied by the uint8 ``v`` codes in one ``MatMulInteger`` (int32: ``tokens * 255 * 255 < 2^31``); the
    planes' products are shifted into place and summed, which equals the int64 product exactly. Sequences too
    long for int32 take an int64 ``MatMul``.
    """
    if tokens * 255 * 255 >= 2**31:
        p = g.op("Gather", g.const(table), codes, axis=0)
        return g.op("MatMul", p, g.op("Sub", v, g.const(v_zp)))
    v_u8 = to_u8(g, v)
    out = None
    for k, plane in byte_planes(table):
        p = g.op("Gather", g.const(plane, np.uint8), codes, axis=0)
        prod = matmul_int(g, p, v_u8, 0, v_zp)
        if k:
            prod = g.op("Mul", prod, g.const(1 << (8 * k)))
        out = prod if out is None else g.op("Add", out, prod)
    assert out is not None
    return out


def _attention(g: OnnxGraph, x: str, at: IntAttention, channels: int, tokens: int) -> str:
    """qkv, exact scores (``MatMulInteger``), the softmax form's ``P @ v``, requant, proj."""
    h = at.num_heads
    d = channels // h
    acc = g.op("Reshape", linear(g, x, at.qkv), g.const([0, 0, 3, h, d]))
    acc = g.op("Transpose", acc, perm=[2, 0, 3, 1, 4])
    parts = [g.op("Gather", acc, g.const(i), axis=0) for i in range(3)]
    q = requant(g, parts[0], at.rq_q)
    k = requant(g, parts[1], at.rq_k)
    v = requant(g, parts[2], at.rq_v)
    kt = g.op("Transpose", to_u8(g, k), perm=[0, 1, 3, 2])
    scores = matmul_int(g, to_u8(g, q), kt, at.rq_q.zero_point, at.rq_k.zero_point)
    o = at.softmax.emit_onnx(g, scores, v, at.rq_v.zero_point, tokens)
    o = g.op("Reshape", g.op("Transpose", o, perm=[0, 2, 1, 3]), g.const([0, 0, channels]))
    return linear(g, requant(g, o, at.rq_out), at.proj)


def _mlp(g: OnnxGraph, x: str, mlp: IntMlp) -> str:
    """fc1, the GELU form (to fc2's input codes), fc2."""
    codes, u8 = mlp.gelu.emit_onnx(g, linear(g, x, mlp.fc1))
    return linear(g, codes, mlp.fc2, u8=u8)


def _block(g: OnnxGraph, x: str, blk: IntBlock, channels: int, tokens: int) -> str:
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
        blk.attn.softmax.check_onnx()
    g = OnnxGraph()
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
        tokens = g.op("Add", requant_raw(g, acc, em.rq), g.const(em.pos_int))
    elif em.pos_bits:  # position embedding added on the fine stream scale, then one rounding (IntEmbed)
        fine = g.op("Add", requant_raw(g, acc, em.rq), g.const(em.pos_int))
        raw = g.shr(fine, em.pos_bits, pre=1 << (em.pos_bits - 1), post=em.rq.zero_point)
    else:
        raw = requant_raw(g, g.op("Add", acc, g.const(em.pos_int)), em.rq, post=em.rq.zero_point)
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
        x = requant(g, x, hd.pre, sub=hd.pre_zero_point)
    x = g.op("Gather", x, g.const(0), axis=1)
    logits = requant(g, linear(g, _layernorm(g, x, hd.ln, channels), hd.head), hd.rq_out)
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
