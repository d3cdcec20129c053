"""Measurement helpers: ONNX Runtime sessions, side-by-side medians, exports, provenance bits."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import importlib.metadata as md
import math
from pathlib import Path
import platform
import statistics
import time
from typing import Any

import torch

from integration.benchlib.plan import CSV_COLUMNS

# ----------------------------------------------------------------------------------------------- helpers


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_version(pkg: str) -> str | None:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return None


def result_row(section: str, name: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(CSV_COLUMNS)
    row.update(section=section, name=name, status="ok")
    row.update(values)
    return row


def eval_row(name: str, res: dict[str, Any], fp_calib_s: float, wall: float) -> dict[str, Any]:
    return result_row(
        "accuracy",
        name,
        recipe=res["recipe"],
        backend=res["backend"],
        w_bits=res["w_bits"],
        a_bits=res["a_bits"],
        attn_bits=res["attn_bits"],
        top1=res["q_top1"],
        top1_drop=res["top1_drop"],
        agreement=res["agreement"],
        kl=res["kl"],
        size_mb=res["size_mb"],
        bops=res["bops"],
        calib_s=res["calib_s"],
        calib_x_fp=res["calib_s"] / fp_calib_s if fp_calib_s > 0 else None,
        eval_s=res["eval_s"],
        wall_s=wall,
        n_eval=res["n_eval"],
        n_calib=res["n_calib"],
    )


def ort_session(path: Path, threads: int, qcdq: bool = False) -> Any:
    """A sequential CPU session; ``qcdq=True`` opens a vitq QCDQ file the way users are told to (see
    ``vitq_plugins.brevitas.export.ort_session``: its Linears then run on ``MatMulIntegerToFloat``)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if qcdq:
        from vitq_plugins.brevitas.export import ort_session

        so.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "1")
        return ort_session(path, threads, options=so)
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_runner(sess: Any, fixed_batch: int | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> logits`` through an ORT session; a fixed-batch model gets zero-padded chunks."""
    name = sess.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        if fixed_batch is None:
            return torch.from_numpy(sess.run(None, {name: x.numpy()})[0])
        outs = []
        for chunk in x.split(fixed_batch):
            n = chunk.shape[0]
            if n < fixed_batch:
                chunk = torch.cat([chunk, chunk.new_zeros((fixed_batch - n, *chunk.shape[1:]))])
            outs.append(torch.from_numpy(sess.run(None, {name: chunk.numpy()})[0][:n]))
        return torch.cat(outs)

    return run


class AsModule(torch.nn.Module):
    """An ``x -> logits`` callable as a module, so :func:`evaluate` can score ORT sessions."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class CalibReader:
    """ONNX Runtime ``CalibrationDataReader`` streaming calibration batches (never all images at once)."""

    def __init__(self, input_name: str, batches: Callable[[], Iterator[torch.Tensor]]) -> None:
        self.input_name = input_name
        self._make = batches
        self._it: Iterator[torch.Tensor] | None = None

    def get_next(self) -> dict[str, Any] | None:
        if self._it is None:
            self._it = self._make()
        x = next(self._it, None)
        return None if x is None else {self.input_name: x.numpy()}

    def rewind(self) -> None:
        self._it = None


def onnx_weight_mb(path: Path) -> float:
    """Initializer storage in MB (10^6 bytes) at each tensor's element size, scales/zero-points excluded."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    total = 0
    for init in model.graph.initializer:
        if init.name.endswith(("_scale", "_zero_point")):
            continue
        n = math.prod(init.dims)
        total += n * helper.tensor_dtype_to_np_dtype(init.data_type).itemsize
    return total / 1e6


def export_fp_onnx(model: torch.nn.Module, path: Path, example: torch.Tensor) -> Path:
    """The FP model as ONNX with a dynamic batch axis (TorchScript exporter, opset 17)."""
    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    return path


def median_side_by_side(
    engines: dict[str, Callable[[torch.Tensor], Any]], x: torch.Tensor, reps: int, warmup: int
) -> dict[str, float]:
    """Median ms per engine; each repetition runs every engine once, in turn, so noise hits all alike."""
    with torch.no_grad():
        for _ in range(warmup):
            for fn in engines.values():
                fn(x)
        times: dict[str, list[float]] = {k: [] for k in engines}
        for _ in range(reps):
            for name, fn in engines.items():
                t0 = time.perf_counter()
                fn(x)
                times[name].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def top1_noise(p: float, n: int) -> float:
    """Tolerance of 'quantized top-1 not above FP': two binomial standard errors plus one image."""
    return 2.0 * math.sqrt(max(p * (1.0 - p), 0.0) / max(n, 1)) + 1.0 / max(n, 1)
