from __future__ import annotations

import pandas as pd
import pytest

from explorer_app.layer_table import TableDefaults
from explorer_app.layer_table import apply_bulk
from explorer_app.layer_table import build_table
from explorer_app.layer_table import config_from_table
from explorer_app.layer_table import config_summary
from explorer_app.layer_table import merge_edits
from explorer_app.layer_table import table_from_config
from vitq_plugins.config import LayerOverride
from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import ConfigError
from vitq_plugins.search import Layer

pytestmark = pytest.mark.app

LAYERS = (
    Layer("patch_embed.proj", "conv", 100, 1000),
    Layer("blocks.0.attn.qkv", "linear", 300, 3000, "blocks.0", "blocks.0.attn"),
    Layer("blocks.0.mlp.fc2", "linear", 400, 4000, "blocks.0"),
    Layer("blocks.1.mlp.fc2", "linear", 400, 4000, "blocks.1"),
    Layer("head", "linear", 50, 50),
)
RECIPE_Q = {"weight": "minmax", "act": "minmax"}


def _defaults(**kw: object) -> TableDefaults:
    base = {"recipe": "minmax", "w_bits": 8, "a_bits": 8, "attn_bits": 8, "act_quantizer": "minmax"}
    base.update(kw)
    return TableDefaults(**base)  # type: ignore[arg-type]


def test_table_at_defaults_is_the_plain_config() -> None:
    df = build_table(LAYERS, _defaults())
    assert list(df["fqn"]) == [ly.fqn for ly in LAYERS]
    assert config_from_table(df, _defaults()) == QuantConfig("minmax", 8, 8, 8)


def test_edits_become_fqn_keyed_overrides_and_round_trip() -> None:
    df = build_table(LAYERS, _defaults())
    edited = merge_edits(
        df,
        {
            "edited_rows": {1: {"w_bits": 4}, 2: {"a_bits": 6, "quantizer": "omse"}, 4: {"keep_float": True}},
            "added_rows": [],
            "deleted_rows": [],
        },
    )
    cfg = config_from_table(edited, _defaults())
    assert cfg.to_dict()["layers"] == {
        "blocks.0.attn.qkv": {"w_bits": 4},
        "blocks.0.mlp.fc2": {"a_bits": 6, "quantizers": {"act": "omse"}},
        "head": {"keep_float": True},
    }
    back, defaults = table_from_config(QuantConfig.from_json(cfg.to_json()), LAYERS, RECIPE_Q)
    pd.testing.assert_frame_equal(back[list(edited.columns)], edited)
    assert config_from_table(back, defaults) == cfg


def test_regex_config_is_resolved_into_rows_and_kept() -> None:
    cfg = QuantConfig(
        "minmax",
        8,
        8,
        8,
        {r"re:blocks\.\d+\.mlp\.fc2": LayerOverride(w_bits=4), "blocks.0.norm1": LayerOverride(a_bits=6)},
    )
    df, defaults = table_from_config(cfg, LAYERS, RECIPE_Q)
    assert list(df["w_bits"]) == [8, 8, 4, 4, 8]
    assert set(defaults.extra) == {r"re:blocks\.\d+\.mlp\.fc2", "blocks.0.norm1"}
    # editing a regex-governed row back to the default must stick (the row gets a full override)
    df.loc[2, "w_bits"] = 8
    out = config_from_table(df, defaults)
    assert out.resolve("blocks.0.mlp.fc2").w_bits == 8
    assert out.resolve("blocks.1.mlp.fc2").w_bits == 4
    assert out.layers["blocks.0.norm1"] == LayerOverride(a_bits=6)


def test_bulk_edit_by_regex() -> None:
    df = build_table(LAYERS, _defaults())
    out, n = apply_bulk(df, r"blocks\.\d+\.mlp\.fc2", w_bits=4, quantizer="percentile")
    assert n == 2
    assert list(out["w_bits"]) == [8, 8, 4, 4, 8]
    assert list(out["quantizer"])[2:4] == ["percentile", "percentile"]
    with pytest.raises(ConfigError, match="matches no layer"):
        apply_bulk(df, "fc2", w_bits=4)  # must match the whole FQN
    with pytest.raises(ConfigError, match="not a valid regex"):
        apply_bulk(df, "blocks[", w_bits=4)


def test_merge_edits_rejects_rows_outside_the_table() -> None:
    df = build_table(LAYERS, _defaults())
    with pytest.raises(ConfigError, match="outside the table"):
        merge_edits(df, {"edited_rows": {9: {"w_bits": 4}}})


def test_config_summary_counts_overrides() -> None:
    cfg = QuantConfig("fqvit", 8, 8, 4, {"a": LayerOverride(w_bits=4), "b": LayerOverride(w_bits=4)})
    assert config_summary(cfg) == "fqvit W8A8 attn4; 2 overrides: 2x W4"


def test_bad_bits_are_refused_and_named() -> None:
    import pandas as pd

    from explorer_app.layer_table import reject_bad_bits

    prev = pd.DataFrame(
        {
            "fqn": ["a", "b"],
            "w_bits": [8, 8],
            "a_bits": [8, 8],
            "quantizer": ["minmax"] * 2,
            "keep_float": [False] * 2,
        }
    )
    edited = prev.copy()
    edited.loc[0, "w_bits"] = 1
    edited.loc[1, "a_bits"] = 17
    out, msgs = reject_bad_bits(edited, prev)
    assert list(out["w_bits"]) == [8, 8] and list(out["a_bits"]) == [8, 8]
    assert msgs == [
        "a: w_bits=1 is invalid: a bit-width is a whole number in 2..16; kept 8",
        "b: a_bits=17 is invalid: a bit-width is a whole number in 2..16; kept 8",
    ]
    edited.loc[0, "w_bits"] = 4
    edited.loc[1, "a_bits"] = 16
    out, msgs = reject_bad_bits(edited, prev)
    assert msgs == [] and list(out["w_bits"]) == [4, 8] and list(out["a_bits"]) == [8, 16]
