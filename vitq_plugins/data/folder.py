"""Any ImageFolder directory (``root/<class>/<image>``), e.g. an ImageNet-val layout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from vitq_plugins.core.errors import VitqError
from vitq_plugins.data.transforms import ImageTransform

__all__ = ["IMAGE_EXTENSIONS", "image_folder"]

#: file endings ImageFolder accepts (torchvision's list)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def image_folder(root: str | Path, transform: Callable[[Any], Any] | None = None) -> Any:
    """``torchvision.datasets.ImageFolder`` over ``root`` with ``transform``.

    Items are ``(float tensor (3, H, W), class index)``; class indices follow the sorted folder names.

    Args:
        root: directory with one sub-directory per class.
        transform: per-image transform (:class:`ImageTransform` or torchvision); ``None`` scales to
            [0, 1] without resizing.

    Raises:
        VitqError: ``root`` is not a directory, has no class folders, or holds no images.
    """
    from torchvision.datasets import ImageFolder

    p = Path(root)
    if not p.is_dir():
        raise VitqError(f"image folder {str(p)!r} does not exist or is not a directory")
    try:
        ds = ImageFolder(str(p), transform=transform or ImageTransform())
    except (FileNotFoundError, RuntimeError) as exc:
        raise VitqError(
            f"image folder {str(p)!r} has no images: expected {str(p)}/<class>/<image> with endings "
            f"{', '.join(IMAGE_EXTENSIONS)} ({exc})"
        ) from None
    if len(ds) == 0:
        raise VitqError(f"image folder {str(p)!r} has no images")
    return ds
