"""``fqvit`` -> integer program: PTS-aligned integer LayerNorm, LIS with log-domain rounding, GELU table."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vitq_plugins.intexec import run_integer_only
from vitq_plugins.intexec.kernels import layernorm_bias
from vitq_plugins.intexec.kernels import layernorm_exact_int
from vitq_plugins.intexec.kernels import layernorm_scale
from vitq_plugins.intexec.report import agreement_report
from vitq_plugins.papers.fqvit.lis import iexp_constants
from vitq_plugins.papers.fqvit.lis import lis_softmax_int
from vitq_plugins.papers.fqvit.lis import lis_softmax_unit
from vitq_plugins.papers.fqvit.lis import log2_quant


def test_lis_unit_linear_equals_lis_softmax_int() -> None:
    x = torch.randint(-200, 200, (2, 3, 17, 17), generator=torch.Generator().manual_seed(0))
    s = 0.02
    ref = lis_softmax_int(x, s, bits=4, n=20)
    assert torch.equal(lis_softmax_unit(x, iexp_constants(s), bits=4, n=20), ref)


def test_lis_unit_log_rounding_matches_float_log2_quant() -> None:
    s = 1e-3
    x = torch.randint(-6000, 1, (4, 8, 33), generator=torch.Generator().manual_seed(1))
    codes = lis_softmax_unit(x, iexp_constants(s), bits=6, n=8, rounding="log")
    ref, _ = log2_quant(torch.softmax(x.double() * s, dim=-1), bits=6)
    # i-exp is an approximation: codes agree except right at the rounding boundaries
    assert float((codes == ref).double().mean()) > 0.97
    assert int((codes - ref).abs().max()) <= 1
    linear = lis_softmax_unit(x, iexp_constants(s), bits=6, n=8, rounding="linear")
    assert float((linear == ref).double().mean()) < float((codes == ref).double().mean())


def test_layernorm_exact_int_is_layernorm() -> None:
    g = torch.Generator().manual_seed(2)
    c = 64
    x = torch.randint(-500, 500, (3, 7, c), generator=g)
    w, b = torch.rand(c, generator=g) + 0.5, torch.randn(c, generator=g)
    y = layernorm_exact_int(x, layernorm_bias(w, b)).double() * layernorm_scale(w).double()
    ref = torch.nn.functional.layer_norm(x.double(), (c,), w.double(), b.double(), eps=0.0)
    assert float((y - ref).abs().max()) < 1e-6


def test_fqvit_agreement_guard_and_onnx(ref_fqvit: SimpleNamespace, tmp_path: Path) -> None:
    ex = ref_fqvit.executor
    rep = agreement_report(ref_fqvit.qmodel, ex, ref_fqvit.eval_batches)
    assert rep.agreement >= 0.95
    assert rep.overflow_free
    assert rep.layer_max_err["blocks.0.norm1.input_quant.act_quant"] <= 1
    assert rep.layer_mismatch_frac["blocks.0.attn.qkv.input_quant"] < 5e-3
    x, _ = ref_fqvit.eval_batches[0]
    codes = ex.quantize_input(x[:16])
    (logits, _), _ = run_integer_only(ex, codes)

    ort = pytest.importorskip("onnxruntime")
    from vitq_plugins.intexec.onnx_export import export_int_onnx

    path = export_int_onnx(ex, tmp_path / "fq.onnx", x[:1])
    out = ort.InferenceSession(str(path)).run(None, {"input": codes.numpy()})[0]
    assert np.array_equal(out, logits.numpy())
