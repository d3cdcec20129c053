"""The bundled reference model (``vit_tiny_cifar10``) and datasets: bundled CIFAR-10 subsets, the full
packed CIFAR-10, any ImageFolder and torchvision's CIFAR-10 (downloads, for users online)."""

from __future__ import annotations

from vitq_plugins.core.hookspecs import hookimpl
from vitq_plugins.core.registry import Registry
from vitq_plugins.core.specs import DatasetSpec
from vitq_plugins.core.specs import ModelSpec


@hookimpl
def vitq_register_models(registry: Registry[ModelSpec]) -> None:
    """``vit_tiny_cifar10`` (trained by the project, shipped) and ``vit_test_tiny`` (random, for tests)."""
    registry.register(
        "vit_tiny_cifar10",
        ModelSpec(
            "vit_tiny_cifar10",
            "vitq_plugins.models.reference:vit_tiny_cifar10",
            "DeiT-Tiny blocks (192 wide, 12 deep, 3 heads) at 32x32/patch 4, trained on CIFAR-10 by vitq",
            num_classes=10,
            default_dataset="cifar10_bundled",
        ),
    )
    registry.register(
        "vit_test_tiny",
        ModelSpec(
            "vit_test_tiny",
            "vitq_plugins.models.reference:vit_test_tiny",
            "2-block, 64-wide ViT at 32x32/patch 8 with seeded random weights (for fast tests only)",
            num_classes=10,
            default_dataset="cifar10_bundled",
        ),
    )


@hookimpl
def vitq_register_datasets(registry: Registry[DatasetSpec]) -> None:
    """Bundled subsets, the full packed split, ImageFolder and torchvision CIFAR-10."""
    registry.register(
        "cifar10_bundled",
        DatasetSpec(
            "cifar10_bundled",
            "vitq_plugins.data.cifar:bundled_cifar10",
            "shipped with vitq: 2,000 stratified CIFAR-10 test images (split='test') and 512 train images "
            "for calibration (split='calib')",
            num_classes=10,
        ),
    )
    registry.register(
        "cifar10_packed",
        DatasetSpec(
            "cifar10_packed",
            "vitq_plugins.data.cifar:packed_cifar10",
            "full CIFAR-10 from packed-JPEG .npz files (root=dir holding cifar10-{train,test}.jpeg.npz)",
            num_classes=10,
        ),
    )
    registry.register(
        "imagefolder",
        DatasetSpec(
            "imagefolder",
            "vitq_plugins.data.folder:image_folder",
            "any ImageFolder directory (root/<class>/<image>), e.g. ImageNet-val layout",
        ),
    )
    registry.register(
        "torchvision_cifar10",
        DatasetSpec(
            "torchvision_cifar10",
            "vitq_plugins.data.cifar:torchvision_cifar10",
            "torchvision.datasets.CIFAR10 (downloads on first use; needs internet)",
            num_classes=10,
        ),
    )
