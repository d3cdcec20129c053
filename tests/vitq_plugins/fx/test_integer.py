"""torch.ao FX ``ivit`` and ``fqvit`` -> integer program (``convert_fx``) on the bundled reference model (96 test images)."""

from __future__ import annotations

from collections.abc import Callable
import copy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import fx

from vitq_plugins.core.errors import VitqError
from vitq_plugins.fx.integer import convert_fx
from vitq_plugins.intexec import check_integer_form
from vitq_plugins.intexec import export_int_onnx
from vitq_plugins.intexec import run_integer_only
from vitq_plugins.intexec.report import agreement_report

N_EVAL = 96


class _Codes(fx.Interpreter):
    """Runs the FX model and keeps the integer codes of every quantized node output."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.codes: dict[str, torch.Tensor] = {}

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        if isinstance(out, torch.Tensor) and out.is_quantized:
            self.codes[n.name] = out.int_repr().to(torch.int64)
        return out


@pytest.mark.parametrize("name", ["fxref", "fxfq"])
def test_program_is_integer_and_guard_passes(request: pytest.FixtureRequest, name: str) -> None:
    prog = request.getfixturevalue(name)
    ex = prog.executor
    for buf_name, buf in ex.named_buffers():
        assert not buf.is_floating_point(), buf_name
    x, _ = prog.eval_batches[0]
    (logits, scale), guard = run_integer_only(ex, ex.quantize_input(x[:4]))
    assert logits.dtype == torch.int32 and logits.shape == (4, 10)
    assert scale == pytest.approx(float(prog.qmodel.head.scale))
    assert len(guard.records) > 1000


# measured (torch 2.14.1, x86 engine, AVX512-VNNI, 96 images), logit error in output steps (one step = the head's
# output scale): ivit 95/96 top-1 agreement, mean 0.66 / max 5; fqvit 95/96 (same top-1 accuracy), mean 0.60 /
# max 7. Every single stage is exact but for float32 rounding ties (test_*each_rounding_matches_the_graph;
# fqvit's residual stream is a float32 sum in the graph, a fixed-point integer here); ties compound over 12 blocks
@pytest.mark.parametrize(
    ("name", "mean_steps"),
    [
        pytest.param(
            "fxref",
            1.5,
            marks=pytest.mark.xfail(
                strict=True,
                reason="converged reference model (issue #15): top-1 of the program 76.0% vs the x86 graph "
                "79.2% on 96 images (3 images, bound 3%; agreement 96.9%); every stage equals the graph on "
                "its own codes, so these are float32 ties compounding over 12 blocks; left to issue #17",
            ),
        ),
        pytest.param(
            "fxfq",
            0.9,
            marks=pytest.mark.xfail(
                strict=True,
                reason="converged reference model (issue #15): mean logit error 1.20 output steps (bound "
                "0.9; 0.60 on the 64.6% model), agreement 97.9%; left to issue #17",
            ),
        ),
    ],
)
def test_agreement_with_fx_model(request: pytest.FixtureRequest, name: str, mean_steps: float) -> None:
    prog = request.getfixturevalue(name)
    rep = agreement_report(prog.qmodel, prog.executor, prog.eval_batches, layers=False)
    assert rep.images == N_EVAL
    assert rep.agreement >= 0.95
    assert abs(rep.int_top1 - rep.fq_top1) <= 0.03
    assert rep.logit_err_mean_steps < mean_steps and rep.logit_err_max_steps <= 10
    assert rep.overflow_free, rep.overflow


class _Stages:
    """The FX model's integer codes per node, and a check of executor stages fed those codes: at most one step
    off, on fewer than 1e-4 of the elements (float32 rounding ties of the x86 kernels)."""

    def __init__(self, codes: dict[str, torch.Tensor]) -> None:
        self.codes = codes
        self.checked: list[str] = []

    @classmethod
    def of(cls, qmodel: fx.GraphModule, x: torch.Tensor) -> _Stages:
        """The integer codes of ``qmodel`` run on ``x``."""
        interp = _Codes(qmodel)
        with torch.no_grad():
            interp.run(x)
        return cls(interp.codes)

    def same(self, got: torch.Tensor, name: str, part: int = -1) -> None:
        ref = self.codes[name]
        if part >= 0:  # the q/k/v slice of the qkv output (a slice that keeps the qkv grid)
            b, n, _ = ref.shape
            ref = ref.reshape(b, n, 3, got.shape[1], -1).permute(2, 0, 3, 1, 4)[part]
        elif ref.dim() == 4 and got.dim() == 3:  # attn @ v: heads are merged before proj
            ref = ref.transpose(1, 2)
        diff = (got - ref.reshape(got.shape)).abs()
        assert int(diff.max()) <= 1, name
        assert float((diff > 0).double().mean()) < 1e-4, name
        self.checked.append(name)

    def attention_inputs(self, at: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Check qkv's q, k, v and the logits requant on ``x`` (norm1's output codes); q, k, v minus zero points."""
        acc = at.qkv(x)
        b, n, _ = acc.shape
        parts = acc.reshape(b, n, 3, at.num_heads, -1).permute(2, 0, 3, 1, 4)
        qkv = []
        for i, rq in enumerate((at.rq_q, at.rq_k, at.rq_v)):
            self.same(rq(parts[i]), rq.out.name, i if self.codes[rq.out.name].dim() == 3 else -1)
            qkv.append(rq(parts[i]) - rq.zero_point)
        q, k, v = qkv
        self.same(at.softmax.rq_logits(q @ k.transpose(-2, -1)), at.softmax.rq_logits.out.name)
        return q, k, v


