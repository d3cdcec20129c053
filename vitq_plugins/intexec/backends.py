"""The integer program of a calibrated model, by backend name (the ``int-onnx`` export format).

I-ViT (arXiv 2207.01405) integer-only inference: each framework wing converts its calibrated models into an
:class:`IntExecutor` in its own ``integer`` module and offers it through the optional integer entry points of
the backend contract (:class:`vitq_plugins.core.backend.IntegerBackend`: ``integer_program`` and
``integer_float_ops``); its ``check_export`` / ``export`` serve ``int-onnx`` like any other format. This
module reaches a wing only through the ``backends`` registry (it imports none):
:func:`check_integer_form` fails before any work when a recipe keeps an op in floating point,
:func:`export_integer_onnx` converts and writes the ONNX graph of integer ops.

A backend without integer entry points may still be given a converter with :func:`register_integer_converter`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    "require_integer_form",
]

#: The export format of the integer program.
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


#: converters registered by hand (for backends without integer entry points)
_CONVERTERS: dict[str, IntegerConverter] = {}


def register_integer_converter(backend: str, converter: IntegerConverter) -> None:
    """Add the integer converter of a backend that has no integer entry points of its own.

    Raises:
        VitqError: ``backend`` already has one.
    """
    if backend in _CONVERTERS or _from_backend(backend) is not None:
        raise VitqError(f"backend {backend!r} already has an integer converter")
    _CONVERTERS[backend] = converter


def _load(backend: str) -> Any:
    """The registered backend object ``backend``, ``None`` if unknown or not importable."""
    from vitq_plugins.core.manager import get_host

    backends = get_host().backends
    if backend not in backends:
        return None
    try:
        return backends.get(backend).load()
    except (VitqError, ImportError):
        return None


def _from_backend(backend: str) -> IntegerConverter | None:
    """The converter made of ``backend``'s integer entry points, ``None`` without them."""
    impl = _load(backend)
    program = getattr(impl, "integer_program", None)
    float_ops = getattr(impl, "integer_float_ops", None)
    if callable(program) and callable(float_ops):
        return IntegerConverter(float_ops, program)
    return None


def integer_backends() -> list[str]:
    """Backends whose calibrated models convert to an integer program."""
    from vitq_plugins.core.manager import get_host

    names = set(_CONVERTERS) | {n for n in get_host().backends if _from_backend(n) is not None}
    return sorted(names)


def _get(backend: str) -> IntegerConverter:
    conv = _CONVERTERS.get(backend) or _from_backend(backend)
    if conv is None:
        hints = close_matches(backend, integer_backends())
        hint = f"; did you mean {', '.join(map(repr, hints))}?" if hints else ""
        raise VitqError(
            f"backend {backend!r} has no integer converter ({INTEGER_FORMAT}); backends with one: "
            f"{', '.join(integer_backends())}{hint}"
        )
    return conv


def require_integer_form(problems: list[str], recipe: str) -> None:
    """Raise when ``problems`` (a wing's ``integer_float_ops``) names an op that stays floating point.

    Raises:
        VitqError: names the first such op (and how many more).
    """
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise VitqError(
            f"--export {INTEGER_FORMAT}: recipe {recipe!r} has no integer form: {problems[0]}{more}"
        )


def check_integer_form(backend: str, model: nn.Module, config: QuantConfig) -> None:
    """Fail before any work when ``config`` on ``backend`` leaves an op in floating point.

    Raises:
        VitqError: names the first such op (and how many more), or an unknown backend.
    """
    require_integer_form(_get(backend).float_ops(model, config), config.recipe)


def convert(backend: str, qmodel: nn.Module, recipe: str = "") -> IntExecutor:
    """The integer program of ``qmodel`` (calibrated by ``backend``)."""
    return _get(backend).convert(qmodel, recipe)


def export_integer_onnx(
    backend: str, qmodel: nn.Module, path: Path | str, example_input: torch.Tensor, recipe: str = ""
) -> Path:
    """Convert ``qmodel`` and write its integer ONNX graph (uint8 input codes -> int32 logits) to ``path``."""
    from vitq_plugins.intexec.onnx_export import export_int_onnx

    return export_int_onnx(convert(backend, qmodel, recipe), Path(path), example_input)
