"""Validation helpers: error messages name the bad value and the valid range."""

from __future__ import annotations

import pytest
import torch

from vitq_plugins.ops import check_bits
from vitq_plugins.ops import check_finite
from vitq_plugins.ops import check_nonempty


def test_check_bits() -> None:
    assert check_bits(8, lo=2, hi=16, what="bits") == 8
    with pytest.raises(ValueError, match=r"bits must be in \[2, 16\], got 0"):
        check_bits(0, lo=2, hi=16, what="bits")
    with pytest.raises(ValueError, match=r"w_bits must be in \[2, 16\], got 17"):
        check_bits(17, lo=2, hi=16, what="w_bits")
    with pytest.raises(ValueError, match="integer"):
        check_bits(8.0, lo=2, hi=16, what="bits")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="integer"):
        check_bits(True, lo=0, hi=16, what="bits")


def test_check_finite_and_nonempty() -> None:
    check_finite(torch.tensor([1.0, 2.0]), "x")
    check_finite(torch.tensor([1, 2]), "x")
    with pytest.raises(ValueError, match=r"x must be finite, got 1 NaN/Inf value\(s\) out of 3"):
        check_finite(torch.tensor([1.0, float("inf"), 2.0]), "x")
    with pytest.raises(ValueError, match="nan"):
        check_finite(torch.tensor([float("nan")]), "x")
    check_nonempty(torch.zeros(1), "x")
    with pytest.raises(ValueError, match=r"x must be a non-empty tensor, got shape \(0, 3\)"):
        check_nonempty(torch.zeros(0, 3), "x")
