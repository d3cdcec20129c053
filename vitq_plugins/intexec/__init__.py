"""Integer-only inference for quantized ViTs (I-ViT arXiv 2207.01405: dyadic requantization eq. 7,
Shiftmax eqs. 9-14, ShiftGELU eqs. 15-17, I-LayerNorm eq. 18; FQ-ViT arXiv 2111.13824: PTS eqs. 9-10,
LIS eqs. 13-16).

This package is the framework-free integer IR: it imports no framework wing and no paper.

* :class:`IntExecutor` is the integer program (int8 weights, int32 biases, dyadic multipliers; integer kernels
  from :mod:`vitq_plugins.ops`); each wing converts its calibrated models into it in its own ``integer``
  module (``vitq_plugins.brevitas.integer.convert_brevitas``, ``vitq_plugins.fx.integer.convert_fx``),
  offered through the backend contract (``integer_program`` / ``integer_float_ops``), which
  :func:`check_integer_form`, :func:`export_integer_onnx` and :func:`integer_backends` reach by backend name;
* :class:`FloatOpGuard` / :func:`run_integer_only` prove no floating-point op runs inside it;
* :func:`agreement_report` compares it with the fake-quant model it was converted from;
* :func:`export_int_onnx` writes it as an ONNX graph of integer ops, equal to the executor bit for bit;
* :mod:`~vitq_plugins.intexec.extension` is the public API through which a paper provides the integer forms
  (:func:`register_integer_form`) of its LayerNorm, softmax and GELU units, and a wing builds the program.
"""

from __future__ import annotations

from vitq_plugins.intexec.backends import IntegerConverter
from vitq_plugins.intexec.backends import check_integer_form
from vitq_plugins.intexec.backends import export_integer_onnx
from vitq_plugins.intexec.backends import integer_backends
from vitq_plugins.intexec.backends import register_integer_converter
from vitq_plugins.intexec.backends import require_integer_form
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
from vitq_plugins.intexec.report import AgreementReport
from vitq_plugins.intexec.report import CodeTaps
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
    "require_integer_form",
    "AgreementReport",
    "CodeTaps",
    "FloatOpError",
    "FloatOpGuard",
    "IntExecutor",
    "OpRecord",
    "QParams",
    "Requant",
    "agreement_report",
    "export_int_onnx",
    "run_integer_only",
]
