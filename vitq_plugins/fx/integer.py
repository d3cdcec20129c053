"""Convert a torch.ao FX-converted ViT (``--backend fx``, recipes ``ivit`` and ``fqvit``) into an :class:`IntExecutor`.

I-ViT (arXiv 2207.01405): every rescale is a dyadic requantization ``(x * m + 2^(k-1)) >> k`` (eq. 7),
weights are int8 codes with per-channel scales and biases become int32 ``round(b / (S_x S_w))`` (eq. 4, the
sub-LSB remainder goes into the requant rounding offset), Shiftmax (eqs. 9-14), ShiftGELU (eqs. 15-17) and
I-LayerNorm (eq. 18) run on integer codes with their per-layer constants computed here, once.

Mapping of the ``convert_fx`` GraphModule (x86 engine, read node by node; the executor reproduces each
rounding the quantized graph makes):

* every activation is quint8 with a zero point; a grid is read from the tensor's producer: a quantized
  Linear/Conv (``.scale``, ``.zero_point``: each Linear rounds its accumulator to its *own* output grid),
  a ``quantize_per_tensor`` node (get_attr scale / zero point), ``quantized::add``/``matmul`` (their scale
  / zero-point arguments) or a vitq ``QuantizedCustom`` (``out_scale``/``out_zero_point``);
* ``dequantize`` followed by ``quantize_per_tensor`` onto another grid is one more dyadic requant of
  ``code - z`` (:class:`Requant` ``pre`` chains them): the qkv output is rounded to the qkv grid, then q, k
  and v each to their own; proj/fc2 outputs to their grid, then to the residual add's input grid; the GELU
  output container, then fc2's input grid; the final norm's output, then the head's input grid;
* ``quantized::mul`` by the attention scale ``c > 0`` is exact on x86 (same codes, scale ``S_q c``), so it
  only enters the logits' requant ratio ``S_q c S_k / S_logits``; ``quantized::matmul`` (a float matmul of
  the dequantized operands, then rounded) becomes the exact integer matmul and one requant;
* ``quantized::add`` rounds ``(a - z_a) S_a + (b - z_b) S_b`` once: both terms are rescaled to
  ``S_out / 2^K`` and summed before one rounding (:class:`ResidualAdd`, its branch term being the Linear's
  accumulator carried through its grids by the ``pre`` chain);
* the patch conv output is rounded to the conv's grid, the float position embedding is added, and the sum
  is rounded to the stream grid: :class:`IntEmbed` with ``pos_bits = K``;
* the logits are the head's quint8 codes minus its zero point (scale: the head's output scale).

Float arithmetic of the quantized graph (the float matmuls, ``x * (1 / S)`` in float32, ties to even) makes
the executor differ from it only where a value lies within float32 precision of a rounding tie.

FQ-ViT (arXiv 2111.13824, recipe ``fqvit``) has another graph, read the same way:

* the residual stream stays *float* (``dequantize`` of the patch conv / proj / fc2 outputs, float adds,
  ``pos_embed`` added in float): here it is a fixed-point integer ``x 2^exp`` (``exp`` chosen so that the
  stream's bound stays under ``2^37``) to which every branch's codes are added exactly (``ResidualAdd`` with
  no skip requant, ``IntEmbed(fine=True)``); float32 rounds each add, so they differ only near ties;
* each LayerNorm input is ``quantize_per_channel`` of that stream onto its PTS grid ``s 2^alpha_c`` (eqs.
  9-10: a per-channel requant, ``IntLayerNorm.in_rq``), and the PTS custom module runs FQ-ViT's *integer*
  LayerNorm (``papers.fqvit.pts.pts_int_layernorm``: per-token 8-bit mantissa ``M``, shift ``N`` and offset ``B``,
  derived in float64 there); ``papers.fqvit.integer.pts_layernorm_int`` derives the same ``M``, ``N``, ``B`` with integer ops
  (exact rationals, a long division, an integer square root), then the output container's zero point;
* LIS (eqs. 13-16) runs ``papers.fqvit.lis.lis_softmax_int`` on the logit codes (I-BERT i-exp, linear-space rounding
  of ``log2``): ``lis_softmax_unit`` with the constants of the logit scale; its ``2^-code`` is quantized onto
  the output container (a ``2^b + 1``-entry table), and ``attn @ v`` is the usual integer matmul + requant;
* the float GELU of fc1's dequantized uint8 codes, quantized to uint8 (and re-quantized to fc2's input grid)
  is a 256-entry table, computed once with the graph's own float ops (exact).

Recipes whose graph keeps an op in floating point (``minmax``: torch.ao quantized LayerNorm/Softmax;
``mptq``: OPT-m) are rejected with a :class:`VitqError` naming the first such node.

Reached through ``BACKEND.integer_program``; the nodes without an integer form are found by
:mod:`vitq_plugins.fx.integer_check`.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import torch
from torch import fx
from torch import nn

from vitq_plugins.core.errors import VitqError
from vitq_plugins.fx.integer_check import fx_float_ops_left
from vitq_plugins.intexec.extension import INT32_MAX
from vitq_plugins.intexec.extension import RESIDUAL_EXTRA_BITS
from vitq_plugins.intexec.extension import AttentionSite
from vitq_plugins.intexec.extension import GeluSite
from vitq_plugins.intexec.extension import GeluTable
from vitq_plugins.intexec.extension import IntAttention
from vitq_plugins.intexec.extension import IntBlock
from vitq_plugins.intexec.extension import IntEmbed
from vitq_plugins.intexec.extension import IntExecutor
from vitq_plugins.intexec.extension import IntHead
from vitq_plugins.intexec.extension import IntLayerNorm
from vitq_plugins.intexec.extension import IntLinear
from vitq_plugins.intexec.extension import IntMlp
from vitq_plugins.intexec.extension import LayerNormSite
from vitq_plugins.intexec.extension import QParams
from vitq_plugins.intexec.extension import Requant
from vitq_plugins.intexec.extension import ResidualAdd
from vitq_plugins.intexec.extension import find_integer_form
from vitq_plugins.intexec.extension import grid_span

__all__ = ["convert_fx", "fx_float_ops_left"]

_K = RESIDUAL_EXTRA_BITS
_SHAPE_METHODS = {"reshape", "view", "permute", "transpose", "flatten", "contiguous", "unbind", "expand"}


def _qop(name: str) -> Any:
    return getattr(torch.ops.quantized, name)


_span = grid_span


def _is_per_channel_quantize(node: fx.Node) -> bool:
    return node.op == "call_function" and node.target is torch.quantize_per_channel


def _same(a: QParams, b: QParams) -> bool:
    return a.scale == b.scale and a.zero_point == b.zero_point and (a.qmin, a.qmax) == (b.qmin, b.qmax)


class _Lin:
    """An integer Linear with its accumulator scale ``S_x S_w`` (per channel), ``|acc|`` bound and bias remainder."""

    def __init__(self, layer: IntLinear, acc_scale: torch.Tensor, bound: int, frac: torch.Tensor) -> None:
        self.layer, self.acc_scale, self.bound, self.frac = layer, acc_scale, bound, frac


class _Graph:
    """Node lookup and grid reading on one converted GraphModule."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm = gm
        self.by_target = {str(n.target): n for n in gm.graph.nodes if n.op == "call_module"}

    # --- nodes ------------------------------------------------------------------------------------------
    def module(self, target: str) -> tuple[fx.Node, nn.Module]:
        node = self.by_target.get(target)
        if node is None:
            raise VitqError(f"integer conversion: the FX graph has no call to module {target!r}")
        return node, self.gm.get_submodule(target)

    def is_pass(self, node: fx.Node) -> bool:
        """Shape ops, identities and dropouts (eval): the tensor and its grid pass through unchanged."""
        if node.op == "call_method":
            return node.target in _SHAPE_METHODS
        if node.op == "call_function":
            return node.target is operator.getitem
        if node.op == "call_module":
            return isinstance(self.gm.get_submodule(str(node.target)), nn.Identity | nn.Dropout)
        return False

    def back(self, node: Any, trail: list[fx.Node] | None = None) -> fx.Node:
        """The first node before ``node`` (itself included) that is not a pass-through."""
        if not isinstance(node, fx.Node):
            raise VitqError(f"integer conversion: expected a graph node, got {node!r}")
        cur: fx.Node = node
        while self.is_pass(cur):
            if trail is not None:
                trail.append(cur)
            nxt = cur.args[0]
            if not isinstance(nxt, fx.Node):
                raise VitqError(f"integer conversion: node {cur.name!r} has no tensor input")
            cur = nxt
        return cur

    def source(self, qnode: fx.Node, trail: list[fx.Node] | None = None) -> fx.Node:
        """Producer of the float value a ``quantize_per_tensor`` node re-quantizes (through ``dequantize``)."""
        n = self.back(qnode.args[0], trail)
        if not (n.op == "call_method" and n.target == "dequantize"):
            raise VitqError(
                f"integer conversion: {qnode.name!r} quantizes the output of {n.name!r} ({n.format_node()}), "
                "which is computed in floating point"
            )
        return self.back(n.args[0], trail)

    def forward_to(self, node: fx.Node, target: Any) -> fx.Node:
        """Follow single users through pass-throughs, ``dequantize`` and ``quantize_per_tensor`` to ``target``."""
        cur = node
        for _ in range(64):
            users = list(cur.users)
            if len(users) != 1:
                break
            cur = users[0]
            if cur.op == "call_function" and cur.target is target:
                return cur
            if not (
                self.is_pass(cur)
                or (cur.op == "call_method" and cur.target == "dequantize")
                or (cur.op == "call_function" and cur.target is torch.quantize_per_tensor)
            ):
                break
        raise VitqError(f"integer conversion: the output of {node.name!r} does not reach a residual add")

    # --- grids ------------------------------------------------------------------------------------------
    def attr(self, v: Any) -> float:
        if isinstance(v, fx.Node):
            if v.op != "get_attr":
                raise VitqError(f"integer conversion: qparam {v.name!r} is not a constant")
            t: Any = self.gm
            for part in str(v.target).split("."):
                t = getattr(t, part)
            return float(torch.as_tensor(t).reshape(()))
        return float(v)

    def grid(self, node: Any) -> QParams:
        """The quint8 grid of the quantized tensor that ``node`` yields."""
        from vitq_plugins.fx.modules import QuantizedCustom

        n = self.back(node)
        scale: float
        zp: float
        if n.op == "call_function" and n.target is torch.quantize_per_tensor:
            if n.args[3] != torch.quint8:
                raise VitqError(f"integer conversion: {n.name!r} quantizes to {n.args[3]}, expected quint8")
            scale, zp = self.attr(n.args[1]), self.attr(n.args[2])
        elif n.op == "call_function" and n.target in (_qop("add"), _qop("matmul")):
            scale, zp = self.attr(n.args[2]), self.attr(n.args[3])
        elif n.op == "call_function" and n.target is _qop("mul"):
            c = n.args[1]
            if not isinstance(c, float | int) or c <= 0:
                raise VitqError(f"integer conversion: {n.name!r} multiplies by {c!r}; only a positive scalar")
            g = self.grid(n.args[0])
            return QParams(g.scale * float(c), g.zero_point, g.qmin, g.qmax, n.name)
        elif n.op == "call_module":
            mod: Any = self.gm.get_submodule(str(n.target))
            if isinstance(mod, QuantizedCustom):
                scale, zp = mod.out_scale, mod.out_zero_point
            elif hasattr(mod, "scale") and hasattr(mod, "zero_point") and hasattr(mod, "weight"):
                scale, zp = float(mod.scale), float(mod.zero_point)
            else:
                raise VitqError(
                    f"integer conversion: module {n.target!r} ({type(mod).__name__}) is not quantized"
                )
        else:
            raise VitqError(
                f"integer conversion: node {n.name!r} ({n.format_node()}) does not produce a quantized tensor"
            )
        if not (math.isfinite(scale) and scale > 0):
            raise VitqError(f"integer conversion: {n.name!r} has scale {scale}")
        return QParams(float(scale), int(round(zp)), 0, 255, n.name)

    def input_grid(self, node: fx.Node, mod: Any, where: str) -> QParams:
        """Grid of a custom module's input; its kernel's observer must agree with the tensor it gets."""
        g = self.grid(node.args[0])
        scale, zp = mod.observed.input_observer().qparams()
        if float(scale) != g.scale or int(zp) != g.zero_point:
            raise VitqError(
                f"{where}: the kernel's input grid ({float(scale):.6g}, {int(zp)}) differs from its input "
                f"tensor's ({g.scale:.6g}, {g.zero_point})"
            )
        return g


