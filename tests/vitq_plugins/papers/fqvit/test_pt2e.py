"""FQ-ViT's PT2E adapters: PTS as a per-channel affine spec, LIS as a custom op on the softmax output."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("torchao")

from vitq_plugins.config import QuantConfig  # noqa: E402
from vitq_plugins.core.errors import ConfigError  # noqa: E402
from vitq_plugins.core.manager import get_host  # noqa: E402
from vitq_plugins.models.reference import vit_test_tiny  # noqa: E402
from vitq_plugins.papers.fqvit import pt2e  # noqa: E402
from vitq_plugins.papers.fqvit import pts as ops_pts  # noqa: E402
from vitq_plugins.papers.fqvit.lis import log2_fake_quant  # noqa: E402
from vitq_plugins.pt2e.extension import SiteOp  # noqa: E402
from vitq_plugins.sites import plan_sites  # noqa: E402


def test_log2_op_is_the_paper_quantizer_and_passes_opcheck() -> None:
    p = torch.softmax(torch.randn(2, 3, 7, 7, generator=torch.Generator().manual_seed(0)) * 4, -1)
    torch.testing.assert_close(torch.ops.vitq_fqvit.log2_fake_quant(p, 4), log2_fake_quant(p, 4))
    torch.library.opcheck(torch.ops.vitq_fqvit.log2_fake_quant.default, (p, 3))


def test_pts_observer_matches_the_paper_numerics() -> None:
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(2, 5, 6, generator=g) * torch.tensor([1, 2, 4, 8, 0.5, 1.0]) for _ in range(3)]
    spec = pt2e.pts("ln_input", 8, pts_k=3)
    assert spec.qscheme == torch.per_channel_affine and spec.ch_axis == 2 and spec.dtype == torch.uint8
    obs, ref = spec.observer_or_fake_quant_ctr(), ops_pts.PTSObserver(6, bits=8, k=3)
    for x in xs:
        obs(x)
        ref.update(x)
    scale, zp = obs.calculate_qparams()
    want = ref.compute()
    torch.testing.assert_close(scale, want.scale.float())
    assert zp.tolist() == [int(want.zero_point)] * 6
    ratios = torch.log2(scale / scale.min())
    torch.testing.assert_close(ratios, ratios.round())  # power-of-two factors of one base scale


def test_wrong_sites_refused() -> None:
    with pytest.raises(ConfigError, match="LayerNorm inputs only"):
        pt2e.pts("act", 8)
    with pytest.raises(ConfigError, match=r"softmax_output\) only"):
        pt2e.lis("act", 4)
    assert isinstance(pt2e.lis("softmax_output", 4), SiteOp)


def test_fqvit_on_the_pt2e_wing() -> None:
    model = vit_test_tiny()
    cfg = QuantConfig("fqvit", attn_bits=4)
    calib = [torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))]
    backend = get_host().backends.get("pt2e").load()
    qm = backend.quantize(model, cfg, calib, progress=False)
    assert set(backend.sites(qm, cfg)) == set(plan_sites(model, cfg))
    ops = [n for n in qm.graph.nodes if n.target is torch.ops.vitq_fqvit.log2_fake_quant.default]
    assert len(ops) == 2 and all(n.args[1] == 4 for n in ops)
    # the log2 codes feed attn @ v directly: no uniform q/dq between the op and the matmul
    assert all(u.target is torch.ops.aten.matmul.default for n in ops for u in n.users)
    pts_q = [n for n in qm.graph.nodes if "quantize_per_channel" in str(n.target) and n.args[3] == 2]
    assert len(pts_q) >= 5  # the 5 LayerNorm inputs, per channel on (B, N, C)
    assert qm(calib[0]).shape == (4, 10)
