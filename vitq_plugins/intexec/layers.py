"""Modules of the integer program: integer Linear, LayerNorm, attention, MLP, residual add, embedding, head.

Each module holds integer constants only (int8 weights, int32 biases folded with the input zero point,
dyadic mantissas and shifts) and its forward uses integer tensor ops only: linear layers
``acc = sum (x - z_x) w + b`` with ``b = round(beta / (S_x S_w))`` (I-ViT arXiv 2207.01405 eq. 4), dyadic
requantization to the next quantizer's grid (eq. 7) and residual adds where both terms are rescaled to
``S_out / 2^K`` and summed before one final rounding (so the add is as exact as the fake-quant float add up to
that rounding). The non-affine units (the LayerNorm kernel, the softmax of attention with its ``attn @ v``, the
GELU) are integer forms (:mod:`~vitq_plugins.intexec.forms`) that the modules hold and call.
"""

from __future__ import annotations

import torch
from torch import nn

from vitq_plugins.intexec.forms import GeluForm
from vitq_plugins.intexec.forms import LayerNormForm
from vitq_plugins.intexec.forms import SoftmaxForm
from vitq_plugins.intexec.recorder import Recorder
from vitq_plugins.intexec.requant import QParams
from vitq_plugins.intexec.requant import Requant
from vitq_plugins.ops._intmath import round_shift

__all__ = [
    "RESIDUAL_EXTRA_BITS",
    "IntAttention",
    "IntBlock",
    "IntEmbed",
    "IntHead",
    "IntLayerNorm",
    "IntLinear",
    "IntMlp",
    "ResidualAdd",
]

#: fraction bits kept by each residual term before the final rounding of the sum
RESIDUAL_EXTRA_BITS = 24


