"""Per-layer quantization configuration (torchao ``FqnToConfig`` style), frozen and JSON round-trippable.

Keys of :attr:`QuantConfig.layers` are module FQNs exactly as ``model.named_modules()`` yields them
(``"blocks.3.attn.qkv"``) or regexes prefixed ``"re:"`` (``"re:blocks\\.\\d+\\.mlp\\.fc2"``).
Precedence: exact key > first matching regex (in insertion order) > the config's defaults.

Bits: ``w_bits`` for the ``weight`` site; ``attn_bits`` for the attention map (``softmax_output``);
``a_bits`` for every other activation site.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
import json
from pathlib import Path
import re
from types import MappingProxyType
from typing import TYPE_CHECKING
from typing import Any

from vitq_plugins.core.errors import ConfigError
from vitq_plugins.core.errors import close_matches
from vitq_plugins.core.specs import SITES

if TYPE_CHECKING:
    from vitq_plugins.core.manager import PluginHost

__all__ = ["CONFIG_VERSION", "LayerOverride", "ResolvedLayer", "QuantConfig", "bits_key_for_site"]

CONFIG_VERSION = 1
_MIN_BITS, _MAX_BITS = 1, 32


def bits_key_for_site(site: str) -> str:
    """Which of ``w_bits``/``a_bits``/``attn_bits`` sets the bit-width of ``site``."""
    if site == "weight":
        return "w_bits"
    if site == "softmax_output":
        return "attn_bits"
    return "a_bits"


def _check_int_bits(value: object, where: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not _MIN_BITS <= value <= _MAX_BITS:
        raise ConfigError(
            f"{where}={value!r} is invalid: bits must be an integer in {_MIN_BITS}..{_MAX_BITS}"
        )


def _check_sites(quantizers: Mapping[str, str], where: str) -> None:
    for site, name in quantizers.items():
        if site not in SITES:
            hint = close_matches(site, SITES)
            raise ConfigError(
                f"{where}: unknown site {site!r}"
                + (f"; did you mean {hint[0]!r}?" if hint else "")
                + f" (valid: {', '.join(SITES)})"
            )
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: quantizer for site {site!r} must be a name, got {name!r}")


@dataclass(frozen=True)
class LayerOverride:
    """Overrides for one layer (or a regex of layers).

    Args:
        w_bits: weight bits, or ``None`` to inherit.
        a_bits: activation bits, or ``None`` to inherit.
        attn_bits: attention-map bits, or ``None`` to inherit.
        quantizers: site → quantizer name, replacing the recipe's choice at those sites.
        keep_float: leave this layer unquantized.
    """

    w_bits: int | None = None
    a_bits: int | None = None
    attn_bits: int | None = None
    quantizers: Mapping[str, str] = field(default_factory=dict)
    keep_float: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantizers", MappingProxyType(dict(self.quantizers)))
        for k in ("w_bits", "a_bits", "attn_bits"):
            _check_int_bits(getattr(self, k), k)
        _check_sites(self.quantizers, "layer override")
        if not isinstance(self.keep_float, bool):
            raise ConfigError(f"keep_float must be true or false, got {self.keep_float!r}")

    def to_dict(self) -> dict[str, Any]:
        """Only the fields that are set."""
        out: dict[str, Any] = {}
        for k in ("w_bits", "a_bits", "attn_bits"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        if self.quantizers:
            out["quantizers"] = dict(self.quantizers)
        if self.keep_float:
            out["keep_float"] = True
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "layer") -> LayerOverride:
        """Build from a JSON object; unknown fields are errors."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"{where}: expected an object like {{'w_bits': 4}}, got {d!r}")
        allowed = {"w_bits", "a_bits", "attn_bits", "quantizers", "keep_float"}
        extra = sorted(set(d) - allowed)
        if extra:
            raise ConfigError(f"{where}: unknown field(s) {extra}; valid: {sorted(allowed)}")
        try:
            return cls(**dict(d))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class ResolvedLayer:
    """The effective settings of one layer after applying precedence."""

    w_bits: int
    a_bits: int
    attn_bits: int
    quantizers: Mapping[str, str]
    keep_float: bool
    matched: str  # the key that matched, or "" for the defaults

    def bits_for(self, site: str) -> int:
        """Bit-width of ``site`` in this layer."""
        return int(getattr(self, bits_key_for_site(site)))