def _custom(graph: _Graph, target: str, kind: str) -> tuple[fx.Node, Any, Any]:
    """The vitq custom module ``target``, and the ``kind`` integer form of its quantizer."""
    from vitq_plugins.fx.modules import QuantizedCustom

    node, mod = graph.module(target)
    form = find_integer_form(kind, mod.quantizer, "fx") if isinstance(mod, QuantizedCustom) else None
    if form is None:
        got = mod.quantizer if isinstance(mod, QuantizedCustom) else type(mod).__name__
        raise VitqError(f"{target}: expected an integer {kind} kernel, got {got!r}")
    return node, mod, form


def _linear(graph: _Graph, node: fx.Node, mod: Any, inp: QParams, where: str) -> _Lin:
    """Integer Linear of a torch.ao quantized Linear/Conv (int8 symmetric weights, float bias)."""
    weight = getattr(mod, "weight", None)
    if not callable(weight) or not hasattr(mod, "scale"):
        raise VitqError(f"{where}: weight is not quantized (float {type(mod).__name__})")
    w = weight()
    if not isinstance(w, torch.Tensor) or w.dtype != torch.qint8:
        raise VitqError(f"{where}: integer matmuls need qint8 weights, got {getattr(w, 'dtype', None)}")
    out_ch = int(w.shape[0])
    if w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        if int(w.q_per_channel_axis()) != 0:
            raise VitqError(f"{where}: per-channel weight scales must be along the output channels")
        sw = w.q_per_channel_scales().double()
        zw = w.q_per_channel_zero_points()
    else:
        sw = torch.full((out_ch,), float(w.q_scale()), dtype=torch.float64)
        zw = torch.full((out_ch,), int(w.q_zero_point()))
    if bool((zw != 0).any()):
        raise VitqError(f"{where}: integer matmuls need symmetric weights (zero point 0)")
    codes = w.int_repr().reshape(out_ch, -1)
    acc_scale = inp.scale * sw
    bias = mod.bias() if callable(getattr(mod, "bias", None)) else None
    if bias is None:
        b = torch.zeros(out_ch, dtype=torch.int64)
        frac = torch.zeros(out_ch, dtype=torch.float64)
    else:
        exact = bias.detach().double() / acc_scale
        bi = torch.round(exact)
        if bool((bi.abs() > INT32_MAX).any()):
            raise VitqError(f"{where}: integer bias overflows int32 (max {int(bi.abs().max())})")
        b, frac = bi.to(torch.int64), exact - bi
    bound = _span(inp) * int(codes.to(torch.int64).abs().sum(dim=1).max()) + int(b.abs().max())
    if bound > INT32_MAX:
        raise VitqError(f"{where}: the int32 accumulator can overflow (bound {bound})")
    return _Lin(IntLinear(codes, b, inp), acc_scale, bound, frac)


