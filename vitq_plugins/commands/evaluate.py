"""``vitq eval``: FP accuracy of a model on a dataset's evaluation split.

Example:
    vitq eval --model vit_tiny_cifar10 --data ../shared/data/cifar10 --json
"""

from __future__ import annotations

import argparse

from vitq_plugins.commands import add_common_model_arguments
from vitq_plugins.commands import emit

__all__ = ["TABLE_KEYS", "add_arguments", "run"]

#: rows of the human-readable output
TABLE_KEYS = (
    "model",
    "data",
    "n_eval",
    "top1",
    "top5",
    "eval_s",
    "images_per_s",
    "params",
    "size_mb",
    "macs",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``vitq eval``."""
    parser.description = "Evaluate a model (FP) on the evaluation split of a dataset."
    add_common_model_arguments(parser, model_required=False)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the result; raises ``VitqError`` on bad input (the CLI exits 2)."""
    from vitq_plugins.pipeline import run_evaluate

    result = run_evaluate(
        args.model,
        data=args.data,
        n_eval=args.eval,
        seed=args.seed,
        progress=not args.no_progress,
        batch_size=args.batch_size,
        arch=args.arch,
        pretrained=not args.no_pretrained,
    )
    emit(result, TABLE_KEYS, as_json=args.json)
    return 0