@dataclass(frozen=True)
class QuantConfig:
    """A whole-model quantization config.

    Args:
        recipe: registered recipe name (``minmax``, ``fqvit``, ``ivit``, ``mptq``, ...).
        w_bits: default weight bits.
        a_bits: default activation bits.
        attn_bits: default attention-map (softmax output) bits.
        layers: FQN or ``"re:"`` regex → :class:`LayerOverride`.
        options: recipe options passed to the quantizer factories (e.g. ``{"pts_k": 3}``).
        version: schema version.

    Example:
        >>> cfg = QuantConfig("fqvit", 8, 8, 4, {"head": LayerOverride(keep_float=True)})
        >>> QuantConfig.from_json(cfg.to_json()) == cfg
        True
    """

    recipe: str = "minmax"
    w_bits: int = 8
    a_bits: int = 8
    attn_bits: int = 8
    layers: Mapping[str, LayerOverride] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    version: int = CONFIG_VERSION

    def __post_init__(self) -> None:
        if self.version != CONFIG_VERSION:
            raise ConfigError(
                f"config version {self.version!r} is not supported (this vitq reads {CONFIG_VERSION})"
            )
        if not isinstance(self.recipe, str) or not self.recipe:
            raise ConfigError(f"recipe must be a registered recipe name, got {self.recipe!r}")
        for k in ("w_bits", "a_bits", "attn_bits"):
            v = getattr(self, k)
            if v is None:
                raise ConfigError(f"{k} must be set: an integer in {_MIN_BITS}..{_MAX_BITS}")
            _check_int_bits(v, k)
        layers: dict[str, LayerOverride] = {}
        for key, ov in dict(self.layers).items():
            if not isinstance(key, str) or not key:
                raise ConfigError(f"layer key must be a module FQN or 're:<regex>', got {key!r}")
            if key.startswith("re:"):
                try:
                    re.compile(key[3:])
                except re.error as exc:
                    raise ConfigError(f"layer key {key!r} is not a valid regex: {exc}") from None
            layers[key] = (
                ov if isinstance(ov, LayerOverride) else LayerOverride.from_dict(ov, f"layers[{key!r}]")
            )
        object.__setattr__(self, "layers", MappingProxyType(layers))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    # --- resolution ---------------------------------------------------------------------------
    def match(self, fqn: str) -> str:
        """The key that governs ``fqn`` ("" when only the defaults apply)."""
        if fqn in self.layers:
            return fqn
        for key in self.layers:
            if key.startswith("re:") and re.fullmatch(key[3:], fqn):
                return key
        return ""

    def resolve(self, fqn: str, recipe_quantizers: Mapping[str, str] | None = None) -> ResolvedLayer:
        """Effective bits and quantizers of module ``fqn`` (exact > regex > defaults)."""
        key = self.match(fqn)
        ov = self.layers.get(key) if key else None
        quantizers = dict(recipe_quantizers or {})
        if ov is not None:
            quantizers.update(ov.quantizers)
        return ResolvedLayer(
            w_bits=ov.w_bits if ov is not None and ov.w_bits is not None else self.w_bits,
            a_bits=ov.a_bits if ov is not None and ov.a_bits is not None else self.a_bits,
            attn_bits=ov.attn_bits if ov is not None and ov.attn_bits is not None else self.attn_bits,
            quantizers=MappingProxyType(quantizers),
            keep_float=bool(ov.keep_float) if ov is not None else False,
            matched=key,
        )

    def with_layers(self, layers: Mapping[str, LayerOverride | Mapping[str, Any]]) -> QuantConfig:
        """A copy whose overrides are ``self.layers`` updated with ``layers``."""
        merged: dict[str, Any] = dict(self.layers)
        merged.update(layers)
        return QuantConfig(self.recipe, self.w_bits, self.a_bits, self.attn_bits, merged, self.options)

    # --- validation ---------------------------------------------------------------------------
    def validate(
        self, host: PluginHost, module_names: Iterable[str] | None = None, *, backend: str | None = None
    ) -> None:
        """Check names and ranges against the registries and, if given, the model's module FQNs.

        With ``backend``, bits are checked against the range that wing supports (``QuantizerSpec.wing_bits``),
        and every quantizer must have an adapter for it.

        Raises:
            ConfigError: unknown recipe/quantizer, bits outside a quantizer's range, a site a
                quantizer does not support, or a layer key that matches no module.
        """
        from vitq_plugins.core.errors import UnknownNameError

        try:
            recipe = host.recipes.get(self.recipe)
        except UnknownNameError as exc:
            raise ConfigError(str(exc)) from None
        # a wing that no quantizer has an adapter for handles every quantizer its own way
        wing_adapters = backend is not None and any(backend in q.backends for _, q in host.quantizers.items())
        for where, res in [("defaults", self.resolve("", recipe.quantizers))] + [
            (f"layers[{k!r}]", self._resolve_key(k, recipe.quantizers)) for k in self.layers
        ]:
            if res.keep_float:
                continue
            for site, qname in res.quantizers.items():
                try:
                    spec = host.quantizers.get(qname)
                except UnknownNameError as exc:
                    raise ConfigError(f"{where}: {exc}") from None
                if site not in spec.sites:
                    raise ConfigError(
                        f"{where}: quantizer {qname!r} cannot quantize site {site!r} (it supports {sorted(spec.sites)})"
                    )
                if wing_adapters and backend not in spec.backends:
                    have = ", ".join(sorted(spec.backends)) or "none"
                    raise ConfigError(
                        f"{where}: quantizer {qname!r} has no {backend!r} implementation (it has: {have})"
                    )
                bits = res.bits_for(site)
                lo, hi = spec.bit_range(backend)
                if not lo <= bits <= hi:
                    wing = f" in the {backend} backend" if backend in spec.wing_bits else ""
                    raise ConfigError(
                        f"{where}: {bits_key_for_site(site)}={bits} is out of range for quantizer {qname!r} at "
                        f"site {site!r}{wing}: valid {lo}..{hi}"
                    )
        if module_names is not None:
            self.check_layer_keys(module_names)

    def check_layer_keys(self, module_names: Iterable[str]) -> None:
        """Check that every layer key (an FQN or a ``re:`` regex) matches a module name.

        Raises:
            ConfigError: a key that matches no module (with close matches for an FQN).
        """
        names = [n for n in module_names if n]
        for key in self.layers:
            if key.startswith("re:"):
                if not any(re.fullmatch(key[3:], n) for n in names):
                    raise ConfigError(f"layer key {key!r} matches no module of the model")
            elif key not in names:
                hint = close_matches(key, names)
                raise ConfigError(
                    f"layer key {key!r} matches no module of the model"
                    + (f"; did you mean {', '.join(repr(h) for h in hint)}?" if hint else "")
                )

    def _resolve_key(self, key: str, recipe_quantizers: Mapping[str, str]) -> ResolvedLayer:
        ov = self.layers[key]
        q = dict(recipe_quantizers)
        q.update(ov.quantizers)
        return ResolvedLayer(
            ov.w_bits if ov.w_bits is not None else self.w_bits,
            ov.a_bits if ov.a_bits is not None else self.a_bits,
            ov.attn_bits if ov.attn_bits is not None else self.attn_bits,
            MappingProxyType(q),
            ov.keep_float,
            key,
        )

    # --- serialization ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (``version`` first)."""
        return {
            "version": self.version,
            "recipe": self.recipe,
            "w_bits": self.w_bits,
            "a_bits": self.a_bits,
            "attn_bits": self.attn_bits,
            "layers": {k: v.to_dict() for k, v in self.layers.items()},
            "options": dict(self.options),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> QuantConfig:
        """Build from a dict; unknown top-level fields are errors."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"a config must be a JSON object, got {type(d).__name__}")
        allowed = {"version", "recipe", "w_bits", "a_bits", "attn_bits", "layers", "options"}
        extra = sorted(set(d) - allowed)
        if extra:
            raise ConfigError(f"unknown config field(s) {extra}; valid: {sorted(allowed)}")
        layers = d.get("layers", {})
        if not isinstance(layers, Mapping):
            raise ConfigError(f"'layers' must be an object mapping FQN/regex to overrides, got {layers!r}")
        options = d.get("options", {})
        if not isinstance(options, Mapping):
            raise ConfigError(f"'options' must be an object, got {options!r}")
        kw = {k: d[k] for k in ("version", "recipe", "w_bits", "a_bits", "attn_bits") if k in d}
        return cls(
            **kw,
            layers={k: LayerOverride.from_dict(v, f"layers[{k!r}]") for k, v in layers.items()},
            options=options,
        )

    def to_json(self, indent: int | None = 2) -> str:
        """Serialize to JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str, source: str = "<string>") -> QuantConfig:
        """Parse JSON text; malformed JSON raises :class:`ConfigError` with line and column."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{source}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        """Write JSON atomically (temp file + rename)."""
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(self.to_json() + "\n")
        tmp.replace(p)
        return p

    @classmethod
    def load(cls, path: str | Path) -> QuantConfig:
        """Read a JSON config file."""
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config {str(p)!r}: {exc.strerror or exc}") from None
        return cls.from_json(text, source=str(p))
