"""Public extension API of the integer program: what a paper needs to provide an integer form.

A paper registers its non-affine integer operators (LayerNorm kernel, the softmax unit of attention with its
``attn @ v``, the GELU unit) with :func:`register_integer_form` in its own ``papers/<paper>/integer.py``
(found through the quantizer registry on first use, see :func:`find_integer_form`), subclassing
:class:`LayerNormForm`, :class:`SoftmaxForm` or :class:`GeluForm`. A form is built from the grids and integer
helpers below (dyadic requantization, I-ViT arXiv 2207.01405 eq. 7; exhaustive tables) and emits its ONNX
nodes with the :class:`OnnxGraph` builder and its integer helpers, so that the export equals the executor
bit for bit. Nothing here names a paper.

It is also the API through which a framework wing converts its calibrated models into the integer program in
its own ``integer`` module (``vitq_plugins.<wing>.integer``, reached through the backend contract's
``integer_program`` / ``integer_float_ops``): the layers of the program (:class:`IntEmbed`, :class:`IntBlock`,
:class:`IntAttention`, :class:`IntMlp`, :class:`IntLinear`, :class:`IntLayerNorm`, :class:`ResidualAdd`,
:class:`IntHead`), :class:`IntExecutor`, the ONNX emitter :func:`export_int_onnx` and
:func:`require_integer_form` (the ``int-onnx`` check before any work).
"""

from __future__ import annotations

from vitq_plugins.intexec.backends import INTEGER_FORMAT
from vitq_plugins.intexec.backends import require_integer_form
from vitq_plugins.intexec.executor import IntExecutor
from vitq_plugins.intexec.forms import KINDS
from vitq_plugins.intexec.forms import GeluForm
from vitq_plugins.intexec.forms import IntegerForm
from vitq_plugins.intexec.forms import LayerNormForm
from vitq_plugins.intexec.forms import SoftmaxForm
from vitq_plugins.intexec.forms import discover_integer_forms
from vitq_plugins.intexec.forms import find_integer_form
from vitq_plugins.intexec.forms import integer_form
from vitq_plugins.intexec.forms import integer_form_names
from vitq_plugins.intexec.forms import register_integer_form
from vitq_plugins.intexec.generic import LN_BOUND
from vitq_plugins.intexec.generic import ExactLayerNorm
from vitq_plugins.intexec.generic import GeluTable
from vitq_plugins.intexec.kernels import EXP_FRAC_BITS
from vitq_plugins.intexec.kernels import EXP_LO_BITS
from vitq_plugins.intexec.kernels import exp_tables
from vitq_plugins.intexec.kernels import layernorm_bias
from vitq_plugins.intexec.kernels import layernorm_scale
from vitq_plugins.intexec.kernels import table_exp
from vitq_plugins.intexec.layers import RESIDUAL_EXTRA_BITS
from vitq_plugins.intexec.layers import IntAttention
from vitq_plugins.intexec.layers import IntBlock
from vitq_plugins.intexec.layers import IntEmbed
from vitq_plugins.intexec.layers import IntHead
from vitq_plugins.intexec.layers import IntLayerNorm
from vitq_plugins.intexec.layers import IntLinear
from vitq_plugins.intexec.layers import IntMlp
from vitq_plugins.intexec.layers import ResidualAdd
from vitq_plugins.intexec.onnx_export import OnnxGraph
from vitq_plugins.intexec.onnx_export import export_int_onnx
from vitq_plugins.intexec.onnx_export import floor_log2
from vitq_plugins.intexec.onnx_export import isqrt
from vitq_plugins.intexec.onnx_export import matmul_int
from vitq_plugins.intexec.onnx_export import requant
from vitq_plugins.intexec.onnx_export import requant_raw
from vitq_plugins.intexec.onnx_export import table_at_v
from vitq_plugins.intexec.onnx_export import to_u8
from vitq_plugins.intexec.recorder import INT32_MAX
from vitq_plugins.intexec.recorder import INT32_MIN
from vitq_plugins.intexec.requant import QParams
from vitq_plugins.intexec.requant import Requant
from vitq_plugins.intexec.sites import AttentionSite
from vitq_plugins.intexec.sites import GeluSite
from vitq_plugins.intexec.sites import LayerNormBuild
from vitq_plugins.intexec.sites import LayerNormSite
from vitq_plugins.intexec.sites import grid_span
from vitq_plugins.intexec.tables import MAX_TABLE_SPAN
from vitq_plugins.intexec.tables import byte_planes
from vitq_plugins.intexec.tables import code_span
from vitq_plugins.intexec.tables import max_subtracted_table

__all__ = [
    "EXP_FRAC_BITS",
    "EXP_LO_BITS",
    "INT32_MAX",
    "INT32_MIN",
    "INTEGER_FORMAT",
    "KINDS",
    "LN_BOUND",
    "MAX_TABLE_SPAN",
    "RESIDUAL_EXTRA_BITS",
    "AttentionSite",
    "ExactLayerNorm",
    "GeluForm",
    "GeluSite",
    "GeluTable",
    "IntAttention",
    "IntBlock",
    "IntEmbed",
    "IntExecutor",
    "IntHead",
    "IntLayerNorm",
    "IntLinear",
    "IntMlp",
    "IntegerForm",
    "LayerNormBuild",
    "LayerNormForm",
    "LayerNormSite",
    "OnnxGraph",
    "QParams",
    "Requant",
    "ResidualAdd",
    "SoftmaxForm",
    "byte_planes",
    "code_span",
    "exp_tables",
    "export_int_onnx",
    "discover_integer_forms",
    "find_integer_form",
    "floor_log2",
    "grid_span",
    "integer_form",
    "integer_form_names",
    "isqrt",
    "layernorm_bias",
    "layernorm_scale",
    "matmul_int",
    "max_subtracted_table",
    "register_integer_form",
    "requant",
    "require_integer_form",
    "requant_raw",
    "table_at_v",
    "table_exp",
    "to_u8",
]
