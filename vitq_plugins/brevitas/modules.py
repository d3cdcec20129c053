"""Brevitas quant modules for ViTs: LayerNorm, attention, softmax, GELU and transformer block.

* :class:`QuantLayerNorm` - LayerNorm of a quantized input (e.g. FQ-ViT PTS, arXiv 2111.13824 eqs. 9-10).
* :class:`QuantAttention` - drop-in for timm ``Attention`` (also models built with ``fused_attn=True``: the
  attention is computed explicitly): q, k, v quantized at both matmuls, the softmax is a :class:`QuantSoftmax`.
* :class:`QuantSoftmax` / :class:`QuantGELU` - the float op with a quantized output (uniform or a paper's
  non-uniform quantizer, e.g. FQ-ViT's log2, MPTQ-ViT's OPT-m twin scales).
* :class:`QuantBlock` - pre-norm transformer block with quantized residual adds.

Integer kernels: when an injector names one (``vitq_kernel``, see
:class:`~vitq_plugins.brevitas.quant.IntegerKernelInputMixin`), QuantLayerNorm/QuantSoftmax/QuantGELU quantize
the op's *input* and, once calibrated, run the kernel registered under that name
(:mod:`vitq_plugins.brevitas.kernels`, e.g. I-ViT's Shiftmax/ShiftGELU/I-LayerNorm, arXiv 2207.01405
§3.3-3.5) instead of the float op: as plain torch ops (traced into standard ONNX ops for QCDQ) or, while
:func:`export_flavor` is ``"qonnx"``, as the kernel's export form (one ``vitq`` custom node).
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

from vitq_plugins.brevitas.kernels import IntegerKernel
from vitq_plugins.brevitas.kernels import get_kernel
from vitq_plugins.brevitas.quant import tensor_quant_of
from vitq_plugins.core.errors import VitqError

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


def _kernel(quant: Any) -> IntegerKernel | None:
    """The integer kernel named by an injector's ``vitq_kernel`` (``None`` if it names none)."""
    name = _kernel_of(quant)
    if not name:
        return None
    who = str(quant.vitq_name) if "vitq_name" in quant else ""
    return get_kernel(name, who)


def _run_kernel(kernel: IntegerKernel, module: nn.Module, q: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``kernel`` on the already quantized input ``x`` of quantizer ``q``: one custom node in a QONNX export,
    else the integer kernel on the codes."""
    if export_flavor() == "qonnx":
        return kernel.export(module, x, tensor_quant_of(getattr(q, "act_quant", None)).scale)
    x_int, scale = _int_codes(q, x)
    return kernel.run(module, x_int, scale)


# --- modules ------------------------------------------------------------------------------------------


class QuantLayerNorm(nn.LayerNorm):
    """LayerNorm with a quantized input; runs the injector's integer kernel (``vitq_kernel``) if it names one.

    Args:
        normalized_shape: as ``nn.LayerNorm``.
        eps: as ``nn.LayerNorm``.
        elementwise_affine: as ``nn.LayerNorm``.
        bias: as ``nn.LayerNorm``.
        input_quant: injector of the input (``ln_input`` site) or ``None``.

    Example:
        >>> from vitq_plugins.brevitas.quant import Uint8ActPerTensorMinMax
        >>> ln = QuantLayerNorm(64, input_quant=Uint8ActPerTensorMinMax.let(bit_width=6))
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
        #: name of the integer kernel run on the quantized input ("" for the float LayerNorm)
        self.kernel = _kernel_of(input_quant)
        self.integer_kernel = _kernel(input_quant)

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """The quantized input (identity without an input quantizer)."""
        return x if self.input_quant is None else _unpack(self.input_quant(x))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """LayerNorm of an already quantized input (the integer kernel when configured and calibrated)."""
        if self.integer_kernel is not None and _calibrated(self.input_quant):
            assert self.input_quant is not None
            return _run_kernel(self.integer_kernel, self, self.input_quant, x)
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(self.quantize_input(x))


class QuantSoftmax(nn.Module):
    """Softmax with a quantized output or an integer softmax kernel on quantized logits.

    Args:
        dim: softmax dimension.
        act_quant: injector; if it names an integer kernel (``vitq_kernel``) it quantizes the logits instead.

    Example:
        >>> from vitq_plugins.brevitas.quant import Uint8ActPerTensorMinMax
        >>> sm = QuantSoftmax(-1, act_quant=Uint8ActPerTensorMinMax)
    """

    def __init__(self, dim: int = -1, act_quant: Any = None) -> None:
        super().__init__()
        self.dim = dim
        self.kernel = _kernel_of(act_quant)
        self.integer_kernel = _kernel(act_quant)
        self.quant = make_quant_identity(act_quant)
        self.n = int(act_quant.shift_n) if self.kernel else 0
        self.out_bits = int(act_quant.out_bits) if self.kernel else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.quant is None:
            return torch.softmax(x, self.dim)
        if self.integer_kernel is not None:
            xq = _unpack(self.quant(x))
            if not _calibrated(self.quant):
                return torch.softmax(xq, self.dim)
            if self.dim not in (-1, x.dim() - 1):
                raise VitqError(
                    f"integer softmax kernel {self.kernel!r} runs over the last dimension, got dim={self.dim}"
                )
            return _run_kernel(self.integer_kernel, self, self.quant, xq)
        return _unpack(self.quant(torch.softmax(x, self.dim)))


class QuantGELU(nn.Module):
    """GELU with a quantized output or an integer GELU kernel on a quantized input.

    Args:
        approximate: as ``nn.GELU``.
        act_quant: injector of the output (``gelu_output``); if it names an integer kernel (``vitq_kernel``)
            it quantizes the input and the kernel runs.

    Example:
        >>> from vitq_plugins.brevitas.quant import Uint8ActPerTensorMinMax
        >>> g = QuantGELU(act_quant=Uint8ActPerTensorMinMax.let(bit_width=6))
    """

    def __init__(self, approximate: str = "none", act_quant: Any = None) -> None:
        super().__init__()
        self.approximate = approximate
        self.kernel = _kernel_of(act_quant)
        self.integer_kernel = _kernel(act_quant)
        self.quant = make_quant_identity(act_quant)
        self.n = int(act_quant.shift_n) if self.kernel else 0
        self.out_bits = int(act_quant.out_bits) if self.kernel else 0
        #: the Linear consuming the output (for an output quantizer that searches its parameters on the
        #: consumer's output MSE, e.g. OPT-m); a list so it is no submodule
        self.next_linear: list[nn.Module] = []
        tq = tensor_quant_of(self.quant.act_quant) if self.quant is not None else None
        if tq is not None and hasattr(tq, "next_linear"):
            tq.next_linear = self.next_linear
        #: ``"<fqn>:act"`` keys of Linears whose input this output quantizer serves -> planned quantizer
        self.served_keys: dict[str, str] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.quant is None:
            return F.gelu(x, approximate=self.approximate)
        if self.integer_kernel is not None:
            xq = _unpack(self.quant(x))
            if not _calibrated(self.quant):
                return F.gelu(xq, approximate=self.approximate)
            return _run_kernel(self.integer_kernel, self, self.quant, xq)
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
        >>> from vitq_plugins.brevitas.quant import Uint8ActPerTensorMinMax
        >>> m = timm.layers.Attention(64, num_heads=2, qkv_bias=True)
        >>> qa = QuantAttention(m, Uint8ActPerTensorMinMax, Uint8ActPerTensorMinMax)
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
