"""Brevitas backend behaviour: bit-width overrides, errors, save/load, other model layouts, timing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
import time
from typing import Any

import pytest
import torch
from torch import nn

import vitq_plugins as vq
from vitq_plugins.config import QuantConfig
from vitq_plugins.sites import plan_sites


def _calibrate(module: nn.Module, x: torch.Tensor) -> None:
    from brevitas.graph.calibrate import calibration_mode

    with torch.no_grad(), calibration_mode(module):
        module(x)
    module.eval()


@pytest.mark.parametrize("how", ["let", "kwarg", "input_kwarg"])
@pytest.mark.parametrize("quantizer", ["minmax", "percentile", "omse"])
def test_bit_width_override(quantizer: str, how: str) -> None:
    """``.let(bit_width=3)`` and Brevitas' kwargs (``bit_width=`` on act layers, ``input_bit_width=``)."""
    from brevitas.nn import QuantIdentity
    from brevitas.nn import QuantLinear

    inj = vq.get_quantizer(quantizer).factory("brevitas")("act", 8)
    x = torch.randn(64, 32)
    if how == "input_kwarg":
        lin = QuantLinear(32, 4, bias=False, input_quant=inj, input_bit_width=3, return_quant_tensor=False)
        _calibrate(lin, x)
        assert int(lin.input_quant.bit_width()) == 3
        return
    q = (
        QuantIdentity(act_quant=inj.let(bit_width=3), return_quant_tensor=False)
        if how == "let"
        else QuantIdentity(act_quant=inj, bit_width=3, return_quant_tensor=False)
    )
    _calibrate(q, x)
    assert int(q.act_quant.bit_width()) == 3
    assert q(x).unique().numel() <= 2**3


def test_weight_and_special_bit_widths() -> None:
    from brevitas.nn import QuantLinear

    from vitq_plugins.brevitas import Int8WeightPerChannelMinMax
    from vitq_plugins.brevitas import QuantLayerNorm
    from vitq_plugins.brevitas import QuantSoftmax
    from vitq_plugins.papers.fqvit.brevitas import Uint4ActLog2
    from vitq_plugins.papers.fqvit.brevitas import Uint8ActPerChannelPTS

    lin = QuantLinear(16, 8, bias=True, weight_quant=Int8WeightPerChannelMinMax, weight_bit_width=4)
    w = lin.quant_weight().value
    assert int(lin.weight_quant.bit_width()) == 4
    assert all(row.unique().numel() <= 16 for row in w)
    ln = QuantLayerNorm(16, input_quant=Uint8ActPerChannelPTS.let(bit_width=5))
    x = torch.randn(4, 7, 16) * torch.linspace(0.1, 10, 16)
    _calibrate(ln, x)
    assert int(ln.input_quant.act_quant.bit_width()) == 5
    assert ln.input_quant.act_quant.scale().shape == (1, 1, 16)
    sm = QuantSoftmax(-1, Uint4ActLog2.let(bit_width=2)).eval()
    p = sm(torch.randn(2, 5, 9))
    nz = p[p > 0]
    assert torch.equal(torch.log2(nz), torch.round(torch.log2(nz))) and nz.min() >= 2.0**-3


def test_model_without_layernorm_or_attention_names_what_is_missing() -> None:
    from vitq_plugins.brevitas import BACKEND

    mlp = nn.Sequential(nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 2))
    with pytest.raises(vq.VitqError, match="LayerNorm"):
        BACKEND.quantize(mlp, QuantConfig("fqvit"), [torch.randn(2, 8)], progress=False)
    no_attn = nn.Sequential(nn.LayerNorm(8), nn.Linear(8, 8), nn.GELU())
    with pytest.raises(vq.VitqError, match="attention"):
        BACKEND.quantize(no_attn, QuantConfig("fqvit"), [torch.randn(2, 8)], progress=False)


def test_bad_layer_key_fails_before_any_work(tiny: Any) -> None:
    from vitq_plugins.brevitas import BACKEND

    def never() -> Iterator[torch.Tensor]:
        raise AssertionError("calibration data was read before the config was checked")
        yield torch.zeros(1)  # pragma: no cover

    cfg = QuantConfig("minmax", layers={"blocks.9.attn": {"keep_float": True}})
    with pytest.raises(vq.ConfigError, match="blocks.9.attn"):
        BACKEND.quantize(tiny, cfg, never(), progress=False)


def test_keep_float_and_per_layer_bits(tiny: Any, batches: Any) -> None:
    from vitq_plugins.brevitas import BACKEND

    cfg = QuantConfig(
        "fqvit",
        layers={"head": {"keep_float": True}, "re:blocks\\.1\\.mlp\\.fc\\d": {"w_bits": 4, "a_bits": 6}},
    )
    qm = BACKEND.quantize(tiny, cfg, batches, progress=False)
    assert type(qm.head) is nn.Linear
    assert int(qm.blocks[1].mlp.fc1.weight_quant.bit_width()) == 4
    assert int(qm.blocks[1].mlp.fc1.input_quant.bit_width()) == 6
    assert int(qm.blocks[0].mlp.fc1.weight_quant.bit_width()) == 8
    assert set(BACKEND.sites(qm, cfg)) == set(plan_sites(tiny, cfg))


