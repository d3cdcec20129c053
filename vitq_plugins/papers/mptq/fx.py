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

__all__ = ["OptmGELU", "TwinContainer", "TwinFakeQuant", "optm", "twin_container"]


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


def twin_container(delta_n: float, m: int, bits: int) -> tuple[float, int]:
    """``(scale, zero_point)`` of the finest quint8 container of the OPT-m grid (codes ``-2^(b-1)..0`` of step
    ``delta_n``, ``0..2^(b-1)-1`` of step ``2^m delta_n``): step ``2^s delta_n`` for the smallest ``s`` whose
    codes fit in ``0..255``. Exact (``s = 0``) when ``2^(b-1) + (2^(b-1) - 1) 2^m <= 255`` (4 bits: ``m <= 5``);
    else the positive levels stay exact and the negative ones (GELU's small tail) are rounded to ``2^s delta_n``.

    Example:
        >>> twin_container(0.02, 5, 4)
        (0.02, 8)
        >>> twin_container(0.01, 4, 6)  # 32 + 31 * 16 codes do not fit: step 4 * delta_n
        (0.04, 8)
    """
    half = 2 ** (bits - 1)
    for s in range(m + 1):
        zp = -(-half // 2**s)
        if zp + (half - 1) * 2 ** (m - s) <= 255:
            return float(delta_n) * 2**s, zp
    return float(delta_n) * 2**m, 1  # unreachable for bits <= 8: s = m leaves half - 1 positive codes


class TwinContainer(VitqObserver):
    """The quint8 container of an :class:`OptmGELU` output (:func:`twin_container` of its searched grid).

    It observes nothing (the module's :class:`TwinFakeQuant` state holds the calibration data) and, in
    fake-quant mode, rounds to the container like the converted model's ``quantize_per_tensor``.
    """

    def __init__(self, twin: TwinFakeQuant) -> None:
        super().__init__("optm", twin.bits, torch.quint8, torch.per_tensor_affine, 0, 255)
        self._twin = [twin]  # not a child module: the state belongs to the custom module

    def observe(self, x: torch.Tensor) -> None:
        return None

    @torch.jit.export
    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        r = self._twin[0].result()
        scale, zp = twin_container(r.delta_n, r.m, self.bits)
        return torch.tensor(scale), torch.tensor(zp, dtype=torch.int64)


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

    def output_observer(self, observed: ObservedCustom) -> VitqObserver | None:
        """The output container is the searched twin grid (:class:`TwinContainer`): fc2's input, as in Brevitas."""
        return TwinContainer(_twin(observed))

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
