"""``import vitq_plugins`` must not import streamlit, brevitas, onnx, torchao (nor torch.ao quantization)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_import_is_lean() -> None:
    code = (
        "import sys, json, vitq_plugins as v; v.list_quantizers(); v.list_recipes(); "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('streamlit','brevitas','onnx','onnxruntime','qonnx','timm','torch','torchao','plotly','pandas'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
