"""torch.ao observers for vitq's quantizers; every formula comes from :mod:`vitq_plugins.ops`.

All classes are plain :class:`torch.ao.quantization.observer.ObserverBase` subclasses with
``calculate_qparams`` (so a torchao pt2e ``Quantizer`` can reuse them as ``observer_or_fake_quant_ctr``).
Each carries ``quantizer`` (its registry name) and ``bits``, and has two modes:

* observing (default): statistics are folded in, the input is returned unchanged (PTQ calibration);
* fake-quant (``fake_quant_enabled = True``): statistics are frozen and the input is quantize-dequantized
  with the calibrated parameters, so the prepared model simulates the converted one.

Papers: uniform baselines and PTS follow FQ-ViT (arXiv 2111.13824, Sec. 4.1 and eqs. 9-10); the log2
quantizer is FQ-ViT's LIS (eqs. 13-16); the twin quantizer is MPTQ-style OPT-m (arXiv 2401.14895).
Statistics are streaming: memory does not grow with the number of calibration images.
"""

from __future__ import annotations

from typing import Any
from typing import Literal

import torch
from torch import nn
from torch.ao.quantization.observer import ObserverBase

from vitq_plugins.ops import uniform as ops_uniform
from vitq_plugins.papers.fqvit import pts as ops_pts
from vitq_plugins.papers.fqvit.lis import log2_fake_quant
from vitq_plugins.papers.mptq.optm import OptMResult
from vitq_plugins.papers.mptq.optm import search_optm
from vitq_plugins.papers.mptq.optm import twin_fake_quant

__all__ = [
    "VitqObserver",
    "UniformActObserver",
    "WeightObserver",
    "FixedScaleObserver",
    "PTSActObserver",
    "Log2FakeQuant",
    "TwinFakeQuant",
    "set_fake_quant",
]

UniformMethod = Literal["minmax", "percentile", "omse"]


class VitqObserver(ObserverBase):
    """Base: ``quantizer`` name, ``bits``, integer range and the observe/fake-quant switch.

    Args:
        quantizer: Registry name of the quantizer this observer implements.
        bits: Bit-width.
        dtype: torch quantized dtype of the converted tensor (``quint8`` or ``qint8``).
        qscheme: torch qscheme of the converted tensor.
        quant_min: Smallest integer code.
        quant_max: Largest integer code.
        ch_axis: Channel axis for per-channel schemes.
    """

    quantizer: str = ""

    def __init__(
        self,
        quantizer: str,
        bits: int,
        dtype: torch.dtype,
        qscheme: torch.qscheme,
        quant_min: int,
        quant_max: int,
        ch_axis: int = -1,
    ) -> None:
        super().__init__(dtype=dtype, is_dynamic=False)
        self.quantizer = quantizer
        self.bits = bits
        self.qscheme = qscheme
        self.quant_min = quant_min
        self.quant_max = quant_max
        self.ch_axis = ch_axis
        self.fake_quant_enabled = False
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def observe(self, x: torch.Tensor) -> None:
        """Fold a batch into the statistics."""
        raise RuntimeError(f"{type(self).__name__} does not observe")  # pragma: no cover

    def fake_quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Quantize-dequantize ``x`` with the calibrated parameters (uniform affine by default)."""
        scale, zp = self.qparams()
        axis = None if scale.dim() == 0 else self.ch_axis % x.dim()
        return ops_uniform.fake_quant(x, scale, zp, self.quant_min, self.quant_max, axis=axis)

    def qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Cached :meth:`calculate_qparams` (computed once after calibration)."""
        if self._cache is None:
            self._cache = self.calculate_qparams()
        return self._cache

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fake_quant_enabled:
            return self.fake_quantize(x)
        self._cache = None
        self.observe(x)
        return x

    @torch.jit.export
    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        raise RuntimeError(f"{type(self).__name__} has no uniform qparams")  # pragma: no cover

    def extra_repr(self) -> str:
        return f"quantizer={self.quantizer}, bits={self.bits}, fake_quant={self.fake_quant_enabled}"


class UniformActObserver(VitqObserver):
    """Per-tensor asymmetric unsigned activation observer: MinMax, Percentile (EMA) or OMSE.

    Wraps :class:`vitq_plugins.ops.uniform.MinMaxObserver` / ``PercentileObserver`` / ``OMSEObserver``
    and :func:`vitq_plugins.ops.uniform.qparams_from_minmax` (FQ-ViT conventions).

    Args:
        bits: Bit-width (codes ``0..2^bits-1``; must be <= 8 for the quint8 container).
        method: ``"minmax"``, ``"percentile"`` or ``"omse"``.
        percentile: Upper percentile for ``"percentile"``.
        kwargs: Ignored torch.ao observer arguments (``dtype``, ``qscheme``, ...).
    """

    def __init__(
        self, bits: int = 8, method: UniformMethod = "minmax", percentile: float = 0.99999, **kwargs: Any
    ) -> None:
        if not 2 <= bits <= 8:
            raise ValueError(f"fx activations use a quint8 container: bits must be in 2..8, got {bits}")
        qmin, qmax = ops_uniform.qrange(bits, signed=False)
        super().__init__(method, bits, torch.quint8, torch.per_tensor_affine, qmin, qmax)
        self.method = method
        self._impl: ops_uniform.MinMaxObserver | ops_uniform.PercentileObserver | ops_uniform.OMSEObserver
        if method == "minmax":
            self._impl = ops_uniform.MinMaxObserver(None)
        elif method == "percentile":
            self._impl = ops_uniform.PercentileObserver(percentile)
        elif method == "omse":
            self._impl = ops_uniform.OMSEObserver(bits, stats="all")
        else:
            raise ValueError(f"unknown uniform method {method!r}; valid: minmax, percentile, omse")

    def observe(self, x: torch.Tensor) -> None:
        self._impl.update(x.detach().float())

    @torch.jit.export
    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        if isinstance(self._impl, ops_uniform.OMSEObserver):
            res = self._impl.compute()
            return res.scale.reshape(()).float(), res.zero_point.reshape(())
        lo = torch.clamp(self._impl.min, max=0.0)  # keep 0 exactly representable (torch.ao requirement)
        hi = torch.clamp(self._impl.max, min=0.0)
        return ops_uniform.qparams_from_minmax(lo, hi, self.bits, symmetric=False, signed=False)


