"""The per-layer sensitivity table: loss per (layer, knob, candidate bits) for three metrics, JSON on disk.

Metrics (all "higher is worse", measured against the FP model's logits; see
:mod:`vitq_plugins.evaluation.metrics`):

* ``kl``: mean KL(softmax(FP) ‖ softmax(Q)) in nats;
* ``agreement``: 1 - top-1 agreement with the FP model (the disagreement rate);
* ``mse``: mean squared error of the logits.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
import json
from pathlib import Path
from typing import Any

import numpy as np

from vitq_plugins.core.errors import VitqError
from vitq_plugins.search._space import KINDS
from vitq_plugins.search._space import FloatArray
from vitq_plugins.search._space import Layer
from vitq_plugins.search._space import SearchSpace
from vitq_plugins.search._space import parse_pins

__all__ = ["METRICS", "TABLE_VERSION", "SensitivityTable"]

#: Selectable sensitivity metrics.
METRICS: tuple[str, ...] = ("kl", "agreement", "mse")
TABLE_VERSION = 1


@dataclass(frozen=True)
class SensitivityTable:
    """Loss of lowering one unit's ``w`` or ``a`` knob to each candidate, the rest float.

    ``meta["sites"]`` is ``"linear"`` or ``"all"`` (see :mod:`vitq_plugins.search._space`).

    Args:
        layers: the quantizable layers (with params and MACs per image).
        candidates: bit-widths, highest first.
        losses: metric -> knob (``"w"``/``"a"``) -> array ``(layers, candidates)``.
        float_params: parameters that stay float (for the size budget).
        matmul_macs: MACs per image of the attention matmuls, ``{"qk": ..., "av": ...}``.
        meta: what the table was measured on (model, data, recipe, seed, images, seconds, cache key).
    """

    layers: tuple[Layer, ...]
    candidates: tuple[int, ...]
    losses: Mapping[str, Mapping[str, FloatArray]]
    float_params: int = 0
    matmul_macs: Mapping[str, int] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)

    def loss(self, metric: str, kind: str) -> FloatArray:
        """The ``(layers, candidates)`` loss array of ``metric`` and knob ``kind``.

        Raises:
            VitqError: unknown metric or knob.
        """
        if metric not in self.losses:
            raise VitqError(f"metric {metric!r} is invalid: valid metrics are {', '.join(METRICS)}")
        if kind not in KINDS:
            raise VitqError(f"knob {kind!r} is invalid: valid knobs are {', '.join(KINDS)}")
        return self.losses[metric][kind]

    def space(
        self,
        metric: str = "kl",
        *,
        tie: str = "none",
        pins: Sequence[str] = (),
        base_a_bits: int | None = None,
        attn_bits: int | None = None,
    ) -> SearchSpace:
        """The :class:`SearchSpace` of this table.

        Args:
            metric: which loss to minimize.
            tie: ``none``, ``attn`` (qkv with proj) or ``block``.
            pins: ``GLOB`` or ``GLOB=BITS`` specs.
            base_a_bits: bits of the activation sites that are not searched (they enter BOPs through the
                attention matmuls; none in an all-sites table); default: the highest candidate.
            attn_bits: attention-map bits (``attn @ v`` BOPs); default: ``base_a_bits``.
        """
        a = base_a_bits or self.candidates[0]
        s = attn_bits or a
        fixed_bops = float(self.matmul_macs.get("qk", 0) * a * a + self.matmul_macs.get("av", 0) * s * a)
        if any(ly.op == "attn" for ly in self.layers):  # all-sites space: the matmuls are searched
            fixed_bops = 0.0
        return SearchSpace.build(
            self.layers,
            self.candidates,
            self.loss(metric, "w"),
            self.loss(metric, "a"),
            tie=tie,
            pins=parse_pins(pins, self.layers, self.candidates),
            float_params=self.float_params,
            fixed_bops=fixed_bops,
            metric=metric,
        )

    def rows(self, metric: str | None = None) -> list[dict[str, Any]]:
        """One row per (layer, knob, candidate) with every metric (or only ``metric``)."""
        metrics = [metric] if metric else list(self.losses)
        out: list[dict[str, Any]] = []
        for i, ly in enumerate(self.layers):
            for k in KINDS:
                for j, b in enumerate(self.candidates):
                    row: dict[str, Any] = {"layer": ly.fqn, "kind": k, "bits": b}
                    row.update({m: float(self.loss(m, k)[i, j]) for m in metrics})
                    out.append(row)
        return out

    # --- serialization ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "version": TABLE_VERSION,
            "candidates": list(self.candidates),
            "layers": [ly.to_dict() for ly in self.layers],
            "losses": {m: {k: np.asarray(v).tolist() for k, v in d.items()} for m, d in self.losses.items()},
            "float_params": self.float_params,
            "matmul_macs": dict(self.matmul_macs),
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SensitivityTable:
        """Inverse of :meth:`to_dict`.

        Raises:
            VitqError: wrong version or malformed content.
        """
        if d.get("version") != TABLE_VERSION:
            raise VitqError(f"sensitivity table version {d.get('version')!r} is not {TABLE_VERSION}")
        try:
            layers = tuple(Layer.from_dict(x) for x in d["layers"])
            cands = tuple(int(c) for c in d["candidates"])
            losses = {
                m: {
                    k: np.asarray(v, dtype=np.float64).reshape(len(layers), len(cands)) for k, v in kd.items()
                }
                for m, kd in d["losses"].items()
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise VitqError(f"malformed sensitivity table: {exc}") from None
        return cls(
            layers,
            cands,
            losses,
            int(d.get("float_params", 0)),
            {str(k): int(v) for k, v in dict(d.get("matmul_macs", {})).items()},
            dict(d.get("meta", {})),
        )

    def save(self, path: str | Path) -> Path:
        """Write JSON atomically."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict()) + "\n")
        tmp.replace(p)
        return p

    @classmethod
    def load(cls, path: str | Path) -> SensitivityTable:
        """Read a table written by :meth:`save`.

        Raises:
            VitqError: unreadable or malformed file.
        """
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise VitqError(f"cannot read sensitivity table {str(p)!r}: {exc}") from None
        return cls.from_dict(data)
