"""What the converters hand an integer form's builder, and what the builder hands back.

The wings' converters (:mod:`vitq_plugins.brevitas.integer` for Brevitas, :mod:`vitq_plugins.fx.integer` for
torch.ao FX) read the model's structure and its calibrated grids generically; at a LayerNorm, softmax or GELU
site they look up the site's form (:func:`~vitq_plugins.intexec.forms.find_integer_form`) and call its
``from_brevitas`` / ``from_fx`` classmethod with one of these records, so the paper-specific constants (integer
biases, exponential units, tables; I-ViT arXiv 2207.01405 eqs. 9-18, FQ-ViT arXiv 2111.13824 eqs. 9-16) are
derived by the paper's own module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from vitq_plugins.intexec.requant import QParams
from vitq_plugins.intexec.requant import Requant

__all__ = [
    "AttentionSite",
    "GeluSite",
    "LayerNormBuild",
    "LayerNormSite",
    "grid_span",
]


def grid_span(g: QParams) -> int:
    """``max(z - qmin, qmax - z)``: the largest ``|code - z|`` on grid ``g``."""
    return max(g.zero_point - g.qmin, g.qmax - g.zero_point)


@dataclass(frozen=True)
class LayerNormSite:
    """A LayerNorm site.

    Attributes:
        where: the module's name (for error messages).
        module: the wing's module (Brevitas ``QuantLayerNorm``; FX ``QuantizedCustom``).
        weight, bias: the affine LayerNorm's ``gamma``/``beta``.
        eps: its epsilon.
        in_grid: the input tensor's grid (per-tensor; ``alpha`` set for a per-channel power-of-two grid), or
            ``None`` when the input is a per-channel quantize (``channel_scales``).
        out_grid: the grid of the LayerNorm's output tensor (FX: its output container), if any.
        channel_scales, channel_zero_points, channel_dtype, channel_node: a per-channel ``quantize_per_channel``
            of the input (FX: its scales, zero points, dtype and graph node), else ``None``.
    """

    where: str
    module: Any
    weight: torch.Tensor | None
    bias: torch.Tensor | None
    eps: float = 0.0
    in_grid: QParams | None = None
    out_grid: QParams | None = None
    channel_scales: torch.Tensor | None = None
    channel_zero_points: torch.Tensor | None = None
    channel_dtype: Any = None
    channel_node: Any = None


@dataclass(frozen=True)
class LayerNormBuild:
    """A LayerNorm form and how the IR feeds it.

    Attributes:
        form: the :class:`~vitq_plugins.intexec.forms.LayerNormForm`.
        scale: the real scale of its result (per channel or scalar); the converter requantizes it to the
            consumer's grid with ratio ``scale / S_consumer`` and bound ``form.out_bound()``.
        in_zero_point, in_shift: the form runs on ``(x - in_zero_point) << in_shift``.
        in_grid: the (per-channel) grid the input is quantized onto first, when the converter must build that
            requant (FX per-channel input).
    """

    form: Any
    scale: torch.Tensor | float
    in_zero_point: int = 0
    in_shift: torch.Tensor | None = None
    in_grid: QParams | None = None


@dataclass(frozen=True)
class AttentionSite:
    """The softmax site of an attention block: the scores ``(q - z_q)(k - z_k)^T`` are exact int64.

    Attributes:
        where: the softmax module's name.
        module: the wing's softmax module (Brevitas ``QuantSoftmax``; FX ``QuantizedCustom``).
        gq, gk, gv: the q (scaled), k and v grids; ``head_dim``, ``tokens``: the matmul lengths.
        out_grid: the grid ``P @ v`` is requantized to (proj's input or the quantized matmul's output).
        grid: reads the grid of a Brevitas activation proxy (``grid(proxy, where)``).
        out_quant: the Brevitas softmax output quantizer's tensor quantizer (or ``None``).
        logits_grid, rq_logits: FX: the softmax input container and the requant of the scores onto it.
    """

    where: str
    module: Any
    gq: QParams
    gk: QParams
    gv: QParams
    out_grid: QParams
    head_dim: int
    tokens: int
    grid: Callable[[Any, str], QParams] | None = None
    out_quant: Any = None
    logits_grid: QParams | None = None
    rq_logits: Requant | None = None


@dataclass(frozen=True)
class GeluSite:
    """The GELU site of an MLP: fc1's int64 accumulator in, fc2's input codes out.

    Attributes:
        where: the GELU module's name; ``module``: the wing's module.
        acc_scale, acc_bound, acc_frac: fc1's per-channel accumulator scale, ``|acc|`` bound and bias remainder.
        in_grid: Brevitas: the GELU quantizer's grid; FX: fc1's output grid (the GELU input).
        out_grid: FX: the GELU's output container; Brevitas: fc2's input grid.
        to_fc2: FX: chains a requant onto ``out_grid`` with the requant to fc2's input grid.
        rq_in: FX: the requant of fc1's accumulator to ``in_grid``.
    """

    where: str
    module: Any
    acc_scale: torch.Tensor
    acc_bound: int
    acc_frac: torch.Tensor
    in_grid: QParams
    out_grid: QParams
    to_fc2: Callable[[Requant], Requant] | None = None
    rq_in: Requant | None = None