def _node_name(gm: fx.GraphModule, target: str) -> str:
    return next(str(n.name) for n in gm.graph.nodes if n.op == "call_module" and n.target == target)


#: the paper's own I-ViT kernels (the recipe's defaults are the log2 Shiftmax and the fine ShiftGELU): the
#: stage-by-stage checks below recompute them with ``shiftmax_unit``/``shiftgelu_unit``
FAITHFUL_IVIT = {"re:.*": {"quantizers": {"softmax_output": "shiftmax", "gelu_output": "shiftgelu"}}}


def test_each_rounding_matches_the_graph(make_program: Callable[..., SimpleNamespace]) -> None:
    """Block 0, stage by stage on the FX model's own input codes: the executor rounds where the quantized graph
    rounds (its grids are named after the FX nodes) and agrees but for float32 rounding ties."""
    from vitq_plugins.papers.ivit.shift import shiftgelu_unit
    from vitq_plugins.papers.ivit.shift import shiftmax_unit

    prog = make_program("fx", "ivit", layers=FAITHFUL_IVIT)
    ex, qm = prog.executor, prog.qmodel
    x, _ = prog.eval_batches[0]
    stages = _Stages.of(qm, x[:8])
    with torch.no_grad():
        stream = ex.embed(ex.quantize_input(x[:8]))
    fxc, same, checked = stages.codes, stages.same, stages.checked

    blk, at = ex.blocks[0], ex.blocks[0].attn
    with torch.no_grad():
        same(ex.quantize_input(x[:8]).to(torch.int64), ex.input_grid.name)
        same(stream, blk.in_grid.name)
        xs = fxc[blk.in_grid.name]
        same(blk.ln1(xs), blk.ln1.out.out.name)
        q, k, v = stages.attention_inputs(at, fxc[blk.ln1.out.out.name])
        b, n = q.shape[0], q.shape[2]
        p = shiftmax_unit(
            fxc[at.softmax.rq_logits.out.name], at.softmax.x0, n=at.softmax.n, out_bits=at.softmax.out_bits
        )
        same(p, _node_name(qm, "blocks.0.attn.softmax"))
        o = (fxc[_node_name(qm, "blocks.0.attn.softmax")] @ v).transpose(1, 2).reshape(b, n, -1)
        same(at.rq_out(o), at.rq_out.out.name)
        o_fx = fxc[at.rq_out.out.name].transpose(1, 2).reshape(b, n, -1)
        same(blk.res1(at.proj(o_fx), xs), blk.res1.out.name)
        x2 = fxc[blk.res1.out.name]
        same(blk.ln2(x2), blk.ln2.out.out.name)
        mlp = blk.mlp
        same(mlp.gelu.rq_gelu(mlp.fc1(fxc[blk.ln2.out.out.name])), mlp.gelu.rq_gelu.out.name)
        g = fxc[mlp.gelu.rq_gelu.out.name] - mlp.gelu.rq_gelu.zero_point
        assert mlp.gelu.rq_fc2 is not None
        same(
            mlp.gelu.rq_fc2(shiftgelu_unit(g, mlp.gelu.x0, n=mlp.gelu.n, out_bits=mlp.gelu.out_bits)),
            mlp.gelu.rq_fc2.out.name,
        )
        same(blk.res2(mlp.fc2(fxc[mlp.gelu.rq_fc2.out.name]), x2), blk.res2.out.name)
    assert len(set(checked)) == 14, checked


