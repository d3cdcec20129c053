"""Brevitas quant modules for ViTs: LayerNorm, attention, GELU and transformer block.

* :class:`QuantLayerNorm` - quantized input (FQ-ViT PTS, arXiv 2111.13824 eqs. 9-10, or uniform) and, with the
  ``ilayernorm`` quantizer, the I-ViT integer LayerNorm (arXiv 2207.01405 §3.5, ``papers.ivit.ilayernorm``).
* :class:`QuantAttention` - drop-in for timm ``Attention`` (also models built with ``fused_attn=True``: the
  attention is computed explicitly): q, k, v quantized at both matmuls, softmax output quantized by the log2
  quantizer (FQ-ViT LIS, eq. 13), a uniform quantizer, or computed by I-ViT Shiftmax (eqs. 9-14,
  ``papers.ivit.shift.shiftmax``) on quantized logits.
* :class:`QuantGELU` - GELU with a quantized output (uniform, MPTQ-style OPT-m twin scales) or I-ViT
  ShiftGELU (eqs. 15-17, ``papers.ivit.shift.shiftgelu``) on a quantized input.
* :class:`QuantBlock` - pre-norm transformer block with quantized residual adds.

Kernel export: the integer kernels run as plain torch ops (traced into standard ONNX ops for QCDQ) or, while
:func:`export_flavor` is ``"qonnx"``, as one ``vitq`` custom node each (see :mod:`vitq_plugins.brevitas.export`).
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
from contextvars import ContextVar
from typing import Any

from brevitas.nn import QuantIdentity
from brevitas.quant_tensor import QuantTensor
import torch
from torch import nn
import torch.nn.functional as F

from vitq_plugins.brevitas.quant import tensor_quant_of
from vitq_plugins.core.errors import VitqError
from vitq_plugins.papers.ivit import ilayernorm as _iln
from vitq_plugins.papers.ivit import shift as _shift

__all__ = [
    "QuantAttention",
    "QuantBlock",
    "QuantGELU",
    "QuantLayerNorm",
    "QuantSoftmax",
    "export_flavor",
    "make_quant_identity",
    "quantizer_name",
]

_FLAVOR: ContextVar[str] = ContextVar("vitq_export_flavor", default="")


def export_flavor() -> str:
    """``"qonnx"`` while a QONNX export runs, ``"qcdq"`` during QCDQ export, else ``""``."""
    return _FLAVOR.get()


@contextlib.contextmanager
def exporting(flavor: str) -> Iterator[None]:
    """Set :func:`export_flavor` for the duration of an export."""
    token = _FLAVOR.set(flavor)
    try:
        yield
    finally:
        _FLAVOR.reset(token)


def _unpack(x: Any) -> torch.Tensor:
    out: torch.Tensor = x.value if isinstance(x, QuantTensor) else x
    return out


def make_quant_identity(quant: Any) -> nn.Module | None:
    """A ``QuantIdentity`` with ``quant`` (an injector) returning plain tensors, or ``None``."""
    if quant is None:
        return None
    q: nn.Module = QuantIdentity(act_quant=quant, return_quant_tensor=False)
    return q


def quantizer_name(q: nn.Module | None) -> str:
    """The vitq quantizer name carried by a ``QuantIdentity`` (``""`` if none)."""
    if q is None:
        return ""
    proxy = getattr(q, "act_quant", None)
    inj = getattr(proxy, "quant_injector", None)
    if inj is None:
        return ""
    return str(inj.vitq_name) if "vitq_name" in inj else ""


def _call(module: Any, x: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = module(x)
    return out


def _kernel_of(quant: Any) -> str:
    return str(quant.vitq_kernel) if quant is not None and "vitq_kernel" in quant else ""


def _int_codes(q: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer codes ``round(x / s) - zp`` of an already fake-quantized ``x`` and its scale."""
    tq = tensor_quant_of(getattr(q, "act_quant", None))
    scale = tq.scale
    return torch.round(x / scale - tq.zero_point).to(torch.int64), scale


