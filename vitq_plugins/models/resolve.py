"""Resolve a ``--model`` value to an ``nn.Module``: a registered name, a timm name, a local checkpoint
or a module passed from Python.

Order: a user module; a registered vitq model; an existing file (a checkpoint); a timm model name
(``vit_tiny_patch16_224``, ``vit_tiny_patch16_224.augreg_in21k``, ``hf-hub:...``); something that looks
like a path but does not exist (an error); otherwise an unknown name (close matches over registered and
timm names). Checkpoints are loaded strictly into the reference architecture, or into ``arch``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
import os
from pathlib import Path
import socket
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from vitq_plugins.core.errors import UnknownNameError
from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.errors import close_matches

if TYPE_CHECKING:
    from torch import nn

    from vitq_plugins.core.manager import PluginHost

__all__ = ["CHECKPOINT_SUFFIXES", "hub_reachable", "resolve_model"]

#: file endings treated as checkpoints even when the file does not exist (to report it missing)
CHECKPOINT_SUFFIXES: tuple[str, ...] = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
_HUB_PREFIXES = ("hf-hub:", "hf_hub:", "timm/", "local-dir:")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub (``$HF_ENDPOINT`` or huggingface.co) accepts a TCP connection."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextmanager
def _hub_offline() -> Iterator[None]:
    """Make huggingface_hub use its local cache only (no retries against an unreachable server)."""
    try:
        from huggingface_hub import constants
    except ImportError:
        yield
        return
    old = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old


def _is_timm_name(name: str) -> bool:
    import timm

    return name.startswith(_HUB_PREFIXES) or bool(timm.is_model(name))


def _create_timm(name: str, pretrained: bool) -> nn.Module:
    import timm

    if not pretrained:
        model: nn.Module = timm.create_model(name, pretrained=False)
        return model
    online = hub_reachable()
    try:
        if online:
            model = timm.create_model(name, pretrained=True)
        else:
            with _hub_offline():
                model = timm.create_model(name, pretrained=True)
    except Exception as exc:  # noqa: BLE001 - hub, HTTP and file errors all mean "no weights"
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        where = "this machine is offline and the weights are not in the local cache" if not online else why
        raise VitqError(
            f"cannot get pretrained weights for timm model {name!r}: {where}; pass a local checkpoint path "
            f"(--model FILE --arch {name}) or --no-pretrained for random weights"
        ) from None
    return model


def _load_checkpoint(path: Path, arch: str | None, host: PluginHost) -> nn.Module:
    from vitq_plugins.models.checkpoint import load_weights_into
    from vitq_plugins.models.reference import build_reference_arch

    if arch is None:
        model: nn.Module = build_reference_arch()
    else:
        if Path(arch).suffix in CHECKPOINT_SUFFIXES or Path(arch).is_file():
            raise VitqError(f"--arch {arch!r} must be a registered or timm model name, not a file")
        model, _ = resolve_model(arch, host=host, pretrained=False)
    load_weights_into(model, path)
    return model


def _unknown(name: str, host: PluginHost) -> UnknownNameError:
    import timm

    registered = host.models.list()
    pool = registered + [n for n in timm.list_models() if n not in registered]
    hints = [n for n in pool if n.startswith(name)][:3]
    hints += [h for h in close_matches(name, pool) if h not in hints][: 3 - len(hints)]
    hint = f"; did you mean {', '.join(repr(h) for h in hints)}?" if hints else ""
    return UnknownNameError(
        f"unknown model {name!r}{hint} (registered: {', '.join(registered) or 'none'}; also any timm model "
        f"name or a checkpoint path ending in {', '.join(CHECKPOINT_SUFFIXES)})"
    )


def resolve_model(
    spec: str | Path | nn.Module,
    *,
    host: PluginHost | None = None,
    pretrained: bool = True,
    arch: str | None = None,
) -> tuple[nn.Module, str]:
    """Build the model ``spec`` names, in eval mode, and a name for results.

    Args:
        spec: registered name, timm name, checkpoint path (``.safetensors`` or a torch file read with
            ``weights_only=True``), or an ``nn.Module``.
        host: plugin host (default: the process-wide one).
        pretrained: load pretrained weights for registered and timm names.
        arch: architecture (registered or timm name) to load a checkpoint into; default: the
            reference architecture of ``vit_tiny_cifar10``.

    Returns:
        ``(model, name)``; ``name`` is the registered/timm name, the checkpoint path as given, or the
        module's class name.

    Raises:
        UnknownNameError: an unknown name (close matches over registered and timm names).
        VitqError: a missing or corrupt checkpoint, a checkpoint that does not fit the architecture,
            or pretrained timm weights that cannot be downloaded.

    Example:
        >>> model, name = resolve_model("vit_test_tiny")
        >>> name
        'vit_test_tiny'
    """
    from torch import nn

    if isinstance(spec, nn.Module):
        if arch is not None:
            raise VitqError(f"--arch {arch!r} only applies to checkpoint files, not to a model object")
        return spec.eval(), type(spec).__name__
    if not isinstance(spec, str | Path):
        raise VitqError(f"model must be a name, a checkpoint path or an nn.Module, got {type(spec).__name__}")
    if host is None:
        from vitq_plugins.core.manager import get_host

        host = get_host()
    text = str(spec)
    if isinstance(spec, str) and text in host.models:
        if arch is not None:
            raise VitqError(f"--arch {arch!r} only applies to checkpoint files, not to model name {text!r}")
        model: nn.Module = host.models.get(text).build(pretrained=pretrained)
        return model.eval(), text
    path = Path(text)
    if path.is_file():
        return _load_checkpoint(path, arch, host).eval(), text
    if path.is_dir():
        raise VitqError(f"model path {text!r} is a directory; pass a checkpoint file or a model name")
    if isinstance(spec, Path) or path.suffix in CHECKPOINT_SUFFIXES or os.sep in text:
        if not text.startswith(_HUB_PREFIXES):
            raise VitqError(f"checkpoint {text!r} does not exist")
    if arch is not None:
        raise VitqError(f"--arch {arch!r} only applies to checkpoint files, not to model name {text!r}")
    if _is_timm_name(text):
        return _create_timm(text, pretrained).eval(), text
    raise _unknown(text, host)
