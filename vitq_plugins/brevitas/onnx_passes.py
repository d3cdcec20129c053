"""Graph clean-ups of an exported QCDQ file so that ONNX Runtime runs it on integer kernels.

The TorchScript exporter writes a quantized ``nn.Linear`` as ``DequantizeLinear(W_int8 [out, in], axis=0) ->
Transpose(perm=[1, 0]) -> MatMul``. ORT's QDQ fusions (``DQ -> MatMul -> Q`` into ``QLinearMatMul`` /
``MatMulIntegerToFloat``) need the weight's ``DequantizeLinear`` to feed the ``MatMul`` directly, so with the
``Transpose`` in between every Linear ran as a float ``Gemm`` on dequantized weights and the "int8" model was
slower than fp32 in ORT. :func:`fold_weight_transposes` stores the weight pre-transposed (``[in, out]``,
quantization axis 1): the same values, without the ``Transpose``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["fold_weight_transposes"]


def fold_weight_transposes(model: Any) -> int:
    """Rewrite ``DQ(W, axis=0) -> Transpose([1, 0])`` on 2-D integer initializers into ``DQ(W^T, axis=1)``.

    Only rewrites when the initializer, the ``DequantizeLinear`` output and the ``Transpose`` output are
    not used anywhere else, so the graph computes exactly the same values.

    Args:
        model: an ``onnx.ModelProto``; modified in place.

    Returns:
        The number of weights rewritten.
    """
    from onnx import helper
    from onnx import numpy_helper

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    uses = Counter(name for n in g.node for name in n.input)
    uses.update(o.name for o in g.output)
    producer = {o: n for n in g.node for o in n.output}
    drop: list[Any] = []
    count = 0
    for tr in g.node:
        if tr.op_type != "Transpose" or len(tr.input) != 1:
            continue
        perm = next((list(helper.get_attribute_value(a)) for a in tr.attribute if a.name == "perm"), None)
        dq = producer.get(tr.input[0])
        if perm != [1, 0] or dq is None or dq.op_type != "DequantizeLinear" or uses[dq.output[0]] != 1:
            continue
        w = inits.get(dq.input[0])
        if w is None or len(w.dims) != 2 or uses[w.name] != 1:
            continue
        axis = next((int(helper.get_attribute_value(a)) for a in dq.attribute if a.name == "axis"), 1)
        scale = inits.get(dq.input[1])
        per_channel = scale is not None and len(scale.dims) == 1 and scale.dims[0] > 1
        if per_channel and axis not in (0, -2):
            continue
        arr = numpy_helper.to_array(w)
        w.CopyFrom(numpy_helper.from_array(arr.T.copy(), w.name))
        del dq.attribute[:]
        if per_channel:
            dq.attribute.append(helper.make_attribute("axis", 1))
        # the DQ now yields the transposed weight under the Transpose's output name
        dq.output[0] = tr.output[0]
        drop.append(tr)
        count += 1
    for n in drop:
        g.node.remove(n)
    return count
