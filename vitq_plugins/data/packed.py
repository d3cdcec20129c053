"""Packed-JPEG image arrays (``.npz`` with ``jpeg``, ``offsets``, ``labels``, ``classes``, ``names``),
the format of ``../shared/data/cifar10`` and of the subsets bundled with vitq.

:func:`read_packed` decodes a whole file (or the rows in ``indices``) into a uint8 ``(N, H, W, 3)``
array. :func:`open_packed` keeps the compressed bytes in memory and decodes rows on demand, so that a
loader that streams batches never holds more than one batch of decoded pixels. Files are loaded with
``allow_pickle=False``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import io
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from vitq_plugins.core.errors import VitqError

__all__ = ["PackedImages", "PackedJpegs", "open_packed", "read_packed", "write_packed"]

_REQUIRED = ("jpeg", "offsets", "labels", "classes")


@dataclass(frozen=True)
class PackedImages:
    """Decoded images (uint8 ``(N, H, W, 3)``), labels (int64 ``(N,)``), class names and file names."""

    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.int64]
    classes: tuple[str, ...]
    names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class PackedJpegs:
    """The still-compressed contents of a packed-JPEG file.

    Args:
        path: the file it was read from (for error messages).
        jpeg: every image's JPEG bytes, back to back.
        offsets: image ``i`` is ``jpeg[offsets[i]:offsets[i + 1]]``.
        labels: class index per image (int64).
        classes: class names.
        names: file name per image.
    """

    path: Path
    jpeg: npt.NDArray[np.uint8]
    offsets: npt.NDArray[np.int64]
    labels: npt.NDArray[np.int64]
    classes: tuple[str, ...]
    names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def blob(self, i: int) -> bytes:
        """The JPEG file of image ``i``, byte for byte as stored."""
        return self.jpeg[int(self.offsets[i]) : int(self.offsets[i + 1])].tobytes()

    def decode(self, indices: npt.NDArray[np.int64] | list[int]) -> npt.NDArray[np.uint8]:
        """Decode the rows ``indices`` into a uint8 ``(len(indices), H, W, 3)`` array.

        Raises:
            VitqError: an index is out of range, an image cannot be decoded, or images differ in size.
        """
        from PIL import Image

        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= n):
            bad = int(idx.min()) if int(idx.min()) < 0 else int(idx.max())
            raise VitqError(f"{str(self.path)!r}: image index {bad} is out of range 0..{n - 1}")
        out: list[npt.NDArray[np.uint8]] = []
        for i in idx.tolist():  # JPEG decoding is per image by nature
            try:
                img = Image.open(io.BytesIO(self.blob(i))).convert("RGB")
            except Exception as exc:  # noqa: BLE001 - PIL raises several types on corrupt data
                raise VitqError(f"{str(self.path)!r}: image {i} cannot be decoded: {exc}") from None
            out.append(np.asarray(img, dtype=np.uint8))
        if not out:
            return np.zeros((0, 0, 0, 3), dtype=np.uint8)
        shapes = {a.shape for a in out}
        if len(shapes) > 1:
            raise VitqError(
                f"{str(self.path)!r}: images have different sizes {sorted(shapes)}; cannot batch them"
            )
        return np.stack(out)


def open_packed(path: str | Path) -> PackedJpegs:
    """Read a packed-JPEG ``.npz`` file without decoding it.

    Raises:
        VitqError: missing file, not an npz, missing arrays, or inconsistent offsets.
    """
    p = Path(path)
    if not p.is_file():
        raise VitqError(f"packed image file {str(p)!r} does not exist")
    try:
        with np.load(p, allow_pickle=False) as z:
            missing = [k for k in _REQUIRED if k not in z.files]
            if missing:
                raise VitqError(f"{str(p)!r} is not a packed-JPEG file: missing arrays {missing}")
            jpeg = np.ascontiguousarray(z["jpeg"], dtype=np.uint8)
            offsets = z["offsets"].astype(np.int64)
            labels = z["labels"].astype(np.int64)
            classes = tuple(str(c) for c in z["classes"])
            names = (
                tuple(str(s) for s in z["names"])
                if "names" in z.files
                else tuple(str(i) for i in range(len(labels)))
            )
    except VitqError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile/np errors on corrupt files
        raise VitqError(f"cannot read packed image file {str(p)!r}: {type(exc).__name__}: {exc}") from None
    if offsets.shape[0] != labels.shape[0] + 1:
        raise VitqError(f"{str(p)!r}: offsets has {offsets.shape[0]} entries, expected {labels.shape[0] + 1}")
    if len(names) != labels.shape[0]:
        raise VitqError(f"{str(p)!r}: names has {len(names)} entries, expected {labels.shape[0]}")
    if offsets.size and (
        int(offsets[0]) != 0 or int(offsets[-1]) != jpeg.size or bool(np.any(np.diff(offsets) < 0))
    ):
        raise VitqError(f"{str(p)!r}: offsets do not describe the {jpeg.size} bytes of the jpeg array")
    return PackedJpegs(p, jpeg, offsets, labels, classes, names)


def read_packed(path: str | Path, indices: npt.NDArray[np.int64] | None = None) -> PackedImages:
    """Read and decode a packed-JPEG ``.npz`` file (optionally only the rows in ``indices``).

    Raises:
        VitqError: missing file, not an npz, missing arrays, or an undecodable image.
    """
    packed = open_packed(path)
    idx = np.arange(len(packed)) if indices is None else np.asarray(indices, dtype=np.int64)
    if idx.size == 0:
        raise VitqError(f"{str(packed.path)!r}: no images selected")
    images = packed.decode(idx)
    return PackedImages(
        images, packed.labels[idx], packed.classes, tuple(packed.names[i] for i in idx.tolist())
    )


def write_packed(
    path: str | Path,
    jpeg_blobs: list[bytes],
    labels: npt.NDArray[np.int64],
    classes: tuple[str, ...],
    names: tuple[str, ...],
    extra: Mapping[str, npt.NDArray[np.generic]] | None = None,
) -> Path:
    """Write a packed-JPEG ``.npz`` atomically.

    Args:
        path: destination file.
        jpeg_blobs: one JPEG file per image, stored as given (no re-encode).
        labels: class index per image.
        classes: class names.
        names: file name per image.
        extra: further plain arrays to store (e.g. ``indices`` into a source split).

    Raises:
        VitqError: ``extra`` reuses a reserved array name.
    """
    p = Path(path)
    reserved = {"jpeg", "offsets", "labels", "classes", "names"}
    clash = sorted(reserved & set(extra or {}))
    if clash:
        raise VitqError(f"extra arrays {clash} clash with the packed format's own arrays {sorted(reserved)}")
    offsets = np.zeros(len(jpeg_blobs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in jpeg_blobs])
    jpeg = np.frombuffer(b"".join(jpeg_blobs), dtype=np.uint8)
    tmp = p.with_name(p.name + ".tmp.npz")
    arrays: dict[str, Any] = {
        "jpeg": jpeg,
        "offsets": offsets,
        "labels": np.asarray(labels, dtype=np.uint8),
        "classes": np.asarray(classes),
        "names": np.asarray(names),
    }
    arrays.update({k: np.asarray(v) for k, v in (extra or {}).items()})
    savez: Any = np.savez_compressed
    savez(tmp, **arrays)
    tmp.replace(p)
    return p
