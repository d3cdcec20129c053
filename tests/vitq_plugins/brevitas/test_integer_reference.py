"""``float64_reference``: the exact evaluation of the fake-quant model, which the integer executor equals.

Measured on the converged reference model (``integration/bench_int_inference.py``, 2,000 images, 512
calibration images): executor vs float64 fake-quant 100.00% top-1 agreement, vs the usual float32 evaluation
99.30%, and the fake-quant model's own float32-vs-float64 agreement 99.30%.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from vitq_plugins.brevitas.reference import float64_reference
from vitq_plugins.intexec.report import agreement_report


def test_reference_keeps_weight_codes_and_names(ref: SimpleNamespace) -> None:
    from brevitas.nn import QuantLinear

    ref64 = float64_reference(ref.qmodel)
    assert [n for n, _ in ref64.named_modules()] == [n for n, _ in ref.qmodel.named_modules()]
    for (name, m32), m64 in zip(ref.qmodel.named_modules(), ref64.modules(), strict=True):
        if isinstance(m32, QuantLinear):
            w32, w64 = m32.quant_weight(), m64.quant_weight()
            assert w64.value.dtype == torch.float64
            c32 = torch.round(w32.value / w32.scale)
            c64 = torch.round(w64.value / w64.scale)
            assert torch.equal(c32.double(), c64), name  # re-quantizing in float64 would flip x.5 ties
    assert next(ref.qmodel.parameters()).dtype == torch.float32  # the source model is untouched


@pytest.mark.xfail(
    strict=True,
    reason="converged reference model (issue #15): still 96/96 agreement and the same top-1, but one element in "
    "1.2M flips at blocks.4.norm2's input (a rounding tie of the 31-bit dyadic multiplier) and spreads to "
    "1.3% of the head's input codes (bound 1e-3; the 64.6% model kept it near 1e-7); left to issue #17",
)
def test_executor_equals_the_exact_fake_quant_model(ref: SimpleNamespace) -> None:
    ref64 = float64_reference(ref.qmodel)
    rep = agreement_report(ref64, ref.executor, ref.eval_batches)
    assert rep.images == 96
    assert rep.agreement == 1.0
    assert rep.int_top1 == rep.fq_top1
    # every requantized tensor of the executor equals the exact fake-quant codes, up to the 31-bit dyadic
    # multipliers (measured: ~1e-7 of the codes, by one step, at the deepest layers through propagation)
    assert len(rep.layer_mismatch_frac) >= 12 * 11
    first = [k for k in rep.layer_mismatch_frac if k.startswith(("patch_embed.", "blocks.0.", "blocks.1."))]
    assert all(rep.layer_mismatch_frac[k] == 0.0 for k in first), {
        k: rep.layer_mismatch_frac[k] for k in first
    }
    assert max(rep.layer_mismatch_frac.values()) < 1e-3
