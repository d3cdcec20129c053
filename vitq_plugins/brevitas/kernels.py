"""Registry of the integer kernels that the wing's quant modules run on their quantized input.

An injector with ``vitq_kernel = "<name>"`` (see :class:`vitq_plugins.brevitas.quant.IntegerKernelInputMixin`)
makes the owning :class:`~vitq_plugins.brevitas.modules.QuantLayerNorm`, ``QuantSoftmax`` or ``QuantGELU``
quantize the op's *input* and, once calibrated, replace the float op by the kernel registered under
``<name>`` (e.g. I-ViT's Shiftmax, arXiv 2207.01405 §3.3). A paper registers its kernels with
:func:`register_kernel` in its Brevitas adapter module.

Example:
    >>> import torch
    >>> from vitq_plugins.brevitas.kernels import IntegerKernel, register_kernel
    >>> @register_kernel("doc_relu")
    ... class IntReLU(IntegerKernel):
    ...     def run(self, module, x_int, scale):
    ...         return x_int.clamp(min=0).float() * scale
    ...     def export(self, module, x, scale):
    ...         return torch.relu(x)
"""

from __future__ import annotations

from abc import ABC
from abc import abstractmethod
from collections.abc import Callable
from collections.abc import Iterator
import contextlib
from typing import TypeVar

import torch
from torch import nn

from vitq_plugins.core.errors import UnknownNameError
from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.registry import Registry

__all__ = [
    "IntegerKernel",
    "get_kernel",
    "kernel_input_errors",
    "list_kernels",
    "out_dtype",
    "register_kernel",
    "untraced",
]


class IntegerKernel(ABC):
    """An integer kernel run by a quant module on the codes of its quantized input (stateless).

    Its parameters are read from the module: ``n`` and ``out_bits`` (from the injector's ``shift_n`` and
    ``out_bits``) and, for a LayerNorm, ``weight`` and ``bias``.
    """

    #: the registered name (set by :func:`register_kernel`)
    name: str = ""

    @abstractmethod
    def run(self, module: nn.Module, x_int: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """The dequantized kernel output for integer codes ``x_int`` of grid ``scale`` (eager)."""

    @abstractmethod
    def export(self, module: nn.Module, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """The form traced while a QONNX export runs (usually one ``vitq`` custom node) for the fake-quantized
        input ``x`` of grid ``scale``."""


_KERNELS: Registry[IntegerKernel] = Registry("Brevitas integer kernel")

K = TypeVar("K", bound=type[IntegerKernel])


def register_kernel(name: str) -> Callable[[K], K]:
    """Class decorator: register an instance of an :class:`IntegerKernel` subclass under ``name``.

    Raises:
        DuplicateNameError: ``name`` is already registered.
    """

    def deco(cls: K) -> K:
        kernel = cls()
        kernel.name = name
        _KERNELS.register(name, kernel, owner=cls.__module__)
        return cls

    return deco


def get_kernel(name: str, quantizer: str = "") -> IntegerKernel:
    """The kernel registered under ``name``; on a miss, imports the Brevitas adapter of ``quantizer`` (all
    adapters if ``""``) and retries.

    Raises:
        UnknownNameError: no such kernel (the message lists close matches).
    """
    if name not in _KERNELS:
        from vitq_plugins.brevitas.adapters import load_adapters

        load_adapters(quantizer)
    try:
        return _KERNELS.get(name)
    except UnknownNameError as exc:
        raise UnknownNameError(
            f"{exc}; an injector's vitq_kernel must name a kernel registered with "
            "vitq_plugins.brevitas.register_kernel (import the paper's Brevitas adapter first)"
        ) from None


def list_kernels() -> list[str]:
    """Registered kernel names."""
    return _KERNELS.list()


@contextlib.contextmanager
def untraced() -> Iterator[None]:
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
def kernel_input_errors(quantizer: str) -> Iterator[None]:
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


def out_dtype(like: torch.Tensor) -> torch.dtype:
    """float64 in a float64 model (an exact evaluation, see ``vitq_plugins.brevitas.reference``), float32 otherwise."""
    return torch.float64 if like.dtype == torch.float64 else torch.float32
