"""Bundled and packed CIFAR-10 datasets (the packed tests skip without ../shared/data/cifar10)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vitq_plugins.core.errors import VitqError
from vitq_plugins.data.cifar import BUNDLED_FILES
from vitq_plugins.data.cifar import CIFAR10_DIR_ENV
from vitq_plugins.data.cifar import bundled_cifar10
from vitq_plugins.data.cifar import packed_cifar10
from vitq_plugins.data.cifar import torchvision_cifar10
from vitq_plugins.data.packed import open_packed

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data" / "cifar10"
needs_shared = pytest.mark.skipif(
    not (SHARED / "cifar10-test.jpeg.npz").is_file(), reason="no ../shared/data"
)


def test_bundled_test_split_is_stratified() -> None:
    ds = bundled_cifar10("test")
    assert len(ds) == 2000
    assert np.bincount(ds.labels).tolist() == [200] * 10
    assert len(set(ds.names)) == 2000
    assert ds.classes[0] == "airplane" and len(ds.classes) == 10


def test_bundled_calib_split() -> None:
    ds = bundled_cifar10("calib")
    assert len(ds) == 512
    counts = np.bincount(ds.labels)
    assert counts.sum() == 512 and counts.min() >= 51 and counts.max() <= 52


def test_items_are_float_chw_and_labels_int() -> None:
    x, y = bundled_cifar10("test")[0]
    assert x.dtype == torch.float32 and tuple(x.shape) == (3, 32, 32)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0  # no transform: scaled to [0, 1]
    assert isinstance(y, int)


def test_bundled_bad_split() -> None:
    with pytest.raises(
        VitqError, match="split 'train' is invalid for cifar10_bundled: valid splits are 'test', 'calib'"
    ):
        bundled_cifar10("train")


def test_bundled_files_are_small() -> None:
    assert sum(p.stat().st_size for p in BUNDLED_FILES.values()) < 5_000_000


@needs_shared
@pytest.mark.parametrize(("split", "source"), [("test", "test"), ("calib", "train")])
def test_bundled_bytes_are_the_original_jpegs(split: str, source: str) -> None:
    bundled = open_packed(BUNDLED_FILES[split])
    src = open_packed(SHARED / f"cifar10-{source}.jpeg.npz")
    with np.load(BUNDLED_FILES[split]) as z:
        rows = z["indices"].astype(np.int64)
    assert rows.size == len(bundled)
    for i in (0, 1, len(bundled) // 2, len(bundled) - 1):
        assert bundled.blob(i) == src.blob(int(rows[i]))
        assert bundled.names[i] == src.names[int(rows[i])]
        assert bundled.labels[i] == src.labels[int(rows[i])]


@needs_shared
def test_packed_full_test_split() -> None:
    ds = packed_cifar10(SHARED, "test")
    assert len(ds) == 10_000 and np.bincount(ds.labels).tolist() == [1000] * 10
    x, y = ds.get_batch(np.array([0, 9999]))
    assert tuple(x.shape) == (2, 3, 32, 32) and y.tolist() == [0, 9]


@needs_shared
def test_packed_default_root_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CIFAR10_DIR_ENV, str(SHARED))
    assert len(packed_cifar10(split="test")) == 10_000


def test_packed_missing_dir_names_the_path_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(VitqError, match="cifar10-test.jpeg.npz' does not exist.*VITQ_CIFAR10_DIR"):
        packed_cifar10(tmp_path, "test")
    with pytest.raises(VitqError, match="valid splits are 'train', 'test'"):
        packed_cifar10(tmp_path, "calib")


def test_torchvision_cifar10_without_download_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(VitqError, match="valid splits are 'train', 'test'"):
        torchvision_cifar10(tmp_path, split="val")
    with pytest.raises(VitqError, match="could not be loaded.*cifar10_bundled or cifar10_packed"):
        torchvision_cifar10(tmp_path, split="test", download=False)