def _to_grid(lin: _Lin, g: QParams) -> Requant:
    """Requant of a Linear's accumulator to its output grid (x86 quantized Linear: round, clamp)."""
    return Requant(lin.acc_scale / g.scale, g, lin.bound, frac=lin.frac)


def _regrid(first: Requant, dst: QParams) -> Requant:
    """``first`` followed by ``quantize_per_tensor(dequantize(.), dst)`` (nothing when the grids agree)."""
    src = first.out
    if _same(src, dst):
        return first
    return Requant(src.scale / dst.scale, dst, _span(src), pre=first)


def _qkv_part(graph: _Graph, qnode: fx.Node, qkv_node: fx.Node, where: str) -> tuple[int, int, int]:
    """``(index, heads, head_dim)`` of the q/k/v slice that ``quantize_per_tensor`` node ``qnode`` takes."""
    trail: list[fx.Node] = []
    src = graph.source(qnode, trail)
    if src is not qkv_node:
        raise VitqError(f"{where}: {qnode.name!r} does not take its input from the qkv Linear")
    index = [n.args[1] for n in trail if n.op == "call_function" and n.target is operator.getitem]
    reshape = [n for n in trail if n.op == "call_method" and n.target == "reshape"]
    permute = [n for n in trail if n.op == "call_method" and n.target == "permute"]
    if (
        len(index) != 1
        or len(reshape) != 1
        or len(permute) != 1
        or tuple(permute[0].args[1:]) != (2, 0, 3, 1, 4)
    ):
        raise VitqError(f"{where}: unexpected q/k/v split of the qkv output at {qnode.name!r}")
    shape = reshape[0].args[1:]
    heads, head_dim = (shape[3], shape[4]) if len(shape) == 5 else (None, None)
    idx = index[0]
    if (
        len(shape) != 5
        or shape[2] != 3
        or not (isinstance(heads, int) and isinstance(head_dim, int) and isinstance(idx, int))
    ):
        raise VitqError(f"{where}: unexpected qkv reshape {reshape[0].format_node()}")
    return idx, heads, head_dim


