"""The integer ONNX program runs in ONNX Runtime and equals the PyTorch executor bit for bit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from vitq_plugins.intexec import onnx_export as ox  # noqa: E402
from vitq_plugins.ops._intmath import isqrt_newton  # noqa: E402
from vitq_plugins.papers.ivit import integer as iv  # noqa: E402
from vitq_plugins.papers.ivit.shift import shift_exp_unit  # noqa: E402
from vitq_plugins.papers.ivit.shift import shiftgelu_unit  # noqa: E402
from vitq_plugins.papers.ivit.shift import shiftmax_unit  # noqa: E402


def _session(model: object) -> object:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so)  # type: ignore[attr-defined]


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
    res: np.ndarray = _session(model).run(None, {"x": x.numpy()})[0]  # type: ignore[attr-defined]
    return res


def test_floor_div_matches_torch_for_negative_values() -> None:
    x = torch.arange(-40, 41, dtype=torch.int64)
    for d in (2, 16, -7):
        got = _run_graph(lambda g, i, d=d: g.floor_div(i, g.const(d)), x)
        assert np.array_equal(got, torch.div(x, d, rounding_mode="floor").numpy())


def test_shift_exp_matches_including_saturation() -> None:
    x = torch.cat([torch.arange(-3000, 1, 7), torch.tensor([5, 100, 4000, 10**6])]).to(torch.int64)
    for x0, n in ((-11, 15), (-300, 23), (-2, 23)):
        got = _run_graph(lambda g, i, x0=x0, n=n: iv.onnx_shift_exp(g, i, x0, n, 2**31 - 1), x)
        assert np.array_equal(got, shift_exp_unit(x, x0, n, cap=2**31 - 1).numpy())


@pytest.mark.parametrize("division", ["official", "exact"])
def test_shiftmax_and_shiftgelu_match(division: str) -> None:
    g0 = torch.Generator().manual_seed(0)
    x = torch.randint(-128, 128, (2, 3, 9, 9), generator=g0, dtype=torch.int64)
    got = _run_graph(lambda g, i: iv.onnx_shiftmax(g, i, -21, 15, 8, division), x)
    assert np.array_equal(got, shiftmax_unit(x, -21, n=15, out_bits=8, division=division).numpy())  # type: ignore[arg-type]
    y = torch.randint(-128, 128, (3, 5, 64), generator=g0, dtype=torch.int64)
    y[0, 0] = -5  # all-negative row: e^(-x_max) with a positive argument
    got = _run_graph(lambda g, i: iv.onnx_shiftgelu(g, i, -30, 23, 8, division), y)
    assert np.array_equal(got, shiftgelu_unit(y, -30, n=23, out_bits=8, division=division).numpy())  # type: ignore[arg-type]


def test_isqrt_matches_exactly() -> None:
    v = torch.tensor([0, 1, 2, 3, 4, 15, 16, 17, 10**6, 2**40 - 1, 2**40, 2**62 - 5], dtype=torch.int64)
    got = _run_graph(lambda g, i: ox.isqrt(g, i), v)
    assert np.array_equal(got, isqrt_newton(v, 10, init="auto").numpy())


def test_layernorm_matches_including_constant_rows() -> None:
    from vitq_plugins.intexec.layers import IntLayerNorm
    from vitq_plugins.intexec.requant import QParams
    from vitq_plugins.intexec.requant import Requant

    c = 32
    x = torch.randint(-128, 128, (2, 4, c), generator=torch.Generator().manual_seed(1), dtype=torch.int64)
    x[0, 0] = 3
    bias = torch.randint(-(2**20), 2**20, (c,), generator=torch.Generator().manual_seed(2))
    ln = IntLayerNorm(
        iv.ILayerNorm(bias), Requant(torch.full((c,), 2.0**-24), QParams(1.0, 5, 0, 255), 2**31 + 2**20)
    )
    got = _run_graph(lambda g, i: ox._layernorm(g, i, ln, c), x)
    assert np.array_equal(got, ln(x).numpy())
    assert np.array_equal(got, ln.out(iv.ilayernorm_int(x, bias)).numpy())


def test_model_export_is_bit_exact(ref: SimpleNamespace, tmp_path: Path) -> None:
    x, _ = ref.eval_batches[0]
    path = ox.export_int_onnx(ref.executor, tmp_path / "model_int.onnx", x[:1])
    model = onnx.load(str(path))
    ops = {n.op_type for n in model.graph.node}
    assert "MatMulInteger" in ops and "BitShift" in ops
    float_types = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16}
    assert all(init.data_type not in float_types for init in model.graph.initializer)
    assert all(
        a.i not in float_types
        for n in model.graph.node
        if n.op_type == "Cast"
        for a in n.attribute
        if a.name == "to"
    )
    meta = {p.key: p.value for p in model.metadata_props}
    assert float(meta["logit_scale"]) == pytest.approx(ref.executor.out_scale)
    codes = ref.executor.quantize_input(x)
    out = _session(model).run(None, {"input": codes.numpy()})[0]  # type: ignore[attr-defined]
    with torch.no_grad():
        li, _ = ref.executor(codes)
    assert out.dtype == np.int32
    assert np.array_equal(out, li.numpy())


def test_select_mod_and_shift_helpers_match_torch() -> None:
    x = torch.tensor([-(2**40), -513, -9, -8, -1, 0, 1, 7, 8, 9, 512, 2**40], dtype=torch.int64)
    zero = torch.zeros_like(x)
    for build, want in [
        (lambda g, i: g.where(g.op("Less", i, g.const(0)), i, g.const(0)), torch.where(x < 0, x, zero)),
        (lambda g, i: g.where(g.op("Less", i, g.const(0)), g.const(0), i), torch.where(x < 0, zero, x)),
        (lambda g, i: g.where(g.op("Less", i, g.const(0)), g.op("Neg", i), i), x.abs()),
        (lambda g, i: g.mod(i, g.const(8)), torch.remainder(x, 8)),
        (lambda g, i: g.mod(i, g.const(-7)), torch.remainder(x, -7)),
        (
            lambda g, i: g.floor_div(i, g.const([3, -5] * 6)),
            torch.div(x, torch.tensor([3, -5] * 6), rounding_mode="floor"),
        ),
        (lambda g, i: g.shr(i, 3, pre=5, post=-2), torch.div(x + 5, 8, rounding_mode="floor") - 2),
        (lambda g, i: g.shr_var(i, g.const([0, 1, 2, 3] * 3)), x >> torch.tensor([0, 1, 2, 3] * 3)),
    ]:
        assert np.array_equal(_run_graph(build, x), want.numpy())


def test_floor_log2_matches_bit_length() -> None:
    v = torch.tensor(
        [0, 1, 2, 3, 4, 255, 256, 2**31 - 1, 2**31, 2**32, 2**47 + 3, 2**62 - 1, 2**62], dtype=torch.int64
    )
    want = [max(int(t).bit_length() - 1, 0) for t in v]
    assert _run_graph(lambda g, i: ox.floor_log2(g, i), v).tolist() == want


def test_shiftmax_through_the_exp_table_matches() -> None:
    from vitq_plugins.intexec.requant import QParams
    from vitq_plugins.intexec.requant import Requant
    from vitq_plugins.papers.ivit.integer import shift_exp_table

    rq = Requant(1.0, QParams(1.0, 0, -128, 127), 2**20)
    table = shift_exp_table(rq, -21, 15)
    x = torch.randint(-128, 128, (2, 3, 9, 9), generator=torch.Generator().manual_seed(3), dtype=torch.int64)
    x[0, 0, 0] = torch.tensor([-128, 127] + [0] * 7)  # the widest row: d reaches -255
    got = _run_graph(lambda g, i: iv.onnx_shiftmax(g, i, -21, 15, 8, "official", table), x)
    assert np.array_equal(got, shiftmax_unit(x, -21, n=15, out_bits=8).numpy())
