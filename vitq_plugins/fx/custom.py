"""The FX custom-module extension point: what a custom-module quantizer's FX adapter returns.

torch.ao's ``convert_fx`` only materializes uniform affine observers, so a non-uniform or integer operator
is a *static custom module*. A quantizer's FX factory (``factory(site, bits, **options)``) returns either an
observer constructor (a uniform quantizer: the tensor's observer applies it) or a :class:`CustomModuleSpec`:
the :class:`CustomFloat` marker class the pipeline places at the site before tracing, its constructor
arguments, and what the wing must know about its containers (an input-observer constructor for a quantizer
that brings its own input grid, a fixed output scale). Which float module the marker replaces (LayerNorm,
softmax or GELU) follows from the site. The wing dispatches on these types and attributes only.
"""

from __future__ import annotations

from abc import ABCMeta
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

import torch
from torch import nn

from vitq_plugins.core.errors import VitqError

if TYPE_CHECKING:
    from vitq_plugins.fx.modules import ObservedCustom
    from vitq_plugins.fx.observers import VitqObserver

__all__ = ["CustomFloat", "CustomModuleSpec", "check_container_bits", "grid_codes", "is_custom_spec"]


@dataclass(frozen=True)
class CustomModuleSpec:
    """What a custom-module quantizer hands to the FX wing.

    Attributes:
        float_cls: Marker module placed at the site before tracing: a :class:`CustomFloat` that also
            subclasses the float module of the site (``nn.Softmax`` for ``softmax_output``, ``nn.LayerNorm``
            for ``ln_input``, ``nn.GELU`` for ``gelu_output``). It is built as
            ``float_cls(dim=..., **kwargs)`` (softmax), ``float_cls(C, eps=..., **kwargs)`` (LayerNorm, the
            float parameters are loaded into it) or ``float_cls(**kwargs)`` (GELU).
        kwargs: Marker constructor arguments (bits, shift budget, ...).
        input_observer: Constructor of the observer of the marker's input when the quantizer brings its own
            input grid (e.g. a per-channel one); ``None``: a uniform MinMax at the site's bits (at most 8).
            A residual add feeding such a module stays float (the module's input observer quantizes it).
        fixed_out_scale: ``bits -> scale`` of an exact fixed quint8 output container (zero point 0), for
            outputs whose grid is known in advance; ``None``: the output is observed.
    """

    float_cls: type[CustomFloat]
    kwargs: dict[str, Any] = field(default_factory=dict)
    input_observer: Any | None = None
    fixed_out_scale: Callable[[int], float] | None = None


def is_custom_spec(obj: object) -> bool:
    """Whether a factory's result is a :class:`CustomModuleSpec` (else: an observer constructor)."""
    return isinstance(obj, CustomModuleSpec)


class CustomFloat(nn.Module, metaclass=ABCMeta):
    """Base of the float marker modules (subclass it together with the site's float module).

    A subclass implements :meth:`reference` (the float operator, run while calibrating) and :meth:`kernel`
    (the quantized operator, run in fake-quant mode and after ``convert_fx``). It may keep per-module
    calibration state (:meth:`make_state`), ask for the weight of the Linear that consumes its output
    (``needs_next_linear`` and :meth:`link_next_linear`) and defer work to the end of calibration
    (:meth:`finalize`).

    Attributes:
        quantizer: Registry name of the quantizer, set when the marker is placed at its site.
        spec: The :class:`CustomModuleSpec` it was built from, set when it is placed.
        bits: Bit-width.
        n: Shift budget of integer kernels (0 where unused).
        needs_next_linear: Whether :meth:`link_next_linear` must be called (no following Linear is an error).
    """

    quantizer: str = ""
    spec: CustomModuleSpec | None = None
    bits: int
    n: int = 0
    needs_next_linear: ClassVar[bool] = False

    @abstractmethod
    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The float operator (used while calibrating)."""

    @abstractmethod
    def kernel(self, x: torch.Tensor, observed: ObservedCustom) -> torch.Tensor:
        """The quantized operator on ``x`` (already on the input grid), float output.

        ``observed`` gives the linked observers (``input_observer()``, ``out_qparams()``) and ``state``.
        """

    def make_state(self) -> nn.Module | None:
        """Per-module calibration state; called on the reference output while calibrating. Default none."""
        return None

    def link_next_linear(self, observed: ObservedCustom, weight: torch.Tensor) -> None:
        """Receive the weight ``(out, C)`` of the Linear consuming this module's output."""
        return None

    def output_observer(self, observed: ObservedCustom) -> VitqObserver | None:
        """The observer of the quint8 container of this module's output, bound to its calibration state, when
        the module fixes its own output grid after calibration (e.g. OPT-m's twin grid); ``None``: observed by
        the next site's quantizer. It also holds the output's copies behind pass modules: the next Linear's
        input is then this grid, not re-rounded on the next site's (as Brevitas feeds the module's output on)."""
        return None

    def finalize(self, observed: ObservedCustom) -> None:
        """Deferred calibration work, run once after conversion (so it counts as calibration)."""
        return None


def check_container_bits(name: str, site: str, bits: int) -> None:
    """Fail clearly when ``bits`` do not fit FX's 8-bit (quint8/qint8) containers.

    Raises:
        VitqError: ``bits`` outside ``2..8``.
    """
    if not 2 <= bits <= 8:
        raise VitqError(
            f"{name} at {site!r}: bits={bits} is out of range for the fx backend: valid 2..8 "
            "(x86 int8 kernels use quint8/qint8 containers); use --backend brevitas for wider bit-widths"
        )


def grid_codes(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Integer codes (int64) of ``x``, a tensor already on the uniform grid of step ``scale`` (zero point 0)."""
    return torch.round(x / scale).to(torch.int64)
