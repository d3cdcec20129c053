"""QCDQ files run their Linears on ORT integer kernels: weight transposes folded, MatMul+Add not fused to Gemm."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

pytestmark = pytest.mark.export


def test_qcdq_linears_run_on_integer_kernels(
    tiny: Any, batches: Any, x_eval: Any, tmp_path: Path, onnx_tools: Any
) -> None:
    import onnx

    from vitq_plugins.brevitas import BACKEND
    from vitq_plugins.brevitas.export import ort_session
    from vitq_plugins.brevitas.export import ort_session_options
    from vitq_plugins.config import QuantConfig

    qm = BACKEND.quantize(tiny, QuantConfig("minmax", 8, 8, 8), batches, progress=False)
    path = BACKEND.export(qm, "qcdq", tmp_path / "m.onnx", batches[0])
    graph = onnx.load(str(path)).graph
    producer = {o: n for n in graph.node for o in n.output}
    weight_transposes = [
        n
        for n in graph.node
        if n.op_type == "Transpose"
        and getattr(producer.get(n.input[0]), "op_type", "") == "DequantizeLinear"
        and list(n.attribute[0].ints) == [1, 0]
    ]
    assert not weight_transposes, "a weight DequantizeLinear still feeds a Transpose"
    assert not {i.name for i in graph.initializer} & {i.name for i in graph.input}, (
        "initializers listed as inputs"
    )

    so = ort_session_options()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    sess = ort_session(path, threads=1, options=so)
    ops = Counter(n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node)
    linears = sum(isinstance(m, torch.nn.Linear) for m in tiny.modules())
    # measured on vit_test_tiny: every Linear but the head on MatMulIntegerToFloat; without the pass and the
    # disabled MatMulAddFusion all of them were float Gemms on dequantized weights
    assert ops["MatMulIntegerToFloat"] >= linears - 1 and ops["Gemm"] <= 1, (ops, linears)
    with torch.no_grad():
        ref = qm(x_eval)
    out = sess.run(None, {sess.get_inputs()[0].name: x_eval.numpy()})[0]
    stats = onnx_tools.agreement(ref, out)
    assert stats["within"] >= 0.99, stats