class _Recorded(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.recorder = Recorder()


class IntLinear(_Recorded):
    """``acc = sum_k (x_k - z) w_k + b`` with int8 ``w`` and int32 ``b``; int64 accumulator out.

    The int8 x int8 -> int32 product runs on ``x - 128`` (uint8 grids) or ``x`` (int8 grids) and the
    offset ``(128 - z) sum_k w_k + b`` is precomputed, so the result equals ``sum (x - z) w + b`` exactly.

    Args:
        weight: int8 ``(out, in)``.
        bias: int64 ``(out,)`` (checked to fit int32 by the converter).
        inp: the input grid (8-bit, unsigned or signed).
    """

    weight_t: torch.Tensor
    offset: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, inp: QParams) -> None:
        super().__init__()
        self.inp = inp
        self.center = 128 if inp.qmin >= 0 else 0
        if inp.qmin - self.center < -128 or inp.qmax - self.center > 127:
            raise ValueError(f"integer Linear needs an 8-bit input grid, got [{inp.qmin}, {inp.qmax}]")
        w = weight.to(torch.int8)
        self.register_buffer("weight", w)
        self.register_buffer("bias", bias.to(torch.int64))
        self.register_buffer("weight_t", w.t().contiguous())
        colsum = w.to(torch.int64).sum(dim=1)
        self.register_buffer("offset", (self.center - int(inp.zero_point)) * colsum + bias.to(torch.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        a = (x - self.center).to(torch.int8).reshape(-1, x.shape[-1])
        if hasattr(torch, "_int_mm"):
            acc = torch._int_mm(a, self.weight_t)
        else:  # pragma: no cover - old torch
            acc = a.to(torch.int32) @ self.weight_t.to(torch.int32)
        out = acc.to(torch.int64).reshape(*lead, -1) + self.offset
        self.recorder.check_int32(out)
        return out


class IntLayerNorm(_Recorded):
    """Integer LayerNorm: optional input requant, alignment, the LayerNorm form, the requant to its consumer.

    ``kernel``: a :class:`~vitq_plugins.intexec.forms.LayerNormForm` run on the codes
    ``(x - in_zero_point) << in_shift`` (per-channel power-of-two grids aligned to their smallest scale, e.g.
    FQ-ViT PTS, arXiv 2111.13824 eqs. 9-10; no alignment for a per-tensor grid with zero point 0).
    ``out``: maps the form's result to the consumer's grid. ``in_rq``: quantizes the input first (e.g. a
    fixed-point integer stream quantized per channel onto the LayerNorm's input grid).
    """

    in_shift: torch.Tensor

    def __init__(
        self,
        kernel: LayerNormForm,
        out: Requant,
        *,
        in_zero_point: int = 0,
        in_shift: torch.Tensor | None = None,
        in_rq: Requant | None = None,
    ) -> None:
        super().__init__()
        self.kernel = kernel
        self.in_rq = in_rq
        shift = torch.zeros(1, dtype=torch.int64) if in_shift is None else in_shift.to(torch.int64)
        self.register_buffer("in_shift", shift)
        self.out = out
        self.in_zero_point = int(in_zero_point)
        self.aligned = bool(in_zero_point != 0 or bool((shift != 0).any()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_rq is not None:
            x = self.in_rq(x)
        return self.from_codes(x)

    def from_codes(self, x: torch.Tensor) -> torch.Tensor:
        """The LayerNorm on its input codes (after ``in_rq``)."""
        if self.aligned:
            x = (x - self.in_zero_point) << self.in_shift
        out: torch.Tensor = self.out(self.kernel(x))
        return out


class ResidualAdd(_Recorded):
    """``clamp(round((ra(acc) + rb(x - z_x)) / 2^K) + z, qmin, qmax)``: an integer residual add.

    ``ra``/``rb`` are dyadic rescales to ``S_out / 2^K`` (``K`` = :data:`RESIDUAL_EXTRA_BITS`).

    ``skip=None`` (torch.ao FX ``fqvit``, whose residual stream stays float): ``x`` is the stream as a
    fixed-point integer on the grid ``out`` and the result is ``x + ra(acc)`` (``ra`` maps to that grid), unrounded.
    """

    def __init__(self, branch: Requant, skip: Requant | None, x_zero_point: int, out: QParams) -> None:
        super().__init__()
        self.branch, self.skip = branch, skip
        self.x_zero_point = int(x_zero_point)
        self.out = out

    def forward(self, acc: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.skip is None:
            return x + self.branch.raw(acc)
        s = self.branch.raw(acc) + self.skip.raw(x - self.x_zero_point)
        y = (round_shift(s, RESIDUAL_EXTRA_BITS, "half_up") + int(self.out.zero_point)).clamp(
            self.out.qmin, self.out.qmax
        )
        self.recorder.tap(self.out.name, y)
        return y


class IntAttention(_Recorded):
    """Integer multi-head self-attention: qkv, exact scores, the softmax form's ``P @ v``, requant, proj.

    Args:
        qkv: integer Linear ``C -> 3C``.
        rq_q: requant of q (scaled by ``head_dim^-0.5``) to the q grid; ``rq_k``, ``rq_v`` likewise.
        softmax: a :class:`~vitq_plugins.intexec.forms.SoftmaxForm` taking the exact scores
            ``(q - z_q)(k - z_k)^T`` and the centered ``v`` codes to ``P @ v`` on its output scale.
        rq_out: requant of ``P @ v`` to the proj input grid.
        proj: integer Linear ``C -> C`` (the module returns its accumulator).
    """

    def __init__(
        self,
        num_heads: int,
        qkv: IntLinear,
        rq_q: Requant,
        rq_k: Requant,
        rq_v: Requant,
        softmax: SoftmaxForm,
        rq_out: Requant,
        proj: IntLinear,
    ) -> None:
        super().__init__()
        self.num_heads = int(num_heads)
        self.qkv, self.rq_q, self.rq_k, self.rq_v = qkv, rq_q, rq_k, rq_v
        self.softmax, self.rq_out, self.proj = softmax, rq_out, proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        h = self.num_heads
        acc = self.qkv(x).reshape(b, t, 3, h, -1).permute(2, 0, 3, 1, 4)
        q = self.rq_q(acc[0]) - self.rq_q.zero_point
        k = self.rq_k(acc[1]) - self.rq_k.zero_point
        v = self.rq_v(acc[2]) - self.rq_v.zero_point
        o = self.softmax(q @ k.transpose(-2, -1), v).transpose(1, 2).reshape(b, t, -1)
        out: torch.Tensor = self.proj(self.rq_out(o))
        return out


class IntMlp(_Recorded):
    """fc1, the GELU form (fc1's accumulator to fc2's input codes), fc2 (returns its accumulator)."""

    def __init__(self, fc1: IntLinear, gelu: GeluForm, fc2: IntLinear) -> None:
        super().__init__()
        self.fc1, self.gelu, self.fc2 = fc1, gelu, fc2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc2(self.gelu(self.fc1(x)))
        return out


class IntBlock(_Recorded):
    """Pre-norm transformer block on the integer residual stream (codes on ``norm1``'s input grid)."""

    def __init__(
        self,
        in_grid: QParams,
        ln1: IntLayerNorm,
        attn: IntAttention,
        res1: ResidualAdd,
        ln2: IntLayerNorm,
        mlp: IntMlp,
        res2: ResidualAdd,
    ) -> None:
        super().__init__()
        self.in_grid = in_grid
        self.ln1, self.attn, self.res1, self.ln2, self.mlp, self.res2 = ln1, attn, res1, ln2, mlp, res2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = self.res1(self.attn(self.ln1(x)), x)
        out: torch.Tensor = self.res2(self.mlp(self.ln2(x2)), x2)
        return out


class IntEmbed(_Recorded):
    """Patch embedding (non-overlapping conv as an integer matmul) + position embedding + class token.

    Args:
        patch: kernel = stride of the patch conv.
        proj: integer Linear over flattened ``(C_in, p, p)`` patches.
        pos_int: int64 ``(N_patches, D)`` position embedding on each channel's accumulator scale.
        rq: requant of the patch accumulators to the stream grid.
        cls_codes: int64 ``(D,)`` codes of ``cls_token + pos_embed[0]`` on the stream grid.
        pos_bits: ``0``: ``pos_int`` is on the accumulator scale and added before ``rq``. ``K > 0`` (torch.ao
            FX, where the conv output is rounded to its own grid first and the position embedding is added in
            float): ``rq`` maps the accumulator (through its ``pre`` grid) to ``S_stream / 2^K`` unrounded to
            the stream grid, ``pos_int`` is on that scale too, and the sum is rounded once by ``K`` bits.
        fine: torch.ao FX ``fqvit`` (float residual stream): return ``rq.raw(acc) + pos_int`` unrounded, the
            stream as a fixed-point integer on ``rq``'s grid (``cls_codes`` on it too).
    """

    pos_int: torch.Tensor
    cls_codes: torch.Tensor

    def __init__(
        self,
        patch: int,
        proj: IntLinear,
        pos_int: torch.Tensor,
        rq: Requant,
        cls_codes: torch.Tensor,
        pos_bits: int = 0,
        fine: bool = False,
    ) -> None:
        super().__init__()
        self.patch = int(patch)
        self.fine = bool(fine)
        self.pos_bits = int(pos_bits)
        self.proj, self.rq = proj, rq
        self.register_buffer("pos_int", pos_int.to(torch.int64))
        self.register_buffer("cls_codes", cls_codes.to(torch.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape
        p = self.patch
        patches = (
            x.to(torch.int64)
            .reshape(b, c, hh // p, p, ww // p, p)
            .permute(0, 2, 4, 1, 3, 5)
            .reshape(b, (hh // p) * (ww // p), c * p * p)
        )
        if self.fine:
            tokens = self.rq.raw(self.proj(patches)) + self.pos_int
        elif self.pos_bits:
            fine = self.rq.raw(self.proj(patches)) + self.pos_int
            tokens = round_shift(fine, self.pos_bits, "half_up") + self.rq.zero_point
        else:
            tokens = self.rq.raw(self.proj(patches) + self.pos_int) + self.rq.zero_point
        if not self.fine:
            tokens = tokens.clamp(self.rq.qmin, self.rq.qmax)
        cls = self.cls_codes.reshape(1, 1, -1).expand(b, 1, -1)
        out = torch.cat([cls, tokens], dim=1)
        self.recorder.tap(self.rq.out.name, out)
        return out


class IntHead(_Recorded):
    """Optional requant of the stream to the final norm's grid, I-LayerNorm of the class token, classifier.

    Returns int32 logits on the grid ``out_scale`` (the coarsest per-class accumulator scale).
    """

    def __init__(
        self, pre: Requant | None, pre_zero_point: int, ln: IntLayerNorm, head: IntLinear, rq_out: Requant
    ) -> None:
        super().__init__()
        self.pre = pre
        self.pre_zero_point = int(pre_zero_point)
        self.ln, self.head, self.rq_out = ln, head, rq_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre is not None:
            x = self.pre(x - self.pre_zero_point)
        logits: torch.Tensor = self.rq_out(self.head(self.ln(x[:, 0])))
        return logits.to(torch.int32)
