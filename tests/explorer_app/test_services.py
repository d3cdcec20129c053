from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from explorer_app import evaluations
from explorer_app import ln_stats
from explorer_app import services
from explorer_app.state import Settings
from vitq_plugins.config import LayerOverride
from vitq_plugins.config import QuantConfig
from vitq_plugins.provenance import weights_digest

pytestmark = pytest.mark.app


@pytest.fixture
def small(app_env: dict[str, str]) -> Settings:
    return Settings.from_env()


def test_settings_come_from_the_environment(small: Settings) -> None:
    assert (small.model, small.n_eval, small.n_calib, small.sens_calib) == ("vit_test_tiny", 50, 16, 16)


def test_evaluation_is_cached_by_config_and_resumes_from_disk(small: Settings) -> None:
    fp = services.load_fp_model(small.model, small.pretrained, small.arch)
    before = weights_digest(fp.module, 16)
    cfg = QuantConfig("minmax", 8, 8, 8, {"blocks.0.mlp.fc2": LayerOverride(w_bits=4)})
    results: dict[str, object] = {}
    rec, cached = evaluations.evaluate(small, fp, cfg, results, label="a", source="manual")
    assert not cached and set(results) == {rec["key"]}
    res = rec["result"]
    assert res["n_eval"] == 50 and res["n_calib"] == 16 and res["model"] == "vit_test_tiny"
    assert 0.0 <= res["q_top1"] <= 1.0 and res["size_mb"] < res["fp_size_mb"]
    # the shared FP model was not quantized in place
    assert weights_digest(fp.module, 16) == before
    assert not any("Quant" in type(m).__name__ for m in fp.module.modules())
    # same config: session cache; a new session: the disk cache (resumable)
    assert evaluations.evaluate(small, fp, cfg, results, label="a", source="manual")[1]
    fresh: dict[str, object] = {}
    assert evaluations.resume_results(small, fp, fresh) == 1
    assert evaluations.evaluate(small, fp, cfg, {}, label="a", source="manual")[1]
    # anything that changes the result changes the key
    assert evaluations.eval_key(replace(small, seed=1), fp, cfg) != rec["key"]
    assert evaluations.eval_key(small, fp, QuantConfig("minmax", 8, 8, 8)) != rec["key"]


def test_layernorm_stats_show_channel_spread(small: Settings) -> None:
    import torch

    fp = services.load_fp_model(small.model, small.pretrained, small.arch)
    stats = ln_stats.layernorm_stats(fp, [torch.randn(8, 3, 32, 32)], bits=8)
    assert set(stats) == set(fp.layernorms)
    one = stats["blocks.0.norm1"]
    assert one.min.shape == one.max.shape == one.alpha.shape == (64,)
    assert (one.mse_pts <= one.mse_tensor + 1e-12).all()  # PTS is never worse than one scale
    assert not any(m._forward_pre_hooks for m in fp.module.modules())  # hooks were on a copy


def test_uploaded_checkpoint_loads_into_an_architecture(small: Settings) -> None:
    import io

    from safetensors.torch import save

    from vitq_plugins.core.errors import VitqError
    from vitq_plugins.models.reference import vit_test_tiny

    ref = vit_test_tiny(seed=3)
    data = save({k: v.contiguous() for k, v in ref.state_dict().items()})
    path = services.save_upload("mine.safetensors", data)
    assert path.suffix == ".safetensors" and path.read_bytes() == data
    assert services.save_upload("mine.safetensors", data) == path  # content-addressed
    fp = services.load_fp_model(str(path), True, "vit_test_tiny")
    assert fp.weights_digest == weights_digest(ref, 16)
    with pytest.raises(VitqError, match="not a checkpoint"):
        services.save_upload("notes.txt", io.BytesIO(b"x").getvalue())


@pytest.mark.parametrize("executor", ["serial", "ray"])
def test_evaluate_many_runs_on_the_executor_and_matches_evaluate(
    executor: str,
    small: Settings,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    if executor == "ray":
        request.getfixturevalue("ray_executor")  # the session's local cluster, joined (not restarted)
    monkeypatch.setenv(services.EXECUTOR_ENV, executor)
    fp = services.load_fp_model(small.model, small.pretrained, small.arch)
    configs = {"W8A8": QuantConfig("minmax", 8, 8, 8), "W4A8": QuantConfig("minmax", 4, 8, 8)}
    one, _ = evaluations.evaluate(small, fp, configs["W8A8"], {}, label="W8A8", source="uniform")
    seen: list[tuple[int, int]] = []
    results: dict[str, object] = {}
    recs = evaluations.evaluate_many(
        small, fp, configs, results, source="uniform", on_done=lambda k, n: seen.append((k, n))
    )
    assert [r["label"] for r in recs] == ["W8A8", "W4A8"] and set(results) == {r["key"] for r in recs}
    assert recs[0]["result"] == one["result"]  # cached by evaluate: not run again
    fresh = recs[1]["result"]
    assert fresh["w_bits"] == 4 and fresh["model"] == "vit_test_tiny" and "task_s" not in fresh
    assert seen[0] == (1, 2) and seen[-1] == (2, 2)
    # a second session reads it from disk
    again = evaluations.evaluate(small, fp, configs["W4A8"], {}, label="W4A8", source="uniform")
    assert again[1] and again[0]["result"] == fresh
    # measured again serially, in an empty cache: the same numbers
    monkeypatch.setenv("VITQ_CACHE_DIR", str(tmp_path / "other-cache"))
    serial, cached = evaluations.evaluate(small, fp, configs["W4A8"], {}, label="W4A8", source="uniform")
    assert not cached
    for k in ("q_top1", "agreement", "kl", "size_mb", "bops", "n_eval", "n_calib"):
        assert serial["result"][k] == fresh[k], k
    with pytest.raises(Exception, match="unknown executor 'rya'"):
        monkeypatch.setenv(services.EXECUTOR_ENV, "rya")
        evaluations.evaluate_many(small, fp, {"W6A6": QuantConfig("minmax", 6, 6, 6)}, {}, source="uniform")
