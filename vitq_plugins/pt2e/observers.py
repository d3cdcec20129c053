"""torchao PT2E observers for vitq's uniform quantizers; every formula comes from :mod:`vitq_plugins.ops`.

They subclass :class:`torchao.quantization.pt2e.ObserverBase` (not the deprecated ``torch.ao`` one), so that
``prepare_pt2e`` inserts them and ``convert_pt2e`` turns them into ``quantized_decomposed`` q/dq pairs. The
uniform baselines follow FQ-ViT (arXiv 2111.13824, Sec. 4.1): activations per-tensor asymmetric unsigned
(MinMax, Percentile, OMSE), weights per-output-channel symmetric signed MinMax. Statistics are streaming.
"""

from __future__ import annotations

from typing import Any
from typing import Literal

import torch
from torchao.quantization.pt2e import ObserverBase

from vitq_plugins.ops import uniform as ops_uniform

__all__ = ["PT2E_MAX_BITS", "UniformActObserver", "VitqObserver", "WeightObserver"]

UniformMethod = Literal["minmax", "percentile", "omse"]

#: uint8/int8 containers of ``quantized_decomposed`` q/dq (the ops Inductor lowers to x86 int8 kernels)
PT2E_MAX_BITS = 8


def _check_bits(what: str, bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= PT2E_MAX_BITS:
        raise ValueError(
            f"pt2e {what} use an 8-bit container: bits must be in 2..{PT2E_MAX_BITS}, got {bits!r}"
        )


class VitqObserver(ObserverBase):  # type: ignore[misc]  # torchao ships no stubs
    """Base: ``quantizer`` name, ``bits`` and the integer range of the container.

    Args:
        quantizer: Registry name of the quantizer this observer implements.
        bits: Bit-width.
        dtype: Container dtype (``torch.uint8`` or ``torch.int8``).
        qscheme: torch qscheme of the converted tensor.
        quant_min: Smallest integer code.
        quant_max: Largest integer code.
        ch_axis: Channel axis for per-channel schemes.
    """

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

    def observe(self, x: torch.Tensor) -> None:
        """Fold a batch into the statistics."""
        raise RuntimeError(f"{type(self).__name__} does not observe")  # pragma: no cover

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.observe(x)
        return x

    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise RuntimeError(f"{type(self).__name__} has no uniform qparams")  # pragma: no cover

    def extra_repr(self) -> str:
        return f"quantizer={self.quantizer}, bits={self.bits}"


class UniformActObserver(VitqObserver):
    """Per-tensor asymmetric unsigned activation observer: MinMax, Percentile (EMA) or OMSE.

    Wraps :class:`vitq_plugins.ops.uniform.MinMaxObserver` / ``PercentileObserver`` / ``OMSEObserver`` and
    :func:`vitq_plugins.ops.uniform.qparams_from_minmax` (FQ-ViT conventions).

    Args:
        bits: Bit-width (codes ``0..2^bits-1`` in a uint8 container).
        method: ``"minmax"``, ``"percentile"`` or ``"omse"``.
        percentile: Upper percentile for ``"percentile"``.
        kwargs: Ignored observer arguments (``dtype``, ``qscheme``, ...).
    """

    def __init__(
        self, bits: int = 8, method: UniformMethod = "minmax", percentile: float = 0.99999, **kwargs: Any
    ) -> None:
        _check_bits("activations", bits)
        qmin, qmax = ops_uniform.qrange(bits, signed=False)
        super().__init__(method, bits, torch.uint8, torch.per_tensor_affine, qmin, qmax)
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

    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(self._impl, ops_uniform.OMSEObserver):
            res = self._impl.compute()
            return res.scale.reshape(()).float(), res.zero_point.reshape(()).to(torch.int64)
        lo = torch.clamp(self._impl.min, max=0.0)  # keep 0 exactly representable
        hi = torch.clamp(self._impl.max, min=0.0)
        return ops_uniform.qparams_from_minmax(lo, hi, self.bits, symmetric=False, signed=False)


class WeightObserver(VitqObserver):
    """Per-output-channel symmetric signed MinMax weight observer (FQ-ViT: ``absmax / 127.5`` at 8 bits).

    Args:
        bits: Bit-width, 2..8 (int8 container).
        ch_axis: Output-channel axis (0 for Linear/Conv weights).
        kwargs: Ignored observer arguments.
    """

    def __init__(self, bits: int = 8, ch_axis: int = 0, **kwargs: Any) -> None:
        _check_bits("weights", bits)
        qmin, qmax = ops_uniform.qrange(bits, signed=True)
        super().__init__("minmax", bits, torch.int8, torch.per_channel_symmetric, qmin, qmax, ch_axis)
        self._impl = ops_uniform.MinMaxObserver(ch_axis)

    def observe(self, x: torch.Tensor) -> None:
        self._impl.update(x.detach().float())

    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        return ops_uniform.qparams_from_minmax(
            self._impl.min, self._impl.max, self.bits, symmetric=True, signed=True
        )
