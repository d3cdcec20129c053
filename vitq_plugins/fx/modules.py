"""Observed and quantized forms of the FX custom modules (generic over every :class:`CustomFloat`).

torch.ao's ``convert_fx`` can only materialize uniform affine observers, so every non-uniform or integer
operator is a *static custom module* (``PrepareCustomConfig`` / ``ConvertCustomConfig``): a float marker
module (a :class:`~vitq_plugins.fx.custom.CustomFloat` from a paper package) placed by
:func:`vitq_plugins.fx.quantize.place_custom_modules`, an :class:`ObservedCustom` used during calibration
and a :class:`QuantizedCustom` after conversion. The quantized module receives the quint8 input FX quantized
for it, runs the marker's integer kernel and returns a quint8 tensor in its output container. In fake-quant
mode the observed module runs the *same* kernel, so the prepared model simulates the converted one.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from vitq_plugins.core.errors import VitqError
from vitq_plugins.fx.custom import CustomFloat
from vitq_plugins.fx.observers import VitqObserver

__all__ = [
    "CustomFloat",
    "ObservedCustom",
    "QuantizedCustom",
    "custom_float_types",
]


def _copy_float(src: CustomFloat) -> CustomFloat:
    new = copy.deepcopy(src)
    new.__dict__.pop("qconfig", None)
    return new


class ObservedCustom(nn.Module):
    """Observed form of a :class:`CustomFloat` (calibration and fake-quant simulation).

    While calibrating it runs the float operator (and feeds the marker's per-module ``state``, if any). With
    ``fake_quant_enabled`` it runs the marker's kernel on its input grid, whose observer is linked by
    :meth:`link_input_observer` after ``prepare_fx``.
    """

    def __init__(self, float_mod: CustomFloat) -> None:
        super().__init__()
        self.inner: CustomFloat = _copy_float(float_mod)
        self.quantizer = float_mod.quantizer
        self.bits = float_mod.bits
        self.fake_quant_enabled = False
        self._input_obs: list[VitqObserver] = []
        self._out_obs: list[nn.Module] = []
        self.state: nn.Module | None = self.inner.make_state()

    @classmethod
    def from_float(cls, mod: nn.Module, use_precomputed_fake_quant: bool = False) -> ObservedCustom:
        """torch.ao custom-module hook."""
        if not isinstance(mod, CustomFloat):
            raise TypeError(f"expected a vitq custom float module, got {type(mod).__name__}")
        new = cls(mod)
        new.qconfig = mod.qconfig
        return new

    def link_input_observer(self, obs: VitqObserver) -> None:
        """Attach the observer FX inserted on this module's input (not registered as a child)."""
        self._input_obs = [obs]

    def input_observer(self) -> VitqObserver:
        """The linked input observer."""
        if not self._input_obs:
            raise RuntimeError(f"{self.quantizer} custom module has no linked input observer")
        return self._input_obs[0]

    def kernel(self, x: torch.Tensor) -> torch.Tensor:
        """The quantized operator on ``x`` (already on the input grid); float output."""
        return self.inner.kernel(x, self)

    def out_observer(self) -> Any:
        """The FX output observer (the output container)."""
        obs: Any = getattr(self, "activation_post_process", None) or (
            self._out_obs[0] if self._out_obs else None
        )
        if obs is None:
            raise RuntimeError(f"{self.quantizer} custom module has no output observer")
        return obs

    def out_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scale, zero_point)`` of the output container (the FX output observer)."""
        s, zp = self.out_observer().calculate_qparams()
        return s.reshape(()), zp.reshape(())

    def link_output_observer(self, obs: nn.Module) -> None:
        """Attach the observer FX inserted on this module's output."""
        self._out_obs = [obs]

    def link_next_linear(self, weight: torch.Tensor) -> None:
        """Hand the weight of the Linear consuming this module's output to the marker."""
        self.inner.link_next_linear(self, weight)

    def finalize(self) -> None:
        """Run the marker's deferred calibration work."""
        self.inner.finalize(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fake_quant_enabled:
            return self.kernel(x)
        y = self.inner.reference(x)
        if self.state is not None:
            self.state(y)
        return y


class QuantizedCustom(nn.Module):
    """Converted form: quint8 in, the marker's integer kernel, quint8 out."""

    def __init__(self, observed: ObservedCustom) -> None:
        super().__init__()
        self.observed = observed
        self.quantizer = observed.quantizer
        s, zp = observed.out_qparams()
        self.out_scale = float(s)
        self.out_zero_point = int(zp)

    @classmethod
    def from_observed(cls, mod: nn.Module) -> QuantizedCustom:
        """torch.ao custom-module hook."""
        if not isinstance(mod, ObservedCustom):
            raise TypeError(f"expected ObservedCustom, got {type(mod).__name__}")
        mod.fake_quant_enabled = True
        return cls(mod)

    def forward(self, xq: torch.Tensor) -> torch.Tensor:
        x = xq.dequantize() if xq.is_quantized else xq
        try:
            y = self.observed.kernel(x)
        except ValueError as exc:  # e.g. an input scale the integer kernel cannot represent (too few bits)
            raise VitqError(
                f"quantizer {self.quantizer!r} cannot run on its calibrated input: {exc}; its input scale "
                "comes from the activation bits of the layer before it, so give that site more bits "
                "(a_bits/attn_bits) or use another quantizer here"
            ) from None
        return torch.quantize_per_tensor(y.float(), self.out_scale, self.out_zero_point, torch.quint8)

    def extra_repr(self) -> str:
        return f"quantizer={self.quantizer}, out_scale={self.out_scale:.3g}, out_zero_point={self.out_zero_point}"


def custom_float_types(model: nn.Module) -> list[type[CustomFloat]]:
    """The marker classes placed in ``model`` (each maps to :class:`ObservedCustom` in ``prepare_fx``)."""
    seen: dict[type[CustomFloat], None] = {}
    for m in model.modules():
        if isinstance(m, CustomFloat):
            seen.setdefault(type(m), None)
    return list(seen)
