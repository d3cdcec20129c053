"""Public extension API of the integer program: what a paper needs to provide an integer form.

A paper registers its non-affine integer operators (LayerNorm kernel, the softmax unit of attention with its
``attn @ v``, the GELU unit) with :func:`register_integer_form` in its own ``papers/<paper>/integer.py``
(found through the quantizer registry on first use, see :func:`find_integer_form`), subclassing
:class:`LayerNormForm`, :class:`SoftmaxForm` or :class:`GeluForm`. A form is built from the grids and integer
helpers below (dyadic requantization, I-ViT arXiv 2207.01405 eq. 7; exhaustive tables) and emits its ONNX
nodes with the :class:`OnnxGraph` builder and its integer helpers, so that the export equals the executor
bit for bit. Nothing here names a paper.
"""

from __future__ import annotations

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
from vitq_plugins.intexec.onnx_export import OnnxGraph
from vitq_plugins.intexec.onnx_export import floor_log2
from vitq_plugins.intexec.onnx_export import isqrt
from vitq_plugins.intexec.onnx_export import matmul_int
from vitq_plugins.intexec.onnx_export import requant
from vitq_plugins.intexec.onnx_export import requant_raw
from vitq_plugins.intexec.onnx_export import table_at_v
from vitq_plugins.intexec.onnx_export import to_u8
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
    "KINDS",
    "LN_BOUND",
    "MAX_TABLE_SPAN",
    "AttentionSite",
    "ExactLayerNorm",
    "GeluForm",
    "GeluSite",
    "GeluTable",
    "IntegerForm",
    "LayerNormBuild",
    "LayerNormForm",
    "LayerNormSite",
    "OnnxGraph",
    "QParams",
    "Requant",
    "SoftmaxForm",
    "byte_planes",
    "code_span",
    "exp_tables",
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
    "requant_raw",
    "table_at_v",
    "table_exp",
    "to_u8",
]