def _norm(
    graph: _Graph, target: str, x_node: fx.Node, fine: _Fine | None, then: QParams | None = None
) -> tuple[fx.Node, IntLayerNorm]:
    """The LayerNorm ``target`` on the stream ``x_node`` (its quantizer's form), the requant of its output to its
    output container and then to ``then``. On the fixed-point float stream (``fine``) the input is a
    ``quantize_per_channel`` of the stream, done here by a per-channel requant."""
    node, mod, form = _custom(graph, target, "layernorm")
    inner = mod.observed.inner
    if inner.weight is None or inner.bias is None:
        raise VitqError(f"{target}: an integer LayerNorm needs an affine LayerNorm")
    out_grid = graph.grid(node)
    eps = float(getattr(inner, "eps", 0.0))
    scales: torch.Tensor | None = None
    if fine is not None:
        qpc = graph.back(node.args[0])
        if not (qpc.op == "call_function" and qpc.target is torch.quantize_per_channel):
            raise VitqError(f"{target}: its input is not a per-channel quantize of the stream")
        if graph.back(qpc.args[0]) is not x_node:
            raise VitqError(f"{target}: its input is not the residual stream")
        scales, zps = _attr_tensor(graph, qpc.args[1]), _attr_tensor(graph, qpc.args[2])
        site = LayerNormSite(
            target, mod, inner.weight, inner.bias, eps, out_grid=out_grid,
            channel_scales=scales, channel_zero_points=zps, channel_dtype=qpc.args[4], channel_node=qpc,
        )  # fmt: skip
    else:
        if graph.back(node.args[0]) is not x_node:
            raise VitqError(f"{target}: its input is not the residual stream")
        in_grid = graph.input_grid(node, mod, target)
        site = LayerNormSite(target, mod, inner.weight, inner.bias, eps, in_grid=in_grid, out_grid=out_grid)
    build = form.from_fx(site)
    in_rq = None
    if scales is not None:
        assert fine is not None
        if build.in_grid is None:
            raise VitqError(f"{target}: its integer form takes no per-channel input")
        in_rq = Requant(fine.grid.scale / scales.double(), build.in_grid, fine.bound)
    out = Requant(build.scale / out_grid.scale, out_grid, build.form.out_bound())
    ln = IntLayerNorm(
        build.form,
        out if then is None else _regrid(out, then),
        in_zero_point=build.in_zero_point,
        in_shift=build.in_shift,
        in_rq=in_rq,
    )
    return node, ln


def _norm_linear(
    graph: _Graph, norm: str, linear: str, x_node: fx.Node, fine: _Fine | None
) -> tuple[IntLayerNorm, _Lin, fx.Node, QParams]:
    """A LayerNorm and the Linear it feeds (qkv or fc1): the norm, the Linear, its node and output grid."""
    norm_node, ln = _norm(graph, norm, x_node, fine)
    lin_node, lin_mod = graph.module(linear)
    if graph.back(lin_node.args[0]) is not norm_node:
        raise VitqError(f"{linear}: its input is not {norm.rpartition('.')[2]}'s output")
    lin = _linear(graph, lin_node, lin_mod, graph.grid(norm_node), linear)
    return ln, lin, lin_node, graph.grid(lin_node)


