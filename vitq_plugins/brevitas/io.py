"""Save/load of vitq Brevitas models: the config JSON plus a safetensors file of the quantized state_dict.

Whole-model ``torch.save`` of Brevitas models fails (injector classes do not pickle, frameworks.md §1.6
pitfall 8), so a quantized model is rebuilt from the float model and the config
(:meth:`BrevitasBackend.build`, the same layer maps as quantization) and its state is loaded. The state holds the
transformed float weights (e.g. SQ-b folded, MPTQ-ViT arXiv 2401.14895) and every frozen quantizer buffer, so
the reloaded model gives identical outputs without calibration data.
"""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file
from safetensors.torch import save_file
import torch
from torch import nn

from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import VitqError

__all__ = ["load_quantized", "save_quantized"]

CONFIG_NAME = "vitq_config.json"
STATE_NAME = "quantized.safetensors"


def save_quantized(qmodel: nn.Module, config: QuantConfig, directory: str | Path) -> Path:
    """Write ``vitq_config.json`` and ``quantized.safetensors`` into ``directory``; returns the directory."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    config.save(d / CONFIG_NAME)
    state = {
        k: v.detach().contiguous().clone()
        for k, v in qmodel.state_dict().items()
        if isinstance(v, torch.Tensor)
    }
    save_file(state, str(d / STATE_NAME), metadata={"format": "vitq-brevitas", "recipe": config.recipe})
    return d


def load_quantized(float_model: nn.Module, directory: str | Path) -> tuple[nn.Module, QuantConfig]:
    """Rebuild the quantized model from ``float_model`` (not modified) and the files in ``directory``.

    Raises:
        VitqError: a file is missing or the state does not fit the rebuilt model.
    """
    from vitq_plugins.brevitas.backend import BACKEND

    d = Path(directory)
    for name in (CONFIG_NAME, STATE_NAME):
        if not (d / name).exists():
            raise VitqError(f"{str(d / name)!r} not found: not a directory written by save_quantized")
    config = QuantConfig.load(d / CONFIG_NAME)
    qmodel = BACKEND.build(float_model, config)
    state = load_file(str(d / STATE_NAME))
    try:
        qmodel.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise VitqError(
            f"saved state does not fit the model rebuilt from {type(float_model).__name__}: {exc}"
        ) from None
    qmodel.eval()
    return qmodel, config
