"""The Brevitas wing of vitq: :data:`BACKEND` implements :class:`vitq_plugins.core.backend.Backend`.

Pipeline of :meth:`BrevitasBackend.quantize`: validate the config against the model (before any work),
deep-copy, apply the recipe's transforms (``sqb`` for ``mptq``, MPTQ-ViT arXiv 2401.14895), replace modules per
the site plan (:mod:`vitq_plugins.brevitas.layers`), calibrate in one pass (Brevitas ``calibration_mode``) and
return the model in eval mode. Quantizers: FQ-ViT arXiv 2111.13824, I-ViT arXiv 2207.01405.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vitq_plugins.adapters.apply import adapt_model
from vitq_plugins.brevitas.calibrate import calibrate
from vitq_plugins.brevitas.layers import build_quant_model
from vitq_plugins.brevitas.layers import carried_sites
from vitq_plugins.config import QuantConfig
from vitq_plugins.core.manager import get_host
from vitq_plugins.sites import Site
from vitq_plugins.sites import plan_sites

__all__ = ["BACKEND", "BrevitasBackend"]

#: export format -> the method that writes it (``int-onnx``: the integer program, see :mod:`vitq_plugins.intexec`)
_EXPORTS: dict[str, str] = {"qonnx": "_export_onnx", "qcdq": "_export_onnx", "int-onnx": "_export_integer"}
#: export format -> the method that fails before any work when a config cannot produce it
_EXPORT_CHECKS: dict[str, str] = {"int-onnx": "_check_integer"}


class BrevitasBackend:
    """Brevitas 0.13 backend (``name = "brevitas"``).

    Example:
        >>> import torch, vitq_plugins as vq
        >>> from vitq_plugins.models.reference import vit_test_tiny
        >>> from vitq_plugins.brevitas.backend import BACKEND
        >>> qm = BACKEND.quantize(vit_test_tiny(), vq.QuantConfig("fqvit"), [torch.randn(4, 3, 32, 32)], progress=False)
    """

    name = "brevitas"

    def __init__(self) -> None:
        #: stats of the last calibration (``batches``, ``images``, ``seconds``)
        self.last_calibration: dict[str, float] = {}

    def build(self, model: nn.Module, config: QuantConfig) -> nn.Module:
        """Quantized module tree of a copy of ``model`` without transforms or calibration."""
        model = adapt_model(model)  # a foreign family in vitq's canonical form (a copy, or model itself)
        plan = plan_sites(model, config, backend=self.name)  # fail before copying
        qmodel = copy.deepcopy(model)
        build_quant_model(qmodel, config, plan=plan)
        return qmodel

    def quantize(
        self,
        model: nn.Module,
        config: QuantConfig,
        calib_batches: Iterable[torch.Tensor],
        *,
        progress: bool = True,
        plan: Mapping[str, Site] | None = None,
    ) -> nn.Module:
        """Transform, quantize and calibrate a copy of ``model`` (``model`` is not modified).

        ``plan``: the sites planned by the caller (:func:`vitq_plugins.sites.plan_sites`, which validated the
        config); default: planned here.

        Raises:
            VitqError: bad config for this model (including bad ``weight_rounding``/``gptq_*`` options), an
                unknown transform, or no calibration batch.
        """
        host = get_host()
        # a foreign family in vitq's canonical form (a copy, or model itself)
        model = adapt_model(model, host)
        plan = dict(plan) if plan is not None else plan_sites(model, config, host, backend=self.name)
        recipe = host.recipes.get(config.recipe)
        from vitq_plugins.transforms.gptq import apply_gptq
        from vitq_plugins.transforms.gptq import gptq_layers
        from vitq_plugins.transforms.gptq import rounding_options
        from vitq_plugins.transforms.recipe import apply_recipe_transforms
        from vitq_plugins.transforms.recipe import check_recipe_transforms

        gptq = rounding_options(config.options)
        check_recipe_transforms(recipe, host)
        # two passes (transform statistics, then calibration): a re-iterable (e.g. the pipeline's
        # ``BatchLoader.image_batches()``) is read twice, a one-shot iterator is kept in a list
        two_pass = (recipe.transforms or gptq is not None) and isinstance(calib_batches, Iterator)
        batches = list(calib_batches) if two_pass else calib_batches
        qmodel = apply_recipe_transforms(
            copy.deepcopy(model),
            recipe,
            config.options,
            batches,
            host,
            w_bits=config.w_bits,
            a_bits=config.a_bits,
        )
        gptq_stats: dict[str, float] = {}
        if (
            gptq is not None
        ):  # after the recipe's transforms: GPTQ rounds the (smoothed) weights the wing sees
            gptq_stats = apply_gptq(qmodel, batches, gptq_layers(plan, qmodel), gptq, progress=progress)
        build_quant_model(qmodel, config, host, plan)
        self.last_calibration = calibrate(qmodel, batches, progress=progress)
        setattr(qmodel, "vitq_recipe", config.recipe)  # noqa: B010 - read by integer_program
        if gptq_stats:
            self.last_calibration["gptq_seconds"] = gptq_stats["seconds"]
        return qmodel

    def sites(self, model: nn.Module, config: QuantConfig) -> dict[str, str]:
        """``"<fqn>:<site>" -> quantizer`` that the quantized ``model`` carries under ``config``."""
        if any(isinstance(m, torch.nn.Module) and hasattr(m, "residual_name") for m in model.modules()):
            return carried_sites(model)
        return carried_sites(self.build(model, config))

    def export(self, qmodel: nn.Module, fmt: str, path: Path, example_input: torch.Tensor) -> Path:
        """Export to ``"qonnx"`` or ``"qcdq"`` (see :mod:`vitq_plugins.brevitas.export`), or ``"int-onnx"``: the
        integer program (uint8 input codes -> int32 logits, :meth:`integer_program`) as ONNX integer ops."""
        method = getattr(self, _EXPORTS.get(fmt, "_export_onnx"))
        return Path(method(qmodel, fmt, Path(path), example_input))

    def check_export(self, model: nn.Module, config: QuantConfig, fmt: str) -> None:
        """Fail before any work if ``fmt`` cannot be produced for ``config`` (``int-onnx``: an op stays float).

        Raises:
            VitqError: names the first op without an integer form.
        """
        check = _EXPORT_CHECKS.get(fmt)
        if check is not None:
            getattr(self, check)(model, config)

    def integer_program(self, qmodel: nn.Module, recipe: str = "") -> Any:
        """The integer program (:class:`vitq_plugins.intexec.IntExecutor`) of a calibrated model
        (:func:`vitq_plugins.brevitas.integer.convert_brevitas`; ``recipe`` defaults to the one it was
        quantized with)."""
        from vitq_plugins.brevitas.integer import convert_brevitas

        return convert_brevitas(qmodel, recipe or str(getattr(qmodel, "vitq_recipe", "")))

    def integer_float_ops(self, model: nn.Module, config: QuantConfig) -> list[str]:
        """Ops that ``config`` leaves in floating point on ``model`` (quantized, not calibrated)."""
        from vitq_plugins.brevitas.integer import float_ops_left

        return float_ops_left(self.build(model, config))

    def _export_onnx(self, qmodel: nn.Module, fmt: str, path: Path, example_input: torch.Tensor) -> Path:
        from vitq_plugins.brevitas.export import export_model

        return export_model(qmodel, fmt, path, example_input)

    def _export_integer(self, qmodel: nn.Module, fmt: str, path: Path, example_input: torch.Tensor) -> Path:
        from vitq_plugins.intexec.extension import export_int_onnx

        return export_int_onnx(self.integer_program(qmodel), path, example_input)

    def _check_integer(self, model: nn.Module, config: QuantConfig) -> None:
        from vitq_plugins.intexec.extension import require_integer_form

        require_integer_form(self.integer_float_ops(model, config), config.recipe)

    def info(self) -> dict[str, Any]:
        """Versions and capabilities."""
        import brevitas

        return {
            "name": self.name,
            "brevitas": getattr(brevitas, "__version__", "unknown"),
            "torch": torch.__version__,
            "export_formats": list(_EXPORTS),
            "route": "layerwise_quantize (3 passes) + calibration_mode",
            "last_calibration": dict(self.last_calibration),
        }


BACKEND = BrevitasBackend()
