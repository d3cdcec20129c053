"""FQ-ViT's torchao PT2E adapters (``QuantizerSpec.backends["pt2e"]`` points here), on the PT2E extension API.

* ``pts``: the LayerNorm input quantized per channel with Power-of-Two Factor scales ``s * 2^alpha_c`` and one
  zero point (eqs. 9-10, Sec. 3.2). That is an affine per-channel grid, so it is a plain ``QuantizationSpec``
  (:class:`PTSObserver`, channel axis 2 of ``(B, N, C)``); ``convert_pt2e`` makes it a per-channel q/dq pair and
  the LayerNorm runs in float on the dequantized codes, as in FQ-ViT's fake-quant model.
* ``lis``: the attention map's log2 quantizer (eq. 13-16, ``2^-round(-log2 p)``, 0 for the underflow code)
  as the custom op ``vitq_fqvit::log2_fake_quant`` (a :class:`~vitq_plugins.pt2e.extension.SiteOp`), which
  ``torch.export``, ``convert_pt2e`` and ``torch.compile`` accept through its fake implementation.

Options (from ``QuantConfig.options``): ``pts_k`` (3). Paper: arXiv 2111.13824.
"""

from __future__ import annotations

from typing import Any

import torch

from vitq_plugins.core.errors import ConfigError
from vitq_plugins.papers.fqvit import pts as ops_pts
from vitq_plugins.papers.fqvit.lis import log2_fake_quant
from vitq_plugins.pt2e.extension import PT2E_MAX_BITS
from vitq_plugins.pt2e.extension import QuantizationSpec
from vitq_plugins.pt2e.extension import SiteOp
from vitq_plugins.pt2e.extension import VitqObserver
from vitq_plugins.pt2e.extension import spec_for

__all__ = ["PTSObserver", "lis", "log2_fake_quant_op", "pts"]


@torch.library.custom_op("vitq_fqvit::log2_fake_quant", mutates_args=())
def log2_fake_quant_op(x: torch.Tensor, bits: int) -> torch.Tensor:
    """FQ-ViT's log2 quantizer of probabilities, dequantized (:func:`~vitq_plugins.papers.fqvit.lis.log2_fake_quant`)."""
    return log2_fake_quant(x, bits)


@log2_fake_quant_op.register_fake
def _(x: torch.Tensor, bits: int) -> torch.Tensor:
    return torch.empty_like(x)


class PTSObserver(VitqObserver):
    """FQ-ViT Power-of-Two Factor observer of LayerNorm inputs ``(B, N, C)`` (arXiv 2111.13824, eqs. 9-10).

    Wraps :class:`vitq_plugins.papers.fqvit.pts.PTSObserver` (streaming histogram, ``alpha_c`` by the lowest L2
    error over all batches). The converted tensor is per-channel affine uint8 with scales ``s * 2^alpha_c`` and
    one shared zero point.

    Args:
        bits: Code bits (2..8, uint8 container).
        k: Largest power-of-two exponent K (FQ-ViT: 3).
        ch_axis: Channel axis of the token tensor (2 for ``(B, N, C)``).
        kwargs: Ignored observer arguments.
    """

    def __init__(self, bits: int = 8, k: int = 3, ch_axis: int = 2, **kwargs: Any) -> None:
        if not 2 <= bits <= PT2E_MAX_BITS:
            raise ValueError(
                f"pt2e PTS uses a uint8 container: bits must be in 2..{PT2E_MAX_BITS}, got {bits}"
            )
        super().__init__("pts", bits, torch.uint8, torch.per_channel_affine, 0, 2**bits - 1, ch_axis)
        self.k = k
        self._impl: ops_pts.PTSObserver | None = None

    def observe(self, x: torch.Tensor) -> None:
        if self._impl is None:
            self._impl = ops_pts.PTSObserver(int(x.shape[self.ch_axis]), bits=self.bits, k=self.k)
        self._impl.update(x.detach().movedim(self.ch_axis, -1))

    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._impl is None:
            raise RuntimeError("PTSObserver used before calibration")
        p = self._impl.compute()
        scale = p.scale.float()
        return scale, p.zero_point.reshape(()).expand(scale.shape).to(torch.int64).clone()


def pts(site: str, bits: int, **options: Any) -> QuantizationSpec:
    """PTS spec of a LayerNorm input (``pts_k``: largest exponent K)."""
    if site != "ln_input":
        raise ConfigError(f"quantizer 'pts' quantizes LayerNorm inputs only, not {site!r}")
    return spec_for(PTSObserver.with_args(bits=bits, k=int(options.get("pts_k", 3))))


def lis(site: str, bits: int, **options: Any) -> SiteOp:
    """The log2 quantizer of the attention map as a custom op on the softmax output (``bits``-bit codes)."""
    if site != "softmax_output":
        raise ConfigError(f"quantizer 'lis' quantizes the attention map (softmax_output) only, not {site!r}")
    return SiteOp(torch.ops.vitq_fqvit.log2_fake_quant.default, (bits,))
