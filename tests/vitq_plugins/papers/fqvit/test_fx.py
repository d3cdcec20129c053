"""FQ-ViT's FX LIS kernel computes the paper's codes ``round(-log2 p)`` (eq. 13) of its integer logits (#17)."""

from __future__ import annotations

import pytest
import torch

from vitq_plugins.fx.extension import UniformActObserver
from vitq_plugins.fx.modules import ObservedCustom
from vitq_plugins.papers.fqvit.fx import lis
from vitq_plugins.papers.fqvit.lis import log2_fake_quant


@pytest.mark.parametrize(("bits", "spread"), [(4, 1.0), (4, 4.0), (3, 2.0), (6, 3.0)])
def test_lis_kernel_is_log2_quant_of_the_softmax_of_its_input_codes(bits: int, spread: float) -> None:
    """Once FQ-ViT's integer path (I-BERT i-exp, ``1/p`` rounded to a power of two in linear space) moved 21%
    of the codes against Brevitas' ``round(-log2 p)``; now the only difference is the 8-bit logit grid."""
    spec = lis("softmax_output", bits)
    marker = spec.float_cls(dim=-1, **spec.kwargs)
    marker.quantizer, marker.spec = "lis", spec
    obs = ObservedCustom(marker)
    g = torch.Generator().manual_seed(bits)
    logits = torch.randn(2, 3, 17, 65, generator=g) * spread
    in_obs = UniformActObserver(bits=8)
    in_obs(logits)
    in_obs.fake_quant_enabled = True
    obs.link_input_observer(in_obs)
    xq = in_obs(logits)
    with torch.no_grad():
        got = obs.kernel(xq)
    want = log2_fake_quant(torch.softmax(xq.double(), -1), bits).float()
    assert float((got != want).double().mean()) < 1e-3  # float64 softmax vs 2^-29 tables: boundary ties only
