"""Integer forms: the non-affine operators of the integer IR, provided by the papers through a registry.

The integer program (:mod:`~vitq_plugins.intexec.layers`) is affine everywhere (integer matmuls, dyadic
requantization, I-ViT arXiv 2207.01405 eqs. 4 and 7) except at three kinds of site, each of which holds a
*form* object and calls it:

* ``"layernorm"``: :class:`LayerNormForm`, integer LayerNorm codes -> int64 values before the output requant;
* ``"softmax"``: :class:`SoftmaxForm`, exact attention scores and centered ``v`` codes -> ``P @ v`` (the form
  decides how ``attn @ v`` consumes its probability codes);
* ``"gelu"``: :class:`GeluForm`, fc1's int32 accumulator -> fc2's input codes.

A form bundles its executor kernel (``forward``, int64 torch ops), its ONNX emitter (:meth:`IntegerForm.emit_onnx`,
called by :mod:`~vitq_plugins.intexec.onnx_export`) and the classmethods the converters call to build it from
calibrated quantities (``from_brevitas`` / ``from_fx``). Forms register themselves with
:func:`register_integer_form` under a ``(kind, name)`` key, ``name`` being the quantizer (or kernel) name of
the site; :func:`find_integer_form` finds a form, importing the ``integer`` module that sits next to the
quantizer's wing adapters (its ``QuantizerSpec.backends``) on first use.
"""

from __future__ import annotations

from abc import ABCMeta
from abc import abstractmethod
from collections.abc import Callable
import importlib
from typing import Any
from typing import ClassVar
from typing import TypeVar

import torch
from torch import nn

from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.errors import close_matches
from vitq_plugins.intexec.recorder import Recorder

__all__ = [
    "KINDS",
    "GeluForm",
    "IntegerForm",
    "LayerNormForm",
    "SoftmaxForm",
    "discover_integer_forms",
    "find_integer_form",
    "integer_form",
    "integer_form_names",
    "register_integer_form",
]

#: the site kinds that take an integer form (``"grid"``: readers of non-uniform activation grids)
KINDS = ("layernorm", "softmax", "gelu", "grid")

_F = TypeVar("_F", bound=type)
_FORMS: dict[tuple[str, str], type] = {}
_DISCOVERED: set[str] = set()


class IntegerForm(nn.Module, metaclass=ABCMeta):
    """Base of every integer form: an ``nn.Module`` of integer buffers whose ``forward`` uses integer ops only.

    ``recorder`` is replaced by the executor's shared :class:`~vitq_plugins.intexec.recorder.Recorder`.
    """

    kind: ClassVar[str] = ""
    form_name: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.recorder = Recorder()

    @abstractmethod
    def emit_onnx(self, g: Any, *args: Any) -> Any:
        """Append this form's ONNX nodes to the graph builder ``g`` (:class:`~vitq_plugins.intexec.extension.OnnxGraph`)."""


