"""Issue #16 acceptance: an out-of-tree plugin (``vitq_hardgelu``, installed through the ``vitq`` entry point)
registers a new activation quantizer with a custom kernel and an integer form; it works in Brevitas, FX and
the integer program, and exports, with no change under ``vitq_plugins/``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
import sys
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("brevitas")

HERE = Path(__file__).resolve().parent
DIST = "vitq-hardgelu"


def _make_dist(root: Path) -> None:
    """A ``<dist>.dist-info`` whose ``entry_points.txt`` names the plugin module in the ``vitq`` group."""
    info = root / "vitq_hardgelu-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DIST}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[vitq]\nhardgelu = vitq_hardgelu.plugin\n")


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A fresh autoloading :class:`PluginHost` that finds the plugin's entry point, as the process host."""
    from vitq_plugins.core.manager import PluginHost
    from vitq_plugins.core.manager import get_host
    from vitq_plugins.core.manager import reset_host

    root = tmp_path_factory.mktemp("site")
    _make_dist(root)
    saved_path = list(sys.path)
    sys.path[:0] = [str(root), str(HERE)]
    previous = get_host()
    h = PluginHost(autoload=True)
    reset_host(h)
    try:
        yield h
    finally:
        reset_host(previous)
        sys.path[:] = saved_path  # the plugin's modules stay imported: their registrations are process-wide


@pytest.fixture(scope="module")
def data() -> SimpleNamespace:
    from vitq_plugins.models.reference import vit_test_tiny

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    return SimpleNamespace(
        fp=vit_test_tiny().eval(),
        batches=[torch.randn(4, 3, 32, 32, generator=g) for _ in range(2)],
        x=torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1)),
    )


@pytest.fixture(scope="module")
def quantized(host: Any, data: SimpleNamespace) -> dict[str, torch.nn.Module]:
    """``ivit_hardgelu`` at 8 bits, quantized by each wing through the host's backend registry."""
    from vitq_plugins.config import QuantConfig

    out = {}
    for backend in ("brevitas", "fx"):
        impl = host.backends.get(backend).load()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            out[backend] = impl.quantize(data.fp, QuantConfig("ivit_hardgelu"), data.batches, progress=False)
    return out


def _calls() -> Any:
    from vitq_hardgelu.kernel import CALLS

    return CALLS


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


def test_installed_through_entry_point(host: Any) -> None:
    (info,) = [p for p in host.plugins() if p["name"] == "hardgelu"]
    assert info["origin"] == f"entrypoint:{DIST}" and info["version"] == "0.1.0"
    assert info["hooks"] == ["vitq_register_quantizers", "vitq_register_recipes"]
    assert not [f for f in host.failures if f.name == "hardgelu"]
    assert host.quantizers.owner("hardgelu") == "hardgelu"
    assert host.recipes.get("ivit_hardgelu").quantizers["gelu_output"] == "hardgelu"
    import vitq_plugins as vq

    assert "hardgelu" in vq.list_quantizers() and "ivit_hardgelu" in vq.list_recipes()


def test_kernel_approximates_gelu() -> None:
    """The integer kernel is within one output step of the float hard-GELU, which is within 0.07 of GELU."""
    from vitq_hardgelu.kernel import gate_multiplier
    from vitq_hardgelu.kernel import hardgelu_codes
    from vitq_hardgelu.kernel import hardgelu_float

    s = 8.0 / 127
    q = torch.arange(-127, 128)
    y = hardgelu_codes(q, gate_multiplier(s, 8), 8).double() * s / 256
    assert float((y - hardgelu_float(q * s)).abs().max()) <= s
    x = torch.linspace(-8, 8, 1001)
    assert float((hardgelu_float(x) - torch.nn.functional.gelu(x)).abs().max()) < 0.07


@pytest.mark.parametrize("backend", ["brevitas", "fx"])
def test_wing_runs_the_kernel(backend: str, quantized: dict[str, Any], data: SimpleNamespace) -> None:
    qm = quantized[backend]
    before = _calls()[backend]
    with torch.no_grad():
        y, ref = qm(data.x), data.fp(data.x)
    assert _calls()[backend] == before + 2  # one call per block (vit_test_tiny has 2)
    assert y.shape == ref.shape and torch.isfinite(y).all()
    # the random test model is hard to quantize (MinMax alone reaches ~0.84): close, not equal
    assert _cos(y, ref) > 0.8


