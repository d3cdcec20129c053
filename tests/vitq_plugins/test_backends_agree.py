"""The same per-layer config yields the same set of quantized sites in every registered wing (Brevitas, torch.ao
FX, torchao PT2E, ...); a wing that lacks a quantizer of the recipe refuses the config when it is planned."""

from __future__ import annotations

import pytest
import torch

from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import ConfigError
from vitq_plugins.core.manager import PluginHost
from vitq_plugins.models.reference import vit_test_tiny
from vitq_plugins.sites import plan_sites

CONFIG_JSON = """{
  "version": 1, "recipe": "%s", "w_bits": 8, "a_bits": 8, "attn_bits": 4,
  "layers": {"head": {"keep_float": true}, "re:blocks\\\\.1\\\\.mlp\\\\.fc.": {"w_bits": 4},
             "blocks.0.attn.qkv": {"keep_float": true}}
}"""


def _supports(host: PluginHost, backend: str, recipe: str) -> bool:
    return all(
        backend in host.quantizers.get(q).backends for q in host.recipes.get(recipe).quantizers.values()
    )


@pytest.mark.parametrize("recipe", ["minmax", "fqvit", "ivit", "mptq"])
def test_same_config_same_sites(recipe: str, host: PluginHost) -> None:
    cfg = QuantConfig.from_json(CONFIG_JSON % recipe)
    model = vit_test_tiny()
    brevitas = host.backends.get("brevitas").load()
    fx = host.backends.get("fx").load()
    torch.manual_seed(0)
    qf = fx.quantize(model, cfg, [torch.randn(4, 3, 32, 32)], progress=False)
    b_sites = brevitas.sites(model, cfg)
    f_sites = fx.sites(model, cfg)
    planned = set(plan_sites(model, cfg, host))
    assert set(b_sites) == set(f_sites) == planned
    assert not any(k.startswith(("head:", "blocks.0.attn.qkv:")) for k in b_sites)
    assert qf(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("recipe", ["minmax", "fqvit", "ivit", "mptq"])
def test_every_other_wing_agrees_or_refuses(recipe: str, host: PluginHost) -> None:
    """Wings beyond Brevitas/FX (e.g. ``pt2e``): the same sites as the plan, or a ConfigError at plan time."""
    cfg = QuantConfig.from_json(CONFIG_JSON % recipe)
    model = vit_test_tiny()
    planned = plan_sites(model, cfg, host)
    others = [n for n in host.backends if n not in ("brevitas", "fx")]
    for name in others:
        if name == "pt2e":
            pytest.importorskip("torchao")
        if not _supports(host, name, recipe):
            with pytest.raises(ConfigError, match=rf"has no '{name}' implementation"):
                plan_sites(model, cfg, host, backend=name)
            continue
        impl = host.backends.get(name).load()
        torch.manual_seed(0)
        qm = impl.quantize(model, cfg, [torch.randn(4, 3, 32, 32)], progress=False)
        sites = impl.sites(qm, cfg)
        assert set(sites) == set(planned), name
        # a site served through another one (a residual sum entering a LayerNorm) reports that one's quantizer
        assert all(sites[k] == s.quantizer for k, s in planned.items() if s.site != "residual"), name
        assert impl.sites(model, cfg) == sites, name
        assert qm(torch.randn(2, 3, 32, 32)).shape == (2, 10)