def test_save_load_round_trip(tiny: Any, batches: Any, x_eval: Any, tmp_path: Path) -> None:
    from vitq_plugins.brevitas import BACKEND
    from vitq_plugins.brevitas import load_quantized
    from vitq_plugins.brevitas import save_quantized

    for recipe in ("mptq", "ivit"):
        cfg = QuantConfig(recipe, attn_bits=6)
        qm = BACKEND.quantize(tiny, cfg, batches, progress=False)
        save_quantized(qm, cfg, tmp_path / recipe)
        qm2, cfg2 = load_quantized(tiny, tmp_path / recipe)
        assert cfg2 == cfg
        with torch.no_grad():
            assert torch.equal(qm(x_eval), qm2(x_eval))
    with pytest.raises(vq.VitqError, match="not found"):
        load_quantized(tiny, tmp_path / "nothing")


class _Attn(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.num_heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-2, -1) * (c // self.num_heads) ** -0.5, dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(b, n, c))  # type: ignore[no-any-return]


class _Mlp(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))  # type: ignore[no-any-return]


class _Block(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm1, self.attn, self.norm2, self.mlp = (
            nn.LayerNorm(dim),
            _Attn(dim, 2),
            nn.LayerNorm(dim),
            _Mlp(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))  # type: ignore[no-any-return]


class _TinyViT(nn.Module):
    """A non-timm, FX-traceable ViT with the timm module structure."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 8, 8)
        self.blocks = nn.Sequential(_Block(dim), _Block(dim))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).transpose(1, 2)
        return self.head(self.norm(self.blocks(x)).mean(1))  # type: ignore[no-any-return]


@pytest.mark.parametrize("recipe", ["fqvit", "ivit"])
def test_non_timm_fx_traceable_vit(recipe: str, batches: Any, x_eval: Any) -> None:
    from vitq_plugins.brevitas import BACKEND
    from vitq_plugins.brevitas import QuantAttention
    from vitq_plugins.brevitas import QuantBlock

    torch.manual_seed(0)
    model = _TinyViT().eval()
    torch.fx.symbolic_trace(model)
    cfg = QuantConfig(recipe)
    qm = BACKEND.quantize(model, cfg, batches, progress=False)
    assert isinstance(qm.blocks[0], QuantBlock) and isinstance(qm.blocks[0].attn, QuantAttention)
    assert BACKEND.sites(qm, cfg) == {k: s.quantizer for k, s in plan_sites(model, cfg).items()}
    out = qm(x_eval)
    assert torch.isfinite(out).all()
    assert torch.nn.functional.cosine_similarity(out.flatten(), model(x_eval).flatten(), dim=0) > 0.9


def test_fused_attention_model(batches: Any, x_eval: Any) -> None:
    from vitq_plugins.brevitas import BACKEND
    from vitq_plugins.models.reference import vit_test_tiny

    model = vit_test_tiny()
    for m in model.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = True
    qm = BACKEND.quantize(model, QuantConfig("fqvit"), batches, progress=False)
    with torch.no_grad():
        out, ref = qm(x_eval), model(x_eval)
    assert torch.nn.functional.cosine_similarity(out.flatten(), ref.flatten(), dim=0) > 0.9


def test_failed_export_leaves_model_usable(tiny: Any, batches: Any, x_eval: Any, tmp_path: Path) -> None:
    from vitq_plugins.brevitas import BACKEND

    qm = BACKEND.quantize(tiny, QuantConfig("fqvit"), batches, progress=False)
    with torch.no_grad():
        ref = qm(x_eval)
    with pytest.raises(vq.VitqError, match="export"):
        BACKEND.export(qm, "qcdq", tmp_path / "bad.onnx", torch.randn(4, 3, 16, 16))
    with torch.no_grad():
        assert torch.equal(qm(x_eval), ref)
    assert BACKEND.export(qm, "qcdq", tmp_path / "ok.onnx", batches[0]).exists()
    with pytest.raises(vq.VitqError, match="format"):
        BACKEND.export(qm, "tflite", tmp_path / "x", batches[0])


def test_calibration_progress_timing_and_bounded_memory(
    tiny: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Timing of calibration on vit_test_tiny (printed), tqdm on stderr, observer state independent of #images."""
    from vitq_plugins.brevitas import BACKEND

    g = torch.Generator().manual_seed(2)
    for n_batches in (2, 8):
        data = [torch.randn(8, 3, 32, 32, generator=g) for _ in range(n_batches)]
        t0 = time.perf_counter()
        cfg = QuantConfig("fqvit").with_layers({"blocks.0.mlp.act": {"quantizers": {"gelu_output": "optm"}}})
        qm = BACKEND.quantize(tiny, cfg, data, progress=True)
        total = time.perf_counter() - t0
        stats = BACKEND.last_calibration
        assert stats["images"] == 8 * n_batches
        print(
            f"vit_test_tiny fqvit(+optm): {n_batches * 8} images, calibration {stats['seconds']:.2f}s, total {total:.2f}s"
        )
        tq = qm.blocks[0].mlp.act.quant.act_quant.fused_activation_quant_proxy.tensor_quant
        assert tq._observer is None  # observers are freed after freezing
    err = capsys.readouterr().err
    assert "calibrate" in err