@pytest.mark.parametrize("name", ["fxref", "fxfq"])
def test_int_onnx_is_bit_exact(request: pytest.FixtureRequest, name: str, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    import numpy as np

    prog = request.getfixturevalue(name)
    ex = prog.executor
    x, _ = prog.eval_batches[0]
    path = export_int_onnx(ex, tmp_path / "fx_int.onnx", x[:1])
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    codes = ex.quantize_input(x[:16])
    with torch.no_grad():
        li, _ = ex(codes)
    out = sess.run(None, {"input": codes.numpy()})[0]
    assert out.dtype == np.int32
    assert np.array_equal(out, li.numpy())


def test_int_onnx_of_the_fx_backend(fxref: SimpleNamespace, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    from vitq_plugins.fx.backend import BACKEND
    from vitq_plugins.intexec import export_integer_onnx

    assert "int-onnx" in BACKEND.info()["export_formats"]
    x, _ = fxref.eval_batches[0]
    path = export_integer_onnx("fx", fxref.qmodel, tmp_path / "m.onnx", x[:1])
    assert path.is_file() and path.stat().st_size > 100_000
    # the wing serves it like any export format, through its integer entry points: the same file
    wing = BACKEND.export(fxref.qmodel, "int-onnx", tmp_path / "w.onnx", x[:1])
    assert wing.read_bytes() == path.read_bytes()
    with pytest.raises(VitqError, match="brevitas"):
        BACKEND.export(fxref.qmodel, "qonnx", tmp_path / "q.onnx", x[:1])
    with pytest.raises(VitqError, match=r"no integer converter.*did you mean 'fx'"):
        export_integer_onnx("fxx", fxref.qmodel, tmp_path / "u.onnx", x[:1])


def test_recipe_without_integer_form_names_the_node(fxref: SimpleNamespace) -> None:
    from vitq_plugins.config import QuantConfig
    from vitq_plugins.fx.backend import BACKEND

    qm = BACKEND.quantize(fxref.fp, QuantConfig("minmax"), fxref.calib_batches[:1], progress=False)
    with pytest.raises(VitqError, match=r"blocks\.0\.norm1: LayerNorm stays float"):
        convert_fx(qm)
    with pytest.raises(VitqError, match=r"int-onnx.*LayerNorm stays float"):
        check_integer_form("fx", fxref.fp, QuantConfig("minmax"))
    check_integer_form("fx", fxref.fp, QuantConfig("ivit"))  # has an integer form
    check_integer_form("fx", fxref.fp, QuantConfig("fqvit", attn_bits=4))


def test_fqvit_each_rounding_matches_the_graph(fxfq: SimpleNamespace) -> None:
    """Block 0 of ``fqvit``, stage by stage on the FX model's own codes (the PTS LayerNorm, LIS and GELU table
    are exact; the float residual stream is compared through the next per-channel quantize)."""
    from vitq_plugins.papers.fqvit.integer import lis_table_codes

    ex, qm = fxfq.executor, fxfq.qmodel
    x, _ = fxfq.eval_batches[0]
    stages = _Stages.of(qm, x[:8])
    fxc, same, checked = stages.codes, stages.same, stages.checked

    blk, at, em = ex.blocks[0], ex.blocks[0].attn, ex.embed
    assert at.softmax.table is not None and blk.ln1.in_rq is not None and blk.ln2.in_rq is not None
    nxt = ex.blocks[1].ln1.in_rq
    assert nxt is not None and em.rq.pre is not None
    with torch.no_grad(), ex.instrumented(count=False) as rec:
        same(ex.quantize_input(x[:8]).to(torch.int64), ex.input_grid.name)
        ex(ex.quantize_input(x[:8]))
        assert rec.taps is not None
        conv = em.rq.pre.out
        same(rec.taps[conv.name].transpose(1, 2).reshape(fxc[conv.name].shape), conv.name)
        # the float stream of the FX model from its own conv codes (one conv code is 2 codes of some channels)
        to_fine = copy.deepcopy(em.rq)
        to_fine.pre = None
        conv_fx = fxc[conv.name].flatten(2).transpose(1, 2) - conv.zero_point
        tokens = to_fine.raw(conv_fx) + em.pos_int
        stream = torch.cat([em.cls_codes.reshape(1, 1, -1).expand(8, 1, -1), tokens], dim=1)
        same(blk.ln1.in_rq(stream), blk.ln1.in_rq.out.name)
        same(blk.ln1.from_codes(fxc[blk.ln1.in_rq.out.name]), blk.ln1.out.out.name)
        q, k, v = stages.attention_inputs(at, fxc[blk.ln1.out.out.name])
        b, n = q.shape[0], q.shape[2]
        sm_at = at.softmax
        tables = (sm_at.exp_hi, sm_at.exp_lo, sm_at.t_max)
        codes = lis_table_codes(fxc[sm_at.rq_logits.out.name], tables, sm_at.out_bits)
        sm = _node_name(qm, "blocks.0.attn.softmax")
        same(at.softmax.table[codes], sm)
        o = (fxc[sm] @ v).transpose(1, 2).reshape(b, n, -1)
        same(at.rq_out(o), at.rq_out.out.name)
        o_fx = fxc[at.rq_out.out.name].transpose(1, 2).reshape(b, n, -1)
        x2 = blk.res1(at.proj(o_fx), stream)
        same(blk.ln2.in_rq(x2), blk.ln2.in_rq.out.name)
        same(blk.ln2.from_codes(fxc[blk.ln2.in_rq.out.name]), blk.ln2.out.out.name)
        mlp = blk.mlp
        same(mlp.gelu.rq_gelu(mlp.fc1(fxc[blk.ln2.out.out.name])), mlp.gelu.rq_gelu.out.name)
        assert mlp.gelu.lut is not None
        same(mlp.gelu.lut[fxc[mlp.gelu.rq_gelu.out.name]].to(torch.int64), mlp.gelu.lut_name)
        same(nxt(blk.res2(mlp.fc2(fxc[mlp.gelu.lut_name]), x2)), nxt.out.name)
    assert len(set(checked)) == 15, checked


def test_non_fx_model_is_rejected(fxref: SimpleNamespace) -> None:
    with pytest.raises(VitqError, match="GraphModule"):
        convert_fx(fxref.fp)


def test_pipeline_fx_int_onnx(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    from vitq_plugins.pipeline import run_quantize

    out = tmp_path / "run"
    res = run_quantize(
        "vit_test_tiny", "ivit", backend="fx", n_calib=16, n_eval=16, export="int-onnx", out_dir=out,
        progress=False, batch_size=16, pretrained=False,
    )  # fmt: skip
    assert Path(res["export_path"]) == out / "model_int.onnx" and (out / "model_int.onnx").is_file()
    res = run_quantize(
        "vit_test_tiny", "fqvit", backend="fx", attn_bits=4, n_calib=16, n_eval=16, export="int-onnx",
        out_dir=tmp_path / "fq", progress=False, batch_size=16, pretrained=False,
    )  # fmt: skip
    assert Path(res["export_path"]) == tmp_path / "fq" / "model_int.onnx"
    assert (tmp_path / "fq" / "model_int.onnx").is_file()


# on the converged reference model the 6-bit attention-logit grid is already finer than ln 2 (no LIS
# refinement at W6A6), so fqvit is checked at 4 bits where it is coarser
@pytest.mark.parametrize(("recipe", "bits"), [("ivit", 4), ("fqvit", 4)])
def test_coarse_grids_are_refined_exactly(
    make_program: Callable[..., SimpleNamespace], recipe: str, bits: int, tmp_path: Path
) -> None:
    """At 6 bits and below a logit or GELU-input grid is coarser than Shiftmax/LIS/ShiftGELU can represent
    (``S > 1`` or ``S >= ln 2``): the kernels run on the codes ``<< k`` (``ops._intmath.grid_refinement``), the
    x86 graph and the program alike. Every refined stage equals the graph's on its own codes, and the ONNX
    export stays bit-exact."""
    from vitq_plugins.papers.fqvit.integer import lis_table_codes
    from vitq_plugins.papers.ivit.shift import shiftgelu_unit
    from vitq_plugins.papers.ivit.shift import shiftmax_unit

    ort = pytest.importorskip("onnxruntime")
    # LIS's logits are 8-bit unless asked (its Brevitas form takes the float logits): ask for coarse ones
    options = {"lis_input_bits": bits} if recipe == "fqvit" else {}
    layers = FAITHFUL_IVIT if recipe == "ivit" else {}
    prog = make_program(
        "fx", recipe, w_bits=bits, a_bits=bits, attn_bits=bits, options=options, layers=layers
    )
    ex, qm = prog.executor, prog.qmodel
    x, _ = prog.eval_batches[0]
    stages = _Stages.of(qm, x[:8])
    fxc, refined = stages.codes, 0
    for i, blk in enumerate(ex.blocks):
        at, mlp = blk.attn, blk.mlp
        logits = fxc[at.softmax.rq_logits.out.name] << getattr(at.softmax, "in_shift", 0)
        if getattr(at.softmax, "table", None) is not None:  # LIS: a table exponential, no refinement needed
            sm_at = at.softmax
            tables = (sm_at.exp_hi, sm_at.exp_lo, sm_at.t_max)
            p = sm_at.table[lis_table_codes(logits, tables, sm_at.out_bits)]
        else:
            p = shiftmax_unit(logits, at.softmax.x0, n=at.softmax.n, out_bits=at.softmax.out_bits)
        stages.same(p, _node_name(qm, f"blocks.{i}.attn.softmax"))
        refined += getattr(at.softmax, "in_shift", 0) > 0
        if getattr(mlp.gelu, "rq_fc2", None) is not None:
            g = (fxc[mlp.gelu.rq_gelu.out.name] - mlp.gelu.rq_gelu.zero_point) << mlp.gelu.in_shift
            stages.same(
                mlp.gelu.rq_fc2(shiftgelu_unit(g, mlp.gelu.x0, n=mlp.gelu.n, out_bits=mlp.gelu.out_bits)),
                mlp.gelu.rq_fc2.out.name,
            )
            refined += mlp.gelu.in_shift > 0
    assert refined >= 3 or recipe == "fqvit"  # the configuration really exercises the refinement (not LIS)
    path = export_int_onnx(ex, tmp_path / "coarse.onnx", x[:1])
    codes = ex.quantize_input(x[:16])
    with torch.no_grad():
        li, _ = ex(codes)
    out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"input": codes.numpy()}
    )[0]
    assert (out == li.numpy()).all()
