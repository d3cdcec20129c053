"""NaN/Inf images are one clear VitqError wherever they enter: the loader and both wings' calibration."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
import pytest
import torch
from torch import nn

from vitq_plugins.core.errors import VitqError
from vitq_plugins.data.finite import require_finite
from vitq_plugins.data.folder import image_folder
from vitq_plugins.data.loader import make_loader


def _bad(value: float) -> torch.Tensor:
    x = torch.rand(2, 3, 8, 8)
    x[1, 0, 2, 3] = value
    return x


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_require_finite_names_the_count(value: float) -> None:
    with pytest.raises(VitqError, match=r"calib must be finite: 1 of 384 values are NaN/Inf"):
        require_finite(_bad(value), "calib")
    require_finite(torch.rand(2, 3), "ok")
    require_finite(torch.full((4,), 3e38), "large but finite")  # the float64 sum does not overflow
    require_finite(torch.arange(4), "integers")


class _Images:
    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], 0


def test_loader_refuses_non_finite_images() -> None:
    loader = make_loader(_Images(_bad(float("nan"))), batch_size=2)
    with pytest.raises(VitqError, match="must be finite"):
        list(loader)


def test_brevitas_wing_calibration_refuses_non_finite_batches() -> None:
    from vitq_plugins.brevitas.calibrate import calibrate

    model = nn.Sequential(nn.Flatten(), nn.Linear(192, 4))
    with pytest.raises(VitqError, match="calibration batch 0 must be finite"):
        calibrate(model, [_bad(float("nan"))], progress=False)


def test_fx_wing_calibration_refuses_non_finite_batches() -> None:
    from vitq_plugins.fx.quantize import calibrate

    model = nn.Sequential(nn.Flatten(), nn.Linear(192, 4))
    with pytest.raises(VitqError, match="must be finite"):
        calibrate(model, [torch.rand(2, 3, 8, 8), _bad(float("inf"))], progress=False)


def test_a_non_image_file_is_named(tmp_path: Path) -> None:
    cls = tmp_path / "cat"
    cls.mkdir()
    Image.new("RGB", (8, 8)).save(cls / "good.png")
    (cls / "notes.png").write_text("not an image")
    loader = make_loader(image_folder(tmp_path), batch_size=2)
    with pytest.raises(VitqError, match=r"notes\.png.*remove or convert that file"):
        list(loader)
