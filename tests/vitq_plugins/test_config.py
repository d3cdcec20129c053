from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import pytest

from vitq_plugins.config import LayerOverride
from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import ConfigError
from vitq_plugins.core.manager import PluginHost

MODULES = ["", "patch_embed.proj", "blocks.0.attn.qkv", "blocks.0.mlp.fc2", "blocks.1.mlp.fc2", "head"]


def test_precedence_exact_over_regex_over_default() -> None:
    cfg = QuantConfig(
        "fqvit",
        8,
        8,
        4,
        {
            r"re:blocks\.\d+\.mlp\.fc2": LayerOverride(w_bits=4),
            "blocks.1.mlp.fc2": LayerOverride(w_bits=6, a_bits=6),
            "head": LayerOverride(keep_float=True),
        },
    )
    assert cfg.resolve("blocks.0.mlp.fc2").w_bits == 4
    assert cfg.resolve("blocks.0.mlp.fc2").matched.startswith("re:")
    r1 = cfg.resolve("blocks.1.mlp.fc2")
    assert (r1.w_bits, r1.a_bits, r1.matched) == (6, 6, "blocks.1.mlp.fc2")
    r = cfg.resolve("blocks.0.attn.qkv")
    assert (r.w_bits, r.a_bits, r.attn_bits, r.keep_float, r.matched) == (8, 8, 4, False, "")
    assert cfg.resolve("head").keep_float
    assert r.bits_for("softmax_output") == 4 and r.bits_for("weight") == 8


def test_json_round_trip(tmp_path: Path) -> None:
    cfg = QuantConfig(
        "mptq", 6, 6, 4, {"re:blocks\\.0\\..*": {"quantizers": {"gelu_output": "minmax"}}}, {"sqb_alpha": 0.5}
    )
    assert QuantConfig.from_json(cfg.to_json()) == cfg
    p = cfg.save(tmp_path / "c.json")
    assert QuantConfig.load(p) == cfg
    assert json.loads(p.read_text())["version"] == 1


@settings(max_examples=30, deadline=None)
@given(
    w=st.integers(1, 32),
    a=st.integers(1, 32),
    attn=st.integers(1, 32),
    layers=st.dictionaries(
        st.sampled_from(MODULES[1:]),
        st.builds(LayerOverride, w_bits=st.none() | st.integers(1, 32), keep_float=st.booleans()),
        max_size=3,
    ),
)
def test_round_trip_property(w: int, a: int, attn: int, layers: dict[str, LayerOverride]) -> None:
    cfg = QuantConfig("minmax", w, a, attn, layers)
    assert QuantConfig.from_json(cfg.to_json()) == cfg


def test_malformed_json_reports_line_and_column() -> None:
    with pytest.raises(ConfigError, match=r"line 3, column 15"):
        QuantConfig.from_json('{\n  "recipe": "fqvit",\n  "w_bits": 8,,\n}', source="cfg.json")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"w_bits": 0}, r"w_bits=0 is invalid.*1\.\.32"),
        ({"a_bits": 33}, r"a_bits=33"),
        ({"w_bits": "8"}, r"w_bits='8'"),
        ({"bogus": 1}, r"unknown config field\(s\) \['bogus'\]"),
        ({"version": 7}, r"version 7"),
        ({"layers": {"head": {"wbits": 4}}}, r"unknown field\(s\) \['wbits'\]"),
        ({"layers": {"head": {"quantizers": {"softmax": "lis"}}}}, r"unknown site 'softmax'.*softmax_output"),
        ({"layers": {"re:blocks[": {}}}, r"not a valid regex"),
        ({"layers": []}, r"'layers' must be an object"),
    ],
)
def test_bad_configs(data: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        QuantConfig.from_dict(data)


def test_validate_against_registry_and_model() -> None:
    host = PluginHost(autoload=False)
    QuantConfig("fqvit", 8, 8, 4).validate(host, MODULES)
    with pytest.raises(ConfigError, match=r"unknown recipe 'fqvti'.*did you mean 'fqvit'"):
        QuantConfig("fqvti").validate(host)
    with pytest.raises(ConfigError, match=r"attn_bits=12 is out of range for quantizer 'lis'.*valid 2\.\.8"):
        QuantConfig("fqvit", attn_bits=12).validate(host)
    with pytest.raises(ConfigError, match=r"unknown quantizer 'lsi'.*'lis'"):
        QuantConfig("fqvit", layers={"head": {"quantizers": {"softmax_output": "lsi"}}}).validate(host)
    with pytest.raises(ConfigError, match=r"'pts' cannot quantize site 'act'"):
        QuantConfig("minmax", layers={"head": {"quantizers": {"act": "pts"}}}).validate(host)
    with pytest.raises(ConfigError, match=r"'blocks.0.attn.qvk' matches no module.*'blocks.0.attn.qkv'"):
        QuantConfig("minmax", layers={"blocks.0.attn.qvk": {"w_bits": 4}}).validate(host, MODULES)
    with pytest.raises(ConfigError, match=r"'re:blocks.*9.*' matches no module of the model"):
        QuantConfig("minmax", layers={r"re:blocks\.9\..*": {"w_bits": 4}}).validate(host, MODULES)
    # a float layer is not range-checked
    QuantConfig("fqvit", layers={"head": {"keep_float": True, "w_bits": 1}}).validate(host, MODULES)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        QuantConfig.load(tmp_path / "nope.json")
