"""The torch.ao FX backend (``vitq --backend fx``): ``prepare_fx``/``convert_fx`` with vitq's observers,
custom modules and extended x86 BackendConfig; converted models run on the x86 quantized engine.

Quantizers: FQ-ViT (arXiv 2111.13824: PTS eqs. 9-10, LIS eqs. 13-16, uniform baselines), I-ViT
(arXiv 2207.01405: Shiftmax, ShiftGELU, I-LayerNorm), MPTQ-style (arXiv 2401.14895: SQ-b, OPT-m).
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
import itertools
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vitq_plugins.adapters.inputs import input_size
from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.manager import get_host
from vitq_plugins.fx import quantize as q
from vitq_plugins.fx._compat import quiet
from vitq_plugins.fx.modules import ObservedCustom
from vitq_plugins.sites import Site

__all__ = ["BACKEND", "FxBackend", "example_input"]

#: export format -> the method that writes it (``int-onnx``: the integer program, see :mod:`vitq_plugins.intexec`)
_EXPORTS: dict[str, str] = {"int-onnx": "_export_integer"}
#: export format -> the method that fails before any work when a config cannot produce it
_EXPORT_CHECKS: dict[str, str] = {"int-onnx": "_check_integer"}


def example_input(model: nn.Module, batch: int = 1) -> torch.Tensor:
    """A zero input of the model's declared size (:func:`vitq_plugins.adapters.inputs.input_size`: timm's
    ``pretrained_cfg``/``patch_embed``, ``img_size``, torchvision's ``image_size``, or the position embedding's
    patch grid); :meth:`FxBackend.quantize` takes the size from its first calibration batch instead.

    Raises:
        VitqError: the input size cannot be found on the model.
    """
    return torch.zeros(batch, *input_size(model))


def _no_onnx(fmt: str) -> str:
    integer = ", ".join(n for n, r in get_host().recipes.items() if r.integer) or "none"
    return (
        f"fx backend exports no {fmt!r} ONNX (only {', '.join(map(repr, _EXPORTS))}, integer recipes: {integer}); "
        "use --backend brevitas"
    )


class FxBackend:
    """torch.ao FX implementation of :class:`vitq_plugins.core.backend.Backend`."""

    name = "fx"

    def quantize(
        self,
        model: nn.Module,
        config: QuantConfig,
        calib_batches: Iterable[torch.Tensor],
        *,
        progress: bool = True,
        plan: Mapping[str, Site] | None = None,
    ) -> nn.Module:
        """Quantize a copy of ``model``: transforms, prepare_fx, one calibration pass, convert_fx.

        Calibration batches are streamed once; a recipe with model transforms (``mptq``: SQ-b) reads them
        twice (SQ-b gathers its own statistics first): a re-iterable is iterated again, a one-shot iterator
        is kept in a list.

        Raises:
            VitqError: bad config, untraceable model, unapplied quantizers or no calibration data.
        """
        host = get_host()
        from vitq_plugins.transforms.gptq import rounding_options

        gptq = rounding_options(config.options)  # fail on bad options before any work
        it: Iterator[torch.Tensor] = iter(calib_batches)
        try:
            first = next(it)
        except StopIteration:
            raise VitqError("calibration got no batches: pass at least one calibration batch") from None
        batches: Iterable[torch.Tensor]
        transform_batches: Iterable[torch.Tensor] | None = None
        if gptq is not None or config.options.get("sqb_alpha_search"):
            # GPTQ reads the batches once per transformer block, the SQ-b alpha search twice: a re-iterable is
            # iterated anew each time, a one-shot iterator is listed
            if isinstance(calib_batches, Iterator):
                transform_batches = batches = [first, *it]
            else:
                transform_batches = batches = calib_batches
        elif host.recipes.get(config.recipe).transforms:
            # a re-iterable (``BatchLoader.image_batches()``) is read twice; a one-shot iterator is listed
            if isinstance(calib_batches, Iterator):
                transform_batches = batches = [first, *it]
            else:  # the statistics pass continues the pass that gave ``first``; calibration is a new one
                transform_batches, batches = itertools.chain([first], it), calib_batches
        else:
            batches = itertools.chain([first], it)
        prep = q.prepare(model, config, first[:1], host=host, transform_batches=transform_batches, plan=plan)
        q.calibrate(prep.model, batches, progress=progress)
        qm = q.convert(prep.model)
        # run the custom modules' deferred calibration work (e.g. OPT-m's search) now, so it counts as
        # calibration, not as the first forward
        for mod in qm.modules():
            if isinstance(mod, ObservedCustom):
                mod.finalize()
        torch.backends.quantized.engine = "x86"
        qm.vitq_sites = dict(prep.applied)  # type: ignore[assignment]
        qm.vitq_recipe = config.recipe  # type: ignore[assignment]  # read by integer_program
        qm.vitq_sites = dict(prep.applied)  # type: ignore[assignment]  # read by sites
        return qm

    def sites(self, model: nn.Module, config: QuantConfig) -> dict[str, str]:
        """``"<fqn>:<site>" -> quantizer`` actually applied after ``prepare_fx``: read from a model this wing
        quantized, else found by preparing ``model`` (no calibration)."""
        carried = getattr(model, "vitq_sites", None)
        if isinstance(carried, dict):
            return dict(carried)
        prep = q.prepare(model, config, example_input(model), host=get_host())
        return dict(prep.applied)

    def export(self, qmodel: nn.Module, fmt: str, path: Path, example_input: torch.Tensor) -> Path:
        """Export ``"int-onnx"`` (recipes with an integer form, e.g. ``ivit`` and ``fqvit``): the integer program
        (uint8 input codes -> int32 logits, :meth:`integer_program`) as ONNX integer ops. FX-converted models
        have no QONNX/QCDQ path (x86 quantized kernels do not export to ONNX).

        Raises:
            VitqError: another format, naming the way to get it.
        """
        method = _EXPORTS.get(fmt)
        if method is None:
            raise VitqError(_no_onnx(fmt))
        return Path(getattr(self, method)(qmodel, Path(path), example_input))

    def check_export(self, model: nn.Module, config: QuantConfig, fmt: str) -> None:
        """Fail before any work if ``fmt`` cannot be produced (``int-onnx``: an op of ``config`` stays float).

        Raises:
            VitqError: a format this wing does not export (other than ``none``), or the first float op.
        """
        if fmt == "none":
            return
        if fmt not in _EXPORTS:
            raise VitqError(_no_onnx(fmt))
        check = _EXPORT_CHECKS.get(fmt)
        if check is not None:
            getattr(self, check)(model, config)

    def integer_program(self, qmodel: nn.Module, recipe: str = "") -> Any:
        """The integer program (:class:`vitq_plugins.intexec.IntExecutor`) of a converted model
        (:func:`vitq_plugins.fx.integer.convert_fx`; ``recipe`` defaults to the one it was quantized with)."""
        from vitq_plugins.fx.integer import convert_fx

        return convert_fx(qmodel, recipe or str(getattr(qmodel, "vitq_recipe", "")))

    def integer_float_ops(self, model: nn.Module, config: QuantConfig) -> list[str]:
        """Nodes that ``config`` leaves in floating point on ``model`` (after ``prepare_fx``, no calibration)."""
        from vitq_plugins.fx.integer import fx_float_ops_left

        prep = q.prepare(model, config, example_input(model), host=get_host())
        return fx_float_ops_left(prep.model)

    def _export_integer(self, qmodel: nn.Module, path: Path, example: torch.Tensor) -> Path:
        from vitq_plugins.intexec.extension import export_int_onnx

        return export_int_onnx(self.integer_program(qmodel), path, example)

    def _check_integer(self, model: nn.Module, config: QuantConfig) -> None:
        from vitq_plugins.intexec.extension import require_integer_form

        require_integer_form(self.integer_float_ops(model, config), config.recipe)

    def info(self) -> dict[str, Any]:
        """Versions and capabilities."""
        with quiet():
            engines = list(torch.backends.quantized.supported_engines)
        return {
            "name": self.name,
            "torch": torch.__version__,
            "engine": "x86",
            "engines": engines,
            "export_formats": list(_EXPORTS),
            "api": "torch.ao.quantization.quantize_fx (deprecated, pytorch/ao#2259)",
        }


#: The registered backend object (``vitq_plugins.fx.backend:BACKEND``).
BACKEND = FxBackend()
