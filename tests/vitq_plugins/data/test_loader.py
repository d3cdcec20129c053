"""make_loader over bundled data and ImageFolder; dataset resolution from --data values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
import pytest
import torch

from vitq_plugins.core.errors import UnknownNameError
from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.manager import PluginHost
from vitq_plugins.data.cifar import bundled_cifar10
from vitq_plugins.data.folder import image_folder
from vitq_plugins.data.loader import make_loader
from vitq_plugins.data.packed import open_packed
from vitq_plugins.data.packed import write_packed
from vitq_plugins.data.resolve import resolve_dataset
from vitq_plugins.data.transforms import ImageTransform


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost(autoload=False)


def _folder(root: Path, per_class: int = 3, size: int = 32) -> Path:
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
                root / cls / f"{i}.png"
            )
    return root


def test_loader_streams_stratified_batches() -> None:
    ds = bundled_cifar10("test")
    loader = make_loader(ds, batch_size=64, n=200, seed=0)
    batches = list(loader)
    assert len(loader) == len(batches) == 4 and loader.num_images == 200
    assert [len(y) for _, y in batches] == [64, 64, 64, 8]
    labels = torch.cat([y for _, y in batches])
    assert torch.bincount(labels).tolist() == [20] * 10
    assert batches[0][0].dtype == torch.float32 and tuple(batches[0][0].shape[1:]) == (3, 32, 32)


def test_loader_is_deterministic_and_reiterable() -> None:
    ds = bundled_cifar10("calib")
    a = make_loader(ds, 100, n=50, seed=1)
    first = torch.cat([y for _, y in a])
    again = torch.cat([y for _, y in a])
    other = torch.cat([y for _, y in make_loader(ds, 100, n=50, seed=2)])
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert sum(x.shape[0] for x in a.images()) == 50


def test_loader_defaults_to_everything() -> None:
    assert make_loader(bundled_cifar10("calib"), 256).num_images == 512


@pytest.mark.parametrize(
    ("n", "pattern"),
    [
        (0, r"--calib 0 is invalid: need at least 1 image \(the data has 512\)"),
        (513, "--calib 513 is larger than the data: it has only 512"),
    ],
)
def test_loader_count_errors(n: int, pattern: str) -> None:
    with pytest.raises(VitqError, match=pattern):
        make_loader(bundled_cifar10("calib"), 32, n=n, what="--calib")


def test_loader_bad_batch_size() -> None:
    with pytest.raises(VitqError, match="batch size 0 is invalid"):
        make_loader(bundled_cifar10("calib"), 0)


def test_image_folder_loads_pngs(tmp_path: Path) -> None:
    ds = image_folder(_folder(tmp_path / "imgs"), transform=ImageTransform((3, 16, 16), crop_pct=1.0))
    assert len(ds) == 6 and ds.classes == ["cat", "dog"]
    x, y = next(iter(make_loader(ds, batch_size=6)))
    assert tuple(x.shape) == (6, 3, 16, 16) and sorted(y.tolist()) == [0, 0, 0, 1, 1, 1]


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(VitqError, match="does not exist or is not a directory"):
        image_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VitqError, match="has no images"):
        image_folder(tmp_path / "empty")
    (tmp_path / "noimg" / "cat").mkdir(parents=True)
    (tmp_path / "noimg" / "cat" / "notes.txt").write_text("not an image")
    with pytest.raises(VitqError, match="has no images"):
        image_folder(tmp_path / "noimg")


def test_corrupt_image_in_folder_is_one_clear_error(tmp_path: Path) -> None:
    root = _folder(tmp_path / "imgs", per_class=1)
    (root / "cat" / "broken.png").write_bytes(b"not a png")
    ds = image_folder(root)
    with pytest.raises(VitqError, match="cannot load image"):
        list(make_loader(ds, batch_size=8))


def test_resolve_registered_name_maps_roles_to_splits(host: PluginHost) -> None:
    calib, calib_name = resolve_dataset("cifar10_bundled", "calib", host=host)
    ev, ev_name = resolve_dataset("cifar10_bundled", "eval", host=host)
    assert (len(calib), len(ev)) == (512, 2000)
    assert calib_name == "cifar10_bundled[calib]" and ev_name == "cifar10_bundled[test]"


def test_resolve_paths(tmp_path: Path, host: PluginHost) -> None:
    folder = _folder(tmp_path / "imgs")
    ds, name = resolve_dataset(str(folder), "eval", host=host)
    assert len(ds) == 6 and name == str(folder)
    # a packed CIFAR-10 directory with only a test split serves both roles from it
    src = open_packed(Path(bundled_cifar10("calib").packed.path))
    packed_dir = tmp_path / "packed"
    packed_dir.mkdir()
    write_packed(
        packed_dir / "cifar10-test.jpeg.npz",
        [src.blob(i) for i in range(20)],
        src.labels[:20],
        src.classes,
        src.names[:20],
    )
    for role in ("calib", "eval"):
        ds, name = resolve_dataset(packed_dir, role, host=host)
        assert len(ds) == 20 and name.endswith("[test]")
    ds, _ = resolve_dataset(str(packed_dir / "cifar10-test.jpeg.npz"), "eval", host=host)
    assert len(ds) == 20


def test_resolve_errors(tmp_path: Path, host: PluginHost) -> None:
    with pytest.raises(
        UnknownNameError, match="unknown dataset 'cifar10_bundle'; did you mean 'cifar10_bundled'"
    ):
        resolve_dataset("cifar10_bundle", "eval", host=host)
    with pytest.raises(VitqError, match="does not exist"):
        resolve_dataset(str(tmp_path / "nowhere"), "eval", host=host)
    with pytest.raises(VitqError, match="needs a directory"):
        resolve_dataset("imagefolder", "eval", host=host)
    with pytest.raises(VitqError, match="role 'train' is invalid"):
        resolve_dataset("cifar10_bundled", "train", host=host)
