"""Integer-only inference for quantized ViTs (I-ViT arXiv 2207.01405: dyadic requantization eq. 7,
Shiftmax eqs. 9-14, ShiftGELU eqs. 15-17, I-LayerNorm eq. 18; FQ-ViT arXiv 2111.13824: PTS eqs. 9-10,
LIS eqs. 13-16).

* :func:`convert_brevitas` turns a calibrated Brevitas ``ivit`` or ``fqvit`` model into an
  :class:`IntExecutor` (int8 weights, int32 biases, dyadic multipliers; integer kernels from
  :mod:`vitq_plugins.ops`); :func:`float_ops_left` names the ops of other recipes that stay float;
* :func:`convert_fx` does the same for a torch.ao FX-converted ``ivit`` model (``--backend fx``), rounding
  at every grid the quantized graph rounds at; :func:`fx_float_ops_left` names its nodes without an integer form;
* :class:`FloatOpGuard` / :func:`run_integer_only` prove no floating-point op runs inside it;
* :func:`agreement_report` compares it with the fake-quant model, and :func:`float64_reference` gives
  that model's exact (float64) evaluation, free of float32 rounding ties;
* :func:`export_int_onnx` writes it as an ONNX graph of integer ops, equal to the executor bit for bit;
* :mod:`~vitq_plugins.intexec.extension` is the public API through which a paper provides the integer forms
  (:func:`register_integer_form`) of its LayerNorm, softmax and GELU units.
"""

from __future__ import annotations

from vitq_plugins.intexec.backends import IntegerConverter
from vitq_plugins.intexec.backends import check_integer_form
from vitq_plugins.intexec.backends import export_integer_onnx
from vitq_plugins.intexec.backends import integer_backends
from vitq_plugins.intexec.backends import register_integer_converter
from vitq_plugins.intexec.convert import convert_brevitas
from vitq_plugins.intexec.convert import float_ops_left
from vitq_plugins.intexec.convert_fx import convert_fx
from vitq_plugins.intexec.convert_fx import fx_float_ops_left
from vitq_plugins.intexec.executor import IntExecutor
from vitq_plugins.intexec.forms import GeluForm
from vitq_plugins.intexec.forms import IntegerForm
from vitq_plugins.intexec.forms import LayerNormForm
from vitq_plugins.intexec.forms import SoftmaxForm
from vitq_plugins.intexec.forms import find_integer_form
from vitq_plugins.intexec.forms import integer_form
from vitq_plugins.intexec.forms import register_integer_form
from vitq_plugins.intexec.guard import FloatOpError
from vitq_plugins.intexec.guard import FloatOpGuard
from vitq_plugins.intexec.guard import OpRecord
from vitq_plugins.intexec.guard import run_integer_only
from vitq_plugins.intexec.onnx_export import export_int_onnx
from vitq_plugins.intexec.reference import float64_reference
from vitq_plugins.intexec.report import AgreementReport
from vitq_plugins.intexec.report import agreement_report
from vitq_plugins.intexec.requant import QParams
from vitq_plugins.intexec.requant import Requant

__all__ = [
    "GeluForm",
    "IntegerForm",
    "LayerNormForm",
    "SoftmaxForm",
    "find_integer_form",
    "integer_form",
    "register_integer_form",
    "IntegerConverter",
    "check_integer_form",
    "export_integer_onnx",
    "integer_backends",
    "register_integer_converter",
    "AgreementReport",
    "FloatOpError",
    "FloatOpGuard",
    "IntExecutor",
    "OpRecord",
    "QParams",
    "Requant",
    "agreement_report",
    "float64_reference",
    "convert_brevitas",
    "convert_fx",
    "export_int_onnx",
    "float_ops_left",
    "fx_float_ops_left",
    "run_integer_only",
]
