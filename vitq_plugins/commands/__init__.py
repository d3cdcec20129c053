"""``vitq`` sub-commands: one module each with ``add_arguments(parser)`` and ``run(args) -> int``.

``vitq_plugins.cli`` dispatches ``vitq <cmd>`` to ``vitq_plugins.commands.<module>``; a
:class:`~vitq_plugins.core.errors.VitqError` raised by ``run`` becomes one line on stderr and exit code 2.
Heavy imports (torch, timm, backends) happen inside ``run``. With ``--json``, stdout is exactly one JSON
object; progress bars always go to stderr.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from collections.abc import Sequence
import json
import sys
from typing import TYPE_CHECKING
from typing import Any
from typing import TextIO

from vitq_plugins.core.errors import VitqError

if TYPE_CHECKING:
    from vitq_plugins.executors import Executor

__all__ = [
    "add_common_model_arguments",
    "add_executor_arguments",
    "emit",
    "executor_from_args",
    "format_table",
]


def add_common_model_arguments(parser: argparse.ArgumentParser, *, model_required: bool) -> None:
    """``--model``, ``--arch``, ``--no-pretrained``, ``--data``, ``--eval``, ``--batch-size``, ``--seed``,
    ``--json`` and ``--no-progress``, shared by ``eval`` and ``quantize``."""
    parser.add_argument(
        "--model",
        required=model_required,
        default=None if model_required else "vit_tiny_cifar10",
        help="registered or timm model name, or a checkpoint (.safetensors / torch state_dict file)",
    )
    parser.add_argument(
        "--arch", default=None, help="architecture to load a checkpoint into (default: the reference ViT)"
    )
    parser.add_argument(
        "--no-pretrained", action="store_true", help="random weights for registered/timm names (no download)"
    )
    parser.add_argument(
        "--data",
        default="cifar10_bundled",
        help="registered dataset name, a directory (packed CIFAR-10 or ImageFolder) or a packed .npz "
        "(default: cifar10_bundled)",
    )
    parser.add_argument(
        "--eval",
        type=int,
        default=None,
        metavar="N",
        help="evaluation images, stratified and seeded (default: all of the evaluation split)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=100, metavar="B", help="images per batch (default 100)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the data subsets (default 0)")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    return "-" if value is None else str(value)


def format_table(result: Mapping[str, Any], keys: Sequence[str]) -> str:
    """Two aligned columns, ``key  value``, for the ``keys`` present in ``result``."""
    present = [k for k in keys if k in result]
    width = max((len(k) for k in present), default=0)
    return "\n".join(f"{k.ljust(width)}  {_fmt(result[k])}" for k in present)


def emit(result: Mapping[str, Any], keys: Sequence[str], *, as_json: bool, out: TextIO | None = None) -> None:
    """Print ``result`` as one JSON object (``as_json``) or as a table of ``keys``."""
    stream = out if out is not None else sys.stdout
    if as_json:
        stream.write(json.dumps(result, indent=2, default=str) + "\n")
    else:
        stream.write(format_table(result, keys) + "\n")
    stream.flush()


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """``--executor``, ``--ray-address`` and ``--num-workers`` (sweeps: ``sensitivity``, ``search``)."""
    parser.add_argument(
        "--executor",
        default="serial",
        metavar="NAME",
        help="where the sweep's tasks run: serial (default, this process) or ray (needs vitq[ray])",
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="Ray cluster to join (host:port or auto; default $RAY_ADDRESS, else a new local cluster)",
    )
    parser.add_argument(
        "--num-workers",
        type=int,
        default=None,
        metavar="N",
        help="parallel tasks (ray default: the cluster's CPUs; serial: 1)",
    )


def executor_from_args(args: argparse.Namespace) -> Executor:
    """The executor the flags describe (close it when done).

    Raises:
        VitqError: an unknown executor (close matches named), ``--ray-address`` without ``--executor ray``,
            ``--num-workers`` below 1, ray missing or its cluster unreachable.
    """
    from vitq_plugins.executors import get_executor

    name = str(args.executor)
    if args.num_workers is not None and args.num_workers < 1:
        raise VitqError(f"--num-workers {args.num_workers} is invalid: expected 1 or more")
    if name != "ray" and args.ray_address is not None:
        raise VitqError(f"--ray-address {args.ray_address!r} needs --executor ray (got --executor {name!r})")
    if name == "ray":
        return get_executor(name, num_workers=args.num_workers, address=args.ray_address)
    options = {} if args.num_workers is None else {"num_workers": args.num_workers}
    return get_executor(name, **options)
