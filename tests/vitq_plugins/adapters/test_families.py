"""Every model family, every registered recipe, every registered wing: the same site keys as the plan (the
FQNs of the adapted model) and a fake-quant output close to float at 8 bits; a wing that lacks a quantizer of
the recipe refuses the config when it is planned, as for timm models (test_backends_agree.py)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import ConfigError
from vitq_plugins.core.manager import PluginHost
from vitq_plugins.core.manager import get_host
from vitq_plugins.sites import plan_sites

RECIPES = sorted(get_host().recipes)
WINGS = sorted(get_host().backends)

#: logit cosine with float at W8A8 (attention map at the wing's largest bit-width, 6 bits for LIS on fx)
MIN_COSINE = 0.99


def _config(host: PluginHost, recipe: str, wing: str) -> QuantConfig:
    softmax = host.recipes.get(recipe).quantizers.get("softmax_output")
    attn_bits = min(8, host.quantizers.get(softmax).bit_range(wing)[1]) if softmax else 8
    return QuantConfig(recipe, w_bits=8, a_bits=8, attn_bits=attn_bits)


def _supports(host: PluginHost, wing: str, recipe: str) -> bool:
    return all(wing in host.quantizers.get(q).backends for q in host.recipes.get(recipe).quantizers.values())


@pytest.mark.parametrize("wing", WINGS)
@pytest.mark.parametrize("recipe", RECIPES)
def test_family_quantizes_in_every_wing(
    family: tuple[str, nn.Module], recipe: str, wing: str, calib: list[torch.Tensor]
) -> None:
    name, model = family
    host = get_host()
    if wing == "pt2e":
        pytest.importorskip("torchao")
    cfg = _config(host, recipe, wing)
    if not _supports(host, wing, recipe):
        with pytest.raises(ConfigError, match=rf"has no '{wing}' implementation"):
            plan_sites(model, cfg, host, backend=wing)
        return
    planned = plan_sites(model, cfg, host, backend=wing)
    assert any(s.site == "softmax_output" for s in planned.values())  # the attention is found
    impl = host.backends.get(wing).load()
    torch.manual_seed(0)
    qm = impl.quantize(model, cfg, calib, progress=False)
    assert set(impl.sites(qm, cfg)) == set(planned), (name, wing)
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref, out = model(x), qm(x)
    cos = float(torch.nn.functional.cosine_similarity(ref.flatten(), out.flatten(), dim=0))
    assert cos > MIN_COSINE, (name, recipe, wing, cos)


@pytest.mark.parametrize("wing", WINGS)
def test_float_model_sites_need_no_declared_size(family: tuple[str, nn.Module], wing: str) -> None:
    """``sites`` of the float model (no batch at hand) finds the input size and reports the planned keys."""
    if wing == "pt2e":
        pytest.importorskip("torchao")
    host = get_host()
    cfg = _config(host, "minmax", wing)
    impl = host.backends.get(wing).load()
    assert set(impl.sites(family[1], cfg)) == set(plan_sites(family[1], cfg, host, backend=wing))


def test_a_site_that_does_not_apply_is_skipped_with_its_reason() -> None:
    """A ReLU ViT gets ``ivit``'s other sites; its GELU site is reported as not applying, not refused."""
    from vitq_plugins.models.reference import vit_test_tiny

    model = vit_test_tiny()
    for blk in model.blocks:  # type: ignore[union-attr]
        blk.mlp.act = nn.ReLU()
    with pytest.warns(UserWarning, match=r"'gelu_output' \('shiftgelu_fine'\) does not apply .* use ReLU"):
        plan = plan_sites(model, QuantConfig("ivit"))
    assert {s.site for s in plan.values()} == {
        "weight",
        "act",
        "ln_input",
        "softmax_output",
        "attn_matmul",
        "residual",
    }


@pytest.mark.parametrize("wing", ["brevitas", "fx"])
def test_the_pipeline_quantizes_a_foreign_family(wing: str, families: dict[str, Any]) -> None:
    """evaluate_config (the CLI's pipeline) on the torchvision model: plan, data at 32 px, quantize, evaluate."""
    from vitq_plugins.search import evaluate_config

    torch.manual_seed(0)
    cfg = QuantConfig("fqvit", 8, 8, 4, layers={"heads.head": {"keep_float": True}})
    res = evaluate_config(families["torchvision_vit"]().eval(), cfg, backend=wing, n_calib=32, n_eval=32)
    assert res["n_eval"] == 32 and res["agreement"] >= 0.8, res
