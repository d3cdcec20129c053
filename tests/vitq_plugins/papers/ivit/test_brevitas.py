"""I-ViT's Brevitas adapter: the integer kernels on coarse grids, kernel registration and lookup errors."""

from __future__ import annotations

import copy

import pytest
import torch

pytest.importorskip("brevitas")


def test_integer_kernel_on_a_coarse_grid_runs_and_a_bad_input_is_a_clear_error() -> None:
    """4-bit logits give a scale > 1: Shiftmax/ShiftGELU run on the codes refined by a power of two (the same
    real values); an input they cannot take at all (``|x| >= 2^31``) is a VitqError that names the quantizer."""
    from vitq_plugins.core.errors import VitqError
    from vitq_plugins.papers.ivit.brevitas import shiftgelu_float
    from vitq_plugins.papers.ivit.brevitas import shiftmax_float

    x = torch.tensor([[1, -2, 3]])
    assert torch.equal(
        shiftmax_float(x, torch.tensor(1.19), 15, 8), shiftmax_float(x << 1, torch.tensor(0.595), 15, 8)
    )
    assert torch.equal(
        shiftgelu_float(x, torch.tensor(1.19), 23, 8), shiftgelu_float(x << 2, torch.tensor(0.2975), 23, 8)
    )
    with pytest.raises(VitqError, match=r"'shiftgelu' cannot run on its calibrated input"):
        shiftgelu_float(torch.tensor([[2**31, 0]]), torch.tensor(0.1), 23, 8)


def test_modules_find_their_registered_kernel_also_after_deepcopy() -> None:
    from vitq_plugins.brevitas import QuantGELU
    from vitq_plugins.brevitas import QuantSoftmax
    from vitq_plugins.brevitas import list_kernels
    from vitq_plugins.papers.ivit.brevitas import ShiftGELUKernel
    from vitq_plugins.papers.ivit.brevitas import ShiftmaxKernel
    from vitq_plugins.papers.ivit.brevitas import shiftgelu
    from vitq_plugins.papers.ivit.brevitas import shiftmax

    assert {"shiftmax", "shiftgelu", "ilayernorm"} <= set(list_kernels())
    sm = QuantSoftmax(-1, shiftmax("softmax_output", 8))
    g = QuantGELU(act_quant=shiftgelu("gelu_output", 8))
    assert isinstance(sm.integer_kernel, ShiftmaxKernel) and sm.kernel == "shiftmax"
    assert isinstance(copy.deepcopy(g).integer_kernel, ShiftGELUKernel)


def test_unknown_kernel_is_a_clear_error() -> None:
    from vitq_plugins.brevitas import QuantSoftmax
    from vitq_plugins.core.errors import VitqError
    from vitq_plugins.papers.ivit.brevitas import Int8ActShiftmaxInput

    with pytest.raises(
        VitqError, match=r"unknown Brevitas integer kernel 'shiftmx'.*did you mean 'shiftmax'"
    ):
        QuantSoftmax(-1, Int8ActShiftmaxInput.let(vitq_kernel="shiftmx"))
