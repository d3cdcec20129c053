"""Evaluation preprocessing taken from the model's own data config (timm ``resolve_data_config``).

:class:`ImageTransform` is callable on one PIL image (timm's ``create_transform`` pipeline: resize,
center crop, to-tensor, normalize) and, when the images already have the model's input size and the
resize is an identity, transforms a whole uint8 ``(N, H, W, 3)`` batch at once without PIL: the
result is identical to the per-image path (``x / 255 - mean) / std``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
import math
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import numpy.typing as npt

from vitq_plugins.core.errors import VitqError

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch

__all__ = ["ImageTransform", "transform_for_model"]

_BATCHABLE_CROP_MODES = ("center", "squash")


@dataclass(frozen=True)
class ImageTransform:
    """Resize/crop/normalize for evaluation, with a vectorized uint8 fast path.

    Args:
        input_size: ``(C, H, W)`` the model expects, or ``None`` to keep the image size (no resize/crop).
        mean: per-channel mean subtracted after scaling to [0, 1].
        std: per-channel standard deviation divided by.
        interpolation: resize interpolation (timm name).
        crop_pct: center-crop fraction (timm: resize to ``floor(size / crop_pct)``, then crop ``size``).
        crop_mode: timm crop mode (``center``, ``squash`` or ``border``).

    Example:
        >>> t = ImageTransform((3, 32, 32), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        >>> t.batch(np.zeros((2, 32, 32, 3), dtype=np.uint8)).shape
        torch.Size([2, 3, 32, 32])
    """

    input_size: tuple[int, int, int] | None = None
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    crop_mode: str = "center"

    def __post_init__(self) -> None:
        if len(self.mean) != 3 or len(self.std) != 3:
            raise VitqError(f"mean {self.mean!r} and std {self.std!r} must have 3 values (RGB)")
        if any(s <= 0 for s in self.std):
            raise VitqError(f"std {self.std!r} must be positive")
        if not 0 < self.crop_pct <= 4:
            raise VitqError(f"crop_pct {self.crop_pct!r} is invalid: expected 0 < crop_pct <= 4")

    @classmethod
    def from_data_config(cls, cfg: dict[str, Any]) -> ImageTransform:
        """Build from a timm data config (``input_size``, ``mean``, ``std``, ``crop_pct``, ...)."""
        size = tuple(int(v) for v in cfg["input_size"])
        if len(size) != 3:
            raise VitqError(f"input_size {cfg['input_size']!r} must be (C, H, W)")
        return cls(
            input_size=(size[0], size[1], size[2]),
            mean=tuple(float(v) for v in cfg.get("mean", (0.0, 0.0, 0.0))),
            std=tuple(float(v) for v in cfg.get("std", (1.0, 1.0, 1.0))),
            interpolation=str(cfg.get("interpolation", "bilinear")),
            crop_pct=float(cfg.get("crop_pct") or 1.0),
            crop_mode=str(cfg.get("crop_mode") or "center"),
        )

    def batchable(self, height: int, width: int) -> bool:
        """Whether images of ``height`` x ``width`` pass resize and crop unchanged (the fast path)."""
        if self.input_size is None:
            return True
        h, w = self.input_size[1], self.input_size[2]
        scale = (math.floor(h / self.crop_pct), math.floor(w / self.crop_pct))
        return (height, width) == (h, w) and scale == (h, w) and self.crop_mode in _BATCHABLE_CROP_MODES

    def batch(self, images: npt.NDArray[np.uint8]) -> torch.Tensor:
        """Transform a uint8 ``(N, H, W, 3)`` batch to float ``(N, 3, H, W)`` in one vectorized step.

        Raises:
            VitqError: the images are not uint8 NHWC RGB, or need a resize (use the per-image path).
        """
        import torch

        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise VitqError(f"expected uint8 images of shape (N, H, W, 3), got {images.dtype} {images.shape}")
        if not self.batchable(int(images.shape[1]), int(images.shape[2])):
            raise VitqError(
                f"images of {images.shape[1]}x{images.shape[2]} need resizing to {self.input_size}; "
                "use the per-image transform"
            )
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        return x.sub_(mean).div_(std).contiguous()

    @cached_property
    def _pil_pipeline(self) -> Callable[[Any], torch.Tensor]:
        if self.input_size is None:
            from torchvision.transforms import Compose
            from torchvision.transforms import Normalize
            from torchvision.transforms import ToTensor

            return Compose([ToTensor(), Normalize(self.mean, self.std)])  # type: ignore[no-any-return]
        from timm.data.transforms_factory import create_transform

        return create_transform(  # type: ignore[no-any-return]
            input_size=self.input_size,
            is_training=False,
            interpolation=self.interpolation,
            mean=self.mean,
            std=self.std,
            crop_pct=self.crop_pct,
            crop_mode=self.crop_mode,
        )

    def __call__(self, image: Any) -> torch.Tensor:
        """Transform one PIL image (or uint8 ``(H, W, 3)`` array) to a float ``(3, H, W)`` tensor."""
        if isinstance(image, np.ndarray):
            if image.ndim == 3 and self.batchable(int(image.shape[0]), int(image.shape[1])):
                return self.batch(image[None])[0]
            from PIL import Image

            image = Image.fromarray(image)
        return self._pil_pipeline(image.convert("RGB"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (for results and the explorer)."""
        return {
            "input_size": list(self.input_size) if self.input_size else None,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "crop_pct": self.crop_pct,
            "crop_mode": self.crop_mode,
        }


def transform_for_model(model: Any) -> ImageTransform:
    """The evaluation transform of ``model`` from its timm data config (``pretrained_cfg``).

    Models without a config get timm's defaults (ImageNet mean/std, 224 px), at the input size they declare
    otherwise (:func:`vitq_plugins.adapters.inputs.input_size`: torchvision's ``image_size``, ``img_size``, the
    position embedding's patch grid).
    """
    from timm.data.config import resolve_data_config

    from vitq_plugins.adapters.inputs import input_size

    args: dict[str, Any] = {}
    if not getattr(model, "pretrained_cfg", None):
        try:
            args["input_size"] = input_size(model)
        except VitqError:
            pass  # timm's default size
    cfg: dict[str, Any] = resolve_data_config(args=args, model=model)  # type: ignore[no-untyped-call]
    return ImageTransform.from_data_config(cfg)
