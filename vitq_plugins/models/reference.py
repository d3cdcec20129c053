"""The reference model ``vit_tiny_cifar10``: a timm ``VisionTransformer`` with DeiT-Tiny's blocks
(Touvron et al., arXiv 2012.12877: embed 192, depth 12, 3 heads, MLP x4) at 32x32 input with patch 4
(64 patches + class token = 65 tokens), trained on CIFAR-10 by ``integration/train_reference.py``.

The weights ship inside the package (``assets/vit_tiny_cifar10.safetensors``, fp16) with a metadata
JSON (command, seed, epochs, full-test accuracy, commit).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vitq_plugins.core.errors import VitqError

__all__ = [
    "ASSETS",
    "REFERENCE_ARCH",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "build_reference_arch",
    "reference_metadata",
    "vit_tiny_cifar10",
    "vit_test_tiny",
]

ASSETS = Path(__file__).resolve().parent.parent / "assets"
REFERENCE_WEIGHTS = ASSETS / "vit_tiny_cifar10.safetensors"
REFERENCE_META = ASSETS / "vit_tiny_cifar10.json"
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

REFERENCE_ARCH: dict[str, Any] = {
    "img_size": 32,
    "patch_size": 4,
    "embed_dim": 192,
    "depth": 12,
    "num_heads": 3,
    "mlp_ratio": 4.0,
    "num_classes": 10,
    "dynamic_img_size": False,
}


def _pretrained_cfg() -> dict[str, Any]:
    return {
        "input_size": (3, 32, 32),
        "mean": CIFAR10_MEAN,
        "std": CIFAR10_STD,
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "num_classes": 10,
        "classifier": "head",
    }


def build_reference_arch(drop_path_rate: float = 0.0, **overrides: Any) -> Any:
    """An untrained ``VisionTransformer`` with the reference architecture."""
    from timm.models.vision_transformer import VisionTransformer

    kw = dict(REFERENCE_ARCH)
    kw.update(overrides)
    model = VisionTransformer(drop_path_rate=drop_path_rate, **kw)
    setattr(model, "pretrained_cfg", _pretrained_cfg())  # noqa: B010 - read by timm resolve_data_config
    return model


def reference_metadata() -> dict[str, Any]:
    """The training metadata shipped beside the weights (empty dict if absent)."""
    if not REFERENCE_META.exists():
        return {}
    data: dict[str, Any] = json.loads(REFERENCE_META.read_text())
    return data


def vit_tiny_cifar10(pretrained: bool = True, **overrides: Any) -> Any:
    """The reference model, with the bundled trained weights when ``pretrained``.

    Raises:
        VitqError: the bundled weights are missing or corrupt.
    """
    model = build_reference_arch(**overrides)
    if pretrained:
        from vitq_plugins.models.checkpoint import load_weights_into

        if not REFERENCE_WEIGHTS.exists():
            raise VitqError(
                f"bundled weights {str(REFERENCE_WEIGHTS)!r} are missing; reinstall vitq or train them with "
                "integration/train_reference.py"
            )
        load_weights_into(model, REFERENCE_WEIGHTS)
    model.eval()
    return model


def vit_test_tiny(pretrained: bool = False, seed: int = 0, **overrides: Any) -> Any:
    """A 2-block, 64-wide ViT at 32x32/patch 8 with seeded random weights, for fast tests."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        kw: dict[str, Any] = {"embed_dim": 64, "depth": 2, "num_heads": 2, "patch_size": 8}
        kw.update(overrides)
        model = build_reference_arch(**kw)
    model.eval()
    return model