def _attention(
    graph: _Graph, i: int, x_node: fx.Node, tokens: int, fine: _Fine | None = None
) -> tuple[IntLayerNorm, IntAttention, _Lin, fx.Node, fx.Node]:
    """LayerNorm 1 and attention of block ``i`` (``x_node``: the stream tensor); also the proj node and output."""
    where = f"blocks.{i}"
    ln1, qkv, qkv_node, g_qkv = _norm_linear(graph, f"{where}.norm1", f"{where}.attn.qkv", x_node, fine)

    sm_node, sm, form = _custom(graph, f"{where}.attn.softmax", "softmax")
    mm_qk = graph.back(sm_node.args[0])
    if mm_qk.op != "call_function" or mm_qk.target is not _qop("matmul"):
        raise VitqError(f"{where}.attn.softmax: its input is not a quantized q @ k^T ({mm_qk.name!r})")
    g_logits = graph.input_grid(sm_node, sm, f"{where}.attn.softmax")
    mul = graph.back(mm_qk.args[0])
    if mul.op != "call_function" or mul.target is not _qop("mul"):
        raise VitqError(f"{where}.attn: q is not scaled by a quantized scalar mul ({mul.name!r})")
    q_node, k_node = graph.back(mul.args[0]), graph.back(mm_qk.args[1])
    pv = [u for u in _users_through(graph, sm_node) if u.op == "call_function" and u.target is _qop("matmul")]
    if len(pv) != 1 or graph.back(pv[0].args[0]) is not sm_node:
        raise VitqError(f"{where}.attn: the softmax output does not feed one quantized attn @ v")
    mm_pv = pv[0]
    v_node = graph.back(mm_pv.args[1])
    parts: list[Requant] = []
    heads = head_dim = 0
    for want, node in enumerate((q_node, k_node, v_node)):
        if node.op != "call_function" or node.target is not torch.quantize_per_tensor:
            raise VitqError(f"{where}.attn: {node.name!r} is not a quantize_per_tensor of the qkv output")
        idx, heads, head_dim = _qkv_part(graph, node, qkv_node, f"{where}.attn")
        if idx != want:
            raise VitqError(f"{where}.attn: {node.name!r} takes qkv slice {idx}, expected {want}")
        sl = slice(want * heads * head_dim, (want + 1) * heads * head_dim)
        first = Requant(
            (qkv.acc_scale[sl] / g_qkv.scale).reshape(heads, 1, head_dim),
            g_qkv,
            qkv.bound,
            frac=qkv.frac[sl].reshape(heads, 1, head_dim),
        )
        parts.append(_regrid(first, graph.grid(node)))
    gq, gk = graph.grid(mul), graph.grid(k_node)
    gv = parts[2].out
    rq_logits = Requant(gq.scale * gk.scale / g_logits.scale, g_logits, _span(gq) * _span(gk) * head_dim)
    g_o = graph.grid(mm_pv)
    site = AttentionSite(
        f"{where}.attn.softmax",
        sm,
        gq,
        gk,
        gv,
        g_o,
        head_dim,
        tokens,
        logits_grid=g_logits,
        rq_logits=rq_logits,
    )
    softmax, rq_out = form.from_fx(site)
    proj_node, proj_mod = graph.module(f"{where}.attn.proj")
    if graph.back(proj_node.args[0]) is not mm_pv:
        raise VitqError(f"{where}.attn.proj: its input is not attn @ v")
    proj = _linear(graph, proj_node, proj_mod, g_o, f"{where}.attn.proj")
    ia = IntAttention(heads, qkv.layer, parts[0], parts[1], parts[2], softmax, rq_out, proj.layer)
    return ln1, ia, proj, proj_node, qkv_node


def _users_through(graph: _Graph, node: fx.Node) -> list[fx.Node]:
    out: list[fx.Node] = []
    todo = list(node.users)
    while todo:
        u = todo.pop()
        if graph.is_pass(u):
            todo.extend(u.users)
        else:
            out.append(u)
    return out


def _residual(
    graph: _Graph, branch: _Lin, b_node: fx.Node, x_node: fx.Node, where: str
) -> tuple[ResidualAdd, fx.Node]:
    """``quantized::add(x, quantize(dequantize(linear)))`` as one integer residual add; also the add node."""
    add = graph.forward_to(b_node, _qop("add"))
    args = [a for a in add.args[:2] if isinstance(a, fx.Node)]
    if len(args) != 2:
        raise VitqError(f"{where}: residual add {add.name!r} needs two tensor inputs")
    skip = [a for a in args if graph.back(a) is x_node]
    other = [a for a in args if graph.back(a) is not x_node]
    if len(skip) != 1 or len(other) != 1:
        raise VitqError(f"{where}: residual add {add.name!r} does not add the block input")
    b_in = graph.back(other[0])
    chain = _to_grid(branch, graph.grid(b_node))
    if b_in is not b_node:
        if not (b_in.op == "call_function" and b_in.target is torch.quantize_per_tensor):
            raise VitqError(f"{where}: unexpected node {b_in.name!r} between the branch and the residual add")
        if graph.source(b_in) is not b_node:
            raise VitqError(f"{where}: residual add {add.name!r} does not take the branch output")
        chain = _regrid(chain, graph.grid(b_in))
    gb, gx, out = chain.out, graph.grid(x_node), graph.grid(add)
    k = 2.0**_K
    res = ResidualAdd(
        Requant(gb.scale * k / out.scale, out, _span(gb), clamp=False, pre=chain),
        Requant(gx.scale * k / out.scale, out, _span(gx), clamp=False),
        gx.zero_point,
        out,
    )
    return res, add


def _mlp(
    graph: _Graph, i: int, x2_node: fx.Node, fine: _Fine | None = None
) -> tuple[IntLayerNorm, IntMlp, _Lin, fx.Node]:
    where = f"blocks.{i}"
    ln2, fc1, fc1_node, g_fc1 = _norm_linear(graph, f"{where}.norm2", f"{where}.mlp.fc1", x2_node, fine)
    act_node, act = graph.module(f"{where}.mlp.act")
    if isinstance(act, nn.GELU):  # a float GELU of fc1's codes with a uint8 output: a table lookup
        return (ln2, *_gelu_lut(graph, where, fc1, fc1_node, g_fc1))
    act_node, act, form = _custom(graph, f"{where}.mlp.act", "gelu")
    if graph.back(act_node.args[0]) is not fc1_node:
        raise VitqError(f"{where}.mlp.act: its input is not fc1's output")
    graph.input_grid(act_node, act, f"{where}.mlp.act")
    g_act = graph.grid(act_node)
    fc2_node, fc2_mod = graph.module(f"{where}.mlp.fc2")
    fc2_in = graph.back(fc2_node.args[0])
    if fc2_in is act_node:
        regrid: Any = None
    elif (
        fc2_in.op == "call_function"
        and fc2_in.target is torch.quantize_per_tensor
        and graph.source(fc2_in) is act_node
    ):
        regrid = graph.grid(fc2_in)
    else:
        raise VitqError(f"{where}.mlp.fc2: its input is not the GELU output ({fc2_in.name!r})")

    def to_fc2(rq: Requant) -> Requant:
        return rq if regrid is None else _regrid(rq, regrid)

    site = GeluSite(
        f"{where}.mlp.act", act, fc1.acc_scale, fc1.bound, fc1.frac, g_fc1, g_act,
        to_fc2=to_fc2, rq_in=_to_grid(fc1, g_fc1),
    )  # fmt: skip
    gelu, fc2_grid = form.from_fx(site)
    fc2 = _linear(graph, fc2_node, fc2_mod, fc2_grid, f"{where}.mlp.fc2")
    mlp = IntMlp(fc1.layer, gelu, fc2.layer)
    return ln2, mlp, fc2, fc2_node


