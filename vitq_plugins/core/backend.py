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

__all__ = ["Backend", "EXPORT_FORMATS"]

#: Export formats a backend may support; ``"none"`` means no export.
EXPORT_FORMATS: tuple[str, ...] = ("qonnx", "qcdq", "int-onnx", "none")


@runtime_checkable
class Backend(Protocol):
    """A framework wing.

    ``quantize`` never modifies ``model`` in place (it works on a copy) and returns a calibrated,
    quantized model ready for evaluation. A caller that already planned the sites
    (:func:`vitq_plugins.sites.plan_sites`, which validates the config) hands the plan over as ``plan`` so
    that the wing does not validate and plan again; without it the wing plans itself. ``sites`` reports which sites the config quantizes, as a
    mapping ``"<fqn>:<site>" -> quantizer name``, so that two backends can be compared.
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
