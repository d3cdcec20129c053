"""``repq_reparam`` transform: one streaming pass, float function preserved, registered, clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.manager import PluginHost
from vitq_plugins.models.reference import vit_test_tiny
from vitq_plugins.papers.repq.transform import apply_repq_reparam
from vitq_plugins.papers.repq.transform import post_ln_pairs


def _batches(n: int = 3) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(4, 3, 32, 32, generator=g) for _ in range(n)]


def test_pairs_of_the_tiny_vit() -> None:
    names = [n for n, _, _ in post_ln_pairs(vit_test_tiny())]
    assert names == ["blocks.0.norm1", "blocks.0.norm2", "blocks.1.norm1", "blocks.1.norm2"]


def test_function_preserved_and_channels_share_one_range() -> None:
    model, ref = vit_test_tiny(), vit_test_tiny()
    batches = _batches()
    calls = {"n": 0}
    model.register_forward_pre_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
    assert apply_repq_reparam(model, batches, a_bits=4) is model and calls["n"] == len(batches)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=0, atol=1e-5)
    seen: list[torch.Tensor] = []
    h = model.blocks[0].norm1.register_forward_hook(lambda _m, _i, o: seen.append(o.reshape(-1, o.shape[-1])))
    with torch.no_grad():
        for b in batches:
            model(b)
    h.remove()
    o = torch.cat(seen)
    width = o.amax(0) - o.amin(0)
    assert float(width.max() / width.min()) < 1.01  # one step for every channel after the fold
    assert min(model.vitq_repq_ratio.values()) > 1.0


def test_registered_in_a_recipe_and_errors() -> None:
    host = PluginHost()
    assert host.transforms.get("repq_reparam").load() is apply_repq_reparam
    assert "repq_reparam" in host.recipes.get("repq").transforms
    with pytest.raises(VitqError, match="LayerNorm -> Linear"):
        apply_repq_reparam(nn.Sequential(nn.Linear(4, 4)), [torch.randn(1, 4)])
    with pytest.raises(VitqError, match="empty"):
        apply_repq_reparam(vit_test_tiny(), [])
    with pytest.raises(VitqError, match="repq_reparam_bits"):
        apply_repq_reparam(vit_test_tiny(), _batches(1), bits=1)
