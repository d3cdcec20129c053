"""FQ-ViT's torch.ao FX adapters (``QuantizerSpec.backends["fx"]`` points here), on the FX extension API.

* ``pts``: LayerNorm site computed by FQ-ViT's integer LayerNorm (:class:`PTSLayerNorm`) on an input quantized
  by its own per-channel power-of-two observer (:class:`~.fx_observers.PTSActObserver`; eqs. 9-10, Sec. 3.2).
* ``lis``: softmax site computed by Log-Int-Softmax (:class:`LISSoftmax`, eqs. 13-16); its ``bits``-bit log2
  codes are exact in a ``2^-8`` quint8 container.

LIS codes are ``round(-log2 p)`` (eq. 13, ``papers.fqvit.lis.log2_quant``) of the softmax of the integer logits,
computed in integer ops with an exact table exponential (``papers.fqvit.integer.lis_table_codes``): the codes
Brevitas' float LIS gives on the same logits. FQ-ViT's integer path (I-BERT's i-exp polynomial and rounding
``1/p`` to a power of two in linear space, ``papers.fqvit.lis.lis_softmax_int``) moved 21% of the codes by one
against it and kept the two wings 2.5 pt apart at W4A4 (#17).

Options (from ``QuantConfig.options``): ``pts_k`` (3), ``lis_input_bits`` (8: the attention
logits' grid, FQ-ViT's uint8 ``qact_attn1``; the Brevitas wing's ``lis`` takes the float logits, so the default
keeps the two wings together at every ``a_bits``). Paper: arXiv 2111.13824.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from vitq_plugins.fx.extension import CustomFloat
from vitq_plugins.fx.extension import CustomModuleSpec
from vitq_plugins.fx.extension import ObservedCustom
from vitq_plugins.fx.extension import UniformActObserver
from vitq_plugins.fx.extension import check_container_bits
from vitq_plugins.fx.extension import grid_codes
from vitq_plugins.intexec.extension import exp_tables
from vitq_plugins.papers.fqvit.fx_observers import Log2FakeQuant
from vitq_plugins.papers.fqvit.fx_observers import PTSActObserver
from vitq_plugins.papers.fqvit.integer import lis_table_codes
from vitq_plugins.papers.fqvit.lis import lis_dequant
from vitq_plugins.papers.fqvit.pts import pts_int_layernorm
from vitq_plugins.papers.fqvit.pts import pts_quantize

__all__ = ["LISSoftmax", "Log2FakeQuant", "PTSActObserver", "PTSLayerNorm", "lis", "pts"]

#: LIS codes ``2^-c`` with ``c <= 8`` are exact in a quint8 container of scale ``2^-8`` (eq. 16)
LIS_OUT_SCALE = 2.0**-8


class LISSoftmax(nn.Softmax, CustomFloat):
    """Softmax site quantized by FQ-ViT Log-Int-Softmax (``bits``-bit log2 codes of the integer logits)."""

    def __init__(self, dim: int = -1, bits: int = 4) -> None:
        nn.Softmax.__init__(self, dim=dim)
        self.bits, self.n = bits, 0

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, -1 if self.dim is None else int(self.dim))

    def kernel(self, x: torch.Tensor, observed: ObservedCustom) -> torch.Tensor:
        """Log2 codes ``round(-log2 p)`` (eq. 13) of the softmax of the integer input codes, integer ops only."""
        scale = observed.input_observer().qparams()[0]
        dim = -1 if self.dim is None else int(self.dim)
        codes = lis_table_codes(grid_codes(x, scale), _exp_tables(float(scale)), self.bits, dim)
        return lis_dequant(codes, self.bits).to(x.dtype)


@functools.lru_cache(maxsize=64)
def _exp_tables(scale: float) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``exp_tables`` of one logit scale (the same for every batch after calibration)."""
    return exp_tables(scale)


class PTSLayerNorm(nn.LayerNorm, CustomFloat):
    """LayerNorm whose input is PTS-quantized and which runs FQ-ViT's integer LayerNorm (Sec. 3.2)."""

    def __init__(self, normalized_shape: int, eps: float = 1e-6, bits: int = 8) -> None:
        nn.LayerNorm.__init__(self, normalized_shape, eps=eps)
        self.bits, self.n = bits, 0

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def kernel(self, x: torch.Tensor, observed: ObservedCustom) -> torch.Tensor:
        """PTS codes of ``x`` (eqs. 9-10), integer LayerNorm, codes of the 8-bit output container."""
        obs = observed.input_observer()
        assert isinstance(obs, PTSActObserver)
        p = obs.params()
        out_scale, out_zp = observed.out_qparams()
        codes = pts_int_layernorm(
            pts_quantize(x, p),
            p,
            self.weight.detach(),
            self.bias.detach(),
            self.eps,
            out_scale,
            out_bits=8,
            out_zero_point=int(out_zp),
        )
        return ((codes - int(out_zp)).to(torch.float64) * out_scale.to(torch.float64)).to(x.dtype)


def _lis_out_scale(bits: int) -> float:
    return LIS_OUT_SCALE


def pts(site: str, bits: int, **options: Any) -> CustomModuleSpec:
    """PTS LayerNorm with its per-channel power-of-two input observer (``pts_k``: largest exponent K)."""
    check_container_bits("pts", site, bits)
    return CustomModuleSpec(
        PTSLayerNorm,
        {"bits": bits},
        input_observer=PTSActObserver.with_args(bits=bits, k=int(options.get("pts_k", 3))),
    )


#: bits of LIS's input (the attention logits): FQ-ViT's ``qact_attn1`` is uint8 in all its configurations;
#: the Brevitas wing's ``lis`` runs on the float logits, so the FX wing holds them in its widest container
LIS_INPUT_BITS = 8


def lis(site: str, bits: int, **options: Any) -> CustomModuleSpec:
    """LIS softmax custom module (``bits``-bit log2 codes, exact ``2^-8`` output container) on 8-bit logits."""
    return CustomModuleSpec(
        LISSoftmax,
        {"bits": bits},
        input_observer=UniformActObserver.with_args(bits=int(options.get("lis_input_bits", LIS_INPUT_BITS))),
        fixed_out_scale=_lis_out_scale,
    )
