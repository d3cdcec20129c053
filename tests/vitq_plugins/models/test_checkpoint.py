"""A refused torch checkpoint: the refused global named, no advice to unpickle, how to convert instead."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vitq_plugins.core.errors import VitqError
from vitq_plugins.models.checkpoint import read_state_dict
from vitq_plugins.models.checkpoint import strip_ansi


class Payload:
    """Any class: unpickling it needs code that weights_only=True refuses to run."""


def test_unsafe_checkpoint_says_how_to_convert(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2), "extra": Payload()}, path)
    with pytest.raises(VitqError) as ei:
        read_state_dict(path)
    msg = str(ei.value)
    assert "Unsupported global" in msg and "Payload" in msg
    assert "will likely succeed" not in msg and "Re-running" not in msg
    assert "save_file(torch.load('weights.pt', weights_only=False), 'weights.safetensors')" in msg
    assert "\x1b" not in msg and "\n" not in msg


def test_corrupt_checkpoint_names_the_failure(tmp_path: Path) -> None:
    path = tmp_path / "broken.pth"
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(VitqError, match=r"'.*broken\.pth' could not be loaded with weights_only=True \("):
        read_state_dict(path)


def test_strip_ansi() -> None:
    assert strip_ansi("a \x1b[1mbold\x1b[0m b") == "a bold b"
