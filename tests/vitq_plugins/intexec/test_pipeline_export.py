"""``run_quantize(..., export="int-onnx")`` writes an integer ONNX file; recipes without integer form fail early."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vitq_plugins.core.errors import VitqError
from vitq_plugins.pipeline import run_quantize

ort = pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("recipe", ["ivit", "fqvit"])
def test_int_onnx_export_from_pipeline(tmp_path: Path, recipe: str) -> None:
    out = tmp_path / "run"
    res = run_quantize(
        "vit_test_tiny", recipe, n_calib=16, n_eval=16, export="int-onnx", out_dir=out, progress=False,
        batch_size=16, pretrained=False,
    )  # fmt: skip
    path = Path(res["export_path"])
    assert path == out / "model_int.onnx" and path.is_file()
    sess = ort.InferenceSession(str(path))
    inp = sess.get_inputs()[0]
    assert inp.type == "tensor(uint8)"
    x = np.random.default_rng(0).integers(0, 256, size=(2, *inp.shape[1:]), dtype=np.uint8)
    logits = sess.run(None, {inp.name: x})[0]
    assert logits.dtype == np.int32 and logits.shape[0] == 2


@pytest.mark.parametrize(
    ("recipe", "op"),
    [
        ("minmax", "LayerNorm stays float"),
        ("mptq", "LayerNorm is not quantized"),
        ("mptq_fq", "stays float"),
    ],
)
def test_recipe_without_integer_form_fails_before_work(tmp_path: Path, recipe: str, op: str) -> None:
    out = tmp_path / "run"
    with pytest.raises(VitqError, match=op) as info:
        run_quantize(
            "vit_test_tiny", recipe, n_calib=16, n_eval=16, export="int-onnx", out_dir=out, progress=False,
            batch_size=16, pretrained=False,
        )  # fmt: skip
    assert "int-onnx" in str(info.value)
    assert not out.exists()
