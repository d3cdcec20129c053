"""Turn a ``--data`` value (a registered dataset name or a path) into the dataset for one role.

Roles: ``"calib"`` (calibration images) and ``"eval"`` (evaluation images). Registered CIFAR-10
datasets map roles to their own splits (bundled: calib/test; packed and torchvision: train/test). Any
other registered dataset whose loader takes ``split`` gets ``"train"``/``"test"``; one that does not is
used for both roles. A path is a packed-CIFAR-10 directory (it holds ``cifar10-*.jpeg.npz``; calibration
from train when present), a single packed ``.npz`` file (both roles), or an ImageFolder directory
(both roles: calibration and evaluation images are drawn from the same folder).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from vitq_plugins.core.errors import UnknownNameError
from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.errors import close_matches
from vitq_plugins.core.specs import load_ref

if TYPE_CHECKING:
    from vitq_plugins.core.manager import PluginHost

__all__ = ["ROLES", "ROLE_SPLITS", "resolve_dataset"]

ROLES: tuple[str, ...] = ("calib", "eval")

#: registered dataset -> role -> split
ROLE_SPLITS: dict[str, dict[str, str]] = {
    "cifar10_bundled": {"calib": "calib", "eval": "test"},
    "cifar10_packed": {"calib": "train", "eval": "test"},
    "torchvision_cifar10": {"calib": "train", "eval": "test"},
}
_PATHLESS = ("imagefolder",)


def _packed_dir_split(root: Path, role: str) -> str:
    want = "train" if role == "calib" else "test"
    if (root / f"cifar10-{want}.jpeg.npz").is_file():
        return want
    return "test" if want == "train" else "train"


def _from_path(path: Path, role: str, transform: Any) -> tuple[Any, str]:
    from vitq_plugins.data.cifar import packed_cifar10
    from vitq_plugins.data.dataset import PackedDataset
    from vitq_plugins.data.folder import image_folder
    from vitq_plugins.data.packed import open_packed

    if path.is_file():
        if path.suffix != ".npz":
            raise VitqError(
                f"data file {str(path)!r} is not a packed-JPEG .npz; pass a dataset name, a packed .npz, "
                "a directory with cifar10-{train,test}.jpeg.npz, or an ImageFolder directory"
            )
        return PackedDataset(open_packed(path), transform, name=str(path)), str(path)
    if not path.is_dir():
        raise VitqError(f"data path {str(path)!r} does not exist")
    if any(path.glob("cifar10-*.jpeg.npz")):
        split = _packed_dir_split(path, role)
        return packed_cifar10(root=path, split=split, transform=transform), f"{path}[{split}]"
    return image_folder(path, transform=transform), str(path)


def _looks_like_path(spec: str) -> bool:
    return "/" in spec or "\\" in spec or spec.startswith(".") or spec.endswith(".npz") or Path(spec).exists()


def resolve_dataset(
    data: str | Path,
    role: str,
    *,
    transform: Any = None,
    host: PluginHost | None = None,
) -> tuple[Any, str]:
    """The dataset serving ``role`` for ``data``, and a name for results.

    Args:
        data: registered dataset name, or a path (packed directory, packed ``.npz``, ImageFolder).
        role: ``"calib"`` or ``"eval"``.
        transform: per-image or batch transform handed to the loader.
        host: plugin host (default: the process-wide one).

    Raises:
        UnknownNameError: ``data`` is neither registered nor an existing path (close matches listed).
        VitqError: bad role, a name that needs a path, or a dataset that cannot be read.
    """
    if role not in ROLES:
        raise VitqError(f"role {role!r} is invalid: valid roles are {', '.join(map(repr, ROLES))}")
    if isinstance(data, Path):
        return _from_path(data, role, transform)
    if host is None:
        from vitq_plugins.core.manager import get_host

        host = get_host()
    if data in host.datasets:
        if data in _PATHLESS:
            raise VitqError(
                f"dataset {data!r} needs a directory: pass the directory itself, e.g. --data path/to/images"
            )
        spec = host.datasets.get(data)
        kwargs: dict[str, Any] = {"transform": transform}
        split = ROLE_SPLITS.get(data, {}).get(role)
        if split is None and "split" in inspect.signature(load_ref(spec.factory_ref)).parameters:
            split = "train" if role == "calib" else "test"
        if split is not None:
            kwargs["split"] = split
        name = f"{data}[{split}]" if split else data
        return spec.build(**kwargs), name
    if _looks_like_path(data):
        return _from_path(Path(data), role, transform)
    names = host.datasets.list()
    hints = close_matches(data, names)
    hint = f"; did you mean {', '.join(repr(h) for h in hints)}?" if hints else ""
    raise UnknownNameError(
        f"unknown dataset {data!r}{hint} (registered: {', '.join(names)}; or pass a directory or packed .npz path)"
    )
