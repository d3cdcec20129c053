"""Loading weights safely: safetensors, or torch files with ``weights_only=True`` (never unpickling
arbitrary objects). Errors name the file and say what is wrong."""

from __future__ import annotations

from pathlib import Path
import re
from typing import Any

from vitq_plugins.core.errors import VitqError

__all__ = ["read_state_dict", "load_weights_into", "strip_ansi"]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape codes (torch puts bold markers into some messages)."""
    return _ANSI.sub("", text)


def _torch_reason(exc: BaseException) -> str:
    """What ``torch.load(weights_only=True)`` refused, without its advice to re-run with ``weights_only=False``.

    That advice is wrong for an untrusted file (it runs arbitrary code); the line naming the refused global
    is the useful part of the message.
    """
    lines = [ln.strip() for ln in strip_ansi(str(exc)).splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith("WeightsUnpickler error:"):
            return ln.split(". Please use", 1)[0].rstrip(".")
    first = lines[0].split(". ", 1)[0].rstrip(".") if lines else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def read_state_dict(path: str | Path) -> dict[str, Any]:
    """Read a state dict from ``.safetensors`` or a torch file (``weights_only=True``).

    Raises:
        VitqError: missing, unreadable or corrupt file, or a file that holds no tensor dict.
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise VitqError(f"checkpoint {str(p)!r} does not exist or is not a file")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            sd: Any = load_file(str(p))
        except Exception as exc:  # noqa: BLE001 - safetensors raises several types on corrupt files
            raise VitqError(f"checkpoint {str(p)!r} is not a valid safetensors file: {exc}") from None
    else:
        try:
            sd = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - pickle/zip errors on corrupt or unsafe files
            raise VitqError(
                f"checkpoint {str(p)!r} could not be loaded with weights_only=True ({_torch_reason(exc)}); "
                "vitq never unpickles code. If you trust the file, convert it once to safetensors where "
                'unpickling is safe: python -c "import torch; from safetensors.torch import save_file; '
                f"save_file(torch.load('{p.name}', weights_only=False), '{p.stem}.safetensors')\" "
                "(a plain dict of tensors), then pass the .safetensors file"
            ) from None
        if isinstance(sd, dict):
            for key in ("state_dict", "model", "model_state_dict"):
                if key in sd and isinstance(sd[key], dict):
                    sd = sd[key]
                    break
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise VitqError(f"checkpoint {str(p)!r} does not hold a dict of tensors")
    return {str(k): v for k, v in sd.items()}


def load_weights_into(model: Any, path: str | Path) -> Any:
    """Load ``path`` into ``model`` (dtype cast to the model's), strictly.

    Raises:
        VitqError: the checkpoint's keys or shapes do not fit the model (missing/unexpected keys named).
    """
    sd = read_state_dict(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        raise VitqError(
            f"checkpoint {str(path)!r} does not fit the model: missing keys {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    bad = [k for k in own if tuple(own[k].shape) != tuple(sd[k].shape)]
    if bad:
        k = bad[0]
        raise VitqError(
            f"checkpoint {str(path)!r} does not fit the model: {k} has shape {tuple(sd[k].shape)}, "
            f"model expects {tuple(own[k].shape)}"
        )
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in sd.items()})
    return model
