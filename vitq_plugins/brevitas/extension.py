"""The public extension API of the Brevitas wing: what a paper's Brevitas adapter builds on.

A paper's adapter module (``vitq_plugins.papers.<paper>.brevitas``, the target of
``QuantizerSpec.backends["brevitas"]``) imports only this module (and Brevitas/torch) and provides:

* a factory per quantizer, ``factory(site, bits, **options) -> injector``: an injector composed from the
  generic ones here (``Uint8ActPerTensorMinMax.let(...)``, or a subclass with its own ``tensor_quant``, a
  :class:`CalibratedQuant` subclass, and ``proxy_class``) carrying ``vitq_name``; check the site with
  :func:`require_site`;
* for a quantizer that feeds an integer kernel: an injector with :class:`IntegerKernelInputMixin` naming the
  kernel, and the kernel itself registered with :func:`register_kernel` (an :class:`IntegerKernel`);
* for a non-uniform quantizer: a dedicated proxy class and its :class:`ExportForm` registered with
  :func:`register_export_form`; a ``vitq`` custom node it emits is executed by a :class:`VitqCustomOp`
  registered with :func:`register_custom_op`.

Registration happens when the adapter module is imported (the quantizer registry imports it before any
module is built); lookups that miss import the registered quantizers' adapters and retry.

Example:
    >>> from vitq_plugins.brevitas.extension import Uint8ActPerTensorMinMax, require_site
    >>> def my_minmax(site: str, bits: int, **options):
    ...     require_site("my_minmax", site, ("act",))
    ...     return Uint8ActPerTensorMinMax.let(bit_width=bits, vitq_name="my_minmax")
"""

from __future__ import annotations

from vitq_plugins.brevitas.export_forms import ExportForm
from vitq_plugins.brevitas.export_forms import QuantNodes
from vitq_plugins.brevitas.export_forms import register_export_form
from vitq_plugins.brevitas.kernels import IntegerKernel
from vitq_plugins.brevitas.kernels import get_kernel
from vitq_plugins.brevitas.kernels import kernel_input_errors
from vitq_plugins.brevitas.kernels import list_kernels
from vitq_plugins.brevitas.kernels import out_dtype
from vitq_plugins.brevitas.kernels import register_kernel
from vitq_plugins.brevitas.kernels import untraced
from vitq_plugins.brevitas.qonnx_ops import DOMAIN
from vitq_plugins.brevitas.qonnx_ops import VitqCustomOp
from vitq_plugins.brevitas.qonnx_ops import register_custom_op
from vitq_plugins.brevitas.quant import CalibratedQuant
from vitq_plugins.brevitas.quant import Int8ActPerTensorMinMax
from vitq_plugins.brevitas.quant import Int8WeightPerChannelMinMax
from vitq_plugins.brevitas.quant import IntegerKernelInputMixin
from vitq_plugins.brevitas.quant import ObserverActQuant
from vitq_plugins.brevitas.quant import Quant
from vitq_plugins.brevitas.quant import Uint4ActCodes
from vitq_plugins.brevitas.quant import Uint8ActPerTensorMinMax
from vitq_plugins.brevitas.quant import Uint8ActPerTensorOMSE
from vitq_plugins.brevitas.quant import Uint8ActPerTensorPercentile
from vitq_plugins.brevitas.quant import UniformWeightQuant
from vitq_plugins.brevitas.quant import tensor_quant_of
from vitq_plugins.core.errors import VitqError

__all__ = [
    "ACT_SITES",
    "DOMAIN",
    "CalibratedQuant",
    "ExportForm",
    "Int8ActPerTensorMinMax",
    "Uint4ActCodes",
    "Int8WeightPerChannelMinMax",
    "IntegerKernel",
    "IntegerKernelInputMixin",
    "ObserverActQuant",
    "Quant",
    "QuantNodes",
    "Uint8ActPerTensorMinMax",
    "Uint8ActPerTensorOMSE",
    "Uint8ActPerTensorPercentile",
    "UniformWeightQuant",
    "VitqCustomOp",
    "get_kernel",
    "kernel_input_errors",
    "list_kernels",
    "out_dtype",
    "register_custom_op",
    "register_export_form",
    "register_kernel",
    "require_site",
    "tensor_quant_of",
    "untraced",
]

#: the activation sites a uniform activation quantizer can take in this wing
ACT_SITES: tuple[str, ...] = ("act", "ln_input", "softmax_output", "gelu_output", "attn_matmul", "residual")


def require_site(quantizer: str, site: str, allowed: tuple[str, ...]) -> None:
    """Raise unless ``quantizer`` can take ``site`` in this wing.

    Raises:
        VitqError: ``site`` is not in ``allowed``.
    """
    if site not in allowed:
        raise VitqError(
            f"quantizer {quantizer!r} cannot quantize site {site!r} in the Brevitas backend (valid: {allowed})"
        )
