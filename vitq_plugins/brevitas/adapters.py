"""Import the Brevitas adapters of the registered quantizers (which fills the wing's registries).

A paper registers its integer kernels, export forms and QONNX executors when its Brevitas adapter module is
imported (``QuantizerSpec.backends["brevitas"]``, imported by :meth:`QuantizerSpec.factory` before any module
is built). Lookups that miss (a model deep-copied or unpickled in a fresh process, a QONNX file executed
without building a model first) call :func:`load_adapters` once and retry.
"""

from __future__ import annotations

from vitq_plugins.core.manager import get_host

__all__ = ["load_adapters"]

WING = "brevitas"


def load_adapters(quantizer: str = "") -> None:
    """Import the Brevitas adapter of ``quantizer`` (every registered quantizer's if ``""``).

    Quantizers without a Brevitas adapter, or an unknown ``quantizer``, are skipped: the caller's lookup
    then fails with its own message.
    """
    registry = get_host().quantizers
    names = [quantizer] if quantizer else registry.list()
    for name in names:
        if name not in registry:
            continue
        spec = registry.get(name)
        if WING in spec.backends:
            spec.factory(WING)
