"""Pure-torch numerics core of ``vitq``: reference quantizers and integer kernels for ViTs.

Modules (one concept each):

* :mod:`~vitq_plugins.ops.uniform` - uniform baseline (qparams, fake-quant, MinMax/Percentile/OMSE observers),
  FQ-ViT arXiv 2111.13824 Sec. 4.1.
* :mod:`~vitq_plugins.ops.histogram` - streaming per-channel moment histogram (single-pass L2 error).
* :mod:`~vitq_plugins.ops.pts` - FQ-ViT Power-of-Two Factor + integer LayerNorm, arXiv 2111.13824 Sec. 3.2.
* :mod:`~vitq_plugins.ops.lis` - FQ-ViT Log-Int-Softmax, arXiv 2111.13824 Sec. 3.3.
* :mod:`~vitq_plugins.ops.shift` - I-ViT Shiftmax / ShiftGELU, arXiv 2207.01405 Sec. 3.3-3.4.
* :mod:`~vitq_plugins.ops.ilayernorm` - I-ViT I-LayerNorm + exact integer sqrt, arXiv 2207.01405 Sec. 3.5.
* :mod:`~vitq_plugins.ops.dyadic` - dyadic requantization, arXiv 2207.01405 Sec. 3.2.
* :mod:`~vitq_plugins.ops.sqb` - MPTQ-style SQ-b (SmoothQuant + bias), arXiv 2401.14895.
* :mod:`~vitq_plugins.ops.optm` - MPTQ-style OPT-m twin-uniform post-GELU search, arXiv 2401.14895.
* :mod:`~vitq_plugins.ops.gptq` - GPTQ/OPTQ error-compensating weight rounding onto the wings' grid,
  arXiv 2210.17323.
"""

from __future__ import annotations

from vitq_plugins.ops._checks import check_bits
from vitq_plugins.ops._checks import check_finite
from vitq_plugins.ops._checks import check_nonempty
from vitq_plugins.ops._intmath import RoundingMode
from vitq_plugins.ops._intmath import floor_log2
from vitq_plugins.ops._intmath import grid_refinement
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
from vitq_plugins.ops.ilayernorm import i_layernorm
from vitq_plugins.ops.ilayernorm import isqrt_newton
from vitq_plugins.ops.lis import int_exp
from vitq_plugins.ops.lis import lis_attn_v
from vitq_plugins.ops.lis import lis_dequant
from vitq_plugins.ops.lis import lis_softmax_int
from vitq_plugins.ops.lis import log2_fake_quant
from vitq_plugins.ops.lis import log2_quant
from vitq_plugins.ops.optm import OptMResult
from vitq_plugins.ops.optm import OptMSearch
from vitq_plugins.ops.optm import search_optm
from vitq_plugins.ops.optm import twin_dequantize
from vitq_plugins.ops.optm import twin_fake_quant
from vitq_plugins.ops.optm import twin_quantize
from vitq_plugins.ops.pts import PTSObserver
from vitq_plugins.ops.pts import PTSParams
from vitq_plugins.ops.pts import pts_fake_quant
from vitq_plugins.ops.pts import pts_int_layernorm
from vitq_plugins.ops.pts import pts_quantize
from vitq_plugins.ops.shift import shift_exp
from vitq_plugins.ops.shift import shiftgelu
from vitq_plugins.ops.shift import shiftmax
from vitq_plugins.ops.sqb import fold_sqb_
from vitq_plugins.ops.sqb import sqb_params
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
    "OptMResult",
    "WingGrid",
    "OptMSearch",
    "PTSObserver",
    "PTSParams",
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
    "fold_sqb_",
    "i_layernorm",
    "int_exp",
    "isqrt_newton",
    "lis_attn_v",
    "lis_dequant",
    "lis_softmax_int",
    "log2_fake_quant",
    "log2_quant",
    "omse_search",
    "pts_fake_quant",
    "pts_int_layernorm",
    "pts_quantize",
    "qparams_from_minmax",
    "qrange",
    "quantize",
    "round_shift",
    "search_optm",
    "shift_exp",
    "shiftgelu",
    "shiftmax",
    "sqb_params",
    "twin_dequantize",
    "twin_fake_quant",
    "twin_quantize",
    "wing_scale",
]
