"""run_quantize/run_evaluate end to end on vit_test_tiny with a fake backend (the real wings are
tested in their own suites)."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
import copy
from dataclasses import dataclass
import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from vitq_plugins.config import LayerOverride
from vitq_plugins.config import QuantConfig
from vitq_plugins.core.backend import Backend
from vitq_plugins.core.errors import ConfigError
from vitq_plugins.core.errors import UnknownNameError
from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.hookspecs import hookimpl
from vitq_plugins.core.manager import PluginHost
from vitq_plugins.core.registry import Registry
from vitq_plugins.core.specs import BackendSpec
from vitq_plugins.pipeline import build_config
from vitq_plugins.pipeline import run_evaluate
from vitq_plugins.pipeline import run_quantize

FIELDS = {
    "model", "recipe", "backend", "w_bits", "a_bits", "attn_bits", "n_calib", "n_eval", "fp_top1", "q_top1",
    "top1_drop", "agreement", "kl", "size_mb", "fp_size_mb", "bops", "calib_s", "eval_s", "seed", "versions",
    "fp_top5", "q_top5", "export_path",
}  # fmt: skip


class FakeBackend:
    """Rounds Linear/Conv weights to ``w_bits`` per tensor (no activation quantization)."""

    name = "fake"

    def __init__(
        self, fail_export: bool = False, identity: bool = False, on_export: Callable[[], None] | None = None
    ) -> None:
        self.fail_export = fail_export
        self.identity = identity
        self.on_export = on_export
        self.calls: list[str] = []
        self.calib_images = 0

    def quantize(
        self,
        model: nn.Module,
        config: QuantConfig,
        calib_batches: Iterable[torch.Tensor],
        *,
        progress: bool = True,
    ) -> nn.Module:
        self.calls.append("quantize")
        for x in calib_batches:
            self.calib_images += int(x.shape[0])
        q = copy.deepcopy(model)
        if self.identity:
            return q
        with torch.no_grad():
            for fqn, m in q.named_modules():
                if isinstance(m, nn.Linear | nn.Conv2d):
                    res = config.resolve(fqn)
                    if res.keep_float:
                        continue
                    levels = 2 ** (res.w_bits - 1) - 1
                    scale = m.weight.abs().max() / levels
                    m.weight.copy_(torch.round(m.weight / scale) * scale)
        return q

    def sites(self, model: nn.Module, config: QuantConfig) -> dict[str, str]:
        return {
            f"{fqn}:{site}": "minmax"
            for fqn, m in model.named_modules()
            if isinstance(m, nn.Linear | nn.Conv2d) and not config.resolve(fqn).keep_float
            for site in ("weight", "act")
        }

    def export(self, qmodel: nn.Module, fmt: str, path: Path, example_input: torch.Tensor) -> Path:
        self.calls.append(f"export:{fmt}")
        if self.on_export is not None:
            self.on_export()
        if self.fail_export:
            raise VitqError("export failed on purpose")
        path.write_bytes(b"onnx" + bytes(example_input.shape))
        return path

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "framework": "none"}


@dataclass(frozen=True)
class InlineBackendSpec(BackendSpec):
    """A backend spec that returns an object instead of importing ``impl_ref``."""

    impl: Any = None

    def load(self) -> Any:
        return self.impl


def host_with(backend: FakeBackend) -> PluginHost:
    class Plugin:
        @hookimpl
        def vitq_register_backends(self, registry: Registry[BackendSpec]) -> None:
            registry.register("fake", InlineBackendSpec("fake", "tests:fake", "fake backend", impl=backend))

    return PluginHost(autoload=False, extra_plugins=(Plugin(),))


SMALL: dict[str, Any] = {"n_calib": 40, "n_eval": 60, "batch_size": 30, "progress": False}


def test_fake_backend_satisfies_the_protocol() -> None:
    assert isinstance(FakeBackend(), Backend)


def test_result_fields_and_ranges() -> None:
    fake = FakeBackend()
    res = run_quantize("vit_test_tiny", "minmax", "fake", 4, 8, 8, host=host_with(fake), **SMALL)
    assert FIELDS <= set(res)
    assert (res["model"], res["recipe"], res["backend"]) == ("vit_test_tiny", "minmax", "fake")
    assert (res["w_bits"], res["a_bits"], res["attn_bits"], res["n_calib"], res["n_eval"]) == (
        4,
        8,
        8,
        40,
        60,
    )
    for key in ("fp_top1", "q_top1", "agreement", "fp_top5", "q_top5"):
        assert 0.0 <= res[key] <= 1.0, key
    assert res["top1_drop"] == pytest.approx(res["fp_top1"] - res["q_top1"])
    assert res["kl"] >= 0 and res["agreement"] < 1.0  # 4-bit weights change some predictions of a random ViT
    assert res["size_mb"] < res["fp_size_mb"] == pytest.approx(0.457)
    assert res["bops"] < res["fp_bops"] == res["macs"] * 32 * 32
    assert res["calib_s"] >= 0 and res["eval_s"] > 0 and res["export_path"] is None
    assert set(res["versions"]) == {"torch", "timm", "brevitas", "vitq"}
    assert res["data"] == {"calib": "cifar10_bundled[calib]", "eval": "cifar10_bundled[test]"}
    assert fake.calib_images == 40 and fake.calls == ["quantize"]
    json.dumps(res)  # JSON-able


def test_identity_backend_agrees_with_fp() -> None:
    res = run_quantize("vit_test_tiny", "minmax", "fake", host=host_with(FakeBackend(identity=True)), **SMALL)
    assert res["agreement"] == 1.0 and res["top1_drop"] == 0.0 and res["kl"] == pytest.approx(0.0, abs=1e-9)


def test_defaults_use_all_bundled_test_images() -> None:
    res = run_quantize(
        "vit_test_tiny", "minmax", "fake", host=host_with(FakeBackend(identity=True)), n_calib=8, progress=False,
        batch_size=500,
    )  # fmt: skip
    assert res["n_eval"] == 2000 and (res["w_bits"], res["a_bits"], res["attn_bits"]) == (8, 8, 8)


def test_out_dir_gets_results_config_and_export(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "r1"
    res = run_quantize(
        "vit_test_tiny", "minmax", "fake", export="qonnx", out_dir=out, host=host_with(FakeBackend()), **SMALL
    )
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model_qonnx.onnx", "results.json"]
    assert res["export_path"] == str(out / "model_qonnx.onnx")
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(res))
    assert QuantConfig.load(out / "config.json") == QuantConfig("minmax", 8, 8, 8)
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["r1"]  # no temporary left behind
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # ordinary permissions, not mkdtemp's 0700


def test_failed_export_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "r2"
    fake = FakeBackend(fail_export=True)
    with pytest.raises(VitqError, match="on purpose"):
        run_quantize(
            "vit_test_tiny", "minmax", "fake", export="qcdq", out_dir=out, host=host_with(fake), **SMALL
        )
    assert list(tmp_path.iterdir()) == [] and fake.calls == ["quantize", "export:qcdq"]


def test_out_dir_created_meanwhile_is_not_clobbered(tmp_path: Path) -> None:
    out = tmp_path / "r3"

    def someone_else_writes() -> None:
        out.mkdir()
        (out / "theirs.txt").write_text("x")

    fake = FakeBackend(on_export=someone_else_writes)
    with pytest.raises(VitqError, match="cannot write output directory"):
        run_quantize(
            "vit_test_tiny", "minmax", "fake", export="qonnx", out_dir=out, host=host_with(fake), **SMALL
        )
    assert [p.name for p in tmp_path.iterdir()] == ["r3"] and [p.name for p in out.iterdir()] == [
        "theirs.txt"
    ]


def test_nonempty_out_dir_is_refused_before_work(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("keep me")
    fake = FakeBackend()
    with pytest.raises(VitqError, match="already exists and is not empty"):
        run_quantize("vit_test_tiny", "minmax", "fake", out_dir=tmp_path, host=host_with(fake), **SMALL)
    assert fake.calls == [] and [p.name for p in tmp_path.iterdir()] == ["old.txt"]


def test_config_is_validated_against_module_names_before_work() -> None:
    fake = FakeBackend()
    cfg = QuantConfig("minmax", 8, 8, 8, {"blocks.0.attn.qkvv": LayerOverride(w_bits=4)})
    with pytest.raises(
        ConfigError, match="'blocks.0.attn.qkvv' matches no module.*did you mean 'blocks.0.attn.qkv'"
    ):
        run_quantize("vit_test_tiny", None, "fake", config=cfg, host=host_with(fake), **SMALL)
    assert fake.calls == []


def test_config_file_and_per_layer_overrides(tmp_path: Path) -> None:
    cfg = QuantConfig(
        "minmax", 8, 8, 8, {"head": LayerOverride(keep_float=True), "re:.*fc1": LayerOverride(w_bits=4)}
    )
    path = cfg.save(tmp_path / "cfg.json")
    res = run_quantize(
        "vit_test_tiny", None, "fake", config=str(path), host=host_with(FakeBackend()), **SMALL
    )
    assert res["config"] == cfg.to_dict()
    uniform = run_quantize("vit_test_tiny", "minmax", "fake", host=host_with(FakeBackend()), **SMALL)
    assert res["size_mb"] != uniform["size_mb"]


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"n_calib": 0}, VitqError, "--calib 0 is invalid"),
        ({"n_eval": 2001}, VitqError, "--eval 2001 is larger than the data: it has only 2000"),
        ({"export": "tflite", "out_dir": "x"}, VitqError, "export format 'tflite' is invalid"),
        ({"export": "qonnx"}, VitqError, "--export qonnx needs an output directory"),
        ({"recipe": "fqvitt"}, ConfigError, "unknown recipe 'fqvitt'; did you mean 'fqvit'"),
        ({"backend": "brevitass"}, UnknownNameError, "unknown backend 'brevitass'; did you mean 'brevitas'"),
        ({"w_bits": 0}, ConfigError, "w_bits=0 is invalid"),
        ({"data": "cifar11"}, UnknownNameError, "unknown dataset 'cifar11'"),
        ({"model": "vit_test_tin"}, UnknownNameError, "did you mean 'vit_test_tiny'"),
    ],
)
def test_bad_input_is_one_clear_error(kwargs: dict[str, Any], error: type[Exception], pattern: str) -> None:
    fake = FakeBackend()
    args: dict[str, Any] = {"model": "vit_test_tiny", "recipe": "minmax", "backend": "fake"} | SMALL | kwargs
    with pytest.raises(error, match=pattern):
        run_quantize(host=host_with(fake), **args)
    assert fake.calls == []


def test_build_config_rules(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="a recipe is required"):
        build_config(None, 8, 8, 8, None)
    cfg = QuantConfig("fqvit", 8, 8, 4)
    assert build_config("fqvit", None, 8, None, cfg) is cfg
    with pytest.raises(ConfigError, match="--attn-bits 8 contradicts the config's attn_bits=4"):
        build_config(None, None, None, 8, cfg)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="malformed JSON at line 1"):
        build_config(None, None, None, None, bad)


def test_real_backends_registered_but_maybe_unimplemented() -> None:
    host = PluginHost(autoload=False)
    assert {"brevitas", "fx"} <= set(host.backends.list())


def test_run_evaluate_fields() -> None:
    res = run_evaluate(
        "vit_test_tiny", n_eval=50, batch_size=25, progress=False, host=PluginHost(autoload=False)
    )
    assert res["n_eval"] == 50 and 0.0 <= res["top1"] <= 1.0 and 0.0 <= res["top5"] <= 1.0
    assert res["macs"] == 1_942_400 and res["params"] == 114_250 and res["data"] == "cifar10_bundled[test]"
