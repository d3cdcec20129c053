"""Make the CIFAR-10 subsets bundled with vitq from the packed-JPEG splits (no re-encode).

- ``vitq_plugins/assets/cifar10_test2000.npz``: 2,000 test images, 200 per class.
- ``vitq_plugins/assets/cifar10_calib512.npz``: 512 train images for calibration (51-52 per class).

Both are stratified, seeded subsets (``vitq_plugins.data.sampling.stratified_indices``, seed 0), stored
sorted by source row with the original JPEG bytes, file names (``names``) and source rows (``indices``).

Usage:
    python integration/make_bundled_data.py --data ../shared/data/cifar10 --seed 0
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vitq_plugins.data.cifar import BUNDLED_FILES  # noqa: E402
from vitq_plugins.data.packed import open_packed  # noqa: E402
from vitq_plugins.data.packed import write_packed  # noqa: E402
from vitq_plugins.data.sampling import stratified_indices  # noqa: E402

#: bundled split -> (source split, number of images)
SUBSETS: dict[str, tuple[str, int]] = {"test": ("test", 2000), "calib": ("train", 512)}


def make_subset(src: Path, n: int, seed: int, out: Path) -> dict[str, object]:
    """Write a stratified ``n``-image subset of ``src`` to ``out``; return a summary."""
    packed = open_packed(src)
    idx = np.sort(stratified_indices(packed.labels, n, seed))
    blobs = [packed.blob(i) for i in idx.tolist()]
    write_packed(
        out,
        blobs,
        packed.labels[idx],
        packed.classes,
        tuple(packed.names[i] for i in idx.tolist()),
        extra={"indices": idx.astype(np.int64), "source": np.asarray(src.name), "seed": np.asarray(seed)},
    )
    per_class = np.bincount(packed.labels[idx], minlength=len(packed.classes)).tolist()
    return {"file": str(out), "images": int(idx.size), "per_class": per_class, "bytes": out.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, write both bundled files, print a summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data", type=Path, default=Path("../shared/data/cifar10"), help="packed CIFAR-10 directory"
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for split, (source, n) in SUBSETS.items():
        summary = make_subset(args.data / f"cifar10-{source}.jpeg.npz", n, args.seed, BUNDLED_FILES[split])
        print(f"{split:5s} <- {source:5s}: {summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
