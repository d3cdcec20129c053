"""ShiftGELU at a higher internal precision (``papers.ivit.finegelu``) against float GELU over the wide input
ranges of pretrained ViTs' fc1 outputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vitq_plugins.papers.ivit.finegelu import shiftgelu_fine
from vitq_plugins.papers.ivit.shift import shiftgelu


@pytest.mark.parametrize("limit", [4.0, 10.0, 30.0])
def test_error_is_the_sigmoid_formula_not_the_kernel(limit: float) -> None:
    s = limit / 127
    x = torch.arange(-127, 128, dtype=torch.int64)
    y, ys = shiftgelu_fine(x, s)
    xr = x.double() * s
    formula = xr * torch.sigmoid(1.702 * xr)
    err_formula = float((y.double() * ys - formula).abs().max())
    assert err_formula < 0.003 * max(1.0, limit / 10)  # the kernel: exp to <0.5%, 16-bit sigmoid
    # against exact GELU the error is x sigmoid(1.702 x)'s own (max 0.0203)
    assert float((y.double() * ys - F.gelu(xr)).abs().max()) < 0.025


def test_beats_the_official_shiftgelu_on_a_wide_row() -> None:
    """A row with a large maximum: the official row-max stabiliser floors the negative entries' sigmoid."""
    s = 12.0 / 127
    x = torch.arange(-127, 128, dtype=torch.int64).reshape(1, -1)
    ref = F.gelu(x.double() * s)
    y, ys = shiftgelu_fine(x, s)
    o, os_ = shiftgelu(x, s)
    assert float((y * ys - ref).abs().max()) < 0.5 * float((o * os_ - ref).abs().max())


def test_bad_scale() -> None:
    with pytest.raises(ValueError, match="scale"):
        shiftgelu_fine(torch.zeros(3, dtype=torch.int64), -1.0)
