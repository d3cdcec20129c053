"""Packed-JPEG files: write/open/read round trip, extra arrays and corrupt input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from vitq_plugins.core.errors import VitqError
from vitq_plugins.data.packed import open_packed
from vitq_plugins.data.packed import read_packed
from vitq_plugins.data.packed import write_packed


def _png(color: tuple[int, int, int], size: int = 8) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")  # lossless, so pixels are exact
    return buf.getvalue()


@pytest.fixture
def packed_file(tmp_path: Path) -> Path:
    blobs = [_png((255, 0, 0)), _png((0, 255, 0)), _png((0, 0, 255))]
    return write_packed(
        tmp_path / "tiny.npz",
        blobs,
        np.array([0, 1, 1]),
        ("red", "green"),
        ("r/0.png", "g/0.png", "g/1.png"),
        extra={"indices": np.array([7, 8, 9])},
    )


def test_round_trip_keeps_bytes_labels_names_and_extra(packed_file: Path) -> None:
    p = open_packed(packed_file)
    assert len(p) == 3 and p.classes == ("red", "green") and p.names[2] == "g/1.png"
    assert p.labels.tolist() == [0, 1, 1] and p.labels.dtype == np.int64
    assert p.blob(0) == _png((255, 0, 0))
    with np.load(packed_file) as z:
        assert z["indices"].tolist() == [7, 8, 9]
    img = p.decode([2, 0])
    assert img.shape == (2, 8, 8, 3) and img.dtype == np.uint8
    assert img[0, 0, 0].tolist() == [0, 0, 255] and img[1, 0, 0].tolist() == [255, 0, 0]


def test_read_packed_matches_open_packed(packed_file: Path) -> None:
    r = read_packed(packed_file, np.array([1]))
    assert r.images.shape == (1, 8, 8, 3) and r.labels.tolist() == [1] and r.names == ("g/0.png",)


def test_extra_cannot_shadow_format_arrays(tmp_path: Path) -> None:
    with pytest.raises(VitqError, match="clash"):
        write_packed(
            tmp_path / "x.npz",
            [_png((0, 0, 0))],
            np.array([0]),
            ("a",),
            ("a/0",),
            extra={"labels": np.zeros(1)},
        )


def test_decode_out_of_range(packed_file: Path) -> None:
    with pytest.raises(VitqError, match="out of range 0..2"):
        open_packed(packed_file).decode([3])


@pytest.mark.parametrize("content", [b"not a zip at all", b"PK\x03\x04garbage"])
def test_corrupt_file(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(content)
    with pytest.raises(VitqError, match="cannot read packed image file"):
        open_packed(bad)


def test_missing_arrays_and_missing_file(tmp_path: Path) -> None:
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(VitqError, match="missing arrays"):
        open_packed(tmp_path / "other.npz")
    with pytest.raises(VitqError, match="does not exist"):
        open_packed(tmp_path / "nope.npz")


def test_undecodable_image(tmp_path: Path) -> None:
    path = write_packed(tmp_path / "x.npz", [b"\xff\xd8 broken"], np.array([0]), ("a",), ("a/0",))
    with pytest.raises(VitqError, match="image 0 cannot be decoded"):
        open_packed(path).decode([0])
