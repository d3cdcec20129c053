"""Brevitas ``ivit`` -> integer program on the bundled reference model (96 test images)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from vitq_plugins.brevitas.integer import convert_brevitas
from vitq_plugins.core.errors import VitqError
from vitq_plugins.intexec import FloatOpError
from vitq_plugins.intexec import run_integer_only
from vitq_plugins.intexec.report import agreement_report


def test_program_is_integer(ref: SimpleNamespace) -> None:
    ex = ref.executor
    for name, buf in ex.named_buffers():
        assert not buf.is_floating_point(), name
    lin = ex.blocks[0].attn.qkv
    assert lin.weight.dtype == torch.int8
    assert int(lin.bias.abs().max()) < 2**31


def test_float_op_guard_passes(ref: SimpleNamespace) -> None:
    x, _ = ref.eval_batches[0]
    codes = ref.executor.quantize_input(x[:4])
    assert codes.dtype == torch.uint8
    (logits, scale), guard = run_integer_only(ref.executor, codes)
    assert logits.dtype == torch.int32 and logits.shape == (4, 10)
    assert scale > 0
    assert len(guard.records) > 1000  # it did look at the whole program


def test_guard_catches_a_float_program(ref: SimpleNamespace) -> None:
    x, _ = ref.eval_batches[0]
    codes = ref.executor.quantize_input(x[:2])
    with pytest.raises(FloatOpError):
        run_integer_only(lambda c: ref.executor(c)[0] * 1.0, codes)


def test_agreement_with_fake_quant(ref: SimpleNamespace) -> None:
    rep = agreement_report(ref.qmodel, ref.executor, ref.eval_batches)
    assert rep.images == 96
    assert rep.agreement >= 0.97
    assert abs(rep.int_top1 - rep.fq_top1) <= 0.03
    assert rep.overflow_free, rep.overflow
    # the first layers are exact up to requantization rounding: at most one step, on almost no element
    first = "blocks.0.norm1.input_quant.act_quant"
    assert rep.layer_max_err[first] <= 1
    assert rep.layer_mismatch_frac[first] < 1e-3
    assert rep.layer_mismatch_frac["blocks.0.attn.q_quant.act_quant"] < 1e-3
    assert rep.layer_max_err["patch_embed.proj.input_quant"] == 0
    assert len(rep.layer_max_err) >= 12 * 11


def test_logits_are_close_to_fake_quant(ref: SimpleNamespace) -> None:
    x, _ = ref.eval_batches[0]
    with torch.no_grad():
        fq = ref.qmodel(x)
        li, s = ref.executor(ref.executor.quantize_input(x))
    err = (li.double() * s - fq.double()).abs()
    assert float(err.median()) < 0.05 * float(fq.abs().median())


def test_recipe_without_integer_form_names_the_float_op(ref: SimpleNamespace) -> None:
    from vitq_plugins.brevitas.backend import BACKEND
    from vitq_plugins.config import QuantConfig

    qm = BACKEND.quantize(ref.fp, QuantConfig("minmax"), ref.calib_batches[:1], progress=False)
    with pytest.raises(VitqError, match=r"blocks\.0\.norm1: LayerNorm stays float"):
        convert_brevitas(qm)


def test_uncalibrated_model_is_rejected(ref: SimpleNamespace) -> None:
    from vitq_plugins.brevitas.backend import BACKEND
    from vitq_plugins.config import QuantConfig

    qm = BACKEND.build(ref.fp, QuantConfig("ivit")).eval()
    with pytest.raises(VitqError, match="not calibrated"):
        convert_brevitas(qm)
