"""resolve_model: registered names, timm names, checkpoints (safetensors / torch weights_only), modules."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import save_file
import torch
from torch import nn

from vitq_plugins.core.errors import UnknownNameError
from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.manager import PluginHost
from vitq_plugins.models import resolve as resolve_mod
from vitq_plugins.models.reference import REFERENCE_WEIGHTS
from vitq_plugins.models.reference import vit_test_tiny
from vitq_plugins.models.resolve import resolve_model


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost(autoload=False)


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _trained_tiny() -> nn.Module:
    """vit_test_tiny with different (seed 7) weights, so a round trip is not trivially equal."""
    return vit_test_tiny(seed=7)


def test_registered_name(host: PluginHost) -> None:
    model, name = resolve_model("vit_test_tiny", host=host)
    assert name == "vit_test_tiny" and not model.training
    assert sum(p.numel() for p in model.parameters()) == 114_250


def test_timm_name_without_pretrained(host: PluginHost) -> None:
    model, name = resolve_model("test_vit", host=host, pretrained=False)
    assert name == "test_vit" and not model.training


def test_module_passes_through(host: PluginHost) -> None:
    m = nn.Linear(2, 2).train()
    model, name = resolve_model(m, host=host)
    assert model is m and name == "Linear" and not m.training


def test_safetensors_round_trip(tmp_path: Path, host: PluginHost, x: torch.Tensor) -> None:
    src = _trained_tiny()
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    model, name = resolve_model(str(path), host=host, arch="vit_test_tiny")
    assert name == str(path)
    with torch.no_grad():
        torch.testing.assert_close(model(x), src(x))


@pytest.mark.parametrize("wrap", [False, True])
def test_torch_file_round_trip_weights_only(
    tmp_path: Path, host: PluginHost, x: torch.Tensor, wrap: bool
) -> None:
    src = _trained_tiny()
    path = tmp_path / "tiny.pt"
    torch.save({"state_dict": src.state_dict()} if wrap else src.state_dict(), path)
    model, _ = resolve_model(path, host=host, arch="vit_test_tiny")
    with torch.no_grad():
        torch.testing.assert_close(model(x), src(x))


def test_torch_file_with_pickled_objects_is_refused(tmp_path: Path, host: PluginHost) -> None:
    path = tmp_path / "module.pt"
    torch.save(nn.Linear(2, 2), path)  # a pickled module, not a state dict
    with pytest.raises(VitqError, match="weights_only=True"):
        resolve_model(str(path), host=host, arch="vit_test_tiny")


def test_checkpoint_defaults_to_the_reference_architecture(tmp_path: Path, host: PluginHost) -> None:
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in vit_test_tiny().state_dict().items()}, str(path))
    with pytest.raises(
        VitqError, match="does not fit the model"
    ):  # tiny keys/shapes vs the 12-block reference
        resolve_model(str(path), host=host)


def test_wrong_keys(tmp_path: Path, host: PluginHost) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"foo.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(VitqError, match=r"missing keys \[.*unexpected keys \['foo.weight'\]"):
        resolve_model(str(path), host=host, arch="vit_test_tiny")


def test_wrong_shapes(tmp_path: Path, host: PluginHost) -> None:
    sd = vit_test_tiny().state_dict()
    sd["head.weight"] = torch.zeros(5, 64)
    path = tmp_path / "shape.pt"
    torch.save(sd, path)
    with pytest.raises(VitqError, match=r"head.weight has shape \(5, 64\), model expects \(10, 64\)"):
        resolve_model(str(path), host=host, arch="vit_test_tiny")


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_corrupt_checkpoint(tmp_path: Path, host: PluginHost, suffix: str) -> None:
    path = tmp_path / f"corrupt{suffix}"
    path.write_bytes(b"\x00\x01 definitely not a checkpoint")
    with pytest.raises(VitqError, match="corrupt" + suffix):
        resolve_model(str(path), host=host, arch="vit_test_tiny")


def test_missing_checkpoint_and_directory(tmp_path: Path, host: PluginHost) -> None:
    with pytest.raises(VitqError, match="checkpoint 'nope.safetensors' does not exist"):
        resolve_model("nope.safetensors", host=host)
    with pytest.raises(VitqError, match="is a directory"):
        resolve_model(str(tmp_path), host=host)


def test_unknown_name_suggests_close_matches(host: PluginHost) -> None:
    with pytest.raises(
        UnknownNameError, match="unknown model 'vit_tiny_cifar'; did you mean 'vit_tiny_cifar10'"
    ):
        resolve_model("vit_tiny_cifar", host=host)
    with pytest.raises(UnknownNameError, match="'deit_tiny_patch16_224'"):  # a timm name
        resolve_model("deit_tiny", host=host)


def test_arch_only_with_checkpoints(tmp_path: Path, host: PluginHost) -> None:
    with pytest.raises(VitqError, match="--arch 'test_vit' only applies to checkpoint files"):
        resolve_model("vit_test_tiny", host=host, arch="test_vit")
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in vit_test_tiny().state_dict().items()}, str(path))
    with pytest.raises(VitqError, match="must be a registered or timm model name, not a file"):
        resolve_model(str(path), host=host, arch="other.safetensors")


def test_offline_pretrained_download_is_a_clear_error(
    host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resolve_mod, "hub_reachable", lambda timeout=3.0: False)
    try:
        resolve_model("test_vit", host=host, pretrained=True)
    except VitqError as exc:
        msg = str(exc)
        assert "offline" in msg and "--no-pretrained" in msg and "checkpoint" in msg
    else:
        pytest.skip("test_vit weights are in the local Hugging Face cache")


@pytest.mark.skipif(not REFERENCE_WEIGHTS.exists(), reason="reference weights not trained yet")
def test_reference_model_loads(host: PluginHost) -> None:
    model, name = resolve_model("vit_tiny_cifar10", host=host)
    assert name == "vit_tiny_cifar10" and sum(p.numel() for p in model.parameters()) == 5_362_762