class LayerNormForm(IntegerForm):
    """An integer LayerNorm over the last dim of its (aligned, zero-point-free) input codes."""

    kind = "layernorm"

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output codes of the integer LayerNorm of ``x`` (int64)."""

    @abstractmethod
    def out_bound(self) -> int:
        """A bound on ``|forward(x)|`` (the output requant's input bound)."""

    @abstractmethod
    def emit_onnx(self, g: Any, x: str, channels: int) -> str:
        """ONNX nodes of :meth:`forward` on the int64 tensor ``x``; returns the output's name."""


class SoftmaxForm(IntegerForm):
    """The softmax unit of attention and its ``attn @ v``: ``forward(scores, v) = P @ v`` (int64).

    ``scores``: the exact ``(q - z_q)(k - z_k)^T``; ``v``: centered ``v`` codes. The result's scale is
    fixed by the form (the converter builds the requant after it).
    """

    kind = "softmax"

    @abstractmethod
    def forward(self, scores: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``P @ v`` (int64) of the integer softmax ``P`` of ``scores``."""

    @abstractmethod
    def emit_onnx(self, g: Any, scores: str, v: str, v_zero_point: int, tokens: int) -> str:
        """ONNX ``P @ (v - v_zero_point)`` (int64) from the int64 ``scores`` and the ``v`` codes."""

    def check_onnx(self) -> None:
        """Raise :class:`VitqError` when this form cannot be exported (checked before the graph is built)."""


class GeluForm(IntegerForm):
    """The GELU unit of the MLP: ``forward(acc)`` maps fc1's accumulator to fc2's input codes (int64)."""

    kind = "gelu"

    @abstractmethod
    def forward(self, acc: torch.Tensor) -> torch.Tensor:
        """fc2's input codes (int64) from fc1's accumulator ``acc``."""

    @abstractmethod
    def emit_onnx(self, g: Any, acc: str) -> tuple[str, bool]:
        """ONNX codes of fc2's input and whether they are uint8 already."""


def register_integer_form(kind: str, name: str) -> Callable[[_F], _F]:
    """Class decorator: register an integer form (or grid reader) as ``(kind, name)``.

    Example::

        @register_integer_form("softmax", "shiftmax")
        class Shiftmax(SoftmaxForm): ...

    Raises:
        ValueError: an unknown ``kind`` or a ``(kind, name)`` registered to another class.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown integer form kind {kind!r}; valid: {list(KINDS)}")

    def deco(cls: _F) -> _F:
        prev = _FORMS.get((kind, name))
        if prev is not None and prev.__qualname__ != cls.__qualname__:
            raise ValueError(f"integer form ({kind!r}, {name!r}) is already {prev.__qualname__}")
        _FORMS[(kind, name)] = cls
        if isinstance(cls, type) and issubclass(cls, IntegerForm) and not cls.__dict__.get("form_name"):
            cls.form_name = name
        return cls

    return deco


def _discover(name: str) -> None:
    """Import the module quantizer ``name`` declares for its integer forms (``QuantizerSpec.integer``), once."""
    if name in _DISCOVERED:
        return
    from vitq_plugins.core.manager import get_host

    quantizers = get_host().quantizers
    if name not in quantizers:
        return  # not registered (yet): a later host may know it, so nothing is remembered
    _DISCOVERED.add(name)
    module = quantizers.get(name).integer
    if not module:
        return
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise VitqError(
            f"quantizer {name!r}: cannot import its integer forms from {module!r}: {exc}"
        ) from exc


def find_integer_form(kind: str, name: str, wing: str = "") -> type | None:
    """The form registered as ``(kind, name)``, or ``None`` (``name`` empty or without an integer form).

    ``wing``: only a form with a builder for that wing (a ``from_<wing>`` classmethod, e.g. ``from_fx``).
    """
    if not name:
        return None
    if (kind, name) not in _FORMS:
        _discover(name)
    found = _FORMS.get((kind, name))
    if found is not None and wing and not callable(getattr(found, f"from_{wing}", None)):
        return None
    return found


def discover_integer_forms() -> None:
    """Import the ``integer`` module of every registered quantizer (so :func:`integer_form_names` lists all)."""
    from vitq_plugins.core.manager import get_host

    for name in list(get_host().quantizers):
        _discover(name)


def integer_form(kind: str, name: str) -> type:
    """The form registered as ``(kind, name)``.

    Raises:
        VitqError: none; the message lists close matches and the registered names of that kind.
    """
    found = find_integer_form(kind, name)
    if found is None:
        names = integer_form_names(kind)
        hints = close_matches(name, names)
        hint = f"; did you mean {', '.join(map(repr, hints))}?" if hints else ""
        raise VitqError(f"no integer {kind} form {name!r}{hint} (registered: {', '.join(names) or 'none'})")
    return found


def integer_form_names(kind: str, wing: str = "") -> list[str]:
    """Registered names of ``kind`` (those imported so far; ``wing``: with a builder for it), sorted."""
    return sorted(
        n
        for (k, n), cls in _FORMS.items()
        if k == kind and (not wing or callable(getattr(cls, f"from_{wing}", None)))
    )