@pytest.mark.parametrize("backend", ["brevitas", "fx"])
def test_integer_program_and_its_onnx_are_bit_exact(
    backend: str, quantized: dict[str, Any], data: SimpleNamespace, tmp_path: Path
) -> None:
    ort = pytest.importorskip("onnxruntime")
    from vitq_hardgelu.integer import HardGELUForm  # imported by the program's form discovery already

    from vitq_plugins import get_backend
    import vitq_plugins.intexec as ix

    executor = get_backend(backend).integer_program(
        quantized[backend], "ivit_hardgelu"
    )  # the wing's entry point
    assert all(isinstance(getattr(blk.mlp, "gelu", None), HardGELUForm) for blk in executor.blocks)
    codes = executor.quantize_input(data.x)
    before = _calls()["integer"]
    with torch.no_grad():
        (logits, _), _ = ix.run_integer_only(executor, codes)  # no float op runs in the program
    assert _calls()["integer"] == before + 2
    path = ix.export_int_onnx(executor, tmp_path / "model_int.onnx", data.x[:1])
    out = ort.InferenceSession(str(path)).run(None, {"input": codes.numpy()})[0]
    assert out.dtype == np.int32 and np.array_equal(out, logits.numpy())
    with torch.no_grad():  # and the program agrees with the fake-quant model it came from
        assert _cos(logits.double() * executor.out_scale, quantized[backend](data.x).double()) > 0.99


@pytest.mark.parametrize("fmt", ["qcdq", "qonnx"])
def test_brevitas_exports_run(fmt: str, host: Any, data: SimpleNamespace, tmp_path: Path) -> None:
    """QCDQ traces the integer kernel into standard ops (ONNX Runtime); QONNX writes one ``vitq::HardGELU``
    node per block, executed by the plugin's custom op under qonnx."""
    import onnx

    from vitq_plugins.config import QuantConfig

    # attn_bits=4 as in the Brevitas contract tests: at 8 bits the built-in Shiftmax's QONNX node disagrees
    # with Brevitas on this random model (built-in `ivit` too: 77% of logits within a step), not hard-GELU
    impl = host.backends.get("brevitas").load()
    qm = impl.quantize(data.fp, QuantConfig("ivit_hardgelu", attn_bits=4), data.batches, progress=False)
    with torch.no_grad():
        ref = qm(data.x).numpy()
    path = impl.export(qm, fmt, tmp_path / f"m.{fmt}.onnx", data.batches[0])
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    if fmt == "qcdq":
        ort = pytest.importorskip("onnxruntime")
        assert "HardGELU" not in ops
        sess = ort.InferenceSession(str(path))
        out = sess.run(None, {sess.get_inputs()[0].name: data.x.numpy()})[0]
    else:
        pytest.importorskip("qonnx")
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.core.onnx_exec import execute_onnx
        from qonnx.transformation.infer_shapes import InferShapes

        assert ops.count("HardGELU") == 2
        before = _calls()["qonnx"]
        mw = ModelWrapper(str(path)).transform(InferShapes())
        out = execute_onnx(mw, {mw.graph.input[0].name: data.x.numpy()})[mw.graph.output[0].name]
        assert _calls()["qonnx"] == before + 2
    step = float(ref.max() - ref.min()) / 255.0
    assert float((np.abs(out - ref) <= step + 1e-6).mean()) >= 0.99


@pytest.mark.parametrize(
    ("backend", "export"),
    [("brevitas", "int-onnx"), ("fx", "int-onnx"), ("brevitas", "qcdq"), ("brevitas", "qonnx")],
)
def test_pipeline_exports(backend: str, export: str, host: Any, tmp_path: Path) -> None:
    """The public pipeline quantizes with the plugin's recipe and writes each export."""
    from vitq_plugins.pipeline import run_quantize

    out = tmp_path / "run"
    res = run_quantize(
        "vit_test_tiny", "ivit_hardgelu", backend=backend, n_calib=8, n_eval=8, batch_size=8, export=export,
        out_dir=out, progress=False, pretrained=False, host=host,
    )  # fmt: skip
    path = Path(res["export_path"])
    assert path.parent == out and path.is_file() and res["recipe"] == "ivit_hardgelu"
