"""Capture: unfused attention, dynamic batch, module scopes from ``nn_module_stack``, dropouts removed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vitq_plugins.core.errors import VitqError
from vitq_plugins.pt2e.graph import capture
from vitq_plugins.pt2e.graph import scope_of
from vitq_plugins.pt2e.graph import strip_eval_dropout
from vitq_plugins.pt2e.graph import unfuse_attention


def test_capture_maps_nodes_to_fqns(tiny: nn.Module) -> None:
    work = unfuse_attention(tiny)
    gm = capture(work, torch.zeros(1, 3, 32, 32))
    aten = torch.ops.aten
    scopes = {(n.target, scope_of(n)) for n in gm.graph.nodes if n.op == "call_function"}
    assert (aten.softmax.int, "blocks.0.attn") in scopes
    assert (aten.linear.default, "blocks.1.mlp.fc2") in scopes
    assert (aten.layer_norm.default, "norm") in scopes
    assert strip_eval_dropout(gm) > 0
    assert not any(n.target is aten.dropout.default for n in gm.graph.nodes)
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(gm(x), tiny(x))


def test_attention_without_switch_is_named() -> None:
    class Attn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qkv = nn.Linear(4, 12)
            self.num_heads = 1

    with pytest.raises(VitqError, match=r"'a' \(Attn\) has no fused_attn switch"):
        unfuse_attention(nn.Sequential() if False else nn.ModuleDict({"a": Attn()}))
