"""Contract of the Brevitas backend: every recipe and every quantizer at its sites quantizes, calibrates,
runs, exports to QCDQ (ONNX Runtime) and QONNX (qonnx execute_onnx) and agrees with Brevitas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import vitq_plugins as vq
from vitq_plugins.config import QuantConfig
from vitq_plugins.sites import plan_sites

pytestmark = pytest.mark.export

#: (quantizer, format) pairs that cannot be exported faithfully, with the reason (none at present: keep
#: the mechanism so a new quantizer with a known export gap is tested for a clean failure).
QCDQ_XFAIL: dict[str, str] = {}

#: one layer per site, used to put a quantizer on each of its sites
SITE_LAYER = {
    "weight": "head",
    "act": "blocks.0.attn.qkv",
    "ln_input": "blocks.0.norm1",
    "softmax_output": "blocks.0.attn",
    "attn_matmul": "blocks.0.attn",
    "gelu_output": "blocks.0.mlp.act",
    "residual": "blocks.0",
}


def _check_exports(
    qm: torch.nn.Module,
    name: str,
    quantizers: set[str],
    tmp_path: Path,
    batches: Any,
    x: Any,
    tools: Any,
    steps: float = 1.0,
) -> None:
    from vitq_plugins.brevitas import BACKEND

    with torch.no_grad():
        ref = qm(x)
    for fmt, runner in (("qcdq", tools.run_qcdq), ("qonnx", tools.run_qonnx)):
        bad = sorted(q for q in quantizers if fmt == "qcdq" and q in QCDQ_XFAIL)
        if bad:
            with pytest.raises(vq.VitqError, match="export"):
                BACKEND.export(qm, fmt, tmp_path / f"{name}.{fmt}.onnx", batches[0])
            with torch.no_grad():
                assert torch.equal(qm(x), ref), "a failed export must leave the model usable"
            continue
        path = BACKEND.export(qm, fmt, tmp_path / f"{name}.{fmt}.onnx", batches[0])
        stats = tools.agreement(ref, runner(path, x))
        if steps != 1.0:
            stats["within"] = float(
                (abs(runner(path, x) - ref.numpy()) <= steps * stats["step"] + 1e-6).mean()
            )
        assert stats["within"] >= 0.99, f"{name} {fmt}: {stats}"


#: recipes whose contract fails today, with the reason (strict: fixing one turns its xfail into a failure)
RECIPE_XFAIL: dict[str, str] = {
    "ivit": "issue #17: the QONNX graph of the log2 Shiftmax + fine ShiftGELU (the ivit defaults since session 18) "
    "run by qonnx's executor is within one output step of Brevitas on 75% of the logits on this tiny random model "
    "(exact with either kernel alone, and QCDQ in ONNX Runtime and the integer program are exact); not found yet",
}


@pytest.mark.parametrize(
    "recipe",
    [
        pytest.param(r, marks=pytest.mark.xfail(strict=True, reason=RECIPE_XFAIL[r]))
        if r in RECIPE_XFAIL
        else r
        for r in vq.list_recipes()
    ],
)
def test_recipe_contract(
    recipe: str, tiny: Any, batches: Any, x_eval: Any, tmp_path: Path, onnx_tools: Any
) -> None:
    from vitq_plugins.brevitas import BACKEND

    cfg = QuantConfig(recipe, w_bits=8, a_bits=8, attn_bits=4)
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    qm = BACKEND.quantize(tiny, cfg, batches, progress=False)
    assert all(torch.equal(before[k], v) for k, v in tiny.state_dict().items()), "input model was modified"
    assert not qm.training
    plan = plan_sites(tiny, cfg)
    carried = BACKEND.sites(qm, cfg)
    assert set(carried) == set(plan)
    assert carried == {k: s.quantizer for k, s in plan.items()}
    assert BACKEND.sites(tiny, cfg) == carried
    out = qm(x_eval)
    assert out.shape == (4, 10) and torch.isfinite(out).all()
    spec = vq.get_recipe(recipe)
    used = set(spec.quantizers.values())
    # a recipe that keeps LayerNorm float (``repq``, ``mptq``): the runtime's float LayerNorm differs from
    # torch's in the last bits, which can flip a code of the next quantizer; the flips travel through the blocks
    # (``mptq``: 95% of the logits within 2 output steps, all within 3): allow three output steps
    steps = 1.0 if "ln_input" in spec.quantizers else 3.0
    _check_exports(qm, recipe, used, tmp_path, batches, x_eval, onnx_tools, steps)


def _quantizer_sites() -> list[tuple[str, str]]:
    out = []
    for name in vq.list_quantizers():
        spec = vq.get_quantizer(name)
        out.append((name, ",".join(sorted(spec.sites))))
    return out


@pytest.mark.parametrize(("quantizer", "sites"), _quantizer_sites())
def test_quantizer_at_its_sites(
    quantizer: str, sites: str, tiny: Any, batches: Any, x_eval: Any, tmp_path: Path, onnx_tools: Any
) -> None:
    """Each quantizer is put on every site it supports (one layer per site) of a MinMax model."""
    from vitq_plugins.brevitas import BACKEND

    spec = vq.get_quantizer(quantizer)
    layers: dict[str, dict[str, Any]] = {}
    for site in sites.split(","):
        layers.setdefault(SITE_LAYER[site], {"quantizers": {}})["quantizers"][site] = quantizer
    bits = max(spec.min_bits, min(6, spec.max_bits))
    cfg = QuantConfig("minmax", attn_bits=bits).with_layers(layers)
    qm = BACKEND.quantize(tiny, cfg, batches, progress=False)
    carried = BACKEND.sites(qm, cfg)
    plan = plan_sites(tiny, cfg)
    assert carried == {k: s.quantizer for k, s in plan.items()}
    for site in sites.split(","):
        assert carried[f"{SITE_LAYER[site]}:{site}"] == quantizer
    _check_exports(qm, quantizer, {quantizer}, tmp_path, batches, x_eval, onnx_tools)