def _calibrated(q: nn.Module | None) -> bool:
    if q is None or q.training:
        return False
    tq = tensor_quant_of(getattr(q, "act_quant", None))
    return tq is not None and bool(getattr(tq, "calibrated", False))


# --- integer kernels, exportable as vitq custom nodes ------------------------------------------------


@contextlib.contextmanager
def _untraced() -> Iterator[None]:
    """Run eager code inside an autograd Function's forward without recording it in a TorchScript trace."""
    state = torch._C._get_tracing_state()
    torch._C._set_tracing_state(  # type: ignore[attr-defined]
        None
    )
    try:
        yield
    finally:
        torch._C._set_tracing_state(  # type: ignore[attr-defined]
            state
        )


@contextlib.contextmanager
def _kernel_input(quantizer: str) -> Iterator[None]:
    """Turn an integer kernel's refusal of its calibrated input (e.g. codes beyond the int32 range it assumes)
    into a :class:`VitqError` that says what to change."""
    try:
        yield
    except ValueError as exc:
        raise VitqError(
            f"quantizer {quantizer!r} cannot run on its calibrated input: {exc}; its input scale comes from "
            "the activation bits of the layer before it, so give that site more bits (a_bits/attn_bits) or "
            "use another quantizer here"
        ) from None


def _out_dtype(like: torch.Tensor) -> torch.dtype:
    """float64 in a float64 model (an exact evaluation, see ``intexec.reference``), float32 otherwise."""
    return torch.float64 if like.dtype == torch.float64 else torch.float32


def _shiftmax_float(x_int: torch.Tensor, scale: torch.Tensor, n: int, out_bits: int) -> torch.Tensor:
    with _kernel_input("shiftmax"):
        y, s = _shift.shiftmax(x_int, scale, n=n, out_bits=out_bits, dim=-1)
    return y.to(_out_dtype(scale)) * s


def _shiftgelu_float(x_int: torch.Tensor, scale: torch.Tensor, n: int, out_bits: int) -> torch.Tensor:
    with _kernel_input("shiftgelu"):
        y, s = _shift.shiftgelu(x_int, scale, n=n, out_bits=out_bits)
    return y.to(_out_dtype(scale)) * s


def _ilayernorm_float(
    x_int: torch.Tensor, scale: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    y, s = _iln.i_layernorm(x_int, scale, weight, bias)
    dt = _out_dtype(weight)
    return y.to(dt) * s.to(dt)


class _ShiftmaxFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: torch.Tensor, n: int, out_bits: int) -> torch.Tensor:
        with _untraced():
            return _shiftmax_float(torch.round(x / scale).to(torch.int64), scale, n, out_bits)

    @staticmethod
    def symbolic(g: Any, x: Any, scale: Any, n: int, out_bits: int) -> Any:
        out = g.op("vitq::Shiftmax", x, scale, n_i=n, out_bits_i=out_bits)
        out.setType(x.type())
        return out


class _ShiftGELUFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: torch.Tensor, n: int, out_bits: int) -> torch.Tensor:
        with _untraced():
            return _shiftgelu_float(torch.round(x / scale).to(torch.int64), scale, n, out_bits)

    @staticmethod
    def symbolic(g: Any, x: Any, scale: Any, n: int, out_bits: int) -> Any:
        out = g.op("vitq::ShiftGELU", x, scale, n_i=n, out_bits_i=out_bits)
        out.setType(x.type())
        return out


class _ILayerNormFn(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, scale: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
    ) -> torch.Tensor:
        with _untraced():
            return _ilayernorm_float(torch.round(x / scale).to(torch.int64), scale, weight, bias)

    @staticmethod
    def symbolic(g: Any, x: Any, scale: Any, weight: Any, bias: Any) -> Any:
        out = g.op("vitq::ILayerNorm", x, scale, weight, bias)
        out.setType(x.type())
        return out


