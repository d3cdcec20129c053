"""The contract every framework wing (Brevitas, torch.ao FX) implements.

The pipeline (CLI, explorer, benchmarks) never imports a wing directly: it looks the wing up in the
``backends`` registry and calls these methods.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import Protocol
from typing import runtime_checkable

if TYPE_CHECKING:
    import torch
    from torch import nn

    from vitq_plugins.config import QuantConfig
    from vitq_plugins.sites import Site

__all__ = ["Backend", "EXPORT_FORMATS", "IntegerBackend"]

#: Export formats a backend may support; ``"none"`` means no export.
EXPORT_FORMATS: tuple[str, ...] = ("qonnx", "qcdq", "int-onnx", "none")


@runtime_checkable
class Backend(Protocol):
    """A framework wing.

    ``quantize`` never modifies ``model`` in place (it works on a copy) and returns a calibrated,
    quantized model ready for evaluation. A caller that already planned the sites
    (:func:`vitq_plugins.sites.plan_sites`, which validates the config) hands the plan over as ``plan``, so
    the wing does not validate and plan again; without it the wing plans itself. ``sites`` reports which
    sites the config quantizes, as a mapping ``"<fqn>:<site>" -> quantizer name``, so that two backends can
    be compared; given a model the wing quantized, it reads them back from it.
    """

    name: str

    def quantize(
        self,
        model: nn.Module,
        config: QuantConfig,
        calib_batches: Iterable[torch.Tensor],
        *,
        progress: bool = True,
        plan: Mapping[str, Site] | None = None,
    ) -> nn.Module: ...

    def sites(self, model: nn.Module, config: QuantConfig) -> dict[str, str]: ...

    def export(self, qmodel: nn.Module, fmt: str, path: Path, example_input: torch.Tensor) -> Path: ...

    def info(self) -> dict[str, Any]: ...


@runtime_checkable
class IntegerBackend(Protocol):
    """The optional integer entry points of a wing (I-ViT arXiv 2207.01405 integer-only inference).

    A wing that converts its calibrated models into the framework-free integer program
    (:class:`vitq_plugins.intexec.IntExecutor`) implements both; :mod:`vitq_plugins.intexec.backends` reaches
    them by backend name. Such a wing also serves ``"int-onnx"`` through ``check_export`` (fail before any
    work when an op stays floating point) and ``export`` (the integer ONNX graph), like any other format.
    ``check_export(model, config, fmt)`` is itself optional for every wing: the pipeline calls it when present.
    """

    def integer_program(self, qmodel: nn.Module, recipe: str = "") -> Any:
        """The integer program (``IntExecutor``) of a model calibrated by this wing."""
        ...

    def integer_float_ops(self, model: nn.Module, config: QuantConfig) -> list[str]:
        """``["<op>: <why it stays float>", ...]`` of ``config`` on the float ``model``, without calibrating."""
        ...
