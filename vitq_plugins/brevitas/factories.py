"""Brevitas factories of the registered vitq quantizers: ``factory(site, bits, **options) -> injector``.

Each factory returns a :class:`brevitas.inject.ExtendedInjector` subclass (see
:mod:`vitq_plugins.brevitas.quant`) with ``bit_width`` set and a ``vitq_name`` attribute naming the vitq
quantizer. Kernel quantizers (``shiftmax``, ``shiftgelu``, ``ilayernorm``) return the injector of the kernel's
*input* with ``vitq_kernel`` set; the module that owns it (:mod:`vitq_plugins.brevitas.modules`) runs the
integer kernel (I-ViT arXiv 2207.01405 §3.3-3.5). Papers: FQ-ViT arXiv 2111.13824 (``pts`` eqs. 9-10, ``lis``
eq. 13, uniform baselines §4.1), MPTQ-ViT arXiv 2401.14895 (``optm``).

Options (from ``QuantConfig.options``; unknown keys are ignored because one dict serves every quantizer):
``percentile`` (0.99999), ``omse_stats`` ("all"|"last"), ``pts_k`` (3), ``pts_stats`` ("all"|"last"),
``pts_zero_point`` ("official"|"paper"), ``kernel_input_bits`` (8: input bits of Shiftmax/ShiftGELU),
``shiftmax_n`` (15), ``shiftgelu_n`` (23), ``shiftgelu_out_bits`` (8), ``optm_max_m`` (8).

Example:
    >>> from vitq_plugins.brevitas.factories import pts
    >>> inj = pts("ln_input", 6, pts_k=2)
    >>> int(inj.bit_width), int(inj.pts_k)
    (6, 2)
"""

from __future__ import annotations

from typing import Any

from vitq_plugins.brevitas import quant as q
from vitq_plugins.core.errors import VitqError

__all__ = ["ilayernorm", "lis", "minmax", "omse", "optm", "percentile", "pts", "shiftgelu", "shiftmax"]

_ACT_SITES = ("act", "ln_input", "softmax_output", "gelu_output", "attn_matmul", "residual")


def _need(name: str, site: str, allowed: tuple[str, ...]) -> None:
    if site not in allowed:
        raise VitqError(
            f"quantizer {name!r} cannot quantize site {site!r} in the Brevitas backend (valid: {allowed})"
        )


def _uniform(name: str, base: Any, site: str, bits: int, options: dict[str, Any]) -> Any:
    if site == "weight":
        if name != "minmax":
            raise VitqError(f"quantizer {name!r} has no weight form; use 'minmax' for weights")
        return q.Int8WeightPerChannelMinMax.let(bit_width=bits, vitq_name=name)
    _need(name, site, _ACT_SITES)
    return base.let(
        bit_width=bits,
        vitq_name=name,
        percentile=float(options.get("percentile", 0.99999)),
        omse_stats=str(options.get("omse_stats", "all")),
    )


def minmax(site: str, bits: int, **options: Any) -> Any:
    """Uniform MinMax: per-channel symmetric weights, per-tensor asymmetric activations."""
    return _uniform("minmax", q.Uint8ActPerTensorMinMax, site, bits, options)


def percentile(site: str, bits: int, **options: Any) -> Any:
    """Uniform per-tensor activations clipped at a percentile (FQ-ViT baseline)."""
    return _uniform("percentile", q.Uint8ActPerTensorPercentile, site, bits, options)


def omse(site: str, bits: int, **options: Any) -> Any:
    """Uniform per-tensor activations with the L2-optimal shrunk range (OMSE)."""
    return _uniform("omse", q.Uint8ActPerTensorOMSE, site, bits, options)


def pts(site: str, bits: int, **options: Any) -> Any:
    """FQ-ViT Power-of-Two Factor on LayerNorm inputs."""
    _need("pts", site, ("ln_input",))
    return q.Int8ActPerChannelPTS.let(
        bit_width=bits,
        vitq_name="pts",
        pts_k=int(options.get("pts_k", 3)),
        pts_stats=str(options.get("pts_stats", "all")),
        pts_zero_point=str(options.get("pts_zero_point", "official")),
    )


def lis(site: str, bits: int, **options: Any) -> Any:
    """FQ-ViT log2 quantizer of the attention map."""
    _need("lis", site, ("softmax_output",))
    return q.Uint4ActLog2.let(bit_width=bits, vitq_name="lis")


def shiftmax(site: str, bits: int, **options: Any) -> Any:
    """I-ViT Shiftmax: ``bits`` = output bits; logits quantized to ``kernel_input_bits``."""
    _need("shiftmax", site, ("softmax_output",))
    return q.Int8ActShiftmaxInput.let(
        bit_width=int(options.get("kernel_input_bits", 8)),
        out_bits=bits,
        shift_n=int(options.get("shiftmax_n", 15)),
        vitq_name="shiftmax",
    )


def shiftgelu(site: str, bits: int, **options: Any) -> Any:
    """I-ViT ShiftGELU: input quantized to ``bits`` (signed symmetric), integer sigmoid of 8 bits."""
    _need("shiftgelu", site, ("gelu_output",))
    return q.Int8ActShiftGELUInput.let(
        bit_width=bits,
        out_bits=int(options.get("shiftgelu_out_bits", 8)),
        shift_n=int(options.get("shiftgelu_n", 23)),
        vitq_name="shiftgelu",
    )


def ilayernorm(site: str, bits: int, **options: Any) -> Any:
    """I-ViT I-LayerNorm: input quantized to ``bits`` (signed symmetric), LayerNorm in integers."""
    _need("ilayernorm", site, ("ln_input",))
    return q.Int8ActILayerNormInput.let(bit_width=bits, vitq_name="ilayernorm")


def optm(site: str, bits: int, **options: Any) -> Any:
    """MPTQ-style OPT-m post-GELU twin-scale quantizer."""
    _need("optm", site, ("gelu_output",))
    return q.Uint8ActOPTm.let(bit_width=bits, optm_max_m=int(options.get("optm_max_m", 8)), vitq_name="optm")