# --- modules ------------------------------------------------------------------------------------------


class QuantLayerNorm(nn.LayerNorm):
    """LayerNorm with a quantized input; runs I-LayerNorm in integers with an ``ilayernorm`` quantizer.

    Args:
        normalized_shape: as ``nn.LayerNorm``.
        eps: as ``nn.LayerNorm``.
        elementwise_affine: as ``nn.LayerNorm``.
        bias: as ``nn.LayerNorm``.
        input_quant: injector of the input (``ln_input`` site) or ``None``.

    Example:
        >>> from vitq_plugins.brevitas.quant import Int8ActPerChannelPTS
        >>> ln = QuantLayerNorm(64, input_quant=Int8ActPerChannelPTS.let(channels=64))
    """

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        input_quant: Any = None,
    ) -> None:
        super().__init__(normalized_shape, eps, elementwise_affine, bias=bias)
        if input_quant is not None and "channels" in input_quant and not int(input_quant.channels):
            input_quant = input_quant.let(channels=int(self.normalized_shape[-1]))
        self.input_quant = make_quant_identity(input_quant)
        self.kernel = _kernel_of(input_quant)

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """The quantized input (identity without an input quantizer)."""
        return x if self.input_quant is None else _unpack(self.input_quant(x))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """LayerNorm of an already quantized input (integer I-LayerNorm when configured and calibrated)."""
        if self.kernel == "ilayernorm" and _calibrated(self.input_quant):
            assert self.input_quant is not None
            if self.weight is None or self.bias is None:
                raise VitqError("I-LayerNorm needs an affine LayerNorm with weight and bias")
            tq = tensor_quant_of(self.input_quant.act_quant)
            scale = tq.scale
            if export_flavor() == "qonnx":
                out: torch.Tensor = _ILayerNormFn.apply(x, scale, self.weight, self.bias)
                return out
            x_int, _ = _int_codes(self.input_quant, x)
            return _ilayernorm_float(x_int, scale, self.weight, self.bias)
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(self.quantize_input(x))


class QuantSoftmax(nn.Module):
    """Softmax with a quantized output (log2 / uniform) or I-ViT Shiftmax on quantized logits.

    Args:
        dim: softmax dimension.
        act_quant: injector; with ``vitq_kernel == "shiftmax"`` it quantizes the logits instead.

    Example:
        >>> from vitq_plugins.brevitas.quant import Uint4ActLog2
        >>> sm = QuantSoftmax(-1, act_quant=Uint4ActLog2)
    """

    def __init__(self, dim: int = -1, act_quant: Any = None) -> None:
        super().__init__()
        self.dim = dim
        self.kernel = _kernel_of(act_quant)
        self.quant = make_quant_identity(act_quant)
        self.n = int(act_quant.shift_n) if self.kernel else 0
        self.out_bits = int(act_quant.out_bits) if self.kernel else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.quant is None:
            return torch.softmax(x, self.dim)
        if self.kernel == "shiftmax":
            xq = _unpack(self.quant(x))
            if not _calibrated(self.quant):
                return torch.softmax(xq, self.dim)
            if self.dim not in (-1, x.dim() - 1):
                raise VitqError(f"Shiftmax runs over the last dimension, got dim={self.dim}")
            if export_flavor() == "qonnx":
                scale = tensor_quant_of(self.quant.act_quant).scale
                out: torch.Tensor = _ShiftmaxFn.apply(xq, scale, self.n, self.out_bits)
                return out
            x_int, scale = _int_codes(self.quant, xq)
            return _shiftmax_float(x_int, scale, self.n, self.out_bits)
        return _unpack(self.quant(torch.softmax(x, self.dim)))


