"""The public FX extension API: everything a paper package needs to give its quantizers an FX form.

A quantizer's FX adapter (``QuantizerSpec.backends["fx"]``) is called ``factory(site, bits, **options)`` and
returns either

* an observer constructor (``SomeObserver.with_args(...)``): a :class:`VitqObserver` subclass, e.g. the
  shared uniform numerics' :class:`UniformActObserver` / :class:`WeightObserver`; or
* a :class:`CustomModuleSpec` naming a :class:`CustomFloat` marker, whose ``reference``/``kernel`` define the
  operator (see :mod:`vitq_plugins.fx.custom`).

The wing dispatches on these types and their attributes only; it never names a quantizer.
"""

from __future__ import annotations

from vitq_plugins.fx.custom import CustomFloat
from vitq_plugins.fx.custom import CustomModuleSpec
from vitq_plugins.fx.custom import check_container_bits
from vitq_plugins.fx.custom import grid_codes
from vitq_plugins.fx.custom import is_custom_spec
from vitq_plugins.fx.modules import ObservedCustom
from vitq_plugins.fx.modules import QuantizedCustom
from vitq_plugins.fx.observers import FixedScaleObserver
from vitq_plugins.fx.observers import UniformActObserver
from vitq_plugins.fx.observers import VitqObserver
from vitq_plugins.fx.observers import WeightObserver

__all__ = [
    "CustomFloat",
    "CustomModuleSpec",
    "FixedScaleObserver",
    "ObservedCustom",
    "QuantizedCustom",
    "UniformActObserver",
    "VitqObserver",
    "WeightObserver",
    "check_container_bits",
    "grid_codes",
    "is_custom_spec",
]
