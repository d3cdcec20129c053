"""SQ-b transform: one streaming pass, float function preserved, LN outputs centred, clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.manager import PluginHost
from vitq_plugins.models.reference import vit_test_tiny
from vitq_plugins.papers.mptq.smoothing import apply_sqb
from vitq_plugins.papers.mptq.smoothing import ln_linear_pairs


def _batches(n: int = 3) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(4, 3, 32, 32, generator=g) for _ in range(n)]


def test_pairs_of_the_tiny_vit() -> None:
    names = [n for n, _, _ in ln_linear_pairs(vit_test_tiny())]
    assert names == ["blocks.0.norm1", "blocks.0.norm2", "blocks.1.norm1", "blocks.1.norm2"]


def test_function_preserved_and_ln_outputs_centred() -> None:
    model = vit_test_tiny()
    ref = vit_test_tiny()
    batches = _batches()
    calls = {"n": 0}
    model.register_forward_pre_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
    out = apply_sqb(model, batches, alpha=0.5)
    assert out is model and calls["n"] == len(batches)  # one pass over the data
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=1e-4, atol=1e-5)
    seen: dict[str, torch.Tensor] = {}
    ln = model.blocks[0].norm1
    h = ln.register_forward_hook(lambda _m, _i, o: seen.__setitem__("o", o.reshape(-1, o.shape[-1])))
    with torch.no_grad():
        for b in batches:
            model(b)
    h.remove()
    o = seen["o"]
    assert (o.amax(0) + o.amin(0)).abs().max() < 0.5 * (o.amax(0) - o.amin(0)).max()


def test_registered_and_errors() -> None:
    assert PluginHost(autoload=False).transforms.get("sqb").load() is apply_sqb
    with pytest.raises(VitqError, match="LayerNorm -> Linear"):
        apply_sqb(nn.Sequential(nn.Linear(4, 4)), [torch.randn(1, 4)])
    with pytest.raises(VitqError, match="empty"):
        apply_sqb(vit_test_tiny(), [])


def test_alpha_search_picks_per_layer_and_keeps_the_function() -> None:
    from vitq_plugins.models.reference import vit_test_tiny
    from vitq_plugins.papers.mptq.smoothing import ALPHA_GRID

    g = torch.Generator().manual_seed(3)
    batches = [torch.randn(4, 3, 32, 32, generator=g) for _ in range(2)]
    model = vit_test_tiny()
    with torch.no_grad():
        model.blocks[0].norm1.weight[:3] *= (
            30.0  # outlier channels: the search should not keep alpha 0.2 everywhere
        )
    x = torch.randn(2, 3, 32, 32, generator=g)
    with torch.no_grad():
        ref = model(x)
    apply_sqb(model, batches, alpha_search=True, a_bits=4, w_bits=4)
    alphas = model.vitq_sqb_alphas
    assert set(alphas) == {f"blocks.{i}.{n}" for i in range(2) for n in ("norm1", "norm2")}
    assert all(a in ALPHA_GRID for a in alphas.values())
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref, rtol=1e-4, atol=1e-4)


def test_alpha_search_error_is_the_chosen_minimum() -> None:
    from vitq_plugins.papers.mptq.sqb import sqb_alpha_errors

    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 16, generator=g) * torch.linspace(0.1, 20.0, 16) + 3.0
    w = torch.randn(8, 16, generator=g)
    errs = sqb_alpha_errors(x, x.min(0).values, x.max(0).values, w, (0.0, 0.5, 1.0), 4, 4)
    assert errs.shape == (3,) and bool((errs > 0).all())
    # with outlier channels, migrating some difficulty to the weights beats none (alpha 0 = only centring)
    assert float(errs[1]) < float(errs[0])


@pytest.mark.parametrize("backend", ["brevitas", "fx"])
def test_alpha_search_option_in_both_wings(backend: str) -> None:
    import vitq_plugins as vq
    from vitq_plugins.models.reference import vit_test_tiny

    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(4, 3, 32, 32, generator=g) for _ in range(2)]
    cfg = vq.QuantConfig("mptq", 4, 4, 4, options={"sqb_alpha_search": True})
    qm = vq.get_backend(backend).quantize(vit_test_tiny(), cfg, iter(batches), progress=False)
    with torch.no_grad():
        assert torch.isfinite(qm(batches[0])).all()
    bad = vq.QuantConfig("mptq", 4, 4, 4, options={"sqb_alpha_search": "yes"})
    with pytest.raises(vq.VitqError, match="sqb_alpha_search"):
        vq.get_backend(backend).quantize(vit_test_tiny(), bad, batches, progress=False)
