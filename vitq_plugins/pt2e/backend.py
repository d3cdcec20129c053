"""The torchao PT2E backend (``vitq --backend pt2e``): ``torch.export`` of the (timm) ViT, ``prepare_pt2e`` with
a :class:`~vitq_plugins.pt2e.quantizer.VitqQuantizer` built from the config's planned sites, one calibration
pass, ``convert_pt2e``. The converted model holds ``quantized_decomposed`` q/dq pairs around float ops; eager it
simulates the quantized model, ``torch.compile`` (Inductor, x86, ``freezing``) lowers it to int8 kernels.

Quantizers reach the wing through their ``QuantizerSpec.backends["pt2e"]`` adapter
(:mod:`vitq_plugins.pt2e.extension`); a quantizer without one is refused when the config is validated.
Papers: FQ-ViT arXiv 2111.13824 (sites, uniform baselines Sec. 4.1).
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
import itertools
from pathlib import Path
from typing import Any

import torch
from torch import fx
from torch import nn

from vitq_plugins.adapters.apply import adapt_model
from vitq_plugins.adapters.inputs import input_size
from vitq_plugins.config import QuantConfig
from vitq_plugins.core.errors import ConfigError
from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.manager import PluginHost
from vitq_plugins.core.manager import get_host
from vitq_plugins.pt2e.graph import capture
from vitq_plugins.pt2e.graph import unfuse_attention
from vitq_plugins.pt2e.quantizer import VitqQuantizer
from vitq_plugins.sites import Site
from vitq_plugins.sites import plan_sites
from vitq_plugins.transforms import apply_recipe_transforms
from vitq_plugins.transforms.gptq import apply_gptq
from vitq_plugins.transforms.gptq import gptq_layers
from vitq_plugins.transforms.gptq import rounding_options

__all__ = ["BACKEND", "Pt2eBackend", "Pt2ePrepared", "calibrate", "model_input", "prepare"]

#: export formats this wing writes
_EXPORTS: tuple[str, ...] = ("qcdq",)


def model_input(model: nn.Module, batch: int = 2) -> torch.Tensor:
    """A zero input of the model's declared size (:func:`vitq_plugins.adapters.inputs.input_size`);
    :meth:`Pt2eBackend.quantize` takes the size from its first calibration batch instead.

    Raises:
        VitqError: the input size cannot be found on the model.
    """
    return torch.zeros(batch, *input_size(model))


class Pt2ePrepared:
    """Result of :func:`prepare`: the observed GraphModule and the quantizer (its ``report`` of sites)."""

    def __init__(self, model: fx.GraphModule, quantizer: VitqQuantizer) -> None:
        self.model = model
        self.quantizer = quantizer

    @property
    def applied(self) -> dict[str, str]:
        """``"<fqn>:<site>" -> quantizer`` applied."""
        return dict(self.quantizer.report.applied)


def _specs(plan: Mapping[str, Site], config: QuantConfig, host: PluginHost) -> dict[str, Any]:
    """What each planned site's PT2E adapter returns: a ``QuantizationSpec`` or a :class:`SiteOp`.

    Raises:
        ConfigError: an adapter that returns something else, or a ``SiteOp`` on a site it cannot replace.
    """
    from torchao.quantization.pt2e.quantizer import QuantizationSpec

    from vitq_plugins.pt2e.extension import SITE_OP_SITES
    from vitq_plugins.pt2e.extension import SiteOp

    opts = dict(config.options)
    out: dict[str, Any] = {}
    for key, s in plan.items():
        made = host.quantizers.get(s.quantizer).factory("pt2e")(s.site, s.bits, **opts)
        if isinstance(made, SiteOp) and s.site not in SITE_OP_SITES:
            raise ConfigError(
                f"quantizer {s.quantizer!r} at {key}: a pt2e SiteOp replaces an output tensor, valid on "
                f"{', '.join(SITE_OP_SITES)}, not on {s.site!r}"
            )
        if not isinstance(made, QuantizationSpec | SiteOp):
            raise ConfigError(
                f"quantizer {s.quantizer!r} at {key}: its pt2e adapter returned {type(made).__name__}, "
                "expected a torchao QuantizationSpec or a SiteOp (vitq_plugins.pt2e.extension)"
            )
        out[key] = made
    return out


def prepare(
    model: nn.Module,
    config: QuantConfig,
    example: torch.Tensor,
    *,
    host: PluginHost | None = None,
    transform_batches: Iterable[torch.Tensor] | None = None,
    plan: Mapping[str, Site] | None = None,
) -> Pt2ePrepared:
    """Copy, transform, export and ``prepare_pt2e`` ``model`` (not modified).

    Raises:
        VitqError: bad config, a model torch.export cannot capture, or planned sites left unannotated.
    """
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    host = host or get_host()
    model = adapt_model(model, host)  # a foreign family in vitq's canonical form (a copy, or model itself)
    plan = dict(plan) if plan is not None else plan_sites(model, config, host, backend="pt2e")
    specs = _specs(plan, config, host)
    work = unfuse_attention(model)
    recipe = host.recipes.get(config.recipe)
    if recipe.transforms:
        work = apply_recipe_transforms(
            work,
            recipe,
            config.options,
            transform_batches or [example],
            host,
            w_bits=config.w_bits,
            a_bits=config.a_bits,
        )
    gptq = rounding_options(config.options)
    if gptq is not None and transform_batches is not None:
        apply_gptq(work, transform_batches, gptq_layers(plan, work), gptq)
    quantizer = VitqQuantizer(work, plan, specs)
    with torch.no_grad():
        gm = capture(work, example)
        prepared: fx.GraphModule = prepare_pt2e(gm, quantizer)
    return Pt2ePrepared(prepared, quantizer)


@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable[torch.Tensor], *, progress: bool = True) -> int:
    """One calibration pass (tqdm on stderr); returns the number of images seen."""
    from vitq_plugins.core.progress import track
    from vitq_plugins.data.finite import require_finite

    n = 0
    for x in track(batches, "pt2e calibrate", "batch", show=progress):
        require_finite(x, f"calibration batch after {n} images")
        model(x)
        n += int(x.shape[0])
    if n == 0:
        raise VitqError("calibration got no batches: pass at least one calibration batch")
    return n


class Pt2eBackend:
    """torchao PT2E implementation of :class:`vitq_plugins.core.backend.Backend`."""

    name = "pt2e"

    def quantize(
        self,
        model: nn.Module,
        config: QuantConfig,
        calib_batches: Iterable[torch.Tensor],
        *,
        progress: bool = True,
        plan: Mapping[str, Site] | None = None,
    ) -> nn.Module:
        """Quantize a copy of ``model``: transforms, export, prepare_pt2e, one calibration pass, convert_pt2e.

        A recipe with model transforms or GPTQ reads the batches more than once: a re-iterable is iterated
        again, a one-shot iterator is kept in a list.

        Raises:
            VitqError: bad config, a model torch.export cannot capture, unapplied sites or no calibration data.
        """
        from torchao.quantization.pt2e import allow_exported_model_train_eval
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

        host = get_host()
        gptq = rounding_options(config.options)  # fail on bad options before any work
        it: Iterator[torch.Tensor] = iter(calib_batches)
        try:
            first = next(it)
        except StopIteration:
            raise VitqError("calibration got no batches: pass at least one calibration batch") from None
        batches: Iterable[torch.Tensor]
        transform_batches: Iterable[torch.Tensor] | None = None
        if gptq is not None or host.recipes.get(config.recipe).transforms:
            if isinstance(calib_batches, Iterator):
                transform_batches = batches = [first, *it]
            else:
                transform_batches = batches = calib_batches
        else:
            batches = itertools.chain([first], it)
        prep = prepare(model, config, first[:2], host=host, transform_batches=transform_batches, plan=plan)
        calibrate(prep.model, batches, progress=progress)
        with torch.no_grad():
            qm: fx.GraphModule = convert_pt2e(prep.model)
        allow_exported_model_train_eval(qm)  # callers (evaluation) call .eval(); it has no dropout left
        setattr(qm, "vitq_sites", prep.applied)  # noqa: B010 - read by sites
        setattr(qm, "vitq_recipe", config.recipe)  # noqa: B010
        return qm

    def sites(self, model: nn.Module, config: QuantConfig) -> dict[str, str]:
        """``"<fqn>:<site>" -> quantizer`` annotated: read from a model this wing quantized, else found by
        preparing ``model`` (no calibration)."""
        carried = getattr(model, "vitq_sites", None)
        if isinstance(carried, dict):
            return dict(carried)
        return prepare(model, config, model_input(model), host=get_host()).applied

    def check_export(self, model: nn.Module, config: QuantConfig, fmt: str) -> None:
        """Fail before any work if ``fmt`` is not one this wing writes, or if a planned quantizer is a custom op
        (a :class:`~vitq_plugins.pt2e.extension.SiteOp` or a calibrated op), which has no standard ONNX form.

        Raises:
            VitqError: names the formats it writes, or the quantizer and its op.
        """
        if fmt == "none":
            return
        if fmt not in _EXPORTS:
            raise VitqError(
                f"pt2e backend exports no {fmt!r} (only {', '.join(map(repr, _EXPORTS))}: standard ONNX "
                "QuantizeLinear/DequantizeLinear); use --backend brevitas"
            )
        from vitq_plugins.pt2e.extension import SiteOp
        from vitq_plugins.pt2e.extension import is_custom_op

        host = get_host()
        plan = plan_sites(model, config, host, backend=self.name)
        for key, made in _specs(plan, config, host).items():
            if is_custom_op(made):
                op = made.op if isinstance(made, SiteOp) else made.observer_or_fake_quant_ctr().op
                raise VitqError(
                    f"pt2e {fmt} export: quantizer {plan[key].quantizer!r} at {key} is the custom op "
                    f"{op} with no standard ONNX form; use --backend brevitas for this recipe's ONNX export"
                )

    def export(self, qmodel: nn.Module, fmt: str, path: Path, example_input: torch.Tensor) -> Path:
        """``"qcdq"``: the converted graph as ONNX (``torch.onnx.export(dynamo=True)``): its q/dq pairs become
        standard ``QuantizeLinear``/``DequantizeLinear`` ops that ONNX Runtime runs.

        Raises:
            VitqError: another format, or an export torch cannot do (the message carries its reason).
        """
        if fmt not in _EXPORTS:
            self.check_export(qmodel, QuantConfig("minmax"), fmt)
        path = Path(path)
        try:
            ep = torch.export.export(qmodel, (example_input,), strict=False)
            torch.onnx.export(
                ep, (example_input,), str(path), dynamo=True, external_data=False, verbose=False
            )
        except VitqError:
            raise
        except Exception as exc:  # the exporter raises many types; name the format and the reason
            raise VitqError(f"pt2e {fmt} export failed: {exc}") from exc
        return path

    def info(self) -> dict[str, Any]:
        """Versions and capabilities."""
        import torchao

        return {
            "name": self.name,
            "torch": torch.__version__,
            "torchao": torchao.__version__,
            "export_formats": list(_EXPORTS),
            "api": "torchao.quantization.pt2e (prepare_pt2e/convert_pt2e); torch.compile lowers to x86 int8",
        }


#: The registered backend object (``vitq_plugins.pt2e.backend:BACKEND``).
BACKEND = Pt2eBackend()
