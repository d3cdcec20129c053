"""Sensitivity measurement on ``vit_test_tiny`` (shapes, caching, lower bits hurt more)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vitq_plugins.core.errors import VitqError
from vitq_plugins.search import Budget
from vitq_plugins.search import greedy_sweep
from vitq_plugins.search._measure import _stages
from vitq_plugins.search._measure import find_layers
from vitq_plugins.search._measure import measure_sensitivity
from vitq_plugins.search._sensitivity import sensitivity_table
from vitq_plugins.search._table import METRICS
from vitq_plugins.search._table import SensitivityTable

N_LAYERS = 10  # patch_embed.proj, 2 x (qkv, proj, fc1, fc2), head


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_stages_reproduce_forward() -> None:
    from vitq_plugins.models.reference import vit_test_tiny

    model = vit_test_tiny()
    layers, float_params, matmul = find_layers(model, (3, 32, 32))
    assert len(layers) == N_LAYERS and float_params > 0 and matmul["qk"] == matmul["av"] > 0
    stages, where = _stages(model, layers)
    assert where == [0, 1, 1, 1, 1, 2, 2, 2, 2, 3]
    x = torch.randn(2, 3, 32, 32)
    h = x
    for st in stages:
        h = st(h)
    torch.testing.assert_close(h, model(x), rtol=0, atol=0)


def test_table_shapes_and_lower_bits_hurt(host: object, tmp_path: Path) -> None:
    table = sensitivity_table(
        "vit_test_tiny", "minmax", n_calib=64, batch_size=32, cache_dir=tmp_path, host=host
    )  # type: ignore[arg-type]
    assert table.candidates == (8, 6, 5, 4)
    assert [ly.fqn for ly in table.layers][:2] == ["patch_embed.proj", "blocks.0.attn.qkv"]
    for m in METRICS:
        for k in ("w", "a"):
            arr = table.loss(m, k)
            assert arr.shape == (N_LAYERS, 4)
            assert np.isfinite(arr).all()
            assert (arr >= -1e-12).all()
    for k in ("w", "a"):
        mse = table.loss("mse", k)
        assert mse[:, 3].mean() > mse[:, 0].mean()  # 4 bits hurt more than 8 on average
        assert (mse[:, 3] >= mse[:, 0]).mean() >= 0.8
    assert table.meta["cache"] == "miss" and table.meta["n_images"] == 64
    path = Path(table.meta["cache_path"])
    assert path.parent == tmp_path and path.suffix == ".json"

    again = sensitivity_table(
        "vit_test_tiny", "minmax", n_calib=64, batch_size=32, cache_dir=tmp_path, host=host
    )  # type: ignore[arg-type]
    assert again.meta["cache"] == "hit"
    np.testing.assert_array_equal(again.loss("kl", "w"), table.loss("kl", "w"))

    other = sensitivity_table(
        "vit_test_tiny",
        "minmax",
        n_calib=64,
        batch_size=32,
        candidates=(8, 4),
        cache_dir=tmp_path,
        host=host,  # type: ignore[arg-type]
    )
    assert other.meta["cache"] == "miss" and other.candidates == (8, 4)
    assert len(list(tmp_path.glob("sensitivity-vit_test_tiny-*.json"))) == 2

    # the table drives a search end to end
    space = table.space("kl", pins=["head"])
    step = greedy_sweep(space, ["avg_bits"]).pick([Budget("avg_bits", 5.0)])
    assert step.costs["avg_bits"] <= 5.0
    assert (step.assignment.w_bits[-1], step.assignment.a_bits[-1]) == (8, 8)


def test_table_json_round_trip(tmp_path: Path) -> None:
    from vitq_plugins.models.reference import vit_test_tiny

    table = measure_sensitivity(vit_test_tiny(), [torch.randn(4, 3, 32, 32)], (8, 4))
    back = SensitivityTable.load(table.save(tmp_path / "t.json"))
    assert back.layers == table.layers and back.candidates == (8, 4)
    np.testing.assert_array_equal(back.loss("mse", "a"), table.loss("mse", "a"))


def test_bad_inputs(host: object) -> None:
    from vitq_plugins.models.reference import vit_test_tiny

    with pytest.raises(VitqError, match="at least one batch"):
        measure_sensitivity(vit_test_tiny(), [])
    with pytest.raises(VitqError, match="cannot be simulated"):
        measure_sensitivity(vit_test_tiny(), [torch.randn(2, 3, 32, 32)], act_quantizer="lis")
    with pytest.raises(VitqError, match="metric 'top5' is invalid"):
        measure_sensitivity(vit_test_tiny(), [torch.randn(2, 3, 32, 32)], (8, 4)).loss("top5", "w")


def test_anchored_matches_exact_at_anchor_and_orders() -> None:
    from vitq_plugins.models.reference import vit_test_tiny

    torch.manual_seed(0)
    batches = [torch.randn(16, 3, 32, 32)]
    exact = measure_sensitivity(vit_test_tiny(), batches)
    fast = measure_sensitivity(vit_test_tiny(), batches, anchors=[4])
    assert fast.meta["anchors"] == [4] and exact.meta["anchors"] == [8, 6, 5, 4]
    for k in ("w", "a"):
        np.testing.assert_allclose(fast.loss("kl", k)[:, 3], exact.loss("kl", k)[:, 3])
        # estimated columns grow as bits fall and stay within an order of magnitude of the measured ones
        est = fast.loss("mse", k)
        assert (est[:, 0] <= est[:, 1] + 1e-15).all() and (est[:, 1] <= est[:, 3] + 1e-15).all()
        ratio = est[:, 1] / np.maximum(exact.loss("mse", k)[:, 1], 1e-30)
        assert np.median(ratio) == pytest.approx(1.0, rel=0.7)
    with pytest.raises(VitqError, match="anchors"):
        measure_sensitivity(vit_test_tiny(), batches, anchors=[3])
