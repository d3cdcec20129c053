"""Convert a calibrated Brevitas ViT (``ivit`` or ``fqvit`` recipe) into an :class:`~vitq_plugins.intexec.IntExecutor`.

I-ViT (arXiv 2207.01405): weights become int8 codes with per-channel scales ``S_w``; biases become int32
``round(b / (S_x S_w))`` (eq. 4; the sub-LSB remainder goes into the requant rounding offset); every
fake-quant quantizer becomes the grid of a dyadic requantization (eq. 7) of the preceding integer
accumulator; Shiftmax (eqs. 9-14), ShiftGELU (eqs. 15-17) and I-LayerNorm (eq. 18) get their per-layer
integer constants (``I0 = floor(-1/S)``, integer LayerNorm bias). Only the constants are computed in
floating point, here, once.

FQ-ViT (arXiv 2111.13824, ``fqvit``): the residual stream is on PTS grids (eqs. 9-10, per-channel scales
``s 2^alpha_c``), LayerNorm runs in integers on codes aligned by ``<< alpha_c`` (exact mean, since the
fake-quant LayerNorm is float), the attention map gets LIS log2 codes (eqs. 13-16) from a table-based
integer exp and log-domain rounding (so they match the fake-quant ``round(-log2 p)``), ``attn @ V`` uses
``2^(F - code)`` weights, and the float GELU + uint8 output quantizer becomes a table lookup on a fine
integer grid of the fc1 accumulator.

Reached through ``BACKEND.integer_program``; the ops without an integer form are found by
:mod:`vitq_plugins.brevitas.integer_check`, the reference codes for the agreement report are tapped by
:mod:`vitq_plugins.brevitas.integer_taps`. A model whose recipe leaves an op in floating point (e.g. ``minmax``: float softmax/LayerNorm with
quantized outputs; ``mptq``: OPT-m twin-scale GELU output) is rejected with a :class:`VitqError` naming the
first such op.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from vitq_plugins.brevitas.integer_check import float_ops_left
from vitq_plugins.brevitas.integer_check import gelu_form
from vitq_plugins.brevitas.integer_check import layernorm_form
from vitq_plugins.brevitas.integer_check import proxy_quantizer
from vitq_plugins.brevitas.integer_check import site_name
from vitq_plugins.core.errors import VitqError
from vitq_plugins.intexec.extension import INT32_MAX
from vitq_plugins.intexec.extension import INT32_MIN
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

__all__ = ["convert_brevitas", "float_ops_left", "proxy_quantizer"]

_TQ_SUFFIX = ".fused_activation_quant_proxy.tensor_quant"


def _is_identity(m: Any) -> bool:
    return m is None or isinstance(m, nn.Identity | nn.Dropout)


class _Ctx:
    """Module names and grid/weight extraction for one quantized model."""

    def __init__(self, qmodel: nn.Module) -> None:
        self.names = {id(m): n for n, m in qmodel.named_modules()}

    def grid(self, proxy: Any, where: str) -> QParams:
        from vitq_plugins.brevitas.quant import ObserverActQuant
        from vitq_plugins.brevitas.quant import tensor_quant_of

        tq = tensor_quant_of(proxy)
        reader: Any = find_integer_form("grid", proxy_quantizer(proxy), "") if tq is not None else None
        reader = reader if reader is not None and callable(getattr(reader, "read_brevitas", None)) else None
        if reader is None and not isinstance(tq, ObserverActQuant):
            raise VitqError(
                f"{where}: expected a uniform activation quantizer or one with an integer grid reader, got "
                f"{type(tq).__name__}"
            )
        if not bool(tq.calibrated):
            raise VitqError(f"{where}: quantizer is not calibrated; quantize the model first")
        name = self.names.get(id(tq), where)
        name = name[: -len(_TQ_SUFFIX)] if name.endswith(_TQ_SUFFIX) else name
        if reader is not None:
            grid: QParams = reader.read_brevitas(tq, name)
            return grid
        zp = int(round(float(tq.zero_point)))
        return QParams(float(tq.scale), zp, int(tq.qmin), int(tq.qmax), name)

    def input_grid(self, layer: Any, where: str, served: QParams | None = None) -> QParams:
        """The input grid of a quantized Linear/Conv, or ``served`` when its input is quantized upstream."""
        proxy = getattr(layer, "input_quant", None)
        if served is not None and (proxy is None or not proxy.is_quant_enabled):
            return served
        return self.grid(proxy, f"{where} input")

    @staticmethod
    def weight(layer: Any, where: str) -> tuple[torch.Tensor, torch.Tensor]:
        """int8 codes ``(out, in...)`` and float64 per-output-channel scales."""
        proxy = getattr(layer, "weight_quant", None)
        tq = getattr(proxy, "tensor_quant", None)
        if tq is None or proxy is None or not proxy.is_quant_enabled:
            raise VitqError(f"{where}: weight is not quantized (float Linear/Conv)")
        with torch.no_grad():
            y, s, zp, bw = tq(layer.weight.detach())
        if int(bw) > 8 or bool((zp != 0).any()):
            raise VitqError(f"{where}: integer matmuls need signed symmetric weights of <= 8 bits")
        shape = (-1,) + (1,) * (y.dim() - 1)
        s = s.reshape(shape)
        codes = torch.round(y / s).to(torch.int8)
        return codes, s.reshape(-1).double()


def _int_bias(layer: Any, acc_scale: torch.Tensor, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """int32 bias ``round(b / (S_x S_w))`` and its rounding remainder in accumulator LSBs."""
    b = getattr(layer, "bias", None)
    if b is None:
        z = torch.zeros(acc_scale.shape[0], dtype=torch.float64)
        return z.to(torch.int64), z
    exact = b.detach().double() / acc_scale
    bi = torch.round(exact)
    if bool((bi.abs() > INT32_MAX).any()):
        raise VitqError(f"{where}: integer bias overflows int32 (max {int(bi.abs().max())})")
    return bi.to(torch.int64), exact - bi


class _Lin:
    """An integer Linear with its accumulator scale ``S_x S_w`` (per channel), ``|acc|`` bound and bias remainder."""

    def __init__(self, layer: IntLinear, acc_scale: torch.Tensor, bound: int, frac: torch.Tensor) -> None:
        self.layer, self.acc_scale, self.bound, self.frac = layer, acc_scale, bound, frac


def _linear(
    ctx: _Ctx, layer: Any, where: str, extra: torch.Tensor | None = None, served: QParams | None = None
) -> _Lin:
    """Integer Linear of a Brevitas ``QuantLinear``/``QuantConv2d`` (``served``: input grid set upstream)."""
    inp = ctx.input_grid(layer, where, served)
    if inp.alpha:
        raise VitqError(f"{where}: a Linear input must have a per-tensor grid")
    w, sw = ctx.weight(layer, where)
    w2 = w.reshape(w.shape[0], -1)
    acc_scale = inp.scale * sw
    b, frac = _int_bias(layer, acc_scale, where)
    span = max(inp.zero_point - inp.qmin, inp.qmax - inp.zero_point)
    bound = int(span * int(w2.to(torch.int64).abs().sum(dim=1).max()) + int(b.abs().max()))
    if extra is not None:
        bound += int(extra.abs().max())
    if bound > INT32_MAX:
        raise VitqError(f"{where}: the int32 accumulator can overflow (bound {bound})")
    return _Lin(IntLinear(w2, b, inp), acc_scale, bound, frac)


def _ln(norm: Any, in_grid: QParams, consumer_grid: QParams, where: str) -> IntLayerNorm:
    """The site's LayerNorm form (by kernel or input quantizer), then the requant to its consumer's grid."""
    if norm.weight is None or norm.bias is None:
        raise VitqError(f"{where}: an integer LayerNorm needs an affine LayerNorm")
    form = layernorm_form(norm)
    if form is None:
        raise VitqError(f"{where}: LayerNorm has no integer form")
    site = LayerNormSite(
        where, norm, norm.weight, norm.bias, float(getattr(norm, "eps", 0.0)), in_grid=in_grid
    )
    build = form.from_brevitas(site)
    ratio = build.scale / consumer_grid.scale
    out = Requant(ratio, consumer_grid, build.form.out_bound())
    return IntLayerNorm(build.form, out, in_zero_point=build.in_zero_point, in_shift=build.in_shift)


def _check_model(model: nn.Module) -> None:
    from brevitas.nn import QuantConv2d
    from brevitas.nn import QuantLinear

    from vitq_plugins.brevitas.modules import QuantBlock

    qmodel: Any = model
    problems = float_ops_left(model)
    if problems:
        raise VitqError(f"this model has no integer form: {problems[0]}")
    need = ("patch_embed", "cls_token", "pos_embed", "blocks", "norm", "head")
    missing = [a for a in need if getattr(qmodel, a, None) is None]
    if missing:
        raise VitqError(f"integer conversion expects a timm VisionTransformer; missing {missing}")
    proj = qmodel.patch_embed.proj
    if (
        not isinstance(proj, QuantConv2d)
        or proj.kernel_size != proj.stride
        or proj.padding not in ((0, 0), 0)
    ):
        raise VitqError(
            "patch_embed.proj must be a quantized non-overlapping conv (kernel == stride, no padding)"
        )
    if proj.groups != 1 or proj.dilation not in ((1, 1), 1):
        raise VitqError("patch_embed.proj must be a plain conv (groups 1, dilation 1)")
    if getattr(qmodel, "num_reg_tokens", 0) or getattr(qmodel, "no_embed_class", False):
        raise VitqError("register tokens / no_embed_class are not supported by the integer converter")
    if getattr(qmodel, "global_pool", "token") != "token":
        raise VitqError(f"global_pool {qmodel.global_pool!r} is not supported (class token only)")
    for name in ("norm_pre", "fc_norm", "head_drop", "pos_drop", "patch_drop"):
        if not _is_identity(getattr(qmodel, name, None)):
            raise VitqError(f"{name} must be an identity for integer conversion")
    if not _is_identity(getattr(qmodel.patch_embed, "norm", None)):
        raise VitqError("patch_embed.norm must be an identity for integer conversion")
    if not isinstance(qmodel.head, QuantLinear):
        raise VitqError("head must be a quantized Linear")
    for i, blk in enumerate(qmodel.blocks):
        if not isinstance(blk, QuantBlock):
            raise VitqError(f"blocks.{i} is not a quantized block")
        for name in ("ls1", "ls2", "drop_path1", "drop_path2"):
            if not _is_identity(getattr(blk, name, None)):
                raise VitqError(f"blocks.{i}.{name} must be an identity for integer conversion")
        for name in ("q_norm", "k_norm", "norm"):
            if not _is_identity(getattr(blk.attn, name, None)):
                raise VitqError(f"blocks.{i}.attn.{name} must be an identity for integer conversion")
        if not _is_identity(getattr(blk.mlp, "norm", None)):
            raise VitqError(f"blocks.{i}.mlp.norm must be an identity for integer conversion")


_span = grid_span


#: index grid of the GELU table: ``S_out / 2^10``, inputs below ``-4`` (GELU < 2e-4) share the first entry
_LUT_FRAC_BITS = 10
_LUT_LOW = -4.0


def _attention(ctx: _Ctx, attn: Any, tokens: int, where: str) -> tuple[IntAttention, _Lin]:
    from vitq_plugins.brevitas.quant import tensor_quant_of

    qkv = _linear(ctx, attn.qkv, f"{where}.qkv")
    a_s, fr = qkv.acc_scale, qkv.frac
    c = a_s.shape[0] // 3
    h, d = int(attn.num_heads), int(attn.head_dim)
    gq = ctx.grid(attn.q_quant.act_quant, f"{where}.q")
    gk = ctx.grid(attn.k_quant.act_quant, f"{where}.k")
    gv = ctx.grid(attn.v_quant.act_quant, f"{where}.v")

    def rq(sl: slice, mult: float, g: QParams) -> Requant:
        ratio = (a_s[sl] * mult / g.scale).reshape(h, 1, d)
        return Requant(ratio, g, qkv.bound, frac=fr[sl].reshape(h, 1, d))

    rq_q = rq(slice(0, c), float(attn.scale), gq)
    rq_k = rq(slice(c, 2 * c), 1.0, gk)
    rq_v = rq(slice(2 * c, 3 * c), 1.0, gv)
    sm = attn.softmax
    proj_in = ctx.grid(attn.proj.input_quant, f"{where}.proj input")
    form: Any = find_integer_form("softmax", site_name(sm.kernel, sm.quant), "brevitas")
    if form is None:
        raise VitqError(f"{where}.softmax: softmax has no integer form")
    out_quant = tensor_quant_of(sm.quant.act_quant) if sm.quant is not None else None
    site = AttentionSite(
        f"{where}.softmax", sm, gq, gk, gv, proj_in, d, tokens, grid=ctx.grid, out_quant=out_quant
    )
    softmax, rq_out = form.from_brevitas(site)
    proj = _linear(ctx, attn.proj, f"{where}.proj")
    ia = IntAttention(h, qkv.layer, rq_q, rq_k, rq_v, softmax, rq_out, proj.layer)
    return ia, proj


def _gelu_table(out: QParams) -> tuple[QParams, torch.Tensor]:
    """Index grid and output codes of a float GELU followed by the uniform quantizer ``out`` (float32 math)."""
    s_fine = out.scale / 2**_LUT_FRAC_BITS
    lo = math.floor(_LUT_LOW / s_fine)
    hi = math.ceil(((out.qmax - out.zero_point) * out.scale + out.scale) / s_fine)
    v = (torch.arange(lo, hi + 1, dtype=torch.float64) * s_fine).float()
    y = torch.nn.functional.gelu(v)
    codes = torch.round(y / torch.tensor(out.scale, dtype=torch.float32)) + out.zero_point
    index = QParams(s_fine, -lo, 0, hi - lo, "")
    return index, codes.clamp(out.qmin, out.qmax).to(torch.uint8)


def _mlp(ctx: _Ctx, mlp: Any, where: str) -> tuple[IntMlp, _Lin]:
    fc1 = _linear(ctx, mlp.fc1, f"{where}.fc1")
    act = mlp.act
    gg = ctx.grid(act.quant.act_quant, f"{where}.act")
    form = gelu_form(act)
    if form is None:  # a float GELU with a uniform output quantizer: a table lookup
        index, lut = _gelu_table(gg)
        rq_idx = Requant(fc1.acc_scale / index.scale, index, fc1.bound, frac=fc1.frac)
        fc2 = _linear(ctx, mlp.fc2, f"{where}.fc2", served=gg)
        return IntMlp(fc1.layer, GeluTable(rq_idx, lut, gg.name), fc2.layer), fc2
    g2 = ctx.grid(mlp.fc2.input_quant, f"{where}.fc2 input")
    site = GeluSite(f"{where}.act", act, fc1.acc_scale, fc1.bound, fc1.frac, gg, g2)
    gelu, fc2_grid = form.from_brevitas(site)
    fc2 = _linear(ctx, mlp.fc2, f"{where}.fc2", served=fc2_grid)
    return IntMlp(fc1.layer, gelu, fc2.layer), fc2


def _residual(branch: _Lin, skip: QParams, out: QParams) -> ResidualAdd:
    k = 2.0**RESIDUAL_EXTRA_BITS
    return ResidualAdd(
        Requant(branch.acc_scale * k / out.vec(), out, branch.bound, clamp=False, frac=branch.frac),
        Requant(
            torch.as_tensor(skip.vec(), dtype=torch.float64) * k / out.vec(), out, _span(skip), clamp=False
        ),
        skip.zero_point,
        out,
    )


def convert_brevitas(qmodel: nn.Module, recipe: str = "") -> IntExecutor:
    """Build the integer program of a calibrated Brevitas ViT (recipes ``ivit`` and ``fqvit``).

    Args:
        qmodel: the model returned by ``BACKEND.quantize`` (eval mode, calibrated).
        recipe: recipe name, recorded on the executor.

    Returns:
        An :class:`IntExecutor` in eval mode.

    Raises:
        VitqError: an op stays float (the message names it), an unsupported structure, or an accumulator
            that could overflow int32.
    """
    _check_model(qmodel)
    ctx = _Ctx(qmodel)
    m: Any = qmodel
    blocks_src = list(m.blocks)
    tokens = int(m.pos_embed.shape[1])

    # embedding: conv as a matmul over flattened patches, position embedding folded into the accumulator
    proj = m.patch_embed.proj
    in_grid = ctx.grid(proj.input_quant, "patch_embed.proj input")
    _, sw = ctx.weight(proj, "patch_embed.proj")
    acc_scale = in_grid.scale * sw
    pos_exact = m.pos_embed.detach()[0, 1:].double() / acc_scale
    pos_int = torch.round(pos_exact)
    if bool((pos_int.abs() > INT32_MAX).any()):
        raise VitqError("pos_embed overflows int32 on the patch accumulator scale")
    lin = _linear(ctx, proj, "patch_embed.proj", extra=pos_int)
    stream = ctx.grid(blocks_src[0].norm1.input_quant.act_quant, "blocks.0.norm1 input")
    cls_real = (m.cls_token.detach()[0, 0] + m.pos_embed.detach()[0, 0]).float()
    s_vec = torch.as_tensor(stream.vec(), dtype=torch.float64).float()
    cls_codes = torch.round(cls_real / s_vec) + stream.zero_point
    embed = IntEmbed(
        int(proj.kernel_size[0]),
        lin.layer,
        pos_int.to(torch.int64),
        Requant(acc_scale / stream.vec(), stream, lin.bound, frac=lin.frac + (pos_exact - pos_int)),
        cls_codes.clamp(stream.qmin, stream.qmax).to(torch.int64),
    )

    blocks: list[IntBlock] = []
    for i, blk in enumerate(blocks_src):
        where = f"blocks.{i}"
        g1 = ctx.grid(blk.norm1.input_quant.act_quant, f"{where}.norm1 input")
        g2 = ctx.grid(blk.norm2.input_quant.act_quant, f"{where}.norm2 input")
        if blk.output_served_by_next and i + 1 < len(blocks_src):
            g3 = ctx.grid(blocks_src[i + 1].norm1.input_quant.act_quant, f"blocks.{i + 1}.norm1 input")
        elif blk.res_quant2 is not None:
            g3 = ctx.grid(blk.res_quant2.act_quant, f"{where}.residual")
        else:
            raise VitqError(f"{where}: the block output is not quantized (float residual stream)")
        attn, attn_proj = _attention(ctx, blk.attn, tokens, f"{where}.attn")
        ln1 = _ln(blk.norm1, g1, attn.qkv.inp, f"{where}.norm1")
        mlp, fc2 = _mlp(ctx, blk.mlp, f"{where}.mlp")
        ln2 = _ln(blk.norm2, g2, mlp.fc1.inp, f"{where}.norm2")
        res1 = _residual(attn_proj, g1, g2)
        res2 = _residual(fc2, g2, g3)
        blocks.append(IntBlock(g1, ln1, attn, res1, ln2, mlp, res2))
        stream = g3

    gn = ctx.grid(m.norm.input_quant.act_quant, "norm input")
    pre = None
    if gn.name != stream.name:
        ratio = torch.as_tensor(stream.vec(), dtype=torch.float64) / gn.vec()
        pre = Requant(ratio, gn, _span(stream))
    head = _linear(ctx, m.head, "head")
    out_scale = float(head.acc_scale.max())
    rq_out = Requant(
        head.acc_scale / out_scale,
        QParams(out_scale, 0, INT32_MIN, INT32_MAX, "logits"),
        head.bound,
        frac=head.frac,
    )
    ln = _ln(m.norm, gn, head.layer.inp, "norm")
    ih = IntHead(pre, stream.zero_point, ln, head.layer, rq_out)
    from vitq_plugins.brevitas.integer_taps import FakeQuantTaps

    return IntExecutor(embed, blocks, ih, in_grid, out_scale, recipe, code_taps=FakeQuantTaps).eval()
