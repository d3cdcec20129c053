"""Quantization sites of a ViT, found from its module structure and resolved against a config.

A *site* is one place a quantizer acts, keyed ``"<fqn>:<site>"`` with the FQN of the float model's
module: ``blocks.0.attn.qkv:weight``, ``blocks.0.attn.qkv:act`` (its input), ``blocks.0.norm1:ln_input``,
``blocks.0.attn:softmax_output``, ``blocks.0.attn:attn_matmul`` (q, k, v), ``blocks.0.mlp.act:gelu_output``,
``blocks.0:residual`` (the block's two residual adds). Both backends report what they quantized in these
keys, so the same config can be checked to give the same sites in Brevitas and torch.ao FX.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
import warnings

from vitq_plugins.core.errors import VitqError

if TYPE_CHECKING:
    from torch import nn

    from vitq_plugins.config import QuantConfig
    from vitq_plugins.core.manager import PluginHost

__all__ = ["Site", "find_sites", "plan_sites", "is_attention", "is_block"]

_EXPECTED = {
    "ln_input": "a LayerNorm (nn.LayerNorm or a subclass)",
    "softmax_output": "an attention module with a `qkv` Linear and `num_heads` (timm Attention)",
    "attn_matmul": "an attention module with a `qkv` Linear and `num_heads` (timm Attention)",
    "gelu_output": "an nn.GELU activation",
    "residual": "a transformer block with `attn`, `mlp`, `norm1` and `norm2`",
    "weight": "an nn.Linear or nn.Conv2d",
    "act": "an nn.Linear or nn.Conv2d",
}


@dataclass(frozen=True)
class Site:
    """One resolved quantization site."""

    fqn: str
    site: str
    quantizer: str
    bits: int

    @property
    def key(self) -> str:
        """``"<fqn>:<site>"``."""
        return f"{self.fqn}:{self.site}"


def is_attention(module: nn.Module) -> bool:
    """timm-style attention: a fused ``qkv`` Linear and a ``num_heads`` attribute."""
    from torch import nn

    return isinstance(getattr(module, "qkv", None), nn.Linear) and hasattr(module, "num_heads")


def is_block(module: nn.Module) -> bool:
    """timm-style pre-norm transformer block."""
    return all(hasattr(module, a) for a in ("attn", "mlp", "norm1", "norm2"))


def find_sites(model: nn.Module) -> list[tuple[str, str]]:
    """Structural ``(fqn, site)`` pairs of ``model``, in module order, independent of any config."""
    from torch import nn

    out: list[tuple[str, str]] = []
    for fqn, m in model.named_modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            out += [(fqn, "weight"), (fqn, "act")]
        elif isinstance(m, nn.LayerNorm):
            out.append((fqn, "ln_input"))
        elif isinstance(m, nn.GELU):
            out.append((fqn, "gelu_output"))
        if is_attention(m):
            out += [(fqn, "attn_matmul"), (fqn, "softmax_output")]
        if is_block(m):
            out.append((fqn, "residual"))
    return out


def plan_sites(
    model: nn.Module,
    config: QuantConfig,
    host: PluginHost | None = None,
    *,
    backend: str | None = None,
    validated: bool = False,
) -> dict[str, Site]:
    """Resolve every structural site of ``model`` against ``config`` (layers kept float are left out).

    The config is validated here against the registries, the model's module names and (with ``backend``)
    the bit ranges that wing supports; with ``validated=True`` (the caller already ran
    ``config.validate(host, backend=backend)``) only the layer keys are checked against the model.

    The model is first put in vitq's canonical form (:func:`vitq_plugins.adapters.adapt_model`): the FQNs of
    the sites are those of the adapted model, as every wing adapts it the same way.

    Raises:
        VitqError: the recipe quantizes a site kind that the model does not have (names what was
            expected), the config does not validate against the registries and module names, or the
            model holds attention that no adapter brings into a form the wings quantize.
    """
    from vitq_plugins.adapters.apply import adapt_model
    from vitq_plugins.core.manager import get_host

    host = host or get_host()
    model = adapt_model(model, host)  # a foreign family in the canonical form: the wings see the same FQNs
    if validated:
        config.check_layer_keys(n for n, _ in model.named_modules())
    else:
        config.validate(host, (n for n, _ in model.named_modules()), backend=backend)
    recipe = host.recipes.get(config.recipe)
    structural = find_sites(model)
    present = {s for _, s in structural}
    for site, qname in recipe.quantizers.items():
        if site == "gelu_output" and site not in present and _other_activation(model):
            warnings.warn(
                f"recipe {recipe.name!r}: site 'gelu_output' ({qname!r}) does not apply to {type(model).__name__}, "
                f"whose MLPs use {_other_activation(model)}; their fc2 inputs keep the 'act' quantizer",
                stacklevel=2,
            )
            continue
        if site not in present and qname != "minmax":
            raise VitqError(
                f"recipe {recipe.name!r} puts quantizer {qname!r} on {site!r}, but no module of "
                f"{type(model).__name__} is {_EXPECTED[site]}"
            )
    plan: dict[str, Site] = {}
    for fqn, site in structural:
        res = config.resolve(fqn, recipe.quantizers)
        if res.keep_float or site not in res.quantizers:
            continue
        bits = res.bits_for(site)
        floor = recipe.min_bits.get(site)
        if floor is not None and not _explicit_bits(config, res.matched, site):
            bits = max(bits, floor)
        s = Site(fqn, site, res.quantizers[site], bits)
        plan[s.key] = s
    _check_override_sites(model, config, structural)
    return plan


def _explicit_bits(config: QuantConfig, matched: str, site: str) -> bool:
    """Whether the layer override that matched sets the bits of ``site`` (then a recipe's floor does not apply)."""
    from vitq_plugins.config import bits_key_for_site

    return bool(matched) and getattr(config.layers[matched], bits_key_for_site(site)) is not None


def _other_activation(model: nn.Module) -> str:
    """The activation class(es) of the MLPs of ``model``'s blocks when none is an ``nn.GELU`` ("" otherwise): a
    recipe's GELU site does not apply to such a transformer, the rest of the recipe does."""
    from torch import nn

    acts = {type(m.mlp.act).__name__ for m in model.modules() if is_block(m) and hasattr(m.mlp, "act")}
    blocks = any(is_block(m) for m in model.modules())
    if not blocks or not acts or any(isinstance(m, nn.GELU) for m in model.modules()):
        return ""
    return ", ".join(sorted(acts))


def _check_override_sites(model: nn.Module, config: QuantConfig, structural: list[tuple[str, str]]) -> None:
    """Refuse an override that puts a quantizer on a site none of its modules has (it would be ignored)."""
    explicit = {k: ov for k, ov in config.layers.items() if ov.quantizers and not ov.keep_float}
    if not explicit:
        return
    sites_of: dict[str, set[str]] = {}
    for fqn, site in structural:
        sites_of.setdefault(fqn, set()).add(site)
    seen: dict[str, set[str]] = {}
    for fqn, _ in model.named_modules():
        key = config.match(fqn)
        if key in explicit:
            seen.setdefault(key, set()).update(sites_of.get(fqn, set()))
    for key, ov in explicit.items():
        have = seen.get(key, set())
        for site, qname in ov.quantizers.items():
            if site not in have:
                raise VitqError(
                    f"layer override {key!r} puts quantizer {qname!r} on site {site!r}, but the module(s) it "
                    f"matches have only {sorted(have) or 'no'} sites; {site!r} belongs on {_EXPECTED[site]}"
                )
