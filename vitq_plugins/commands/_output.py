"""What the ``vitq`` command line prints besides results: one line per error, third-party noise in a log.

Importing torch, timm and Brevitas prints warnings a user cannot act on (torch's "No CUDA runtime is found",
Brevitas' "fast_hadamard_transform package not found"); they used to precede every error line. The CLI
drops the known ones, sends every other Python warning and log record to ``vitq.log`` in the cache
directory (or to stderr with ``--verbose``), and prints an error as exactly one line without terminal
escape codes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
import re
import warnings

__all__ = ["KNOWN_NOISE", "LOG_NAME", "NOISY_LOGGERS", "configure", "log_path", "one_line"]

LOG_NAME = "vitq.log"
#: messages of third-party warnings and log records that say nothing to a vitq user (regexes, searched)
KNOWN_NOISE: tuple[str, ...] = (
    r"No CUDA runtime is found",
    r"fast_hadamard_transform package not found",
)
#: loggers that print ``KNOWN_NOISE`` through handlers of their own (torch's own formatter)
NOISY_LOGGERS: tuple[str, ...] = ("torch.utils.cpp_extension",)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def one_line(message: str) -> str:
    """``message`` on one line: escape codes removed, line breaks and runs of blanks collapsed."""
    return " ".join(_ANSI.sub("", message).split())


def log_path() -> Path:
    """``$VITQ_CACHE_DIR/vitq.log`` (default ``~/.cache/vitq/vitq.log``)."""
    root = os.environ.get("VITQ_CACHE_DIR") or str(Path.home() / ".cache" / "vitq")
    return Path(root) / LOG_NAME


class _DropKnownNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not any(re.search(p, text) for p in KNOWN_NOISE)


def configure(verbose: bool) -> Path | None:
    """Route warnings and log records: known noise dropped, the rest to stderr (``verbose``) or the log.

    Returns:
        The log file (``None`` with ``verbose``, or when the log cannot be written: then they are dropped).
    """
    for pattern in KNOWN_NOISE:
        warnings.filterwarnings("ignore", message=f".*{pattern}")
    logging.captureWarnings(True)
    for name in NOISY_LOGGERS:
        noisy = logging.getLogger(name)
        if not any(isinstance(f, _DropKnownNoise) for f in noisy.filters):
            noisy.addFilter(_DropKnownNoise())
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_vitq", False):
            root.removeHandler(h)
    handler: logging.Handler
    path: Path | None = None
    if verbose:
        handler = logging.StreamHandler()
    else:
        path = log_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(path, encoding="utf-8", delay=True)
        except OSError:
            handler, path = logging.NullHandler(), None
    setattr(handler, "_vitq", True)  # noqa: B010 - marks the handler this module owns
    handler.addFilter(_DropKnownNoise())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    if root.level > logging.WARNING or root.level == logging.NOTSET:
        root.setLevel(logging.WARNING)
    return path
