"""Apply the registered model adapters to a copy of a model and check each rewrite (one shared step of every wing).

:func:`adapt_model` walks the model top-down; the first registered adapter that recognises a module replaces it
(its subtree is not visited further). Each replacement is run against the module it replaces on random tokens
``(2, 5, dim)`` and must give the same output (float, to ``1e-4`` relative): an adapter that guessed a family
wrong fails loudly instead of changing the model. :func:`check_supported` then refuses, with a
:class:`~vitq_plugins.core.errors.VitqError` naming the module and what is missing, attention that no wing can
quantize (an ``nn.MultiheadAttention`` no adapter rewrote, a timm-style attention with its own parameters such
as Swin's relative position bias).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING
from typing import Any

import torch
from torch import nn

from vitq_plugins.core.errors import VitqError
from vitq_plugins.sites import is_attention

if TYPE_CHECKING:
    from vitq_plugins.core.manager import PluginHost

__all__ = ["adapt_model", "check_supported", "check_same_function"]

#: relative tolerance of the float check of a rewrite (float32 sums in another order, SDPA vs explicit softmax)
RTOL = 1e-4


def _token_dim(m: nn.Module) -> int | None:
    for sub in m.modules():
        if isinstance(sub, nn.LayerNorm):
            return int(sub.normalized_shape[-1])
        if isinstance(sub, nn.Linear):
            return int(sub.in_features)
    return None


@torch.no_grad()
def check_same_function(fqn: str, old: nn.Module, new: nn.Module, adapter: str) -> float:
    """Largest relative difference of ``old`` and ``new`` on random tokens ``(2, 5, dim)``.

    Raises:
        VitqError: the outputs differ by more than :data:`RTOL` (or ``new`` fails where ``old`` runs).
    """
    dim = _token_dim(new)
    if dim is None:
        raise VitqError(
            f"model adapter {adapter!r} rewrote {fqn!r} into a module without Linear or LayerNorm"
        )
    x = torch.randn(2, 5, dim, generator=torch.Generator().manual_seed(0))
    modes = (old.training, new.training)
    old.eval(), new.eval()
    try:
        ref, out = old(x), new(x)
    except Exception as exc:  # noqa: BLE001 - any failure of the rewrite becomes a clear error
        raise VitqError(
            f"model adapter {adapter!r}: the rewrite of {fqn!r} ({type(old).__name__}) fails on tokens "
            f"(2, 5, {dim}): {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        old.train(modes[0]), new.train(modes[1])
    ref = ref[0] if isinstance(ref, tuple) else ref
    if not isinstance(ref, torch.Tensor) or ref.shape != out.shape:
        raise VitqError(f"model adapter {adapter!r}: the rewrite of {fqn!r} returns another shape")
    err = float((ref - out).abs().max() / ref.abs().max().clamp_min(1e-12))
    if not err <= RTOL:
        raise VitqError(
            f"model adapter {adapter!r}: the rewrite of {fqn!r} ({type(old).__name__}) computes another function "
            f"(relative difference {err:.2e} > {RTOL:g}); its forward is not the one the adapter assumes"
        )
    return err


def _set(root: nn.Module, fqn: str, new: nn.Module) -> None:
    parent, _, name = fqn.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, new)


def _find(model: nn.Module, adapters: list[tuple[str, Any]]) -> list[tuple[str, str, nn.Module]]:
    """``(fqn, adapter, replacement)`` of every module an adapter recognises, top-down, not below a match."""
    found: list[tuple[str, str, nn.Module]] = []

    def visit(fqn: str, m: nn.Module) -> None:
        if not is_attention(m):  # canonical attention is left as it is
            for name, rewrite in adapters:
                try:
                    new = rewrite(m)
                except VitqError as exc:
                    raise VitqError(f"module {fqn or '<root>'!r}: {exc}") from exc
                if new is not None:
                    found.append((fqn, name, new))
                    return
        for child_name, child in m.named_children():
            visit(f"{fqn}.{child_name}" if fqn else child_name, child)

    visit("", model)
    return found


def adapt_model(model: nn.Module, host: PluginHost | None = None) -> nn.Module:
    """``model`` in vitq's canonical form: a copy with every module a registered adapter recognises rewritten
    (each rewrite checked to compute the same function), or ``model`` itself when none applies.

    Raises:
        VitqError: a rewrite computes another function, or attention remains that no wing can quantize
            (:func:`check_supported`).
    """
    from vitq_plugins.core.manager import get_host

    host = host or get_host()
    adapters = [(name, spec.load()) for name, spec in host.model_adapters.items()]
    found = _find(model, adapters)
    if not found:
        check_supported(model, host)
        return model
    for fqn, name, new in found:
        check_same_function(fqn or type(model).__name__, model.get_submodule(fqn), new, name)
    if found[0][0] == "":
        work = copy.deepcopy(found[0][2])
    else:
        work = copy.deepcopy(model)
        for fqn, _, new in found:
            _set(work, fqn, copy.deepcopy(new).train(model.get_submodule(fqn).training))
    check_supported(work, host)
    return work


def check_supported(model: nn.Module, host: PluginHost | None = None) -> None:
    """Refuse attention the wings cannot quantize, naming the module and what is missing.

    Raises:
        VitqError: an ``nn.MultiheadAttention`` that no adapter rewrote (its parent is not of a registered
            family), or a timm-style attention (``qkv`` + ``num_heads``) with parameters or buffers of its own
            (Swin's ``relative_position_bias_table``, EVA's separate q/v biases) or a ``gate``.
    """
    from vitq_plugins.core.manager import get_host

    for fqn, m in model.named_modules():
        if isinstance(m, nn.MultiheadAttention):
            parent = fqn.rpartition(".")[0]
            owner = type(model.get_submodule(parent)).__name__ if parent else type(model).__name__
            names = ", ".join((host or get_host()).model_adapters.list()) or "none"
            raise VitqError(
                f"module {fqn!r} (nn.MultiheadAttention in {owner}) cannot be quantized: no registered model "
                f"adapter rewrites {owner} into explicit attention (registered: {names}); vitq needs batch-first "
                "self-attention inside a pre-norm block (torchvision EncoderBlock), or add an adapter through the "
                "vitq_register_model_adapters hook"
            )
        if is_attention(m):
            own = [n for n, _ in m.named_parameters(recurse=False)] + [
                n for n, _ in m.named_buffers(recurse=False)
            ]
            if getattr(m, "gate", None) is not None:
                own.append("gate")
            if own:
                raise VitqError(
                    f"attention {fqn!r} ({type(m).__name__}) has {', '.join(own)}: vitq's explicit attention "
                    "runs qkv, q/k norms, softmax(q·kᵀ·scale)·v and proj only (relative position bias, window "
                    "attention, separate q/v biases and gates are not supported yet, issue #20)"
                )
