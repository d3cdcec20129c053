from __future__ import annotations

import pytest
from torch import nn

from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.manager import PluginHost
from vitq_plugins.models.reference import vit_test_tiny
from vitq_plugins.sites import find_sites
from vitq_plugins.sites import plan_sites


@pytest.fixture(scope="module")
def tiny() -> nn.Module:
    return vit_test_tiny()


def test_structural_sites(tiny: nn.Module) -> None:
    kinds = [s for _, s in find_sites(tiny)]
    assert kinds.count("ln_input") == 5  # 2 blocks x 2 + final norm
    assert kinds.count("softmax_output") == 2 and kinds.count("attn_matmul") == 2
    assert kinds.count("gelu_output") == 2 and kinds.count("residual") == 2
    assert kinds.count("weight") == 1 + 2 * 4 + 1  # patch embed, 4 linears per block, head


@pytest.mark.parametrize("recipe", PluginHost(autoload=False).recipes.list())
def test_plan_follows_recipe_and_overrides(tiny: nn.Module, recipe: str) -> None:
    host = PluginHost(autoload=False)
    cfg = QuantConfig(
        recipe, 8, 8, 4, {"head": {"keep_float": True}, "re:blocks\\.1\\.mlp\\.fc.": {"w_bits": 4}}
    )
    plan = plan_sites(tiny, cfg, host)
    assert not any(k.startswith("head:") for k in plan)
    assert plan["blocks.1.mlp.fc1:weight"].bits == 4 and plan["blocks.0.mlp.fc1:weight"].bits == 8
    rq = host.recipes.get(recipe).quantizers
    for key, site in (
        ("blocks.0.attn:softmax_output", "softmax_output"),
        ("blocks.0.norm1:ln_input", "ln_input"),
    ):
        if site in rq:
            assert plan[key].quantizer == rq[site]
        else:  # a site the recipe leaves out stays float
            assert key not in plan
    if "softmax_output" in rq:
        assert plan["blocks.0.attn:softmax_output"].bits == 4


def test_missing_structure_named() -> None:
    mlp = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(VitqError, match=r"'ln_input', but no module of Sequential is a LayerNorm"):
        plan_sites(mlp, QuantConfig("fqvit"), PluginHost(autoload=False))


def test_override_on_a_site_the_module_lacks_is_refused(host: object) -> None:
    from vitq_plugins.config import QuantConfig
    from vitq_plugins.core.errors import VitqError
    from vitq_plugins.models.reference import vit_test_tiny
    from vitq_plugins.sites import plan_sites

    model = vit_test_tiny()
    bad = QuantConfig("minmax", layers={"blocks.0.mlp.fc1": {"quantizers": {"softmax_output": "lis"}}})
    with pytest.raises(
        VitqError,
        match=r"'blocks.0.mlp.fc1' puts quantizer 'lis' on site 'softmax_output'.*"
        r"only \['act', 'weight'\] sites; 'softmax_output' belongs on an attention module",
    ):
        plan_sites(model, bad)
    regex = QuantConfig("minmax", layers={r"re:blocks\.\d+\.norm\d": {"quantizers": {"ln_input": "pts"}}})
    plan = plan_sites(model, regex)
    assert plan["blocks.0.norm1:ln_input"].quantizer == "pts"


@pytest.mark.parametrize("recipe", [r for r in PluginHost(autoload=False).recipes.list()])
def test_recipe_min_bits_fit_every_wing(recipe: str) -> None:
    """A recipe's floor on a site's bits is a width its quantizer takes in every wing it has."""
    host = PluginHost(autoload=False)
    spec = host.recipes.get(recipe)
    for site, floor in spec.min_bits.items():
        q = host.quantizers.get(spec.quantizers[site])
        for wing in q.backends:
            lo, hi = q.bit_range(wing)
            assert lo <= floor <= hi, (recipe, site, wing)


def test_min_bits_floor_applies_unless_the_layer_sets_bits(tiny: nn.Module) -> None:
    from vitq_plugins.core.specs import RecipeSpec

    host = PluginHost(autoload=False)
    quantizers = {"weight": "minmax", "act": "minmax", "ln_input": "minmax"}
    host.recipes.register("floored", RecipeSpec("floored", "test", quantizers, min_bits={"ln_input": 8}))
    plan = plan_sites(tiny, QuantConfig("floored", 4, 4, 4, {"blocks.1.norm2": {"a_bits": 3}}), host)
    assert plan["blocks.0.norm1:ln_input"].bits == 8  # inherited 4 bits, raised to the floor
    assert plan["blocks.0.mlp.fc1:act"].bits == 4  # other sites keep the config's bits
    assert plan["blocks.1.norm2:ln_input"].bits == 3  # an explicit a_bits wins
    with pytest.raises(
        ValueError, match=r"min_bits names site 'residual', which the recipe does not quantize"
    ):
        RecipeSpec("bad", "test", quantizers, min_bits={"residual": 8})
    with pytest.raises(ValueError, match=r"must be an integer in 2..16, got 32"):
        RecipeSpec("bad", "test", quantizers, min_bits={"ln_input": 32})
