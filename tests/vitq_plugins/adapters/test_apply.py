"""adapt_model: each family becomes canonical and computes the same function; bad rewrites and attention no wing
can quantize are refused with a VitqError naming the module; the registry behaves like the others."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vitq_plugins.adapters.apply import adapt_model
from vitq_plugins.core.errors import DuplicateNameError
from vitq_plugins.core.errors import UnknownNameError
from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.hookspecs import hookimpl
from vitq_plugins.core.manager import PluginHost
from vitq_plugins.core.registry import Registry
from vitq_plugins.core.specs import ModelAdapterSpec
from vitq_plugins.core.specs import ModelSpec
from vitq_plugins.models.reference import vit_test_tiny
from vitq_plugins.sites import is_attention
from vitq_plugins.sites import is_block


def test_rewrite_is_exact_in_float(family: tuple[str, nn.Module]) -> None:
    name, model = family
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adapted = adapt_model(model)
    assert adapted is not model
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref, out = model(x), adapted(x)
    assert (ref - out).abs().max() <= 1e-5 * max(1.0, float(ref.abs().max())), name
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the model is not modified
    assert sum(is_attention(m) for m in adapted.modules()) == 2  # both layers are canonical
    assert sum(is_block(m) for m in adapted.modules()) == 2
    assert not any(isinstance(m, nn.MultiheadAttention | nn.Softmax) for m in adapted.modules())
    assert adapt_model(adapted) is adapted  # canonical already: nothing to do


def test_timm_model_is_left_alone() -> None:
    model = vit_test_tiny()
    assert adapt_model(model) is model


class _Wrong(nn.Module):
    """An attention-looking module whose forward is not attention (the adapter's guess must be caught)."""

    def __init__(self) -> None:
        super().__init__()
        self.heads = 2
        self.to_qkv = nn.Linear(8, 24)
        self.to_out = nn.Linear(8, 8)
        self.attend = nn.Softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.to_out(x)
        return out


def test_a_wrong_guess_is_refused() -> None:
    model = nn.Sequential(nn.Linear(8, 8), _Wrong())
    with pytest.raises(
        VitqError, match=r"'plain_attention'.*rewrite of '1' \(_Wrong\) computes another function"
    ):
        adapt_model(model)


class _SeqFirst(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(8, 2)  # batch_first=False: not rewritten

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x, x, x)[0]


def test_unsupported_multihead_attention_names_the_module() -> None:
    with pytest.raises(VitqError, match=r"module 'body.attention' \(nn.MultiheadAttention in _SeqFirst\)"):
        adapt_model(nn.ModuleDict({"body": _SeqFirst()}))


class _WindowAttention(nn.Module):
    """timm-style (qkv + num_heads) with a relative position bias table, like Swin's WindowAttention."""

    def __init__(self) -> None:
        super().__init__()
        self.num_heads = 2
        self.qkv = nn.Linear(8, 24)
        self.proj = nn.Linear(8, 8)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(9, 2))


def test_attention_with_own_parameters_is_refused() -> None:
    m = nn.Module()
    m.attn = _WindowAttention()
    with pytest.raises(
        VitqError, match=r"attention 'attn' \(_WindowAttention\) has relative_position_bias_table"
    ):
        adapt_model(m)


def test_registry_is_strict(host: PluginHost) -> None:
    reg = host.model_adapters
    assert reg.list() == [
        "plain_attention",
        "plain_transformer",
        "torch_encoder",
        "torch_encoder_layer",
        "torchvision_vit",
        "traced_attention",
    ]
    with pytest.raises(DuplicateNameError, match="already registered"):
        reg.register("torchvision_vit", reg.get("torchvision_vit"))
    with pytest.raises(UnknownNameError, match="did you mean 'torchvision_vit'"):
        reg.get("torchvision_vt")
    assert host.registry("model_adapters") is reg


class _Doubler(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.lin(x) * 2
        return out


def _scaled(m: nn.Module) -> nn.Module | None:
    if not isinstance(m, _Doubler):
        return None
    lin = nn.Linear(4, 4)
    with torch.no_grad():
        lin.weight.copy_(m.lin.weight * 2)
        lin.bias.copy_(m.lin.bias * 2)
    return lin


class _ThirdParty:
    @hookimpl
    def vitq_register_model_adapters(self, registry: Registry[ModelAdapterSpec]) -> None:
        registry.register(
            "doubler", ModelAdapterSpec("doubler", f"{__name__}:_scaled", "x2 folded into the Linear")
        )


def test_a_third_party_adapter_is_applied() -> None:
    host = PluginHost(autoload=False, extra_plugins=(_ThirdParty(),))
    assert "doubler" in host.model_adapters and not host.failures
    model = nn.Sequential(_Doubler())
    adapted = adapt_model(model, host)
    assert isinstance(adapted[0], nn.Linear)
    x = torch.randn(3, 4)
    assert torch.allclose(adapted(x), model(x))


def _swin_like(pretrained: bool = False) -> nn.Module:
    """A model whose attention no wing can quantize (relative position bias, as Swin's)."""
    m = nn.Sequential(nn.Conv2d(3, 8, 8, 8), nn.Flatten(2))
    m.add_module("attn", _WindowAttention())
    return m


def _tv_seq_first(pretrained: bool = False) -> nn.Module:
    return nn.ModuleDict({"body": _SeqFirst()})


class _Models:
    @hookimpl
    def vitq_register_models(self, registry: Registry[ModelSpec]) -> None:
        for name, ref in (("swin_like", "_swin_like"), ("mha_seq_first", "_tv_seq_first")):
            registry.register(
                name,
                ModelSpec(name, f"{__name__}:{ref}", "unsupported", 10, default_dataset="cifar10_bundled"),
            )


@pytest.mark.parametrize(
    ("model", "what"),
    [("swin_like", "has relative_position_bias_table"), ("mha_seq_first", "no registered model adapter")],
)
def test_cli_refuses_an_unsupported_family_in_one_line(
    model: str, what: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from vitq_plugins.cli import main
    from vitq_plugins.core.manager import reset_host

    reset_host(PluginHost(autoload=False, extra_plugins=(_Models(),)))
    try:
        code = main(
            ["quantize", "--model", model, "--recipe", "minmax", "--calib", "8", "--eval", "8", "--json"]
        )
    finally:
        reset_host(None)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and what in err[0] and "Traceback" not in err[0], err


def test_post_norm_encoder_layer_is_refused_by_name() -> None:
    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True, norm_first=False)
    with pytest.raises(
        VitqError, match=r"module 'layer': TransformerEncoderLayer has norm_first=False \(post-norm\)"
    ):
        adapt_model(nn.ModuleDict({"layer": layer}))
