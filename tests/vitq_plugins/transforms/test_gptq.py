"""GPTQ weight rounding through both wings (``options={"weight_rounding": "gptq"}``) on ``vit_test_tiny``."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import vitq_plugins as vq
from vitq_plugins import QuantConfig
from vitq_plugins import VitqError
from vitq_plugins import get_backend
from vitq_plugins.models.reference import vit_test_tiny
from vitq_plugins.transforms import gptq as tg


def _batches() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(8, 3, 32, 32, generator=g) for _ in range(2)]


def _wing_codes(backend: str, qm: nn.Module) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name, m in qm.named_modules():
        if backend == "brevitas" and hasattr(m, "quant_weight") and m.weight_quant.is_quant_enabled:
            out[name] = m.quant_weight().int().reshape(m.weight.shape[0], -1).long()
        elif backend == "fx" and callable(getattr(m, "weight", None)) and hasattr(m, "_packed_params"):
            out[name] = m.weight().int_repr().reshape(m.weight().shape[0], -1).long()
    return out


@pytest.mark.parametrize("backend", ["brevitas", "fx"])
@pytest.mark.parametrize("recipe", ["minmax", "mptq"])
def test_wing_codes_equal_gptq_codes(backend: str, recipe: str, monkeypatch: pytest.MonkeyPatch) -> None:
    captured: dict[str, torch.Tensor] = {}
    real = tg.apply_gptq

    def spy(*args: Any, **kwargs: Any) -> dict[str, float]:
        return real(*args, **kwargs, codes_out=captured)

    monkeypatch.setattr(tg, "apply_gptq", spy)
    if backend == "fx":
        import vitq_plugins.fx.quantize as fq

        monkeypatch.setattr(fq, "apply_gptq", spy)
    cfg = QuantConfig(recipe, 4, 8, 8, options={"weight_rounding": "gptq"})
    qm = get_backend(backend).quantize(vit_test_tiny(), cfg, _batches(), progress=False)
    wing = _wing_codes(backend, qm)
    assert captured, "GPTQ did not run"
    common = sorted(set(captured) & set(wing))
    # every weight the wing quantizes was rounded by GPTQ (patch embedding, qkv/proj/fc1/fc2, head)
    assert len(common) == len(captured) == 2 * 4 + 2, (sorted(captured), sorted(wing))
    for name in common:
        assert torch.equal(wing[name], captured[name]), name
        assert int(wing[name].min()) >= -8 and int(wing[name].max()) <= 7


@pytest.mark.parametrize("backend", ["brevitas", "fx"])
def test_gptq_changes_weights_and_keeps_outputs_close(backend: str) -> None:
    model = vit_test_tiny()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    plain = get_backend(backend).quantize(model, QuantConfig("minmax", 4, 8, 8), _batches(), progress=False)
    gq = get_backend(backend).quantize(
        model, QuantConfig("minmax", 4, 8, 8, options={"weight_rounding": "gptq"}), _batches(), progress=False
    )
    with torch.no_grad():
        ref, a, b = model(x), plain(x), gq(x)
    assert not torch.equal(a, b)
    assert torch.isfinite(b).all()
    assert (b - ref).abs().mean() < 3 * (a - ref).abs().mean()


def test_one_pass_variant_runs_and_differs_from_sequential() -> None:
    m1, m2 = vit_test_tiny(), vit_test_tiny()
    layers = {n: 4 for n, m in m1.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)}
    s1 = tg.apply_gptq(m1, _batches(), layers, tg.GPTQOptions(sequential=True))
    s2 = tg.apply_gptq(m2, _batches(), layers, tg.GPTQOptions(sequential=False))
    assert s1["passes"] == 4 and s2["passes"] == 1  # patch_embed, 2 blocks, head
    assert not torch.equal(m1.head.weight, m2.head.weight)
    assert torch.equal(m1.patch_embed.proj.weight, m2.patch_embed.proj.weight)  # same (image) inputs


def test_default_config_does_not_run_gptq(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: Any, **_k: Any) -> None:
        raise AssertionError("GPTQ ran without being asked")

    monkeypatch.setattr(tg, "apply_gptq", boom)
    get_backend("brevitas").quantize(
        vit_test_tiny(), QuantConfig("minmax", 4, 8, 8), _batches(), progress=False
    )


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"weight_rounding": "adaround"}, "weight_rounding"),
        ({"weight_rounding": "gptq", "gptq_block_size": 0}, "gptq_block_size"),
        ({"weight_rounding": "gptq", "gptq_damp": 2.0}, "gptq_damp"),
        ({"weight_rounding": "gptq", "gptq_sequential": "yes"}, "gptq_sequential"),
        ({"weight_rounding": "gptq", "gptq_blocksize": 8}, "gptq_blocksize"),
        ({"gptq_damp": 0.1}, "weight_rounding"),
    ],
)
@pytest.mark.parametrize("backend", ["brevitas", "fx"])
def test_bad_options_raise_vitq_error(options: dict[str, Any], match: str, backend: str) -> None:
    with pytest.raises(VitqError, match=match):
        get_backend(backend).quantize(
            vit_test_tiny(), QuantConfig("minmax", 4, 8, 8, options=options), _batches()
        )


def test_rounding_options_parsed() -> None:
    assert tg.rounding_options({}) is None
    assert tg.rounding_options({"weight_rounding": "nearest"}) is None
    opts = tg.rounding_options({"weight_rounding": "gptq", "gptq_block_size": 32, "gptq_sequential": False})
    assert opts == tg.GPTQOptions(block_size=32, damp=0.01, sequential=False)
    assert vq.VitqError is VitqError
