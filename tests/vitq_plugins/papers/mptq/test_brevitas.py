"""The Brevitas adapter of ``optm``: the search runs against the consuming fc2's weight, as in the other wings."""

from __future__ import annotations

import torch

from vitq_plugins.brevitas import BACKEND
from vitq_plugins.brevitas.modules import QuantGELU
from vitq_plugins.brevitas.quant import tensor_quant_of
from vitq_plugins.config import QuantConfig
from vitq_plugins.models.reference import vit_test_tiny


def test_brevitas_optm_searches_against_fc2() -> None:
    torch.manual_seed(0)
    model = vit_test_tiny()
    calib = [torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(2)) for _ in range(2)]
    qm = BACKEND.quantize(model, QuantConfig("mptq", 6, 6, 6), calib, progress=False)
    gelus = [(n, m) for n, m in qm.named_modules() if isinstance(m, QuantGELU)]
    assert len(gelus) == 2
    for name, gelu in gelus:
        tq = tensor_quant_of(gelu.quant.act_quant)
        fc2 = qm.get_submodule(name.rsplit(".", 1)[0] + ".fc2")
        assert tq.next_linear and tq.next_linear[0] is fc2  # the list the search reads is the wired one