class QuantGELU(nn.Module):
    """GELU with a quantized output (uniform / OPT-m) or I-ViT ShiftGELU on a quantized input.

    Args:
        approximate: as ``nn.GELU``.
        act_quant: injector of the output (``gelu_output``); ``vitq_kernel == "shiftgelu"`` quantizes the
            input and runs the integer kernel.

    Example:
        >>> from vitq_plugins.brevitas.quant import Uint8ActPerTensorMinMax
        >>> g = QuantGELU(act_quant=Uint8ActPerTensorMinMax.let(bit_width=6))
    """

    def __init__(self, approximate: str = "none", act_quant: Any = None) -> None:
        super().__init__()
        self.approximate = approximate
        self.kernel = _kernel_of(act_quant)
        self.quant = make_quant_identity(act_quant)
        self.n = int(act_quant.shift_n) if self.kernel else 0
        self.out_bits = int(act_quant.out_bits) if self.kernel else 0
        #: the Linear consuming the output (for OPT-m's output-MSE search); a list so it is no submodule
        self.next_linear: list[nn.Module] = []
        tq = tensor_quant_of(self.quant.act_quant) if self.quant is not None else None
        if tq is not None and hasattr(tq, "next_linear"):
            tq.next_linear = self.next_linear
        #: ``"<fqn>:act"`` keys of Linears whose input this output quantizer serves -> planned quantizer
        self.served_keys: dict[str, str] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.quant is None:
            return F.gelu(x, approximate=self.approximate)
        if self.kernel == "shiftgelu":
            xq = _unpack(self.quant(x))
            if not _calibrated(self.quant):
                return F.gelu(xq, approximate=self.approximate)
            if export_flavor() == "qonnx":
                scale = tensor_quant_of(self.quant.act_quant).scale
                out: torch.Tensor = _ShiftGELUFn.apply(xq, scale, self.n, self.out_bits)
                return out
            x_int, scale = _int_codes(self.quant, xq)
            return _shiftgelu_float(x_int, scale, self.n, self.out_bits)
        return _unpack(self.quant(F.gelu(x, approximate=self.approximate)))


