"""The public PT2E extension API: everything a paper package needs to give its quantizers a PT2E form.

A quantizer's PT2E adapter (``QuantizerSpec.backends["pt2e"]``) is called ``factory(site, bits, **options)``
and returns either

* a :class:`torchao.quantization.pt2e.quantizer.QuantizationSpec` (build it with :func:`act_spec` /
  :func:`weight_spec`, or from an own :class:`VitqObserver` subclass with :func:`spec_for`): an affine
  quantizer. The wing annotates the site's tensor with it; ``convert_pt2e`` turns the observer into a q/dq pair
  that Inductor lowers to x86 int8 kernels; or
* a ``QuantizationSpec`` of a :class:`CalibratedOpObserver` subclass: a non-affine quantizer with parameters
  found on the calibration data; ``convert_pt2e`` replaces the observer by the paper's ``torch.library`` custom
  op with those parameters as constants (:mod:`vitq_plugins.pt2e.calibrated`); a :class:`KernelOpObserver`
  subclass is an integer kernel that replaces the site's float operator (softmax, GELU, LayerNorm) and runs
  on its input quantized on a calibrated grid; or
* a :class:`SiteOp`: an operator that is not affine (e.g. a log2 quantizer of the attention map), registered by
  the paper as a ``torch.library`` custom op with a fake (meta) implementation, so that ``torch.export``,
  ``convert_pt2e`` and ``torch.compile`` accept it. The wing inserts it on the site's output tensor (sites
  ``softmax_output`` and ``gelu_output``) before annotation.

The wing dispatches on these types only; it never names a quantizer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torchao.quantization.pt2e.quantizer import QuantizationSpec

from vitq_plugins.pt2e.calibrated import CalibratedOpObserver
from vitq_plugins.pt2e.calibrated import KernelOpObserver
from vitq_plugins.pt2e.calibrated import consumer_weight
from vitq_plugins.pt2e.observers import PT2E_MAX_BITS
from vitq_plugins.pt2e.observers import UniformActObserver
from vitq_plugins.pt2e.observers import VitqObserver
from vitq_plugins.pt2e.observers import WeightObserver

__all__ = [
    "PT2E_MAX_BITS",
    "CalibratedOpObserver",
    "KernelOpObserver",
    "SITE_OP_SITES",
    "QuantizationSpec",
    "SiteOp",
    "UniformActObserver",
    "VitqObserver",
    "WeightObserver",
    "act_spec",
    "consumer_weight",
    "is_custom_op",
    "spec_for",
    "weight_spec",
]


#: the output sites a :class:`SiteOp` can be inserted on (the op then produces the site's tensor)
SITE_OP_SITES: tuple[str, ...] = ("softmax_output", "gelu_output")


@dataclass(frozen=True)
class SiteOp:
    """A non-affine quantizer as a graph operator: ``op(x, *args)`` replaces the site's output tensor ``x``.

    Args:
        op: A ``torch.library`` custom op overload (``torch.ops.<ns>.<name>.default``) with a fake implementation.
        args: Its extra (constant) arguments after the tensor, e.g. the bit-width.
        output_spec: An affine container annotated on the op's output (``None``: the consumers see the op's
            values as they are, e.g. log2 codes that the next matmul takes exactly).
    """

    op: Callable[..., Any]
    args: tuple[Any, ...] = ()
    output_spec: QuantizationSpec | None = None


def spec_for(ctor: Any) -> QuantizationSpec:
    """The :class:`QuantizationSpec` of an observer constructor (``SomeObserver.with_args(...)``): dtype,
    range, qscheme and channel axis are read from one instance, so spec and observer cannot disagree."""
    obs = ctor()
    if not isinstance(obs, VitqObserver):
        raise TypeError(f"pt2e adapters build VitqObserver subclasses, got {type(obs).__name__}")
    per_channel = obs.qscheme in (torch.per_channel_symmetric, torch.per_channel_affine)
    return QuantizationSpec(
        dtype=obs.dtype,
        observer_or_fake_quant_ctr=ctor,
        quant_min=obs.quant_min,
        quant_max=obs.quant_max,
        qscheme=obs.qscheme,
        ch_axis=obs.ch_axis if per_channel else None,
        is_dynamic=False,
    )


def act_spec(bits: int, method: str = "minmax", percentile: float = 0.99999) -> QuantizationSpec:
    """Per-tensor asymmetric uint8-container activation spec (:class:`UniformActObserver`)."""
    return spec_for(UniformActObserver.with_args(bits=bits, method=method, percentile=percentile))


def weight_spec(bits: int) -> QuantizationSpec:
    """Per-output-channel symmetric int8-container weight spec (:class:`WeightObserver`, axis 0)."""
    return spec_for(WeightObserver.with_args(bits=bits, ch_axis=0))


def is_custom_op(made: QuantizationSpec | SiteOp) -> bool:
    """Whether an adapter's result quantizes with a custom op (a :class:`SiteOp` or a calibrated op) rather
    than a standard q/dq pair."""
    if isinstance(made, SiteOp):
        return True
    return isinstance(made.observer_or_fake_quant_ctr(), CalibratedOpObserver)
