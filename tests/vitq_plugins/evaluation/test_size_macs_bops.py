"""Size, MACs and BOPs of vit_test_tiny against hand-computed values.

vit_test_tiny: 32x32 input, patch 8 -> 16 patches + class token = N = 17 tokens; width D = 64,
2 blocks, 2 heads, MLP 256, 10 classes.
"""

from __future__ import annotations

import pytest

from vitq_plugins.config import LayerOverride
from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import VitqError
from vitq_plugins.evaluation.bops import bits_by_layer
from vitq_plugins.evaluation.bops import bops
from vitq_plugins.evaluation.layer_table import layer_table
from vitq_plugins.evaluation.macs import count_macs
from vitq_plugins.evaluation.size import weight_bits
from vitq_plugins.evaluation.size import weight_size_mb
from vitq_plugins.models.reference import vit_test_tiny

N, D, H, C = 17, 64, 256, 10
PATCH = 16 * D * 3 * 8 * 8  # 16 output positions x 64 channels, each 3*8*8 MACs
QKV, PROJ, FC1, FC2 = N * D * 3 * D, N * D * D, N * D * H, N * H * D
MATMUL = N * N * D  # q @ k^T, and again attn @ v
HEAD = D * C  # the head sees the class token only
LINEAR_PER_BLOCK = QKV + PROJ + FC1 + FC2

# parameters: Linear/Conv weights vs everything else (biases, norms, cls token, pos embed)
WEIGHTS = 3 * 8 * 8 * D + 2 * (3 * D * D + D * D + 2 * D * H) + D * C
OTHER = D + D + N * D + 2 * (2 * D + 3 * D + D + 2 * D + H + D) + 2 * D + C


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return vit_test_tiny()


def test_macs_by_hand(model) -> None:  # type: ignore[no-untyped-def]
    macs = count_macs(model, (3, 32, 32))
    assert macs["patch_embed.proj"] == PATCH == 196_608
    for b in (0, 1):
        assert macs[f"blocks.{b}.attn.qkv"] == QKV
        assert macs[f"blocks.{b}.attn@qk"] == macs[f"blocks.{b}.attn@av"] == MATMUL
        assert macs[f"blocks.{b}.attn.proj"] == PROJ
        assert macs[f"blocks.{b}.mlp.fc1"] == FC1 and macs[f"blocks.{b}.mlp.fc2"] == FC2
    assert macs["head"] == HEAD
    assert sum(macs.values()) == PATCH + 2 * (LINEAR_PER_BLOCK + 2 * MATMUL) + HEAD == 1_942_400
    keys = list(macs)
    assert keys.index("blocks.0.attn@qk") == keys.index("blocks.0.attn.qkv") + 1  # matmuls follow qkv


def test_macs_accept_a_batched_size_and_reject_nonsense(model) -> None:  # type: ignore[no-untyped-def]
    assert count_macs(model, (1, 3, 32, 32)) == count_macs(model, (3, 32, 32))
    with pytest.raises(VitqError, match="input_size"):
        count_macs(model, (32, 32))


def test_size_by_hand(model) -> None:  # type: ignore[no-untyped-def]
    assert WEIGHTS + OTHER == 114_250
    assert weight_size_mb(model) == pytest.approx((WEIGHTS + OTHER) * 4 / 1e6)  # 0.457 MB
    w8 = QuantConfig("minmax", 8, 8, 8)
    assert weight_size_mb(model, w8) == pytest.approx((WEIGHTS * 1 + OTHER * 4) / 1e6)  # 0.123304 MB
    mixed = QuantConfig(
        "minmax", 4, 8, 8, {"head": LayerOverride(keep_float=True), "re:.*fc1": LayerOverride(w_bits=2)}
    )
    fc1 = D * H
    expected_bits = (WEIGHTS - D * C - 2 * fc1) * 4 + D * C * 32 + 2 * fc1 * 2 + OTHER * 32
    assert weight_size_mb(model, mixed) == pytest.approx(expected_bits / 8 / 1e6)


def test_size_with_backend_sites(model) -> None:  # type: ignore[no-untyped-def]
    cfg = QuantConfig("minmax", 8, 8, 8)
    sites = {"head:weight": "minmax"}  # only the head's weight is quantized
    assert weight_bits(model, cfg, sites)["head"] == 8
    assert weight_bits(model, cfg, sites)["blocks.0.mlp.fc1"] == 32
    assert weight_size_mb(model, cfg, sites) == pytest.approx(((WEIGHTS + OTHER) * 4 - D * C * 3) / 1e6)


def test_bops_by_hand(model) -> None:  # type: ignore[no-untyped-def]
    macs = count_macs(model, (3, 32, 32))
    linear = PATCH + 2 * LINEAR_PER_BLOCK + HEAD
    assert bops(macs, bits_by_layer(macs)) == sum(macs.values()) * 32 * 32
    cfg = QuantConfig("minmax", 4, 8, 6)
    expected = linear * 4 * 8 + 2 * MATMUL * 8 * 8 + 2 * MATMUL * 6 * 8  # qk: a x a; av: attn x a
    assert bops(macs, bits_by_layer(macs, cfg)) == expected
    fp_head = QuantConfig("minmax", 4, 8, 6, {"head": LayerOverride(keep_float=True)})
    assert bops(macs, bits_by_layer(macs, fp_head)) == expected - HEAD * 32 + HEAD * 32 * 32


def test_bops_with_sites_treats_unlisted_layers_as_float(model) -> None:  # type: ignore[no-untyped-def]
    macs = count_macs(model, (3, 32, 32))
    cfg = QuantConfig("minmax", 8, 8, 8)
    bits = bits_by_layer(
        macs, cfg, {"head:weight": "minmax", "head:act": "minmax", "blocks.0.attn:softmax_output": "lis"}
    )
    assert bits["head"] == (8, 8) and bits["blocks.0.mlp.fc1"] == (32, 32)
    assert bits["blocks.0.attn@qk"] == (8, 8) and bits["blocks.1.attn@qk"] == (32, 32)


def test_bops_formula_and_errors() -> None:
    assert bops({"a": 10, "b.attn@av": 3}, {"a": (4, 8)}) == 10 * 32 + 3 * 32 * 32
    with pytest.raises(VitqError, match="bits"):
        bops({"a": 1}, {"a": (0, 8)})


def test_layer_table_rows(model) -> None:  # type: ignore[no-untyped-def]
    rows = layer_table(model, (3, 32, 32), QuantConfig("minmax", 4, 8, 6))
    by = {r["fqn"]: r for r in rows}
    assert by["blocks.0.attn.qkv"] == {
        "fqn": "blocks.0.attn.qkv",
        "type": "Linear",
        "params": 3 * D * D + 3 * D,
        "macs": QKV,
        "w_bits": 4,
        "a_bits": 8,
        "bops": QKV * 32,
    }
    assert by["blocks.1.attn@av"]["type"] == "matmul_av" and by["blocks.1.attn@av"]["w_bits"] == 6
    assert by["patch_embed.proj"]["type"] == "Conv2d"
    assert sum(r["macs"] for r in rows) == 1_942_400
