"""The uniform baselines' PT2E adapters return the PT2E wing's uniform specs (FQ-ViT conventions)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("torchao")

from vitq_plugins.core.errors import ConfigError  # noqa: E402
from vitq_plugins.papers.uniform import pt2e  # noqa: E402


@pytest.mark.parametrize("name", ["minmax", "percentile", "omse"])
def test_activation_specs(name: str) -> None:
    spec = getattr(pt2e, name)("act", 7, percentile=0.999)
    obs = spec.observer_or_fake_quant_ctr()
    assert obs.method == name and obs.bits == 7 and spec.quant_max == 127 and spec.dtype == torch.uint8
    if name == "percentile":
        assert obs._impl.percentile == pytest.approx(0.999)


def test_weights() -> None:
    spec = pt2e.minmax("weight", 8)
    assert spec.dtype == torch.int8 and spec.qscheme == torch.per_channel_symmetric
    with pytest.raises(ConfigError, match=r"'omse' cannot quantize weights in the pt2e backend"):
        pt2e.omse("weight", 8)