class QuantAttention(nn.Module):
    """Explicit multi-head self-attention (timm ``Attention`` layout) with quantized matmuls and softmax.

    Args:
        source: the float attention module (``qkv``, ``proj``, ``num_heads``; optional ``q_norm``,
            ``k_norm``, ``norm``, ``attn_drop``, ``proj_drop``, ``scale``, ``head_dim``).
        matmul_quant: injector for q, k and v (``attn_matmul`` site) or ``None``.
        softmax_quant: injector for the attention map (``softmax_output`` site) or ``None``.

    Example:
        >>> import timm
        >>> from vitq_plugins.brevitas.quant import Uint4ActLog2, Uint8ActPerTensorMinMax
        >>> m = timm.layers.Attention(64, num_heads=2, qkv_bias=True)
        >>> qa = QuantAttention(m, Uint8ActPerTensorMinMax, Uint4ActLog2)
    """

    def __init__(self, source: nn.Module, matmul_quant: Any = None, softmax_quant: Any = None) -> None:
        super().__init__()
        if getattr(source, "gate", None) is not None:
            raise VitqError(
                f"gated attention ({type(source).__name__}.gate) is not supported by QuantAttention"
            )
        qkv = source.qkv
        if not isinstance(qkv, nn.Linear):
            raise VitqError(f"{type(source).__name__}.qkv must be an nn.Linear, got {type(qkv).__name__}")
        self.num_heads = int(source.num_heads)  # type: ignore[arg-type]
        self.head_dim = int(getattr(source, "head_dim", qkv.out_features // (3 * self.num_heads)))
        self.scale = float(getattr(source, "scale", self.head_dim**-0.5))
        self.qkv = qkv
        identity = nn.Identity()
        for name in ("q_norm", "k_norm", "norm", "attn_drop", "proj_drop"):
            setattr(self, name, getattr(source, name, None) or identity)
        self.proj = source.proj
        self.q_quant = make_quant_identity(matmul_quant)
        self.k_quant = make_quant_identity(matmul_quant)
        self.v_quant = make_quant_identity(matmul_quant)
        self.softmax = QuantSoftmax(-1, softmax_quant)

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False
    ) -> torch.Tensor:
        b, n, _ = x.shape
        h, d = self.num_heads, self.head_dim
        qkv = self.qkv(x).reshape(b, n, 3, h, d).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = _call(self.q_norm, q), _call(self.k_norm, k)
        q = q * self.scale
        if self.q_quant is not None and self.k_quant is not None and self.v_quant is not None:
            q, k, v = _unpack(self.q_quant(q)), _unpack(self.k_quant(k)), _unpack(self.v_quant(v))
        attn = q @ k.transpose(-2, -1)
        if is_causal:
            mask = torch.ones(n, n, dtype=torch.bool, device=x.device).triu(1)
            attn = attn.masked_fill(mask, float("-inf"))
        if attn_mask is not None:
            attn = (
                attn + attn_mask
                if attn_mask.dtype != torch.bool
                else attn.masked_fill(~attn_mask, float("-inf"))
            )
        attn = _call(self.attn_drop, self.softmax(attn))
        out = (attn @ v).transpose(1, 2).reshape(b, n, h * d)
        return _call(self.proj_drop, _call(self.proj, _call(self.norm, out)))


class QuantBlock(nn.Module):
    """Pre-norm transformer block (``norm1``/``attn``/``norm2``/``mlp``) with quantized residual adds.

    The residual stream where it enters a quantized LayerNorm is quantized once by that LayerNorm's input
    quantizer, and the skip path carries the same quantized tensor (FQ-ViT quantizes the residual sums with
    the PTS quantizer of the following LayerNorm). The ``residual`` quantizer quantizes the add outputs that do
    not enter a quantized LayerNorm of this block: the first add if ``norm2`` is not quantized and the block
    output unless :attr:`output_served_by_next` (the next block's ``norm1`` quantizer serves it).

    Args:
        source: the float block.
        residual_quant: injector of the residual adds or ``None``.

    Example:
        >>> import timm
        >>> from vitq_plugins.brevitas.quant import Uint8ActPerTensorMinMax
        >>> blk = timm.models.vision_transformer.Block(64, 2)
        >>> qb = QuantBlock(blk, Uint8ActPerTensorMinMax)
    """

    def __init__(self, source: nn.Module, residual_quant: Any = None) -> None:
        super().__init__()
        for name, child in source.named_children():
            setattr(self, name, child)
        self.residual_quant_cls = residual_quant
        self.res_quant1 = make_quant_identity(residual_quant)
        self.res_quant2 = make_quant_identity(residual_quant)
        self.output_served_by_next = False
        #: planned quantizer of this block's ``residual`` site ("" if none)
        self.residual_name = ""

    def _branch(self, which: int, x: torch.Tensor, norm: Any) -> torch.Tensor:
        inner = self.attn if which == 1 else self.mlp
        y = _call(inner, norm.normalize(x) if isinstance(norm, QuantLayerNorm) else _call(norm, x))
        ls = getattr(self, f"ls{which}", None)
        dp = getattr(self, f"drop_path{which}", None)
        if ls is not None:
            y = ls(y)
        if dp is not None:
            y = dp(y)
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm1, norm2 = self.norm1, self.norm2
        if isinstance(norm1, QuantLayerNorm):
            x = norm1.quantize_input(x)
        x = x + self._branch(1, x, norm1)
        if isinstance(norm2, QuantLayerNorm) and norm2.input_quant is not None:
            x = norm2.quantize_input(x)
        elif self.res_quant1 is not None:
            x = _unpack(self.res_quant1(x))
        x = x + self._branch(2, x, norm2)
        if self.res_quant2 is not None and not self.output_served_by_next:
            x = _unpack(self.res_quant2(x))
        return x
