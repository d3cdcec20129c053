"""The PT2E wing quantizes the planned sites of a config (overrides, keep_float) and refuses what it cannot do."""

from __future__ import annotations

from pathlib import Path
import warnings

import pytest
import torch
from torch import nn

from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import ConfigError
from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.manager import get_host
from vitq_plugins.pt2e.backend import BACKEND
from vitq_plugins.pt2e.backend import prepare
from vitq_plugins.sites import plan_sites

CFG = QuantConfig(
    "minmax",
    w_bits=8,
    a_bits=8,
    attn_bits=6,
    layers={"head": {"keep_float": True}, r"re:blocks\.1\.mlp\.fc.": {"w_bits": 4}},
)


@pytest.fixture(scope="module")
def qmodel(tiny: nn.Module, calib: list[torch.Tensor]) -> nn.Module:
    return BACKEND.quantize(tiny, CFG, iter(calib), progress=False)


def _qd(gm: torch.fx.GraphModule, name: str) -> list[torch.fx.Node]:
    return [n for n in gm.graph.nodes if n.op == "call_function" and name in str(n.target)]


def test_sites_are_the_plan(tiny: nn.Module, qmodel: nn.Module) -> None:
    plan = plan_sites(tiny, CFG, get_host())
    assert BACKEND.sites(qmodel, CFG) == {k: s.quantizer for k, s in plan.items()}
    assert not any(k.startswith("head:") for k in BACKEND.sites(qmodel, CFG))


def test_converted_graph_quantizes_every_tensor_once(tiny: nn.Module, qmodel: nn.Module) -> None:
    assert isinstance(qmodel, torch.fx.GraphModule)
    prep = prepare(tiny, CFG, torch.zeros(2, 3, 32, 32))
    counts = prep.quantizer.report.counts
    # ln_input: 2 blocks x 2 + final norm; gelu: 2 (fc2's input); softmax: 2; act: the image and, per block,
    # the LayerNorm outputs (qkv, fc1) and proj's input (head kept float); attn_matmul: q, k, v per block; the
    # residual adds all enter a LayerNorm (ln_input wins)
    assert counts == {
        "act": 7,
        "ln_input": 5,
        "gelu_output": 2,
        "softmax_output": 2,
        "attn_matmul": 6,
        "weight": 9,
    }
    per_tensor = _qd(qmodel, "quantize_per_tensor")
    # activation quantize ops: one per annotated tensor (weights are folded to int8 constants)
    assert len([n for n in per_tensor if "dequantize" not in str(n.target)]) == sum(counts.values()) - 9
    # the head is kept float: its weight is not quantized
    w4 = [n for n in _qd(qmodel, "dequantize_per_channel") if n.args[4] == -8]
    assert len(w4) == 2  # blocks.1.mlp.fc1/fc2 at 4 bits


def test_batch_is_dynamic_and_w8a8_is_near_fp(
    tiny: nn.Module, qmodel: nn.Module, calib: list[torch.Tensor]
) -> None:
    for b in (1, 5):
        x = torch.randn(b, 3, 32, 32, generator=torch.Generator().manual_seed(b))
        with torch.no_grad():
            assert qmodel(x).shape == (b, 10)
    w8 = BACKEND.quantize(tiny, QuantConfig("minmax", attn_bits=8), calib, progress=False)
    w4 = BACKEND.quantize(tiny, QuantConfig("minmax", w_bits=4, a_bits=4, attn_bits=4), calib, progress=False)
    with torch.no_grad():
        ref, out8, out4 = tiny(calib[0]), w8(calib[0]), w4(calib[0])
    err8, err4 = (out8 - ref).norm() / ref.norm(), (out4 - ref).norm() / ref.norm()
    # the random 2-block test model is very sensitive (Brevitas W8A8 is at a similar error on it)
    assert err8 < 0.6 and err4 > 2 * err8


def test_input_model_untouched(calib: list[torch.Tensor]) -> None:
    from vitq_plugins.models.reference import vit_test_tiny

    model = vit_test_tiny()
    attns = [m for m in model.modules() if hasattr(m, "fused_attn")]
    for m in attns:
        m.fused_attn = True
    before = {k: v.clone() for k, v in model.state_dict().items()}
    BACKEND.quantize(model, QuantConfig("minmax"), calib[:1], progress=False)
    assert all(m.fused_attn for m in attns)  # the wing unfuses a copy
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("recipe", ["minmax", "mptq", "repq", "ivit"])
def test_no_torch_ao_deprecation_warning(tiny: nn.Module, calib: list[torch.Tensor], recipe: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        qm = BACKEND.quantize(tiny, QuantConfig(recipe), calib, progress=False)
        qm.eval()  # evaluate() calls it; an exported model refuses it unless allowed
        qm(calib[0])


@pytest.mark.parametrize("recipe", sorted(get_host().recipes))
def test_every_registered_recipe_is_planned_for_pt2e(tiny: nn.Module, recipe: str) -> None:
    plan = plan_sites(tiny, QuantConfig(recipe, attn_bits=4), get_host(), backend="pt2e")
    assert plan == plan_sites(tiny, QuantConfig(recipe, attn_bits=4), get_host())


def test_bits_beyond_8_refused_at_plan_time(tiny: nn.Module) -> None:
    with pytest.raises(ConfigError, match=r"in the pt2e backend: valid 2..8"):
        plan_sites(tiny, QuantConfig("minmax", a_bits=10), get_host(), backend="pt2e")


def test_no_batches_and_bad_exports(tiny: nn.Module) -> None:
    with pytest.raises(VitqError, match="no batches"):
        BACKEND.quantize(tiny, QuantConfig("minmax"), [], progress=False)
    with pytest.raises(VitqError, match=r"exports no 'qonnx'.*'qcdq'"):
        BACKEND.check_export(tiny, QuantConfig("minmax"), "qonnx")
    BACKEND.check_export(tiny, QuantConfig("minmax"), "none")


def test_registered_and_info() -> None:
    impl = get_host().backends.get("pt2e").load()
    assert impl is BACKEND
    info = impl.info()
    assert info["name"] == "pt2e" and info["torchao"] and "qcdq" in info["export_formats"]


def test_qcdq_export_runs_in_onnxruntime(qmodel: nn.Module, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    path = BACKEND.export(qmodel, "qcdq", tmp_path / "m.onnx", x)
    sess = ort.InferenceSession(str(path))
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(out), qmodel(x), atol=1e-5, rtol=1e-4)
    ops = {n.op_type for n in __import__("onnx").load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_qcdq_export_of_a_custom_op_recipe_is_refused_up_front(tiny: nn.Module) -> None:
    with pytest.raises(
        VitqError, match=r"'lis' at blocks.0.attn:softmax_output is the custom op .* no standard ONNX"
    ):
        BACKEND.check_export(tiny, QuantConfig("fqvit"), "qcdq")
