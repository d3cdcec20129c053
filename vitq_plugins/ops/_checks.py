"""Input validation shared by all quantization ops.

Every public op in :mod:`vitq_plugins.ops` validates its arguments with these helpers so that bad input
fails early with a :class:`ValueError` whose message names the offending value and the valid range,
instead of silently producing NaNs or overflowing integer accumulators.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "check_bits",
    "check_finite",
    "check_finite_stats",
    "check_int_tensor",
    "check_nonempty",
    "check_positive",
    "check_same_last_dim",
]


def check_bits(bits: int, *, lo: int, hi: int, what: str) -> int:
    """Validate an integer bit-width.

    Args:
        bits: The bit-width to check.
        lo: Smallest valid value (inclusive).
        hi: Largest valid value (inclusive).
        what: Name of the argument, used in the error message.

    Returns:
        ``bits`` unchanged, as a Python ``int``.

    Raises:
        ValueError: If ``bits`` is not an integer (``bool`` is rejected) or lies outside ``[lo, hi]``.
    """
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise ValueError(f"{what} must be an integer in [{lo}, {hi}], got {bits!r} ({type(bits).__name__})")
    if bits < lo or bits > hi:
        raise ValueError(f"{what} must be in [{lo}, {hi}], got {bits}")
    return bits


def check_nonempty(x: torch.Tensor, what: str) -> None:
    """Reject tensors with zero elements.

    Args:
        x: Tensor to check.
        what: Name of the argument, used in the error message.

    Raises:
        ValueError: If ``x.numel() == 0``.
    """
    if x.numel() == 0:
        raise ValueError(f"{what} must be a non-empty tensor, got shape {tuple(x.shape)}")


def check_finite_stats(what: str, *stats: torch.Tensor) -> None:
    """Reject a batch whose reduced statistics (e.g. its min/max) are NaN or +-Inf.

    NaN and Inf propagate through min/max reductions, so checking the reduced tensors detects a
    non-finite batch without a second full pass over it (the per-element check dominated calibration).

    Raises:
        ValueError: If any statistic is non-finite.
    """
    for t in stats:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{what} must be finite, got NaN/Inf value(s) (seen in the batch's min/max)")


def check_finite(x: torch.Tensor, what: str) -> None:
    """Reject floating-point tensors containing NaN or +-Inf.

    Integer tensors are always finite and pass unchanged.

    Args:
        x: Tensor to check.
        what: Name of the argument, used in the error message.

    Raises:
        ValueError: If ``x`` is floating point and has a non-finite element.
    """
    if x.is_floating_point() or x.is_complex():
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            n_bad = int(bad.sum())
            raise ValueError(
                f"{what} must be finite, got {n_bad} NaN/Inf value(s) out of {x.numel()} "
                f"(first: {x[bad].flatten()[0].item()})"
            )


def check_finite_fast(x: torch.Tensor, what: str) -> None:
    """:func:`check_finite` in one reduction pass when ``x`` is finite (the common case).

    NaN and +-Inf make the sum non-finite; only then does the per-element check run (a sum of finite
    values that overflows float32 is re-checked and passes), so the fake-quant hot path pays one
    ``sum`` instead of an ``isfinite`` pass, an allocation and an ``any`` pass.

    Raises:
        ValueError: If ``x`` is floating point and has a non-finite element.
    """
    if (x.is_floating_point() or x.is_complex()) and not bool(torch.isfinite(x.sum())):
        check_finite(x, what)


def check_int_tensor(x: torch.Tensor, what: str) -> None:
    """Require an integer (non-bool) tensor.

    Args:
        x: Tensor to check.
        what: Name of the argument, used in the error message.

    Raises:
        ValueError: If ``x`` is floating point, complex or boolean.
    """
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"{what} must be an integer tensor (e.g. torch.int64), got dtype {x.dtype}")


def check_positive(value: float | torch.Tensor, what: str) -> None:
    """Require a strictly positive, finite scalar or tensor.

    Args:
        value: Scalar or tensor to check (all elements).
        what: Name of the argument, used in the error message.

    Raises:
        ValueError: If any element is ``<= 0``, NaN or infinite.
    """
    if isinstance(value, torch.Tensor):
        check_nonempty(value, what)
        check_finite(value, what)
        if bool((value <= 0).any()):
            raise ValueError(f"{what} must be > 0 everywhere, got min {value.min().item()}")
        return
    v = float(value)
    if not math.isfinite(v) or v <= 0.0:
        raise ValueError(f"{what} must be a finite number > 0, got {value!r}")


def check_same_last_dim(x: torch.Tensor, n: int, what: str) -> None:
    """Require ``x.shape[-1] == n`` (channels-last layout).

    Args:
        x: Tensor to check; must have at least one dimension.
        n: Expected size of the last dimension.
        what: Name of the argument, used in the error message.

    Raises:
        ValueError: If ``x`` is 0-d or its last dimension differs from ``n``.
    """
    if x.dim() == 0 or x.shape[-1] != n:
        raise ValueError(f"{what} must have last dimension {n} (channels last), got shape {tuple(x.shape)}")
