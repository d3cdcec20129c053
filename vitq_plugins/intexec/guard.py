"""Float-op guard: prove that an integer program runs no floating-point tensor op.

I-ViT (arXiv 2207.01405, Sec. 3, Fig. 1) claims *integer-only* inference: every tensor in the graph is an
integer, non-linear ops included (Shiftmax eqs. 9-14, ShiftGELU eqs. 15-17, I-LayerNorm eq. 18) and rescales
are dyadic (eq. 7). :class:`FloatOpGuard` checks this at run time: a ``TorchFunctionMode`` that sees every
torch function call (operators, methods, factory functions) made in Python while it is active and records
the dtypes of all tensors going in and out, plus any floating ``dtype=`` argument.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from vitq_plugins.core.errors import VitqError

__all__ = ["FloatOpError", "FloatOpGuard", "OpRecord", "run_integer_only"]


class FloatOpError(VitqError):
    """A floating-point tensor op ran inside :class:`FloatOpGuard`."""


@dataclass(frozen=True)
class OpRecord:
    """One torch call seen by the guard: its name and the dtypes of its tensors (inputs, then outputs)."""

    name: str
    dtypes: tuple[str, ...]

    @property
    def is_float(self) -> bool:
        """Whether a floating-point or complex dtype took part."""
        return any(
            ("float" in d) or ("complex" in d) or d in ("torch.half", "torch.double") for d in self.dtypes
        )


def _func_name(func: Any) -> str:
    return str(getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or func)


def _dtypes(objs: list[Any]) -> list[str]:
    out: list[str] = []
    for o in objs:
        if isinstance(o, torch.Tensor):
            out.append(str(o.dtype))
        elif isinstance(o, torch.dtype):
            out.append(str(o))
    return out


class FloatOpGuard(TorchFunctionMode):
    """Record every torch call and flag those touching a floating-point tensor.

    Args:
        strict: raise :class:`FloatOpError` at the first float op (default: collect, check on exit).

    Example:
        >>> import torch
        >>> with FloatOpGuard() as g:
        ...     _ = torch.arange(4) * 3
        >>> g.float_ops
        []
    """

    def __init__(self, strict: bool = False) -> None:
        super().__init__()
        self.strict = strict
        self.records: list[OpRecord] = []

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        flat_in, _ = tree_flatten((args, kwargs))
        flat_out, _ = tree_flatten(out)
        rec = OpRecord(_func_name(func), tuple(_dtypes(flat_in) + _dtypes(flat_out)))
        self.records.append(rec)
        if self.strict and rec.is_float:
            raise FloatOpError(f"floating-point op inside the integer program: {rec.name} {rec.dtypes}")
        return out

    @property
    def float_ops(self) -> list[OpRecord]:
        """The recorded calls that touched a floating-point tensor."""
        return [r for r in self.records if r.is_float]

    def check(self) -> None:
        """Raise :class:`FloatOpError` listing the float ops (up to 10) if any ran."""
        bad = self.float_ops
        if bad:
            names = ", ".join(f"{r.name}{list(r.dtypes)}" for r in bad[:10])
            raise FloatOpError(f"{len(bad)} floating-point op(s) ran inside the integer program: {names}")


def run_integer_only(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, FloatOpGuard]:
    """Call ``fn(*args, **kwargs)`` under a :class:`FloatOpGuard` and fail on any float op.

    Returns:
        ``(result, guard)``; ``guard.records`` lists every torch call made.

    Raises:
        FloatOpError: a floating-point op ran, or an input tensor is floating point.
    """
    flat, _ = tree_flatten((args, kwargs))
    for t in flat:
        if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex()):
            raise FloatOpError(f"integer program got a {t.dtype} input; pass integer codes")
    with FloatOpGuard() as guard:
        out = fn(*args, **kwargs)
    guard.check()
    return out, guard
