"""Registry entries: what a quantizer, recipe, model, dataset or backend *is* to vitq.

Entries are frozen dataclasses holding data plus lazy ``"module:attr"`` references to code, so that
registering the built-in plugins imports neither Brevitas, torch.ao nor ONNX.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
import importlib
from types import MappingProxyType
from typing import Any

from vitq_plugins.core.errors import VitqError

__all__ = [
    "SITES",
    "QuantizerSpec",
    "RecipeSpec",
    "ModelSpec",
    "DatasetSpec",
    "BackendSpec",
    "TransformSpec",
    "ModelAdapterSpec",
    "load_ref",
]

#: What a quantizer can be applied to. ``weight``: Linear/Conv weights; ``act``: Linear/Conv inputs;
#: ``ln_input``: LayerNorm inputs; ``softmax_output``: the attention map; ``gelu_output``: the MLP's
#: post-GELU activation (fc2 input); ``attn_matmul``: q, k and v at the two attention matmuls;
#: ``residual``: residual-add outputs.
SITES: tuple[str, ...] = (
    "weight",
    "act",
    "ln_input",
    "softmax_output",
    "gelu_output",
    "attn_matmul",
    "residual",
)


def load_ref(ref: str) -> Any:
    """Import ``"package.module:attr"`` and return the attribute.

    Raises:
        VitqError: the reference is malformed or cannot be imported (the message names it).
    """
    mod_name, sep, attr = ref.partition(":")
    if not sep or not mod_name or not attr:
        raise VitqError(f"bad reference {ref!r}: expected 'package.module:attribute'")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as exc:
        raise VitqError(f"cannot import {mod_name!r} for {ref!r}: {exc}") from exc
    obj: Any = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise VitqError(f"{mod_name!r} has no attribute {attr!r} (from {ref!r})")
        obj = getattr(obj, part)
    return obj


def _freeze(m: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(m))


@dataclass(frozen=True, kw_only=True)
class QuantizerSpec:
    """A quantizer: where it applies, its valid bit range and its adapter for each wing.

    A wing adapter is called as ``factory(site, bits, **options)`` (``site`` one of :data:`SITES`) and
    returns what that wing's extension point consumes (a Brevitas injector, an FX observer constructor or
    custom-module spec, ...); each wing documents its extension point. The wings are discovered from the
    ``backends`` registry, so a third-party wing is just another key here.

    Args:
        name: unique registry name, e.g. ``"pts"`` or ``"lis"``.
        sites: the :data:`SITES` it can quantize.
        min_bits: smallest valid bit-width.
        max_bits: largest valid bit-width.
        default_bits: bit-width used when the config gives none.
        description: one line for listings.
        paper: citation (arXiv id and section/equation).
        backends: wing name -> ``"module:attr"`` of its adapter factory.
        wing_bits: wing name -> ``(min, max)`` where a wing supports fewer bit-widths than the quantizer
            (e.g. FX's 8-bit containers); validated once, when the config is planned.
        integer: the module whose import registers this quantizer's integer forms for the integer-only
            program (``vitq_plugins.intexec.extension.register_integer_form``); empty: it has none.

    Example:
        >>> QuantizerSpec(name="q", sites={"act"}, min_bits=2, max_bits=8, default_bits=8, description="d")
        ... # doctest: +ELLIPSIS
        QuantizerSpec(name='q', ...)
    """

    name: str
    sites: frozenset[str]
    min_bits: int
    max_bits: int
    default_bits: int
    description: str
    paper: str = ""
    backends: Mapping[str, str] = field(default_factory=dict)
    wing_bits: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    integer: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "sites", frozenset(self.sites))
        object.__setattr__(self, "backends", _freeze(self.backends))
        object.__setattr__(
            self,
            "wing_bits",
            MappingProxyType({k: (int(lo), int(hi)) for k, (lo, hi) in self.wing_bits.items()}),
        )
        bad = sorted(set(self.sites) - set(SITES))
        if not self.sites or bad:
            raise ValueError(
                f"quantizer {self.name!r}: sites {sorted(self.sites)} invalid; valid sites: {SITES}"
            )
        if not 1 <= self.min_bits <= self.default_bits <= self.max_bits <= 32:
            raise ValueError(
                f"quantizer {self.name!r}: need 1 <= min_bits <= default_bits <= max_bits <= 32, got "
                f"{self.min_bits}, {self.default_bits}, {self.max_bits}"
            )
        for wing, (lo, hi) in self.wing_bits.items():
            if not self.min_bits <= lo <= hi <= self.max_bits:
                raise ValueError(
                    f"quantizer {self.name!r}: wing_bits[{wing!r}]=({lo}, {hi}) must lie within "
                    f"{self.min_bits}..{self.max_bits}"
                )

    def bit_range(self, backend: str | None = None) -> tuple[int, int]:
        """``(min, max)`` bits, narrowed to what ``backend`` supports when it declares less."""
        if backend is not None and backend in self.wing_bits:
            return self.wing_bits[backend]
        return self.min_bits, self.max_bits

    def check_bits(self, bits: int, backend: str | None = None) -> int:
        """Return ``bits`` if it lies in this quantizer's range (on ``backend``), else raise :class:`VitqError`."""
        lo, hi = self.bit_range(backend)
        if isinstance(bits, bool) or not isinstance(bits, int) or not lo <= bits <= hi:
            where = f" in the {backend} backend" if backend in self.wing_bits else ""
            raise VitqError(
                f"bits={bits!r} is out of range for quantizer {self.name!r}{where}: valid {lo}..{hi}"
            )
        return bits

    def factory(self, backend: str) -> Any:
        """Import and return this quantizer's factory for ``backend``."""
        if backend not in self.backends:
            have = ", ".join(sorted(self.backends)) or "none"
            raise VitqError(f"quantizer {self.name!r} has no {backend!r} implementation (has: {have})")
        return load_ref(self.backends[backend])

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary for listings."""
        return {
            "name": self.name,
            "sites": sorted(self.sites),
            "bits": [self.min_bits, self.max_bits],
            "default_bits": self.default_bits,
            "backends": sorted(self.backends),
            "wing_bits": {k: list(v) for k, v in sorted(self.wing_bits.items())},
            "integer": bool(self.integer),
            "description": self.description,
            "paper": self.paper,
        }


@dataclass(frozen=True)
class RecipeSpec:
    """A named bundle of quantizer choices per site (e.g. ``fqvit`` = PTS + LIS + uniform elsewhere).

    Args:
        name: registry name.
        description: one line.
        quantizers: site → quantizer name; sites left out stay float.
        transforms: model transforms applied before quantization, by name (e.g. ``"sqb"``).
        integer: whether the recipe has an integer-only form.
        paper: citation.
        min_bits: site → the fewest bits that site takes when the config does not set its bits for the layer
            explicitly (e.g. I-ViT keeps the LayerNorm input, the residual stream, wider than the other
            activations). The plan (``plan_sites``) shows the bits actually used.
    """

    name: str
    description: str
    quantizers: Mapping[str, str]
    transforms: tuple[str, ...] = ()
    integer: bool = False
    paper: str = ""
    min_bits: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantizers", _freeze(self.quantizers))
        object.__setattr__(self, "min_bits", MappingProxyType(dict(self.min_bits)))
        bad = sorted(set(self.quantizers) - set(SITES))
        if bad:
            raise ValueError(f"recipe {self.name!r}: unknown sites {bad}; valid sites: {SITES}")
        for site, bits in self.min_bits.items():
            if site not in self.quantizers:
                raise ValueError(
                    f"recipe {self.name!r}: min_bits names site {site!r}, which the recipe does not quantize; "
                    f"quantized sites: {sorted(self.quantizers)}"
                )
            if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= 16:
                raise ValueError(
                    f"recipe {self.name!r}: min_bits[{site!r}] must be an integer in 2..16, got {bits!r}"
                )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary for listings."""
        return {
            "name": self.name,
            "quantizers": dict(self.quantizers),
            "transforms": list(self.transforms),
            "min_bits": dict(self.min_bits),
            "integer": self.integer,
            "description": self.description,
            "paper": self.paper,
        }


@dataclass(frozen=True)
class ModelSpec:
    """A model name and the ``"module:attr"`` of a factory ``f(**kwargs) -> nn.Module``."""

    name: str
    factory_ref: str
    description: str
    num_classes: int = 1000
    default_dataset: str = ""

    def build(self, **kwargs: Any) -> Any:
        """Import the factory and build the model."""
        return load_ref(self.factory_ref)(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary for listings."""
        return {
            "name": self.name,
            "factory": self.factory_ref,
            "num_classes": self.num_classes,
            "default_dataset": self.default_dataset,
            "description": self.description,
        }


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset name and the ``"module:attr"`` of a loader ``f(**kwargs) -> Dataset``."""

    name: str
    factory_ref: str
    description: str
    num_classes: int = 0

    def build(self, **kwargs: Any) -> Any:
        """Import the loader and build the dataset."""
        return load_ref(self.factory_ref)(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary for listings."""
        return {
            "name": self.name,
            "factory": self.factory_ref,
            "num_classes": self.num_classes,
            "description": self.description,
        }


@dataclass(frozen=True)
class TransformSpec:
    """A model transform a recipe lists by name (``RecipeSpec.transforms``), applied before quantization.

    The callable behind ``impl_ref`` is ``f(model, batches, *, w_bits, a_bits, **options) -> model``: it may
    read the calibration batches (re-iterable) and modify ``model`` in place. ``options`` are the config
    options prefixed with the transform's name (``sqb_alpha`` -> ``alpha``).
    """

    name: str
    impl_ref: str
    description: str
    paper: str = ""

    def load(self) -> Any:
        """Import and return the transform callable."""
        return load_ref(self.impl_ref)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary for listings."""
        return {
            "name": self.name,
            "impl": self.impl_ref,
            "description": self.description,
            "paper": self.paper,
        }


@dataclass(frozen=True)
class _ImplSpec:
    """A registry entry that names one implementation by ``"module:attr"``."""

    name: str
    impl_ref: str
    description: str

    def load(self) -> Any:
        """Import and return the implementation."""
        return load_ref(self.impl_ref)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary for listings."""
        return {"name": self.name, "impl": self.impl_ref, "description": self.description}


@dataclass(frozen=True)
class BackendSpec(_ImplSpec):
    """A framework wing: ``"module:attr"`` of an object with ``quantize``/``export`` entry points."""


@dataclass(frozen=True)
class ModelAdapterSpec(_ImplSpec):
    """A model family vitq rewrites into its canonical timm-style form before quantization.

    The callable behind ``impl_ref`` is ``f(module: nn.Module) -> nn.Module | None``: given one module of the
    user's model it returns a replacement in the canonical form (a fused ``qkv`` Linear with ``num_heads`` and
    ``proj``; a pre-norm block with ``norm1``/``attn``/``norm2``/``mlp``) that computes the same function, or
    ``None`` when the module is not of its family. It raises :class:`VitqError` for a module of its family that
    it cannot rewrite, naming the module's class and what is missing.

    Args:
        name: registry name, e.g. ``"torchvision_vit"``.
        impl_ref: ``"module:attr"`` of the rewrite callable.
        description: one line (the family and how it is rewritten).
    """
