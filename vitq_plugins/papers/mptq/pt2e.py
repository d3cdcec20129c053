"""MPTQ-ViT's torchao PT2E adapter (``QuantizerSpec.backends["pt2e"]`` points here), on the PT2E extension API.

``optm``: the post-GELU twin-scale quantizer (OPT-m, arXiv 2401.14895, MPTQ-style; ``papers.mptq.optm``) as a
calibrated custom op. :class:`OptMObserver` keeps a bounded uniform reservoir of the calibration tokens (the
Brevitas wing's sample: same size and seed); at ``convert_pt2e`` it searches ``(delta_n, m)`` on the output MSE
of the Linear consuming the GELU output (fc2, read from the graph) and becomes
``vitq_mptq::twin_fake_quant(x, delta_n, m, bits)``, which ``torch.export``, ``convert_pt2e`` and
``torch.compile`` accept through its fake implementation. fc2 then runs in float on the twin-dequantized
values, as in the Brevitas wing's fake-quant model.

Options (from ``QuantConfig.options``): ``optm_max_m`` (8), ``optm_top_k`` (32; 0 scores every candidate).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from vitq_plugins.core.errors import ConfigError
from vitq_plugins.papers.mptq import optm as _optm
from vitq_plugins.pt2e.extension import CalibratedOpObserver
from vitq_plugins.pt2e.extension import QuantizationSpec
from vitq_plugins.pt2e.extension import consumer_weight
from vitq_plugins.pt2e.extension import spec_for

__all__ = ["OPTM_SAMPLES", "OptMObserver", "optm", "twin_fake_quant_op"]

#: calibration tokens kept for the search (the Brevitas wing's ``optm_samples``)
OPTM_SAMPLES = 512


@torch.library.custom_op("vitq_mptq::twin_fake_quant", mutates_args=())
def twin_fake_quant_op(x: torch.Tensor, delta_n: float, m: int, bits: int) -> torch.Tensor:
    """OPT-m twin-scale quantize-dequantize (:func:`~vitq_plugins.papers.mptq.optm.twin_fake_quant`)."""
    return _optm.twin_fake_quant(x, delta_n, m, bits).detach()


@twin_fake_quant_op.register_fake
def _(x: torch.Tensor, delta_n: float, m: int, bits: int) -> torch.Tensor:
    return torch.empty_like(x)


class OptMObserver(CalibratedOpObserver):
    """OPT-m calibration (MPTQ-ViT arXiv 2401.14895, MPTQ-style): a token reservoir, then the ``(delta_n, m)``
    search against the consuming Linear's weight (identity if the tensor feeds no single Linear).

    Args:
        bits: Code bits (sign included).
        max_m: Largest ``m`` searched (``m in 0..max_m``).
        top_k: Candidates scored exactly after the histogram screen (0: all).
        samples: Calibration tokens kept.
        kwargs: Ignored observer arguments.
    """

    def __init__(
        self,
        bits: int = 8,
        max_m: int = 8,
        top_k: int = _optm.DEFAULT_TOP_K,
        samples: int = OPTM_SAMPLES,
        **kwargs: Any,
    ) -> None:
        dtype = torch.int8 if bits <= 8 else torch.int32  # descriptive: the codes never leave the op
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        super().__init__("optm", bits, torch.ops.vitq_mptq.twin_fake_quant.default, dtype, lo, hi)
        self.max_m, self.top_k = int(max_m), int(top_k) or None
        self._sample = _optm.TokenReservoir(samples)
        self._weight: torch.Tensor | None = None
        self._result: _optm.OptMResult | None = None

    def observe(self, x: torch.Tensor) -> None:
        self._result = None
        self._sample.update(x)

    def bind(self, model: fx.GraphModule, node: fx.Node) -> None:
        """The float weight of the Linear consuming the GELU output: the search objective."""
        self._weight = consumer_weight(model, node)

    def set_next_weight(self, weight: torch.Tensor | None) -> None:
        """Set the objective's weight ``(out, C)`` directly (``None``: identity)."""
        self._weight, self._result = weight, None

    def result(self) -> _optm.OptMResult:
        """The searched :class:`~vitq_plugins.papers.mptq.optm.OptMResult` (computed once)."""
        if self._result is None:
            x = self._sample.data()
            w = self._weight if self._weight is not None else torch.eye(x.shape[-1])
            self._result = _optm.search_optm(
                x, w, None, self.bits, m_values=range(self.max_m + 1), top_k=self.top_k
            )
        return self._result

    def op_args(self) -> tuple[float, int, int]:
        r = self.result()
        return float(r.delta_n), int(r.m), int(self.bits)


def optm(site: str, bits: int, **options: Any) -> QuantizationSpec:
    """OPT-m twin-scale quantizer of the post-GELU activation (options ``optm_max_m``, ``optm_top_k``)."""
    if site != "gelu_output":
        raise ConfigError(
            f"quantizer 'optm' quantizes the post-GELU activation (gelu_output) only, not {site!r}"
        )
    return spec_for(
        OptMObserver.with_args(
            bits=bits,
            max_m=int(options.get("optm_max_m", 8)),
            top_k=int(options.get("optm_top_k", _optm.DEFAULT_TOP_K)),
        )
    )
