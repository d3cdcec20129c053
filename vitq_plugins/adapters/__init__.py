"""Model-family adapters: any ViT a user brings, rewritten into vitq's canonical timm-style form.

Every wing finds attention and blocks by their timm shape (:func:`vitq_plugins.sites.is_attention`,
:func:`~vitq_plugins.sites.is_block`). An adapter (registered through the ``vitq_register_model_adapters``
hook, registry ``host.model_adapters``) recognises one foreign family (torchvision's ``EncoderBlock`` with
``nn.MultiheadAttention``, a plain user ViT with ``to_qkv`` and ``nn.Softmax``...) and returns a replacement in
that form (:mod:`.canonical`); :func:`adapt_model` applies the registered adapters to a copy of the model and
checks that each rewrite computes the same function. :func:`~vitq_plugins.sites.plan_sites` and every wing call
it first, so site keys are the FQNs of the adapted model in every wing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["adapt_model", "check_supported"]


def __getattr__(name: str) -> Any:
    """Lazy: registering the built-in adapters (``plugin``) imports no torch."""
    if name in __all__:
        from vitq_plugins.adapters import apply

        return getattr(apply, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
