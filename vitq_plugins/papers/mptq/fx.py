"""MPTQ-ViT's torch.ao FX adapter (``QuantizerSpec.backends["fx"]`` points here), on the FX extension API.

``optm``: a GELU site whose output is twin-scale (OPT-m, arXiv 2401.14895, MPTQ-style) quantized. The
:class:`OptmGELU` marker keeps a :class:`TwinFakeQuant` as its per-module calibration state; the scale search
needs the weight of the Linear consuming the GELU output (fc2) and runs once after calibration.
"""

from __future__ import annotations

from typing import Any
from typing import ClassVar

import torch
from torch import nn
import torch.nn.functional as F

from vitq_plugins.fx.extension import CustomFloat
from vitq_plugins.fx.extension import CustomModuleSpec
from vitq_plugins.fx.extension import ObservedCustom
from vitq_plugins.fx.extension import VitqObserver
from vitq_plugins.papers.mptq.optm import DEFAULT_TOP_K
from vitq_plugins.papers.mptq.optm import OptMResult
from vitq_plugins.papers.mptq.optm import search_optm
from vitq_plugins.papers.mptq.optm import twin_fake_quant

__all__ = ["OptmGELU", "TwinFakeQuant", "optm"]


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

    def __init__(
        self, bits: int = 8, max_rows: int = 512, max_m: int = 8, top_k: int = DEFAULT_TOP_K, **kwargs: Any
    ) -> None:
        super().__init__("optm", bits, torch.quint8, torch.per_tensor_affine, 0, 255)
        self.max_rows, self.max_m, self.top_k = max_rows, int(max_m), int(top_k) or None
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
            self._result = search_optm(
                self._last, self._weight, None, self.bits, m_values=range(self.max_m + 1), top_k=self.top_k
            )
        return self._result

    def fake_quantize(self, x: torch.Tensor) -> torch.Tensor:
        r = self.result()
        return twin_fake_quant(x, r.delta_n, r.m, self.bits)

    @torch.jit.export
    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        r = self.result()
        return torch.tensor(float(r.delta_n)), torch.zeros((), dtype=torch.int64)


class OptmGELU(nn.GELU, CustomFloat):
    """GELU site whose output is twin-scale (OPT-m) quantized with ``bits``-bit codes."""

    needs_next_linear: ClassVar[bool] = True

    def __init__(self, bits: int = 8, max_m: int = 8, top_k: int = DEFAULT_TOP_K) -> None:
        nn.GELU.__init__(self)
        self.bits, self.n = bits, 0
        self.max_m, self.top_k = max_m, top_k

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x)

    def make_state(self) -> nn.Module | None:
        """The twin-scale quantizer fed with the post-GELU activations while calibrating."""
        return TwinFakeQuant(self.bits, max_m=self.max_m, top_k=self.top_k)

    def kernel(self, x: torch.Tensor, observed: ObservedCustom) -> torch.Tensor:
        """GELU, then the twin-scale fake-quant with the searched ``(delta_n, m)``."""
        return _twin(observed).fake_quantize(F.gelu(x))

    def link_next_linear(self, observed: ObservedCustom, weight: torch.Tensor) -> None:
        """fc2's weight: the objective of the OPT-m search."""
        _twin(observed).set_next_weight(weight)

    def finalize(self, observed: ObservedCustom) -> None:
        """Run the OPT-m search now (it counts as calibration, not as the first forward)."""
        _twin(observed).result()


def _twin(observed: ObservedCustom) -> TwinFakeQuant:
    state = observed.state
    assert isinstance(state, TwinFakeQuant)
    return state


def optm(site: str, bits: int, **options: Any) -> CustomModuleSpec:
    """OPT-m twin-scale GELU custom module (options ``optm_max_m``, ``optm_top_k`` as in the Brevitas wing)."""
    kwargs = {
        "bits": bits,
        "max_m": int(options.get("optm_max_m", 8)),
        "top_k": int(options.get("optm_top_k", DEFAULT_TOP_K)),
    }
    return CustomModuleSpec(OptmGELU, kwargs)
