"""Shiftmax with a log2 output code (``papers.ivit.shiftlog``) and the fine shift exponential (``fineexp``):
against float softmax/attention on 197-token rows (ViT-S/B at 224 px), the float log2 rule and I-ViT's
uniform Shiftmax."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vitq_plugins.papers.ivit.fineexp import exp_constants
from vitq_plugins.papers.ivit.fineexp import pow2_table
from vitq_plugins.papers.ivit.fineexp import shift_exp_fine
from vitq_plugins.papers.ivit.shift import shiftmax
from vitq_plugins.papers.ivit.shiftlog import code_frac_bits
from vitq_plugins.papers.ivit.shiftlog import code_table
from vitq_plugins.papers.ivit.shiftlog import log2_codes
from vitq_plugins.papers.ivit.shiftlog import log2_dequant
from vitq_plugins.papers.ivit.shiftlog import msb
from vitq_plugins.papers.ivit.shiftlog import shiftmax_log2
from vitq_plugins.papers.ivit.shiftlog import shiftmax_log2_unit


def _logits(tokens: int = 197, seed: int = 0, spread: float = 3.0) -> tuple[torch.Tensor, float]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 6, tokens, tokens, generator=g) * spread
    s = float(x.abs().max() / 127)
    return torch.round(x / s).long(), s


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0))


@pytest.mark.parametrize(("bits", "min_cos"), [(4, 0.97), (6, 0.99), (8, 0.999)])
def test_attention_output_on_197_tokens_beats_uniform_shiftmax(bits: int, min_cos: float) -> None:
    """``attn @ V`` with the log2 code stays close to float where I-ViT's uniform ``2^-(b-1)`` code collapses
    (with 197 tokens almost every probability is below its step)."""
    xi, s = _logits()
    ref = torch.softmax(xi.double() * s, -1)
    assert float((ref < 2.0 ** -(bits - 1)).double().mean()) > 0.9
    v = torch.randn(2, 6, 197, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    p = log2_dequant(shiftmax_log2(xi, s, bits=bits), bits, torch.float64)
    u, us = shiftmax(xi, s, out_bits=bits)
    cos_log, cos_uni = _cos(p @ v, ref @ v), _cos(u.double() * us @ v, ref @ v)
    # measured: 4 bits 0.981 (uniform 0.947), 6 bits 0.995 (0.992), 8 bits 0.9997 (0.9986)
    assert cos_log >= min_cos
    assert cos_log > cos_uni
    assert abs(float(p.sum(-1).mean()) - 1.0) < 0.05


def test_codes_follow_the_float_log2_rule() -> None:
    """``code = round(2^f log2(sum / e))``: equal to the float64 rule away from rounding boundaries."""
    g = torch.Generator().manual_seed(3)
    e = torch.randint(1, 2**30, (64, 197), generator=g, dtype=torch.int64) >> torch.randint(
        0, 25, (64, 197), generator=g
    )
    e = e.clamp(min=1)
    for bits in (4, 6, 8):
        f = code_frac_bits(bits)
        codes = log2_codes(e, bits)
        exact = 2**f * torch.log2(e.sum(-1, keepdim=True).double() / e.double())
        want = torch.round(exact)
        want = torch.where(want >= 2**bits, torch.full_like(want, 2**bits), want).long()
        clear = (exact - exact.floor() - 0.5).abs() > 1e-4
        assert torch.equal(codes[clear], want[clear]), bits
        assert int(codes.max()) <= 2**bits and int(codes.min()) >= 0


def test_fine_exponential_is_within_a_fraction_of_a_percent_of_exp() -> None:
    for scale in (0.004, 0.07, 0.3, 1.7):
        k, x0 = exp_constants(scale)
        d = torch.arange(-int(10 / scale), 1, dtype=torch.int64)
        e = shift_exp_fine(d << k, x0, 20, pow2_table(x0, 20))
        ref = torch.exp(d.double() * scale) * 2.0**30
        rel = (e.double() / ref - 1).abs()
        # the 2^r table: 2^-10 relative; x log2(e) by five shift terms: 0.02% low, 0.2% at a distance of 10
        assert float(rel[d.double() * scale >= -1].max()) < 0.002, scale
        assert float(rel.max()) < 0.005, scale


def test_unit_equals_the_scaled_entry_point_and_codes_are_integers_only() -> None:
    xi, s = _logits(tokens=33, seed=5)
    k, x0 = exp_constants(s)
    a = shiftmax_log2(xi, s, bits=4)
    b = shiftmax_log2_unit(xi << k, x0, pow2_table(x0, 20), bits=4)
    assert torch.equal(a, b) and a.dtype == torch.int64


def test_code_table_is_exact_shifts_at_4_bits_and_monotone_at_8() -> None:
    t4, f4 = code_table(4)
    assert f4 == 15 and torch.equal(t4[:16], torch.tensor([2 ** (15 - c) for c in range(16)])) and t4[16] == 0
    t8, f8 = code_table(8)
    assert f8 == 24 and bool((t8[:-1][:-1] >= t8[:-1][1:]).all()) and t8[-1] == 0
    assert math.isclose(float(t8[8]) / 2**24, 2**-1, rel_tol=1e-6)  # f = 3: code 8 is one octave


def test_msb_and_bad_inputs() -> None:
    v = torch.tensor([1, 2, 3, 2**40, 2**62 - 1], dtype=torch.int64)
    assert msb(v).tolist() == [0, 1, 1, 40, 61]
    with pytest.raises(ValueError, match="bits"):
        shiftmax_log2(torch.zeros(2, 3, dtype=torch.int64), 0.1, bits=9)
    with pytest.raises(ValueError, match="scale"):
        shiftmax_log2(torch.zeros(2, 3, dtype=torch.int64), 0.0)
