"""CIFAR-10 (Krizhevsky, 2009) datasets: the subsets bundled with vitq, the full packed-JPEG splits and
torchvision's downloader.

The bundled files (``assets/cifar10_test2000.npz``, ``assets/cifar10_calib512.npz``) are made by
``integration/make_bundled_data.py``: 200 test images per class and 512 train images (51-52 per class),
seed 0, the original JPEG bytes of ``../shared/data/cifar10``. Their ``indices`` array gives the row of
each image in the source split.
"""

from __future__ import annotations

from collections.abc import Callable
import os
from pathlib import Path
from typing import Any

from vitq_plugins.core.errors import VitqError
from vitq_plugins.data.dataset import PackedDataset
from vitq_plugins.data.packed import open_packed
from vitq_plugins.data.transforms import ImageTransform
from vitq_plugins.models.reference import ASSETS

__all__ = [
    "BUNDLED_FILES",
    "CIFAR10_DIR_ENV",
    "bundled_cifar10",
    "default_cifar10_dir",
    "packed_cifar10",
    "packed_cifar10_file",
    "torchvision_cifar10",
]

#: split -> bundled file
BUNDLED_FILES: dict[str, Path] = {
    "test": ASSETS / "cifar10_test2000.npz",
    "calib": ASSETS / "cifar10_calib512.npz",
}
#: environment variable naming the directory of ``cifar10-{train,test}.jpeg.npz``
CIFAR10_DIR_ENV = "VITQ_CIFAR10_DIR"
_PACKED_SPLITS = ("train", "test")

Transform = Callable[[Any], Any]


def _check_split(split: str, valid: tuple[str, ...], dataset: str) -> None:
    if split not in valid:
        raise VitqError(
            f"split {split!r} is invalid for {dataset}: valid splits are {', '.join(map(repr, valid))}"
        )


def bundled_cifar10(split: str = "test", transform: Transform | None = None) -> PackedDataset:
    """The CIFAR-10 subsets shipped with vitq.

    Args:
        split: ``"test"`` (2,000 test images, 200 per class) or ``"calib"`` (512 train images).
        transform: per-image transform or :class:`ImageTransform`; ``None`` scales to [0, 1].

    Raises:
        VitqError: unknown split or a missing/corrupt bundled file.
    """
    _check_split(split, tuple(BUNDLED_FILES), "cifar10_bundled")
    return PackedDataset(open_packed(BUNDLED_FILES[split]), transform, name=f"cifar10_bundled[{split}]")


def default_cifar10_dir() -> Path:
    """``$VITQ_CIFAR10_DIR`` if set, else ``../shared/data/cifar10`` relative to the working directory."""
    env = os.environ.get(CIFAR10_DIR_ENV)
    return Path(env) if env else Path("..") / "shared" / "data" / "cifar10"


def packed_cifar10_file(root: str | Path | None, split: str) -> Path:
    """The packed file of ``split`` under ``root`` (default :func:`default_cifar10_dir`).

    Raises:
        VitqError: unknown split, or the file is not there (the message says where it looked).
    """
    _check_split(split, _PACKED_SPLITS, "cifar10_packed")
    base = Path(root) if root is not None else default_cifar10_dir()
    path = base / f"cifar10-{split}.jpeg.npz"
    if not path.is_file():
        raise VitqError(
            f"CIFAR-10 {split} split not found: {str(path)!r} does not exist; pass the directory holding "
            f"cifar10-{{train,test}}.jpeg.npz (--data DIR) or set {CIFAR10_DIR_ENV}"
        )
    return path


def packed_cifar10(
    root: str | Path | None = None, split: str = "test", transform: Transform | None = None
) -> PackedDataset:
    """The full CIFAR-10 split from packed-JPEG files.

    Args:
        root: directory holding ``cifar10-{train,test}.jpeg.npz``; default ``$VITQ_CIFAR10_DIR`` or
            ``../shared/data/cifar10`` relative to the working directory.
        split: ``"train"`` (50,000 images) or ``"test"`` (10,000).
        transform: per-image transform or :class:`ImageTransform`; ``None`` scales to [0, 1].

    Raises:
        VitqError: unknown split, or a missing/corrupt file.
    """
    path = packed_cifar10_file(root, split)
    return PackedDataset(open_packed(path), transform, name=f"cifar10_packed[{split}]")


def torchvision_cifar10(
    root: str | Path = ".data/cifar10",
    split: str = "test",
    download: bool = True,
    transform: Transform | None = None,
) -> Any:
    """``torchvision.datasets.CIFAR10`` (downloads on first use; for users with internet access).

    Raises:
        VitqError: unknown split, or the download/read failed.
    """
    _check_split(split, _PACKED_SPLITS, "torchvision_cifar10")
    from torchvision.datasets import CIFAR10

    try:
        return CIFAR10(
            str(root), train=split == "train", download=download, transform=transform or ImageTransform()
        )
    except (OSError, RuntimeError) as exc:
        raise VitqError(
            f"torchvision CIFAR-10 at {str(root)!r} could not be loaded ({exc}); offline machines can use "
            "cifar10_bundled or cifar10_packed"
        ) from None