def _embed(graph: _Graph, stream_q: fx.Node, fine: _Fine | None = None) -> tuple[IntEmbed, QParams, fx.Node]:
    """Patch conv, class token and position embedding (float in the FX graph) up to the stream grid.

    With ``fine`` (``fqvit``: the stream stays float) the embedding's output is the fixed-point stream and the
    returned node is the float ``cat + pos_embed`` (``stream_q``: block 0's ``quantize_per_channel``).
    """
    gm = graph.gm
    conv_node, mod = graph.module("patch_embed.proj")
    conv: Any = mod
    if not hasattr(conv, "kernel_size"):
        raise VitqError("patch_embed.proj must be a quantized conv")
    ks, st = tuple(conv.kernel_size), tuple(conv.stride)
    pad, dil, groups = tuple(conv.padding), tuple(conv.dilation), int(conv.groups)
    if ks != st or ks[0] != ks[1] or any(pad) or any(d != 1 for d in dil) or groups != 1:
        raise VitqError(
            "patch_embed.proj must be a plain non-overlapping conv (kernel == stride, no padding)"
        )
    in_q = graph.back(conv_node.args[0])
    if not (in_q.op == "call_function" and in_q.target is torch.quantize_per_tensor):
        raise VitqError("patch_embed.proj: its input is not quantized from the image")
    placeholder = graph.back(in_q.args[0])
    if placeholder.op != "placeholder":
        raise VitqError(f"patch_embed.proj: its input comes from {placeholder.name!r}, not the image")
    in_grid = graph.grid(in_q)
    # stream quantize <- (identities) <- add(cat([cls, tokens]), pos_embed) <- ... <- dequantize <- conv
    add = graph.back(stream_q.args[0])
    pos_node = [a for a in add.args if isinstance(a, fx.Node) and a.op == "get_attr"]
    cat = [graph.back(a) for a in add.args if isinstance(a, fx.Node) and a.op != "get_attr"]
    if (
        add.op != "call_function"
        or add.target not in (operator.add, torch.add)
        or len(pos_node) != 1
        or len(cat) != 1
    ):
        raise VitqError(
            f"integer conversion: expected cat([cls_token, patches]) + pos_embed, got {add.name!r}"
        )
    cat_node = cat[0]
    items = cat_node.args[0] if cat_node.args else None
    if cat_node.target is not torch.cat or not isinstance(items, list | tuple) or len(items) != 2:
        raise VitqError(f"integer conversion: expected a class-token cat, got {cat_node.name!r}")
    cls_src, tok_src = items
    cls_attr = graph.back(cls_src)
    tok_trail: list[fx.Node] = []
    deq = graph.back(tok_src, tok_trail)
    if cls_attr.op != "get_attr" or not (deq.op == "call_method" and deq.target == "dequantize"):
        raise VitqError("integer conversion: unexpected class token / patch token path in the embedding")
    if graph.back(deq.args[0]) is not conv_node:
        raise VitqError("integer conversion: the patch tokens do not come from patch_embed.proj")
    cls_token: torch.Tensor = gm.get_parameter(str(cls_attr.target)).detach()
    pos_embed: torch.Tensor = gm.get_parameter(str(pos_node[0].target)).detach()
    lin = _linear(graph, conv_node, conv, in_grid, "patch_embed.proj")
    if fine is not None:  # the float stream as a fixed-point integer: conv codes, + pos, unrounded
        g_conv = graph.grid(conv_node)
        rq_f = Requant(g_conv.scale / fine.grid.scale, fine.grid, _span(g_conv), clamp=False,
                       pre=_to_grid(lin, g_conv))  # fmt: skip
        unit = 2.0**fine.exp
        pos_f = torch.round(pos_embed[0, 1:].double() * unit).to(torch.int64)
        cls_f = torch.round((cls_token[0, 0] + pos_embed[0, 0]).float().double() * unit).to(torch.int64)
        return IntEmbed(int(ks[0]), lin.layer, pos_f, rq_f, cls_f, fine=True), in_grid, add
    g_conv, stream = graph.grid(conv_node), graph.grid(stream_q)
    k = 2.0**_K
    rq = Requant(
        g_conv.scale * k / stream.scale, stream, _span(g_conv), clamp=False, pre=_to_grid(lin, g_conv)
    )
    pos_int = torch.round(pos_embed[0, 1:].double() * (k / stream.scale))
    if bool((pos_int.abs() > 2**40).any()):
        raise VitqError("pos_embed is too large for the stream grid")
    cls_real = (cls_token[0, 0] + pos_embed[0, 0]).float()
    cls_codes = torch.round(cls_real / torch.tensor(stream.scale, dtype=torch.float32)) + stream.zero_point
    embed = IntEmbed(
        int(ks[0]),
        lin.layer,
        pos_int.to(torch.int64),
        rq,
        cls_codes.clamp(0, 255).to(torch.int64),
        pos_bits=_K,
    )
    return embed, in_grid, stream_q


