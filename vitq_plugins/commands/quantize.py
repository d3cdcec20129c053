"""``vitq quantize``: quantize a model with a recipe on a backend, evaluate it against FP, export.

Example:
    vitq quantize --model vit_tiny_cifar10 --recipe fqvit --backend brevitas --w-bits 8 --a-bits 8 \\
        --attn-bits 4 --export qonnx --out runs/fqvit-w8a8 --json
"""

from __future__ import annotations

import argparse

from vitq_plugins.commands import add_common_model_arguments
from vitq_plugins.commands import emit
from vitq_plugins.core.backend import EXPORT_FORMATS

__all__ = ["TABLE_KEYS", "add_arguments", "run"]

#: rows of the human-readable output
TABLE_KEYS = (
    "model",
    "recipe",
    "backend",
    "w_bits",
    "a_bits",
    "attn_bits",
    "data",
    "n_calib",
    "n_eval",
    "fp_top1",
    "q_top1",
    "top1_drop",
    "fp_top5",
    "q_top5",
    "agreement",
    "kl",
    "fp_size_mb",
    "size_mb",
    "macs",
    "fp_bops",
    "bops",
    "calib_s",
    "eval_s",
    "export_path",
)


#: the bit-widths the built-in quantizers accept (a quantizer may narrow them; the config check names it)
MIN_BITS, MAX_BITS = 2, 16


def _bits(text: str) -> int:
    try:
        bits = int(text)
    except ValueError:
        bits = None
    if bits is None or not MIN_BITS <= bits <= MAX_BITS:
        raise argparse.ArgumentTypeError(
            f"bits must be a whole number in {MIN_BITS}..{MAX_BITS}, got {text!r}"
        ) from None
    return bits


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``vitq quantize``."""
    parser.description = "Quantize a model (post-training), evaluate it against FP, optionally export."
    add_common_model_arguments(parser, model_required=True)
    parser.add_argument("--recipe", default=None, help="registered recipe (required unless --config)")
    parser.add_argument(
        "--backend", default="brevitas", help="registered backend (see vitq backends; default brevitas)"
    )
    parser.add_argument("--w-bits", type=_bits, default=None, metavar="B", help="weight bits (default 8)")
    parser.add_argument("--a-bits", type=_bits, default=None, metavar="B", help="activation bits (default 8)")
    parser.add_argument(
        "--attn-bits", type=_bits, default=None, metavar="B", help="attention-map bits (default 8)"
    )
    parser.add_argument("--config", default=None, metavar="FILE", help="per-layer config JSON (QuantConfig)")
    parser.add_argument(
        "--calib",
        type=int,
        default=512,
        metavar="N",
        help="calibration images, stratified and seeded (default 512)",
    )
    parser.add_argument(
        "--export", default="none", choices=EXPORT_FORMATS, help="export format (needs --out; default none)"
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="new directory for results.json, config.json and the export",
    )


def run(args: argparse.Namespace) -> int:
    """Quantize, evaluate and print the result; raises ``VitqError`` on bad input (the CLI exits 2)."""
    from vitq_plugins.pipeline import run_quantize

    result = run_quantize(
        args.model,
        args.recipe,
        args.backend,
        args.w_bits,
        args.a_bits,
        args.attn_bits,
        config=args.config,
        data=args.data,
        n_calib=args.calib,
        n_eval=args.eval,
        seed=args.seed,
        export=args.export,
        out_dir=args.out,
        progress=not args.no_progress,
        batch_size=args.batch_size,
        arch=args.arch,
        pretrained=not args.no_pretrained,
    )
    emit(result, TABLE_KEYS, as_json=args.json)
    return 0
