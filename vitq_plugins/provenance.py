"""Provenance shared by caches and measurements: a digest of a model's weights and the git commit.

One implementation, used by the sensitivity cache key, the explorer's result cache and every benchmark's
metadata, so that two records of the same weights or the same commit always compare equal.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

__all__ = ["git_commit", "weights_digest"]


def weights_digest(model: nn.Module, length: int | None = None) -> str:
    """SHA-256 over every state-dict entry (name, shape and bytes, sorted by name), hex.

    Args:
        model: the module whose ``state_dict`` is hashed.
        length: keep only the first ``length`` hex digits (``None``: all 64).
    """
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:length] if length else h.hexdigest()


def git_commit(where: str | Path | None = None) -> str:
    """``HEAD`` of the repository holding ``where`` (default: this package), ``+dirty`` if tracked files
    changed; ``"unknown"`` outside a git checkout or without git."""
    cwd = Path(where) if where is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head + ("+dirty" if dirty else "")) if head else "unknown"