def _head(graph: _Graph, x_node: fx.Node, fine: _Fine | None = None) -> tuple[IntHead, float]:
    norm_node, _ = graph.module("norm")
    head_node, head_mod = graph.module("head")
    head_q = graph.back(head_node.args[0])
    trail: list[fx.Node] = []
    if not (head_q.op == "call_function" and head_q.target is torch.quantize_per_tensor):
        raise VitqError("head: its input is not quantized from the final norm")
    if graph.source(head_q, trail) is not norm_node:
        raise VitqError("head: its input does not come from the final norm")
    cls = [n for n in trail if n.op == "call_function" and n.target is operator.getitem]
    if len(cls) != 1 or cls[0].args[1] != (slice(None), 0):
        raise VitqError("head: expected the class token (x[:, 0]) of the final norm")
    g_in = graph.grid(head_q)
    _, ln = _norm(graph, "norm", x_node, fine, then=g_in)
    head = _linear(graph, head_node, head_mod, g_in, "head")
    g_head = graph.grid(head_node)
    logits = QParams(g_head.scale, 0, -g_head.zero_point, 255 - g_head.zero_point, "logits")
    rq_out = Requant(1.0, logits, 255, pre=_to_grid(head, g_head))
    return IntHead(None, 0, ln, head.layer, rq_out), g_head.scale


def convert_fx(qmodel: nn.Module, recipe: str = "") -> IntExecutor:
    """Build the integer program of a ViT converted by the FX backend (recipes ``ivit`` and ``fqvit``).

    Args:
        qmodel: the GraphModule returned by ``FxBackend.quantize`` (calibrated, converted).
        recipe: recipe name, recorded on the executor.

    Returns:
        An :class:`IntExecutor` in eval mode; its logits are the head's codes minus its zero point.

    Raises:
        VitqError: an op stays float (the message names the node), an unexpected
            graph structure (named), or an accumulator that could overflow int32.
    """
    problems = fx_float_ops_left(qmodel)
    if problems:
        raise VitqError(f"this model has no integer form: {problems[0]}")
    assert isinstance(qmodel, fx.GraphModule)
    graph = _Graph(qmodel)
    n1_node, n1_mod = graph.module("blocks.0.norm1")
    if _is_per_channel_quantize(graph.back(n1_node.args[0])):  # a float residual stream
        return _convert_fine(graph, recipe)
    stream_q = graph.back(n1_node.args[0])
    if not (stream_q.op == "call_function" and stream_q.target is torch.quantize_per_tensor):
        raise VitqError("blocks.0.norm1: its input is not the quantized embedding")
    embed, in_grid, x_node = _embed(graph, stream_q)
    pos = getattr(qmodel, "pos_embed", None)
    tokens = int(pos.shape[1]) if isinstance(pos, torch.Tensor) else 0
    if tokens == 0 or int(embed.pos_int.shape[0]) + 1 != tokens:
        raise VitqError("integer conversion expects a class token and a learned position embedding")
    blocks: list[IntBlock] = []
    i = 0
    while f"blocks.{i}.norm1" in graph.by_target:
        where = f"blocks.{i}"
        x_grid = graph.grid(x_node)
        ln1, attn, proj, proj_node, _ = _attention(graph, i, x_node, tokens)
        res1, add1 = _residual(graph, proj, proj_node, x_node, f"{where}.attn")
        ln2, mlp, fc2, fc2_node = _mlp(graph, i, add1)
        res2, add2 = _residual(graph, fc2, fc2_node, add1, f"{where}.mlp")
        blocks.append(IntBlock(x_grid, ln1, attn, res1, ln2, mlp, res2))
        x_node = add2
        i += 1
    if not blocks:
        raise VitqError("integer conversion: no transformer blocks (blocks.0.norm1) in the FX graph")
    head, out_scale = _head(graph, x_node)
    return IntExecutor(embed, blocks, head, in_grid, out_scale, recipe).eval()


# --- a float residual stream (a per-channel quantize before each LayerNorm) --------------------------------
class _Fine:
    """The float residual stream of ``fqvit`` as a fixed-point integer: real ``x = x_int 2^-exp``, ``|x_int| <= bound``."""

    def __init__(self, exp: int, bound: int) -> None:
        self.exp, self.bound = int(exp), int(bound)
        self.grid = QParams(2.0**-self.exp, 0, -(2**62), 2**62 - 1, "")


#: the fine stream keeps ``|x_int| <= 2^_FINE_BITS`` (so a per-channel requant of it keeps >= 24 mantissa bits)
_FINE_BITS = 37


def _fine_stream(graph: _Graph, blocks: int) -> _Fine:
    """Pick ``exp`` from a bound on the stream: embedding + every proj/fc2 output that is added to it."""
    gm = graph.gm
    pos = gm.get_parameter("pos_embed").detach().double()
    cls = gm.get_parameter("cls_token").detach().double()
    conv = graph.grid(graph.module("patch_embed.proj")[0])
    real = float((cls[0, 0] + pos[0, 0]).abs().max()) + _span(conv) * conv.scale + float(pos.abs().max())
    top = conv.scale
    for i in range(blocks):
        for t in (f"blocks.{i}.attn.proj", f"blocks.{i}.mlp.fc2"):
            g = graph.grid(graph.module(t)[0])
            real += _span(g) * g.scale
            top = max(top, g.scale)
    exp = min(_FINE_BITS - math.ceil(math.log2(real)), 29 - math.ceil(math.log2(top)))
    return _Fine(exp, math.ceil(real * 2.0**exp) + 4 * blocks + 4)


def _attr_tensor(graph: _Graph, v: Any) -> torch.Tensor:
    if not (isinstance(v, fx.Node) and v.op == "get_attr"):
        raise VitqError(f"integer conversion: qparam {v!r} is not a constant")
    t: Any = graph.gm
    for part in str(v.target).split("."):
        t = getattr(t, part)
    return torch.as_tensor(t).detach()


