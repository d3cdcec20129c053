"""The integer program of a calibrated model, by backend name (the ``int-onnx`` export format).

I-ViT (arXiv 2207.01405) integer-only inference: :func:`convert_brevitas` and :func:`convert_fx` turn a
calibrated ``ivit`` (or ``fqvit``) model of their backend into an :class:`IntExecutor`. The framework wings
do not know this package (imports flow one way: a wing never reaches up into a consumer), so the pipeline
produces ``int-onnx`` here: :func:`check_integer_form` fails before any work when a recipe keeps an op in
floating point, :func:`export_integer_onnx` converts and writes the ONNX graph of integer ops.

A third-party backend adds its converter with :func:`register_integer_converter`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.errors import close_matches
from vitq_plugins.intexec.executor import IntExecutor

__all__ = [
    "INTEGER_FORMAT",
    "IntegerConverter",
    "check_integer_form",
    "convert",
    "export_integer_onnx",
    "integer_backends",
    "register_integer_converter",
]

#: The export format served by this module.
INTEGER_FORMAT = "int-onnx"


@dataclass(frozen=True)
class IntegerConverter:
    """How one backend's calibrated models become integer programs.

    Attributes:
        float_ops: ``(float model, config) -> ["<op>: <why it stays float>", ...]`` without calibrating.
        convert: ``(calibrated model, recipe) -> IntExecutor``.
    """

    float_ops: Callable[[nn.Module, QuantConfig], list[str]]
    convert: Callable[[nn.Module, str], IntExecutor]


def _brevitas_float_ops(model: nn.Module, config: QuantConfig) -> list[str]:
    from vitq_plugins.brevitas.backend import BACKEND
    from vitq_plugins.intexec.convert import float_ops_left

    return float_ops_left(BACKEND.build(model, config))


def _brevitas_convert(qmodel: nn.Module, recipe: str) -> IntExecutor:
    from vitq_plugins.intexec.convert import convert_brevitas

    return convert_brevitas(qmodel, recipe)


def _fx_float_ops(model: nn.Module, config: QuantConfig) -> list[str]:
    from vitq_plugins.core.manager import get_host
    from vitq_plugins.fx import quantize as q
    from vitq_plugins.fx.backend import example_input
    from vitq_plugins.intexec.convert_fx import fx_float_ops_left

    prep = q.prepare(model, config, example_input(model), host=get_host())
    return fx_float_ops_left(prep.model)


def _fx_convert(qmodel: nn.Module, recipe: str) -> IntExecutor:
    from vitq_plugins.intexec.convert_fx import convert_fx

    return convert_fx(qmodel, recipe)


_CONVERTERS: dict[str, IntegerConverter] = {
    "brevitas": IntegerConverter(_brevitas_float_ops, _brevitas_convert),
    "fx": IntegerConverter(_fx_float_ops, _fx_convert),
}


def register_integer_converter(backend: str, converter: IntegerConverter) -> None:
    """Add the integer converter of a backend.

    Raises:
        VitqError: ``backend`` already has one.
    """
    if backend in _CONVERTERS:
        raise VitqError(f"backend {backend!r} already has an integer converter")
    _CONVERTERS[backend] = converter


def integer_backends() -> list[str]:
    """Backends whose calibrated models convert to an integer program."""
    return sorted(_CONVERTERS)


def _get(backend: str) -> IntegerConverter:
    conv = _CONVERTERS.get(backend)
    if conv is None:
        hints = close_matches(backend, integer_backends())
        hint = f"; did you mean {', '.join(map(repr, hints))}?" if hints else ""
        raise VitqError(
            f"backend {backend!r} has no integer converter ({INTEGER_FORMAT}); backends with one: "
            f"{', '.join(integer_backends())}{hint}"
        )
    return conv


def check_integer_form(backend: str, model: nn.Module, config: QuantConfig) -> None:
    """Fail before any work when ``config`` on ``backend`` leaves an op in floating point.

    Raises:
        VitqError: names the first such op (and how many more), or an unknown backend.
    """
    problems = _get(backend).float_ops(model, config)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise VitqError(
            f"--export {INTEGER_FORMAT}: recipe {config.recipe!r} has no integer form: {problems[0]}{more}"
        )


def convert(backend: str, qmodel: nn.Module, recipe: str = "") -> IntExecutor:
    """The integer program of ``qmodel`` (calibrated by ``backend``)."""
    return _get(backend).convert(qmodel, recipe)


def export_integer_onnx(
    backend: str, qmodel: nn.Module, path: Path | str, example_input: torch.Tensor, recipe: str = ""
) -> Path:
    """Convert ``qmodel`` and write its integer ONNX graph (uint8 input codes -> int32 logits) to ``path``."""
    from vitq_plugins.intexec.onnx_export import export_int_onnx

    return export_int_onnx(convert(backend, qmodel, recipe), Path(path), example_input)
