"""Pure-torch numerics core of ``vitq``, shared by every wing and every paper.

Modules (one concept each):

* :mod:`~vitq_plugins.ops.uniform` - uniform baseline (qparams, fake-quant, MinMax/Percentile/OMSE observers),
  FQ-ViT arXiv 2111.13824 Sec. 4.1.
* :mod:`~vitq_plugins.ops.histogram` - streaming per-channel moment histogram (single-pass L2 error).
* :mod:`~vitq_plugins.ops.dyadic` - dyadic requantization, I-ViT arXiv 2207.01405 Sec. 3.2.
* :mod:`~vitq_plugins.ops._intmath` - exact int64 primitives (floor log2, rounding shifts, integer sqrt).
* :mod:`~vitq_plugins.ops.gptq` - GPTQ/OPTQ error-compensating weight rounding onto the wings' grid,
  arXiv 2210.17323.

Each paper's own numerics live in its package: :mod:`vitq_plugins.papers.fqvit` (PTS, LIS),
:mod:`vitq_plugins.papers.ivit` (Shiftmax, ShiftGELU, I-LayerNorm), :mod:`vitq_plugins.papers.mptq`
(SQ-b, OPT-m).
"""

from __future__ import annotations

from vitq_plugins.ops._checks import check_bits
from vitq_plugins.ops._checks import check_finite
from vitq_plugins.ops._checks import check_nonempty
from vitq_plugins.ops._intmath import RoundingMode
from vitq_plugins.ops._intmath import floor_log2
from vitq_plugins.ops._intmath import grid_refinement
from vitq_plugins.ops._intmath import isqrt_newton
from vitq_plugins.ops._intmath import round_shift
from vitq_plugins.ops.dyadic import dyadic_from_scale
from vitq_plugins.ops.dyadic import dyadic_requant
from vitq_plugins.ops.dyadic import dyadic_to_float
from vitq_plugins.ops.gptq import GPTQResult
from vitq_plugins.ops.gptq import HessianAccumulator
from vitq_plugins.ops.gptq import WingGrid
from vitq_plugins.ops.gptq import gptq_quantize
from vitq_plugins.ops.gptq import wing_scale
from vitq_plugins.ops.histogram import MomentHistogram
from vitq_plugins.ops.uniform import MinMaxObserver
from vitq_plugins.ops.uniform import OMSEObserver
from vitq_plugins.ops.uniform import OMSEResult
from vitq_plugins.ops.uniform import PercentileObserver
from vitq_plugins.ops.uniform import dequantize
from vitq_plugins.ops.uniform import fake_quant
from vitq_plugins.ops.uniform import omse_search
from vitq_plugins.ops.uniform import qparams_from_minmax
from vitq_plugins.ops.uniform import qrange
from vitq_plugins.ops.uniform import quantize

__all__ = [
    "GPTQResult",
    "HessianAccumulator",
    "MinMaxObserver",
    "MomentHistogram",
    "OMSEObserver",
    "OMSEResult",
    "WingGrid",
    "PercentileObserver",
    "RoundingMode",
    "check_bits",
    "check_finite",
    "check_nonempty",
    "dequantize",
    "gptq_quantize",
    "dyadic_from_scale",
    "dyadic_requant",
    "dyadic_to_float",
    "fake_quant",
    "floor_log2",
    "grid_refinement",
    "isqrt_newton",
    "omse_search",
    "qparams_from_minmax",
    "qrange",
    "quantize",
    "round_shift",
    "wing_scale",
]
