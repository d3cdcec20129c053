"""capture_block_activations: shapes, values equal to the model's own intermediates, bad input."""

from __future__ import annotations

import pytest
import torch

from vitq_plugins.core.errors import VitqError
from vitq_plugins.evaluation.capture import capture_block_activations
from vitq_plugins.models.reference import vit_test_tiny


def test_shapes_and_values() -> None:
    model = vit_test_tiny()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    acts = capture_block_activations(model, [x[:2], x[2:]], [0, -1])
    last = len(model.blocks) - 1
    assert set(acts) == {
        f"blocks.{i}.{k}" for i in (0, last) for k in ("norm1", "norm2", "attn.logits", "mlp.fc1")
    }
    blk = model.blocks[0]
    b, n, c = acts["blocks.0.norm1"].shape
    assert b == 3 and c == model.embed_dim
    assert acts["blocks.0.attn.logits"].shape == (3, blk.attn.num_heads, n, n)
    assert acts["blocks.0.mlp.fc1"].shape == (3, n, blk.mlp.fc1.out_features)
    with torch.no_grad():
        tokens = model.patch_embed(x)
        tokens = model._pos_embed(tokens)
        fc1 = blk.mlp.fc1(blk.norm2(acts["blocks.0.norm2"]))
        # softmax of the captured logits reproduces timm's own attention probabilities
        qkv = blk.attn.qkv(blk.norm1(tokens)).reshape(3, n, 3, blk.attn.num_heads, -1).permute(2, 0, 3, 1, 4)
        attn = (qkv[0] @ qkv[1].transpose(-2, -1)) * blk.attn.scale
    torch.testing.assert_close(acts["blocks.0.norm1"], tokens)
    torch.testing.assert_close(acts["blocks.0.mlp.fc1"], fc1)
    torch.testing.assert_close(acts["blocks.0.attn.logits"], attn)
    model.train()
    capture_block_activations(model, x, [0])
    assert model.training, "the model's train/eval mode must be restored"


def test_bad_input() -> None:
    model = vit_test_tiny()
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(VitqError, match=r"block index 99 out of range: the model has \d+ blocks"):
        capture_block_activations(model, x, [0, 99])
    with pytest.raises(VitqError, match="no images"):
        capture_block_activations(model, [], [0])
    with pytest.raises(VitqError, match="has no 'blocks' sequence"):
        capture_block_activations(torch.nn.Linear(2, 2), x, [0])
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules()), "hooks leaked"
