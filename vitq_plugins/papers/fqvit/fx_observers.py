"""FQ-ViT's observers in torch.ao form: PTS for LayerNorm inputs (arXiv 2111.13824, eqs. 9-10) and the LIS
log2 fake-quant of probabilities (eqs. 13-16), on the FX wing's public :class:`VitqObserver`."""

from __future__ import annotations

from typing import Any

import torch

from vitq_plugins.fx.extension import VitqObserver
from vitq_plugins.papers.fqvit import pts as ops_pts
from vitq_plugins.papers.fqvit.lis import log2_fake_quant

__all__ = ["Log2FakeQuant", "PTSActObserver"]


class PTSActObserver(VitqObserver):
    """FQ-ViT Power-of-Two Factor observer for LayerNorm inputs ``(..., C)`` (arXiv 2111.13824, eqs. 9-10).

    Wraps :class:`vitq_plugins.papers.fqvit.pts.PTSObserver` (streaming histogram, ``alpha_c`` by lowest L2 error
    over all batches). The converted tensor is per-channel affine quint8 with scales ``s * 2^alpha_c`` and
    one shared zero point.

    Args:
        bits: Code bits (<= 8 for the quint8 container).
        k: Largest power-of-two exponent K (FQ-ViT: 3).
        ch_axis: Channel axis of the token tensor (2 for ``(B, N, C)``).
        kwargs: Ignored torch.ao observer arguments.
    """

    def __init__(self, bits: int = 8, k: int = 3, ch_axis: int = 2, **kwargs: Any) -> None:
        if not 2 <= bits <= 8:
            raise ValueError(f"fx PTS uses a quint8 container: bits must be in 2..8, got {bits}")
        super().__init__("pts", bits, torch.quint8, torch.per_channel_affine, 0, 2**bits - 1, ch_axis)
        self.k = k
        self._impl: ops_pts.PTSObserver | None = None
        self._params: ops_pts.PTSParams | None = None

    def observe(self, x: torch.Tensor) -> None:
        if self._impl is None:
            self._impl = ops_pts.PTSObserver(int(x.shape[-1]), bits=self.bits, k=self.k)
        self._params = None
        self._impl.update(x.detach().movedim(self.ch_axis % x.dim(), -1))

    def params(self) -> ops_pts.PTSParams:
        """The calibrated :class:`~vitq_plugins.papers.fqvit.pts.PTSParams`."""
        if self._params is None:
            if self._impl is None:
                raise RuntimeError("PTSActObserver used before calibration")
            self._params = self._impl.compute()
        return self._params

    def fake_quantize(self, x: torch.Tensor) -> torch.Tensor:
        return ops_pts.pts_fake_quant(x.movedim(self.ch_axis % x.dim(), -1), self.params()).movedim(
            -1, self.ch_axis % x.dim()
        )

    @torch.jit.export
    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        p = self.params()
        scale = p.scale.float()
        return scale, p.zero_point.reshape(()).expand(scale.shape).to(torch.int64).clone()


class Log2FakeQuant(VitqObserver):
    """FQ-ViT LIS log2 fake-quant of probabilities (``2^-round(-log2 p)``, underflow to 0), eqs. 13-16.

    Parameter free (nothing to calibrate); :meth:`calculate_qparams` reports the ``2^-8`` quint8 container
    in which codes ``<= 8`` are exact.

    Args:
        bits: Code bits (FQ-ViT: 4).
        kwargs: Ignored torch.ao observer arguments.
    """

    def __init__(self, bits: int = 4, **kwargs: Any) -> None:
        super().__init__("lis", bits, torch.quint8, torch.per_tensor_affine, 0, 255)

    def observe(self, x: torch.Tensor) -> None:
        return None

    def fake_quantize(self, x: torch.Tensor) -> torch.Tensor:
        deq = log2_fake_quant(x.clamp(0.0, 1.0), self.bits)
        return x + (deq - x).detach()

    @torch.jit.export
    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        return torch.tensor(2.0**-8), torch.zeros((), dtype=torch.int64)
