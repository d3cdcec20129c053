"""The same per-layer config yields the same set of quantized sites in Brevitas and torch.ao FX."""

from __future__ import annotations

import pytest
import torch

from vitq_plugins.config import QuantConfig
from vitq_plugins.core.manager import PluginHost
from vitq_plugins.models.reference import vit_test_tiny
from vitq_plugins.sites import plan_sites

CONFIG_JSON = """{
  "version": 1, "recipe": "%s", "w_bits": 8, "a_bits": 8, "attn_bits": 4,
  "layers": {"head": {"keep_float": true}, "re:blocks\\\\.1\\\\.mlp\\\\.fc.": {"w_bits": 4},
             "blocks.0.attn.qkv": {"keep_float": true}}
}"""


@pytest.mark.parametrize("recipe", ["minmax", "fqvit", "ivit", "mptq", "repq"])
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
