"""Fixtures for the Brevitas backend tests: the tiny random ViT, seeded batches and export checkers."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("brevitas")


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    from vitq_plugins.models.reference import vit_test_tiny

    return vit_test_tiny()


@pytest.fixture(scope="module")
def batches() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(4, 3, 32, 32, generator=g) for _ in range(2)]


@pytest.fixture(scope="module")
def x_eval() -> torch.Tensor:
    """An input different from every calibration/export input."""
    return torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def run_qcdq(path: Path, x: torch.Tensor) -> np.ndarray:

    from vitq_plugins.brevitas.export import ort_session

    sess = ort_session(path)
    out: np.ndarray = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    return out


def run_qonnx(path: Path, x: torch.Tensor) -> np.ndarray:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    mw = ModelWrapper(str(path)).transform(InferShapes())
    out: np.ndarray = execute_onnx(mw, {mw.graph.input[0].name: x.numpy()})[mw.graph.output[0].name]
    return out


def agreement(ref: torch.Tensor, out: np.ndarray) -> dict[str, Any]:
    """Fraction of logits within one output quantization step (8-bit range of the reference logits)."""
    r = ref.detach().numpy()
    step = float(r.max() - r.min()) / 255.0
    diff = np.abs(out - r)
    return {"within": float((diff <= step + 1e-6).mean()), "max_abs": float(diff.max()), "step": step}


@pytest.fixture(scope="session")
def onnx_tools() -> SimpleNamespace:
    """``run_qcdq``, ``run_qonnx`` and ``agreement`` for the tests."""
    return SimpleNamespace(run_qcdq=run_qcdq, run_qonnx=run_qonnx, agreement=agreement)
