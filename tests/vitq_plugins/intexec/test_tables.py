"""Lookup tables of the integer program hold exactly the kernels' values for every input of their domain."""

from __future__ import annotations

import pytest
import torch

from vitq_plugins.intexec.requant import QParams
from vitq_plugins.intexec.requant import Requant
from vitq_plugins.intexec.tables import MAX_TABLE_SPAN
from vitq_plugins.intexec.tables import byte_planes
from vitq_plugins.papers.fqvit.integer import iexp_table
from vitq_plugins.papers.fqvit.integer import lis_power_table
from vitq_plugins.papers.fqvit.lis import iexp_constants
from vitq_plugins.papers.fqvit.lis import iexp_unit
from vitq_plugins.papers.ivit.integer import shift_exp_table
from vitq_plugins.papers.ivit.integer import shiftgelu_requant_table
from vitq_plugins.papers.ivit.shift import shift_exp_unit
from vitq_plugins.papers.ivit.shift import shiftgelu_unit


def _rq(qmin: int, qmax: int, zp: int = 0, ratio: float = 1.0, clamp: bool = True) -> Requant:
    return Requant(ratio, QParams(1.0, zp, qmin, qmax), 2**20, clamp=clamp)


def test_exp_tables_index_by_the_max_subtracted_code() -> None:
    d = torch.arange(-255, 1, dtype=torch.int64)
    t = shift_exp_table(_rq(-128, 127), -21, 15)
    assert t is not None and torch.equal(t[d], shift_exp_unit(d, -21, 15, cap=2**31 - 1))
    consts = iexp_constants(0.05)
    t = iexp_table(_rq(0, 255), consts, 30)
    assert t is not None and torch.equal(t[d], iexp_unit(d, consts, 30))


@pytest.mark.parametrize("rq", [_rq(-(2**15), 2**15 - 1), _rq(-128, 127, clamp=False)])
def test_no_table_for_wide_or_unbounded_grids(rq: Requant) -> None:
    assert rq.qmax - rq.qmin > MAX_TABLE_SPAN or not rq.do_clamp
    assert shift_exp_table(rq, -21, 15) is None
    assert shiftgelu_requant_table(rq, _rq(0, 255, 128, 2.0**-6), -30, 23, 8, "official") is None


@pytest.mark.parametrize("division", ["official", "exact"])
def test_shiftgelu_table_equals_gelu_then_requant_on_random_rows(division: str) -> None:
    rq_gelu, rq_out = _rq(-128, 127, 3), _rq(0, 255, 128, 2.0**-6)
    found = shiftgelu_requant_table(rq_gelu, rq_out, -30, 23, 8, division)
    assert found is not None
    table, lo, width = found
    assert table.dtype == torch.uint8 and (lo, width) == (-131, 256)
    a = torch.randint(-131, 125, (4, 7, 64), generator=torch.Generator().manual_seed(0), dtype=torch.int64)
    a[0, 0] = -131  # a constant row at the grid's bottom
    want = rq_out(shiftgelu_unit(a, -30, n=23, out_bits=8, division=division))  # type: ignore[arg-type]
    got = table[(a - lo) * width + (a.amax(-1, keepdim=True) - lo)]
    assert torch.equal(got.to(torch.int64), want)


def test_byte_planes_rebuild_the_table_and_lis_powers() -> None:
    t = lis_power_table(6, 24)
    assert t[0] == 2**24 and t[24] == 1 and int(t[25:].abs().sum()) == 0 and t.numel() == 65
    planes = byte_planes(t)
    assert [k for k, _ in planes] == [0, 1, 2, 3]
    assert torch.equal(sum(p.to(torch.int64) << (8 * k) for k, p in planes), t)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-negative"):
        byte_planes(torch.tensor([3, -1]))