def _gelu_lut(
    graph: _Graph, where: str, fc1: _Lin, fc1_node: fx.Node, g_fc1: QParams
) -> tuple[IntMlp, _Lin, fx.Node]:
    """Float GELU of fc1's codes, quantized (and re-quantized to fc2's input grid): a 256-entry table."""
    act_node, act = graph.module(f"{where}.mlp.act")
    deq = graph.back(act_node.args[0])
    if not (
        isinstance(act, nn.GELU)
        and deq.op == "call_method"
        and deq.target == "dequantize"
        and graph.back(deq.args[0]) is fc1_node
    ):
        raise VitqError(f"{where}.mlp.act: expected a float GELU of fc1's dequantized output")
    users = list(act_node.users)
    if len(users) != 1 or not (
        users[0].op == "call_function" and users[0].target is torch.quantize_per_tensor
    ):
        raise VitqError(f"{where}.mlp.act: its output is not quantized (uint8) once")
    qa = users[0]
    fc2_node, fc2_mod = graph.module(f"{where}.mlp.fc2")
    fc2_in = graph.back(fc2_node.args[0])
    codes = torch.arange(256, dtype=torch.uint8)
    x = torch._make_per_tensor_quantized_tensor(codes, g_fc1.scale, g_fc1.zero_point).dequantize()
    with torch.no_grad():
        y = torch.quantize_per_tensor(
            act(x), _attr_tensor(graph, qa.args[1]), _attr_tensor(graph, qa.args[2]), torch.quint8
        )
    if fc2_in is not qa:
        if not (
            fc2_in.op == "call_function"
            and fc2_in.target is torch.quantize_per_tensor
            and graph.source(fc2_in) is qa
        ):
            raise VitqError(f"{where}.mlp.fc2: its input is not the GELU output ({fc2_in.name!r})")
        y = torch.quantize_per_tensor(
            y.dequantize(),
            _attr_tensor(graph, fc2_in.args[1]),
            _attr_tensor(graph, fc2_in.args[2]),
            torch.quint8,
        )
    g_in = graph.grid(fc2_in)
    fc2 = _linear(graph, fc2_node, fc2_mod, g_in, f"{where}.mlp.fc2")
    mlp = IntMlp(fc1.layer, GeluTable(_to_grid(fc1, g_fc1), y.int_repr(), g_in.name), fc2.layer)
    return mlp, fc2, fc2_node


def _fine_residual(
    graph: _Graph, branch: _Lin, b_node: fx.Node, x_node: fx.Node, fine: _Fine, where: str
) -> tuple[ResidualAdd, fx.Node]:
    """``x + dequantize(linear)`` in float (the stream): the branch's codes added on the fixed-point stream."""
    add = graph.forward_to(b_node, operator.add)
    args = [a for a in add.args[:2] if isinstance(a, fx.Node)]
    if len(args) != 2:
        raise VitqError(f"{where}: residual add {add.name!r} needs two tensor inputs")
    skip = [a for a in args if graph.back(a) is x_node]
    other = [graph.back(a) for a in args if graph.back(a) is not x_node]
    if len(skip) != 1 or len(other) != 1:
        raise VitqError(f"{where}: residual add {add.name!r} does not add the block input")
    deq = other[0]
    if not (deq.op == "call_method" and deq.target == "dequantize" and graph.back(deq.args[0]) is b_node):
        raise VitqError(f"{where}: residual add {add.name!r} does not take the branch output")
    g_b = graph.grid(b_node)
    rq = Requant(g_b.scale / fine.grid.scale, fine.grid, _span(g_b), clamp=False, pre=_to_grid(branch, g_b))
    return ResidualAdd(rq, None, 0, fine.grid), add


def _convert_fine(graph: _Graph, recipe: str) -> IntExecutor:
    """``fqvit``: float residual stream (fixed point here), PTS LayerNorm, LIS, GELU table, per node."""
    blocks_n = 0
    while f"blocks.{blocks_n}.norm1" in graph.by_target:
        blocks_n += 1
    fine = _fine_stream(graph, blocks_n)
    n1_node, _ = graph.module("blocks.0.norm1")
    qpc0 = graph.back(n1_node.args[0])
    if not (qpc0.op == "call_function" and qpc0.target is torch.quantize_per_channel):
        raise VitqError("blocks.0.norm1: its input is not a per-channel (PTS) quantize of the embedding")
    embed, in_grid, x_node = _embed(graph, qpc0, fine)
    pos = getattr(graph.gm, "pos_embed", None)
    tokens = int(pos.shape[1]) if isinstance(pos, torch.Tensor) else 0
    if tokens == 0 or int(embed.pos_int.shape[0]) + 1 != tokens:
        raise VitqError("integer conversion expects a class token and a learned position embedding")
    blocks: list[IntBlock] = []
    for i in range(blocks_n):
        where = f"blocks.{i}"
        ln1, attn, proj, proj_node, _ = _attention(graph, i, x_node, tokens, fine)
        res1, add1 = _fine_residual(graph, proj, proj_node, x_node, fine, f"{where}.attn")
        ln2, mlp, fc2, fc2_node = _mlp(graph, i, add1, fine)
        res2, add2 = _fine_residual(graph, fc2, fc2_node, add1, fine, f"{where}.mlp")
        blocks.append(IntBlock(fine.grid, ln1, attn, res1, ln2, mlp, res2))
        x_node = add2
    head, out_scale = _head(graph, x_node, fine)
    return IntExecutor(embed, blocks, head, in_grid, out_scale, recipe).eval()
