"""Measured latency of the deployable export: a config's QCDQ ONNX file timed in ONNX Runtime.

Size, BOPs and average bits are estimates of cost; the trade-off page can also put top-1 against what the
exported model actually takes per image. The QCDQ file is the one *Export* builds (standard ONNX ops, the
integer MatMul kernels of ORT selected by :func:`vitq_plugins.brevitas.export.ort_session`); it is timed
on one image, after warm-up runs, and the median is kept in the config's evaluation record (session and
disk), with the threads and the runtime version it was measured with.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
import statistics
import tempfile
import time
from typing import Any

import numpy as np

from explorer_app import evaluations
from explorer_app import services
from explorer_app.state import Settings
from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import VitqError

__all__ = ["measure_latency", "time_onnx"]


def time_onnx(path: Path, input_size: tuple[int, int, int], *, threads: int, warmup: int, runs: int) -> float:
    """Median milliseconds of one-image inference of the QCDQ file ``path`` in ONNX Runtime."""
    from vitq_plugins.brevitas.export import ort_session

    sess = ort_session(path, threads)
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((1, *input_size)).astype(np.float32)
    for _ in range(warmup):
        sess.run(None, {name: x})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append((time.perf_counter() - t) * 1e3)
    return float(statistics.median(times))


def measure_latency(
    settings: Settings,
    fp: services.FPModel,
    record: MutableMapping[str, Any],
    *,
    threads: int = 2,
    warmup: int = 5,
    runs: int = 30,
) -> dict[str, Any]:
    """Export ``record``'s config as QCDQ, time it, and store ``record["latency"]`` (also on disk).

    Raises:
        VitqError: the backend cannot export QCDQ (the fx backend), or onnxruntime is missing.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise VitqError("measuring latency needs onnxruntime: pip install onnxruntime") from None
    if settings.backend != "brevitas":
        raise VitqError(
            f"latency is measured on the QCDQ export, which the {settings.backend!r} backend does not write; "
            "pick the brevitas backend on Model & data"
        )
    cfg = QuantConfig.from_dict(record["config"])
    data, _ = evaluations.export_model(settings, fp, cfg, "qcdq")
    with tempfile.TemporaryDirectory(prefix="vitq-latency-") as tmp:
        path = Path(tmp) / "model_qcdq.onnx"
        path.write_bytes(data)
        with services.HEAVY_LOCK:
            ms = time_onnx(path, fp.input_size, threads=threads, warmup=warmup, runs=runs)
    record["latency"] = {
        "ms": ms,
        "format": "qcdq",
        "runtime": f"onnxruntime {ort.__version__}",
        "threads": threads,
        "batch": 1,
        "runs": runs,
    }
    evaluations._write_record(record)  # noqa: SLF001 - the record format is services'
    return dict(record["latency"])
