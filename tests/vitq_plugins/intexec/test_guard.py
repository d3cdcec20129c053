"""The float-op guard records dtypes and fails on any floating-point op."""

from __future__ import annotations

import pytest
import torch

from vitq_plugins.intexec import FloatOpError
from vitq_plugins.intexec import FloatOpGuard
from vitq_plugins.intexec import run_integer_only


def test_integer_ops_pass() -> None:
    with FloatOpGuard() as g:
        y = (torch.arange(6).reshape(2, 3) * 3) >> 1
        _ = y.sum(dim=-1)
    g.check()
    assert len(g.records) >= 3
    assert all(not r.is_float for r in g.records)


def test_float_op_is_caught() -> None:
    x = torch.arange(4)
    with FloatOpGuard() as g:
        _ = x * 0.5
    assert g.float_ops, "x * 0.5 makes a float tensor"
    with pytest.raises(FloatOpError, match="floating-point"):
        g.check()


def test_strict_raises_immediately_and_float_input_rejected() -> None:
    with pytest.raises(FloatOpError), FloatOpGuard(strict=True):
        torch.ones(2, dtype=torch.float32)
    with pytest.raises(FloatOpError, match="input"):
        run_integer_only(lambda t: t, torch.ones(2))


def test_run_integer_only_returns_result() -> None:
    out, g = run_integer_only(lambda t: t + 1, torch.arange(3))
    assert out.tolist() == [1, 2, 3]
    assert g.records