class WeightObserver(VitqObserver):
    """Per-output-channel symmetric signed MinMax weight observer (FQ-ViT: ``absmax / 127.5`` at 8 bits).

    Args:
        bits: Bit-width, 2..8 (qint8 container).
        ch_axis: Output-channel axis (0 for Linear/Conv weights).
        kwargs: Ignored torch.ao observer arguments.
    """

    def __init__(self, bits: int = 8, ch_axis: int = 0, **kwargs: Any) -> None:
        if not 2 <= bits <= 8:
            raise ValueError(f"fx weights use a qint8 container: bits must be in 2..8, got {bits}")
        qmin, qmax = ops_uniform.qrange(bits, signed=True)
        super().__init__("minmax", bits, torch.qint8, torch.per_channel_symmetric, qmin, qmax, ch_axis)
        self._impl = ops_uniform.MinMaxObserver(ch_axis)

    def observe(self, x: torch.Tensor) -> None:
        self._impl.update(x.detach().float())

    @torch.jit.export
    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        return ops_uniform.qparams_from_minmax(
            self._impl.min, self._impl.max, self.bits, symmetric=True, signed=True
        )


class FixedScaleObserver(VitqObserver):
    """A fixed ``(scale, zero_point)`` quint8 container, e.g. ``2^-8`` for LIS codes or ``2^-(k-1)`` for
    Shiftmax outputs (which are then represented exactly).

    Args:
        quantizer: Name of the quantizer whose output this container holds.
        bits: Bit-width of that quantizer.
        scale: The fixed scale.
        kwargs: Ignored torch.ao observer arguments.
    """

    def __init__(self, quantizer: str = "lis", bits: int = 4, scale: float = 2.0**-8, **kwargs: Any) -> None:
        super().__init__(quantizer, bits, torch.quint8, torch.per_tensor_affine, 0, 255)
        self.fixed_scale = float(scale)

    def observe(self, x: torch.Tensor) -> None:
        return None

    @torch.jit.export
    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        return torch.tensor(self.fixed_scale), torch.zeros((), dtype=torch.int64)


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


class TwinFakeQuant(VitqObserver):
    """MPTQ-style OPT-m twin-scale fake-quant of post-GELU activations (``delta_p = 2^m delta_n``).

    Keeps only the *last* calibration batch, strided down to at most ``max_rows`` tokens (bounded memory
    and search cost, the FQ-ViT "last batch" convention); :func:`vitq_plugins.papers.mptq.optm.search_optm` picks
    ``(delta_n, m)`` by the MSE of the next Linear's output. Call :meth:`set_next_weight` before the search.

    Args:
        bits: Code bits (sign included).
        max_rows: Most tokens kept for the search (its cost is ``O(rows * C * out * candidates)``).
        kwargs: Ignored torch.ao observer arguments.
    """

    def __init__(self, bits: int = 8, max_rows: int = 512, **kwargs: Any) -> None:
        super().__init__("optm", bits, torch.quint8, torch.per_tensor_affine, 0, 255)
        self.max_rows = max_rows
        self._last: torch.Tensor | None = None
        self._weight: torch.Tensor | None = None
        self._result: OptMResult | None = None

    def set_next_weight(self, weight: torch.Tensor) -> None:
        """The weight ``(out, C)`` of the Linear consuming this activation (search objective)."""
        self._weight = weight.detach()

    def observe(self, x: torch.Tensor) -> None:
        self._result = None
        rows = x.detach().reshape(-1, x.shape[-1])
        step = max(1, -(-rows.shape[0] // self.max_rows))
        self._last = rows[::step].clone()

    def result(self) -> OptMResult:
        """The searched :class:`~vitq_plugins.papers.mptq.optm.OptMResult`."""
        if self._result is None:
            if self._last is None or self._weight is None:
                raise RuntimeError("TwinFakeQuant needs a calibration batch and set_next_weight() first")
            self._result = search_optm(self._last, self._weight, None, self.bits)
        return self._result

    def fake_quantize(self, x: torch.Tensor) -> torch.Tensor:
        r = self.result()
        return twin_fake_quant(x, r.delta_n, r.m, self.bits)

    @torch.jit.export
    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        r = self.result()
        return torch.tensor(float(r.delta_n)), torch.zeros((), dtype=torch.int64)


def set_fake_quant(model: nn.Module, enabled: bool) -> int:
    """Switch every vitq observer and observed custom module in ``model`` between observing and fake-quant; returns how many."""
    n = 0
    for m in model.modules():
        if isinstance(m, VitqObserver) or hasattr(m, "link_input_observer"):
            setattr(m, "fake_quant_enabled", enabled)  # noqa: B010 - also custom modules
            n += 1
    return n
