"""The integer forms of ``shiftmax_log2`` and ``shiftgelu_fine``: the executor kernels equal the reference
kernels, and their ONNX emitters equal the executor bit for bit in ONNX Runtime."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from vitq_plugins.intexec import onnx_export as ox  # noqa: E402
from vitq_plugins.papers.ivit import integer as iv  # noqa: E402
from vitq_plugins.papers.ivit.fineexp import exp_constants  # noqa: E402
from vitq_plugins.papers.ivit.fineexp import pow2_table  # noqa: E402
from vitq_plugins.papers.ivit.fineexp import shift_exp_fine  # noqa: E402
from vitq_plugins.papers.ivit.finegelu import gelu_constants  # noqa: E402
from vitq_plugins.papers.ivit.finegelu import shiftgelu_fine  # noqa: E402
from vitq_plugins.papers.ivit.finegelu import shiftgelu_fine_unit  # noqa: E402
from vitq_plugins.papers.ivit.shiftlog import code_table  # noqa: E402
from vitq_plugins.papers.ivit.shiftlog import log2_codes  # noqa: E402
from vitq_plugins.papers.ivit.shiftlog import log2_dequant  # noqa: E402
from vitq_plugins.papers.ivit.shiftlog import shiftmax_log2  # noqa: E402


def _run_graph(build: Callable[[ox.OnnxGraph, str], str], x: torch.Tensor) -> np.ndarray:
    from onnx import TensorProto
    from onnx import helper

    g = ox.OnnxGraph()
    out = build(g, "x")
    g.nodes.append(helper.make_node("Identity", [out], ["y"]))
    graph = helper.make_graph(
        g.nodes,
        "t",
        [helper.make_tensor_value_info("x", TensorProto.INT64, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.INT64, None)],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ox.OPSET)])
    model.ir_version = min(model.ir_version, 9)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    res: np.ndarray = ort.InferenceSession(model.SerializeToString(), so).run(None, {"x": x.numpy()})[0]
    return res


def test_fine_exp_and_log2_codes_match_in_onnx() -> None:
    k, x0 = exp_constants(0.09)
    table = pow2_table(x0, 20)
    d = (torch.randint(-300, 1, (3, 197), generator=torch.Generator().manual_seed(0)) << k).to(torch.int64)
    e = shift_exp_fine(d, x0, 20, table)
    got = _run_graph(lambda g, i: iv.onnx_shift_exp_fine(g, i, x0, 20, table), d)
    assert np.array_equal(got, e.numpy())
    for bits in (4, 6, 8):
        got = _run_graph(lambda g, i, b=bits: iv.onnx_log2_codes(g, i, b), e)
        assert np.array_equal(got, log2_codes(e, bits).numpy()), bits


def test_fine_gelu_emitted_ops_match() -> None:
    k, x0 = gelu_constants(0.07)
    table = pow2_table(x0, 20)
    x = torch.arange(-127, 128, dtype=torch.int64) << k

    def build(g: ox.OnnxGraph, i: str) -> str:
        m = g.op("Max", i, g.const(0))
        e_x = iv.onnx_shift_exp_fine(g, g.op("Sub", i, m), x0, 20, table)
        e_m = iv.onnx_shift_exp_fine(g, g.op("Neg", m), x0, 20, table)
        sigma = g.floor_div(g.shl_u(e_x, g.const(15), "LEFT"), g.op("Add", e_x, e_m))
        return g.op("Mul", i, sigma)

    assert np.array_equal(_run_graph(build, x), shiftgelu_fine_unit(x, x0, table).numpy())
    ref, _ = shiftgelu_fine(x >> k, 0.07)
    assert torch.equal(shiftgelu_fine_unit(x, x0, table), ref)


def test_shiftmax_log2_form_is_the_reference_attention() -> None:
    """The form's ``table[code] @ v`` is the reference codes' probabilities times ``v`` (Brevitas tables)."""
    from vitq_plugins.intexec.extension import QParams
    from vitq_plugins.intexec.extension import Requant

    g = torch.Generator().manual_seed(1)
    scores = torch.randint(-4000, 4000, (1, 2, 197, 197), generator=g, dtype=torch.int64)
    v = torch.randint(-50, 50, (1, 2, 197, 16), generator=g, dtype=torch.int64)
    grid = QParams(0.08, 0, -127, 127, "logits")
    rq = Requant(torch.tensor(1 / 40.0, dtype=torch.float64), grid, 4000)
    k, x0 = exp_constants(0.08)
    table, frac = code_table(4)
    form = iv.ShiftmaxLog2(rq, x0, 20, 4, table, in_shift=k)
    logits = rq(scores)
    codes = shiftmax_log2(logits, 0.08, bits=4)
    want = (log2_dequant(codes, 4, torch.float64) * 2**frac).round().long() @ v
    assert torch.equal(form(scores, v), want)
