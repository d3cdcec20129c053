"""OPT-m's FX adapter: the GELU output travels in a container that holds the twin grid (issue #17)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vitq_plugins.config import QuantConfig
from vitq_plugins.fx import quantize as fxq
from vitq_plugins.fx.modules import QuantizedCustom
from vitq_plugins.models.reference import vit_test_tiny
from vitq_plugins.papers.mptq.fx import twin_container
from vitq_plugins.papers.mptq.optm import twin_fake_quant


def _through(y: torch.Tensor, scale: float, zp: int) -> torch.Tensor:
    return torch.quantize_per_tensor(y, scale, zp, torch.quint8).dequantize()


@pytest.mark.parametrize(("bits", "m"), [(4, 0), (4, 3), (4, 5), (3, 6), (2, 7)])
def test_container_holds_the_twin_grid_exactly(bits: int, m: int) -> None:
    g = torch.Generator().manual_seed(0)
    x = F.gelu(torch.randn(4096, generator=g) * 3.0)
    dn = float(x.amax()) / ((2 ** (bits - 1) - 1) * 2**m)
    y = twin_fake_quant(x, dn, m, bits)
    scale, zp = twin_container(dn, m, bits)
    assert scale == pytest.approx(dn)
    torch.testing.assert_close(_through(y, scale, zp), y, rtol=0, atol=1e-6 * dn)


@pytest.mark.parametrize(("bits", "m"), [(6, 4), (8, 8), (4, 8)])
def test_wider_grids_keep_every_positive_level(bits: int, m: int) -> None:
    g = torch.Generator().manual_seed(1)
    x = F.gelu(torch.randn(4096, generator=g) * 3.0)
    dn = float(x.amax()) / ((2 ** (bits - 1) - 1) * 2**m)
    y = twin_fake_quant(x, dn, m, bits)
    scale, zp = twin_container(dn, m, bits)
    assert zp + (2 ** (bits - 1) - 1) * 2**m * dn / scale <= 255 + 1e-6
    out = _through(y, scale, zp)
    pos = y >= 0
    torch.testing.assert_close(out[pos], y[pos], rtol=0, atol=1e-6 * scale)
    assert float((out[~pos] - y[~pos]).abs().max()) <= scale / 2 + 1e-6


def test_fc2_reads_the_optm_output_not_a_minmax_regrid() -> None:
    """Once the GELU output was held in an 8-bit MinMax container and re-rounded on fc2's 4-bit MinMax grid:
    repq/mptq W4A4 lost ~2.6 pt in FX against Brevitas, which feeds OPT-m's grid to fc2 unchanged."""
    torch.manual_seed(0)
    calib = [torch.randn(8, 3, 32, 32) for _ in range(2)]
    cfg = QuantConfig("mptq", w_bits=4, a_bits=4, attn_bits=4)
    prep = fxq.prepare(vit_test_tiny(), cfg, calib[0][:1], transform_batches=calib)
    fxq.calibrate(prep.model, calib, progress=False)
    qm = fxq.convert(prep.model)
    optm = [m for m in qm.modules() if isinstance(m, QuantizedCustom) and m.quantizer == "optm"]
    assert optm
    for mod in optm:
        twin = mod.observed.state
        r = twin.result()  # type: ignore[union-attr,operator]
        assert (mod.out_scale, mod.out_zero_point) == pytest.approx(twin_container(r.delta_n, r.m, 4))
    # fc2 reads the OPT-m module's output: any requantization on the way (around a float Dropout) is on the
    # module's own container, so it changes nothing
    fc2 = [n for n in qm.graph.nodes if n.op == "call_module" and str(n.target).endswith("mlp.fc2")]
    assert fc2
    for node in fc2:
        p, grids = node.args[0], []
        while not (p.op == "call_module" and isinstance(qm.get_submodule(str(p.target)), QuantizedCustom)):
            if p.op == "call_function" and p.target is torch.quantize_per_tensor:
                grids.append(tuple(float(getattr(qm, str(a.target))) for a in p.args[1:3]))
            p = p.args[0]
        mod = qm.get_submodule(str(p.target))
        assert mod.quantizer == "optm"
        assert all(g == pytest.approx((mod.out_scale, mod.out_zero_point)) for g in grids), (node, grids)
