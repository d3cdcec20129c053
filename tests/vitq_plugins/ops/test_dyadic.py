"""Dyadic requantization (I-ViT batch_frexp + fixedpoint_mul) and the exact int64 helpers."""

from __future__ import annotations

from decimal import ROUND_HALF_UP
from decimal import Decimal
from fractions import Fraction
import math

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import pytest
import torch

from vitq_plugins.ops import dyadic_from_scale
from vitq_plugins.ops import dyadic_requant
from vitq_plugins.ops import dyadic_to_float
from vitq_plugins.ops import floor_log2
from vitq_plugins.ops import round_shift
from vitq_plugins.ops._intmath import saturating_shl


def ref_batch_frexp(scale: float) -> tuple[int, int]:
    """I-ViT ``batch_frexp`` (reference §2.1): Decimal round-half-up of m * 2^31, shift = 31 - e."""
    m, e = math.frexp(scale)
    mant = int(Decimal(m * 2**31).quantize(Decimal("1"), rounding=ROUND_HALF_UP))
    return mant, 31 - e


def ref_round(num: int, shift: int, mode: str) -> int:
    fr = Fraction(num, 2**shift)
    fl = math.floor(fr)
    if mode == "truncate":
        return fl
    rem = fr - fl
    if mode == "half_up":
        return fl + (1 if rem >= Fraction(1, 2) else 0)
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and fl % 2 == 1):
        return fl + 1
    return fl


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(2.0**-31, 2.0**30), min_size=1, max_size=20))
def test_dyadic_from_scale_matches_batch_frexp(scales: list[float]) -> None:
    scales = scales + [1.0, 0.5, 1 - 2**-40, 0.3, 2.0**-31, 2.0**30]
    mant, shift = dyadic_from_scale(torch.tensor(scales, dtype=torch.float64))
    for s, m, sh in zip(scales, mant.tolist(), shift.tolist(), strict=True):
        rm, rsh = ref_batch_frexp(s)
        assert Fraction(m, 2**sh) == Fraction(rm, 2**rsh)  # same value
        assert 2**30 <= m < 2**31 and 0 <= sh <= 62  # but always a 31-bit mantissa
        assert abs(m / 2**sh - s) <= s * 2**-31


def test_dyadic_renormalises_rounding_carry() -> None:
    mant, shift = dyadic_from_scale(torch.tensor([1 - 2**-40], dtype=torch.float64))
    assert ref_batch_frexp(1 - 2**-40) == (2**31, 31)  # official: a 32-bit mantissa
    assert (int(mant), int(shift)) == (2**30, 30)
    assert float(dyadic_to_float(mant, shift)) == 1.0


@settings(max_examples=50, deadline=None)
@given(
    xs=st.lists(st.integers(-(2**32) + 1, 2**32 - 1), min_size=1, max_size=30),
    scale=st.floats(1e-6, 1e3),
    mode=st.sampled_from(["half_up", "half_even", "truncate"]),
    out_bits=st.sampled_from([8, 16, 32]),
    signed=st.booleans(),
)
def test_dyadic_requant_exact(xs: list[int], scale: float, mode: str, out_bits: int, signed: bool) -> None:
    mant, shift = dyadic_from_scale(scale)
    got = dyadic_requant(torch.tensor(xs), mant, shift, rounding=mode, out_bits=out_bits, signed=signed)  # type: ignore[arg-type]
    lo, hi = (-(2 ** (out_bits - 1)), 2 ** (out_bits - 1) - 1) if signed else (0, 2**out_bits - 1)
    want = [min(max(ref_round(x * int(mant), int(shift), mode), lo), hi) for x in xs]
    assert got.tolist() == want


def test_requant_ties_and_per_channel() -> None:
    x = torch.tensor([[5, -5, 7, -7]])
    m = torch.tensor([2**30])  # 0.5 with shift 31
    sh = torch.tensor([31])
    assert dyadic_requant(x, m, sh, rounding="half_up").tolist() == [[3, -2, 4, -3]]
    assert dyadic_requant(x, m, sh, rounding="half_even").tolist() == [[2, -2, 4, -4]]
    assert dyadic_requant(x, m, sh, rounding="truncate").tolist() == [[2, -3, 3, -4]]
    mc, sc = dyadic_from_scale(torch.tensor([0.5, 0.25, 1.0, 2.0]))
    assert dyadic_requant(torch.tensor([[8, 8, 8, 8]]), mc, sc).tolist() == [[4, 2, 8, 16]]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 2**63 - 1), min_size=1, max_size=40))
def test_floor_log2(values: list[int]) -> None:
    values = values + [1, 2, 3, 2**53 - 1, 2**53, 2**53 + 1, 2**62, 2**63 - 1]
    assert floor_log2(torch.tensor(values)).tolist() == [v.bit_length() - 1 for v in values]


@settings(max_examples=50, deadline=None)
@given(
    xs=st.lists(st.integers(-(2**60), 2**60), min_size=1, max_size=30),
    shift=st.integers(0, 62),
    mode=st.sampled_from(["half_up", "half_even", "truncate"]),
)
def test_round_shift(xs: list[int], shift: int, mode: str) -> None:
    got = round_shift(torch.tensor(xs), shift, mode)  # type: ignore[arg-type]
    assert got.tolist() == [ref_round(x, shift, mode) for x in xs]


def test_saturating_shl() -> None:
    v = torch.tensor([0, 1, 3, 2**40, 5])
    s = torch.tensor([100, 10, 62, 30, 0])
    assert saturating_shl(v, s, 2**31 - 1).tolist() == [0, 1024, 2**31 - 1, 2**31 - 1, 5]


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="scale"):
        dyadic_from_scale(torch.tensor([0.0]))
    with pytest.raises(ValueError, match=r"\[2\*\*-31, 2\*\*30\]"):
        dyadic_from_scale(2.0**31 - 0.5)
    with pytest.raises(ValueError, match="finite"):
        dyadic_from_scale(float("inf"))
    m, s = dyadic_from_scale(0.5)
    with pytest.raises(ValueError, match="integer tensor"):
        dyadic_requant(torch.tensor([1.0]), m, s)
    with pytest.raises(ValueError, match="out_bits"):
        dyadic_requant(torch.tensor([1]), m, s, out_bits=0)
    with pytest.raises(ValueError, match="2\\*\\*32"):
        dyadic_requant(torch.tensor([2**40]), m, s)
    with pytest.raises(ValueError, match="rounding mode"):
        dyadic_requant(torch.tensor([1]), m, s, rounding="nearest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        dyadic_requant(torch.zeros(0, dtype=torch.int64), m, s)
    with pytest.raises(ValueError, match=">= 1"):
        floor_log2(torch.tensor([0]))
