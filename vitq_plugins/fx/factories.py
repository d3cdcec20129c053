"""FX factories of vitq's quantizers (``QuantizerSpec.backends["fx"]`` points here).

Each factory is called ``factory(site, bits, **options)``:

* ``minmax``/``percentile``/``omse`` return an observer constructor (``.with_args(...)`` partial):
  :class:`~vitq_plugins.fx.observers.WeightObserver` for ``site="weight"`` (per-channel symmetric qint8),
  otherwise :class:`~vitq_plugins.fx.observers.UniformActObserver` (per-tensor asymmetric quint8).
* ``pts`` returns a :class:`~vitq_plugins.fx.observers.PTSActObserver` constructor (LayerNorm inputs).
* ``lis``/``shiftmax``/``shiftgelu``/``ilayernorm``/``optm`` return a :class:`CustomModuleSpec`: the float
  marker class to place at the site, its observed and quantized custom-module classes and the kwargs of the
  marker (torch.ao custom-module API).

Options (from ``QuantConfig.options``): ``percentile`` (0.99999), ``pts_k`` (3), ``lis_n`` (30),
``shiftmax_n`` (15), ``shiftgelu_n`` (23). Papers: FQ-ViT arXiv 2111.13824, I-ViT arXiv 2207.01405,
MPTQ-ViT arXiv 2401.14895.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any

from torch import nn

from vitq_plugins.core.errors import VitqError
from vitq_plugins.fx import modules as m
from vitq_plugins.fx.observers import PTSActObserver
from vitq_plugins.fx.observers import UniformActObserver
from vitq_plugins.fx.observers import WeightObserver

__all__ = [
    "CustomModuleSpec",
    "CUSTOM_QUANTIZERS",
    "minmax",
    "percentile",
    "omse",
    "pts",
    "lis",
    "shiftmax",
    "shiftgelu",
    "ilayernorm",
    "optm",
]

#: Quantizers realized as custom modules (the module, not an observer, applies them).
CUSTOM_QUANTIZERS: frozenset[str] = frozenset({"lis", "shiftmax", "shiftgelu", "ilayernorm", "optm"})


@dataclass(frozen=True)
class CustomModuleSpec:
    """What a custom-module quantizer hands to the FX backend.

    Attributes:
        float_cls: Marker module placed at the site before tracing.
        observed_cls: ``PrepareCustomConfig`` target.
        quantized_cls: ``ConvertCustomConfig`` target.
        kwargs: Marker constructor arguments (bits, shift budget).
    """

    float_cls: type[m.CustomFloat]
    observed_cls: type[nn.Module]
    quantized_cls: type[nn.Module]
    kwargs: dict[str, Any] = field(default_factory=dict)


def _check_container(name: str, site: str, bits: int) -> None:
    if not 2 <= bits <= 8:
        raise VitqError(
            f"{name} at {site!r}: bits={bits} is out of range for the fx backend: valid 2..8 "
            "(x86 int8 kernels use quint8/qint8 containers); use --backend brevitas for wider bit-widths"
        )


def _uniform(name: str, site: str, bits: int, options: dict[str, Any]) -> Any:
    _check_container(name, site, bits)
    if site == "weight":
        if name != "minmax":
            raise VitqError(f"quantizer {name!r} cannot quantize weights in the fx backend")
        return WeightObserver.with_args(bits=bits)
    kw: dict[str, Any] = {"bits": bits, "method": name}
    if name == "percentile":
        kw["percentile"] = float(options.get("percentile", 0.99999))
    return UniformActObserver.with_args(**kw)


def minmax(site: str, bits: int, **options: Any) -> Any:
    """MinMax observer constructor (weights: per-channel symmetric; activations: per-tensor asymmetric)."""
    return _uniform("minmax", site, bits, options)


def percentile(site: str, bits: int, **options: Any) -> Any:
    """Percentile (EMA, FQ-ViT) activation observer constructor."""
    return _uniform("percentile", site, bits, options)


def omse(site: str, bits: int, **options: Any) -> Any:
    """OMSE activation observer constructor (streaming histogram, all batches)."""
    return _uniform("omse", site, bits, options)


def pts(site: str, bits: int, **options: Any) -> Any:
    """PTS per-channel power-of-two observer constructor for LayerNorm inputs."""
    _check_container("pts", site, bits)
    return PTSActObserver.with_args(bits=bits, k=int(options.get("pts_k", 3)))


def _custom(cls: type[m.CustomFloat], **kwargs: Any) -> CustomModuleSpec:
    return CustomModuleSpec(cls, m.ObservedCustom, m.QuantizedCustom, kwargs)


def lis(site: str, bits: int, **options: Any) -> CustomModuleSpec:
    """LIS softmax custom modules (``bits``-bit log2 codes)."""
    return _custom(m.LISSoftmax, bits=bits, n=int(options.get("lis_n", 30)))


def shiftmax(site: str, bits: int, **options: Any) -> CustomModuleSpec:
    """Shiftmax custom modules (``k_out = bits``)."""
    return _custom(m.ShiftmaxSoftmax, bits=bits, n=int(options.get("shiftmax_n", 15)))


def shiftgelu(site: str, bits: int, **options: Any) -> CustomModuleSpec:
    """ShiftGELU custom modules."""
    return _custom(m.ShiftGELU, bits=bits, n=int(options.get("shiftgelu_n", 23)))


def ilayernorm(site: str, bits: int, **options: Any) -> CustomModuleSpec:
    """I-LayerNorm custom modules."""
    return _custom(m.ILayerNorm, bits=bits)


def optm(site: str, bits: int, **options: Any) -> CustomModuleSpec:
    """OPT-m twin-scale GELU custom modules."""
    return _custom(m.OptmGELU, bits=bits)
