"""The mixed-precision search space: quantizable units, the cost model, budgets, pins and tied groups.

A *unit* (:class:`Layer`) has two knobs, ``w`` and ``a``. Two spaces exist:

* **linear** (the default of :func:`~vitq_plugins.search.sensitivity_table`): one unit per
  ``nn.Linear``/``nn.Conv2d``, ``w`` = its weight bits, ``a`` = its input bits (the ``weight``/``act`` sites of
  :mod:`vitq_plugins.sites`); every other activation site is held at the config's defaults.
* **all** (fully quantized, MPTQ-ViT arXiv 2401.14895 "Greedy MP"): every quantized tensor of the recipe is a
  knob. Linear/Conv units as above, except that ``fc2``'s input knob *is* the GELU output (the wings
  quantize that tensor once, at ``gelu_output``; the unit lists the GELU in :attr:`Layer.served`); one
  ``ln`` unit per LayerNorm (``a`` = its input, which for a block's ``norm1``/``norm2`` is also the residual
  stream: the previous block's ``residual`` site is listed in :attr:`Layer.served`; ``w`` is inert); one
  ``attn`` unit per attention (``a`` = q, k and v, the ``attn_matmul`` site; ``w`` = the attention map,
  the ``softmax_output`` site, i.e. the left operand of ``attn @ v``).

The cost model is the one of HAWQ-V3 (arXiv 2011.10680, §3.4) and AIMET AMP:

* ``mb``: weight size in MB (10^6 bytes) = Σ params·w_bits/8 + the float parameters (biases, norms,
  embeddings: 4 bytes each);
* ``avg_bits``: linear space: parameter-weighted average bits of the quantizable layers, weights *and*
  activations counted alike, Σ params·(w + a)/2 / Σ params, so that uniform WxAy has ``(x + y) / 2``.
  All-sites space: **the mean of the weight average and the activation average**, ``(W̄ + Ā)/2``, where
  ``W̄`` = Σ params·w / Σ params over every weight site and ``Ā`` = Σ elems·a / Σ elems over every quantized
  activation tensor (elements per image; each tensor counted once, by the unit that owns it: Linear inputs,
  LayerNorm inputs, GELU output, q/k/v, attention map). Uniform WxAy again gives ``(x + y) / 2``, so 5.0 =
  the size of uniform W5A5 with every site counted;
* ``bops``: Σ MACs·w_bits·a_bits per image (AIMET ``calculate_starting_bit_ops``); the two attention matmuls
  (q·kᵀ, attn·v) are counted at the base activation bits in the linear space and searched in the all-sites
  space, ``MACs/2·a·(a + w)`` (q·kᵀ and attn·v have the same MACs, N²·D per head).

Each knob has a valid bit range (:attr:`Layer.w_range`/``a_range``, the recipe's quantizer at that site in
every wing); candidates outside it are never chosen. Tied groups (HAWQ-V3 ties residual layers with
equality constraints) share one decision per knob: ``tie="attn"`` ties each attention's ``qkv`` with its
``proj``; ``tie="block"`` ties every Linear/LayerNorm unit of a transformer block (``attn`` units keep their
own decision: their ``w`` is the attention map, not a weight). Pinned units keep fixed bits and leave
their group.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
import fnmatch
from typing import Any

import numpy as np
import numpy.typing as npt

from vitq_plugins.core.errors import VitqError

__all__ = [
    "ACT_OPS",
    "BUDGET_KINDS",
    "BUDGET_LABELS",
    "KINDS",
    "TIE_MODES",
    "Assignment",
    "Budget",
    "CostModel",
    "Layer",
    "SearchSpace",
    "parse_pins",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: The two knobs of a layer: weight bits and input-activation bits.
KINDS: tuple[str, ...] = ("w", "a")
#: Budget metrics: weight size (MB), parameter-weighted average bits, bit operations.
BUDGET_KINDS: tuple[str, ...] = ("mb", "avg_bits", "bops")
BUDGET_LABELS: dict[str, str] = {"mb": "size", "avg_bits": "average bits", "bops": "BOPs"}
#: How layers are tied into one decision.
TIE_MODES: tuple[str, ...] = ("none", "attn", "block")
#: Unit kinds of the all-sites space beside ``linear``/``conv``.
ACT_OPS: tuple[str, ...] = ("ln", "attn")
MB = 1e6
_ANY_BITS = (1, 32)


@dataclass(frozen=True)
class Layer:
    """One decision unit of the search space (see the module docstring for the two knobs of each ``op``).

    Args:
        fqn: module name as ``model.named_modules()`` yields it.
        op: ``"linear"``, ``"conv"``, ``"ln"`` (LayerNorm input) or ``"attn"`` (q/k/v and attention map).
        params: weight elements (0 for ``ln``/``attn``).
        macs: multiply-accumulates per image (``attn``: q·kᵀ plus attn·v).
        block: FQN of the enclosing transformer block ("" if none).
        attn: FQN of the enclosing attention module ("" if none).
        act_elems: elements per image of the tensor the ``a`` knob quantizes (all-sites space; 0: not counted).
        map_elems: elements per image of the attention map (``attn`` units' ``w`` knob).
        served: other module FQNs whose activation site is this ``a`` knob's tensor (their config override
            gets the same ``a_bits``: the GELU before ``fc2``, the block whose residual a LayerNorm quantizes).
        w_range: valid bits of the ``w`` knob (inclusive).
        a_range: valid bits of the ``a`` knob (inclusive).
    """

    fqn: str
    op: str
    params: int
    macs: int
    block: str = ""
    attn: str = ""
    act_elems: int = 0
    map_elems: int = 0
    served: tuple[str, ...] = ()
    w_range: tuple[int, int] = _ANY_BITS
    a_range: tuple[int, int] = _ANY_BITS

    @property
    def w_inert(self) -> bool:
        """Whether the ``w`` knob stands for nothing (a LayerNorm unit has only its input knob)."""
        return self.op == "ln"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the all-sites fields only when set, so linear tables are unchanged)."""
        out: dict[str, Any] = {
            "fqn": self.fqn,
            "op": self.op,
            "params": self.params,
            "macs": self.macs,
            "block": self.block,
            "attn": self.attn,
        }
        if self.act_elems or self.map_elems or self.served:
            out.update(act_elems=self.act_elems, map_elems=self.map_elems, served=list(self.served))
        if self.w_range != _ANY_BITS or self.a_range != _ANY_BITS:
            out.update(w_range=list(self.w_range), a_range=list(self.a_range))
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Layer:
        """Inverse of :meth:`to_dict`."""
        wr = d.get("w_range", _ANY_BITS)
        ar = d.get("a_range", _ANY_BITS)
        return cls(
            str(d["fqn"]),
            str(d["op"]),
            int(d["params"]),
            int(d["macs"]),
            str(d.get("block", "")),
            str(d.get("attn", "")),
            int(d.get("act_elems", 0)),
            int(d.get("map_elems", 0)),
            tuple(str(x) for x in d.get("served", ())),
            (int(wr[0]), int(wr[1])),
            (int(ar[0]), int(ar[1])),
        )


@dataclass(frozen=True)
class Budget:
    """An upper bound on one cost metric.

    Args:
        kind: one of :data:`BUDGET_KINDS`.
        value: the bound (MB, bits or BOPs).
    """

    kind: str
    value: float

    def __post_init__(self) -> None:
        if self.kind not in BUDGET_KINDS:
            raise VitqError(
                f"budget kind {self.kind!r} is invalid: valid kinds are {', '.join(BUDGET_KINDS)}"
            )
        if not np.isfinite(self.value) or self.value <= 0:
            raise VitqError(
                f"{BUDGET_LABELS[self.kind]} budget {self.value!r} is invalid: expected a number > 0"
            )

    def describe(self, value: float | None = None) -> str:
        """``"4.2 MB"``-style text of ``value`` (default: the bound)."""
        return format_cost(self.kind, self.value if value is None else value)


def format_cost(kind: str, value: float) -> str:
    """Human text of a cost value."""
    if kind == "mb":
        return f"{value:.4f} MB"
    if kind == "avg_bits":
        return f"{value:.3f} average bits"
    return f"{value:.4g} BOPs"


@dataclass(frozen=True)
class CostModel:
    """Size, average bits and BOPs of a per-layer bit assignment.

    Args:
        layers: the quantizable layers.
        float_params: parameters that stay float (biases, norms, embeddings), 4 bytes each.
        fixed_bops: BOPs of operations that are not searched (attention matmuls at the base bits).
    """

    layers: tuple[Layer, ...]
    float_params: int = 0
    fixed_bops: float = 0.0

    @property
    def params(self) -> FloatArray:
        """Weight elements per layer."""
        return np.array([ly.params for ly in self.layers], dtype=np.float64)

    @property
    def macs(self) -> FloatArray:
        """MACs per image per layer."""
        return np.array([ly.macs for ly in self.layers], dtype=np.float64)

    @property
    def all_sites(self) -> bool:
        """Whether this is the all-sites space (it holds LayerNorm/attention units)."""
        return any(ly.op in ACT_OPS for ly in self.layers)

    def avg_coefficients(self) -> tuple[FloatArray, FloatArray]:
        """Per-layer weights of the ``w`` and ``a`` bits in ``avg_bits`` (see the module docstring)."""
        p = self.params
        if not self.all_sites:
            c = p / 2.0 / max(float(p.sum()), 1.0)
            return c, c
        act = np.array([ly.act_elems for ly in self.layers], dtype=np.float64)
        amap = np.array([ly.map_elems for ly in self.layers], dtype=np.float64)
        n_act = max(float(act.sum() + amap.sum()), 1.0)
        return p / 2.0 / max(float(p.sum()), 1.0) + amap / 2.0 / n_act, act / 2.0 / n_act

    def contributions(self, kind: str, w_bits: npt.ArrayLike, a_bits: npt.ArrayLike) -> FloatArray:
        """Per-layer cost terms (without the constant part), broadcast over ``w_bits``/``a_bits``."""
        w = np.asarray(w_bits, dtype=np.float64)
        a = np.asarray(a_bits, dtype=np.float64)
        if kind == "mb":
            return np.asarray(self.params * w / 8.0 / MB + 0.0 * a)
        if kind == "avg_bits":
            cw, ca = self.avg_coefficients()
            return np.asarray(cw * w + ca * a)
        if kind == "bops":
            is_attn = np.array([ly.op == "attn" for ly in self.layers])
            return np.asarray(np.where(is_attn, self.macs * a * (a + w) / 2.0, self.macs * w * a))
        raise VitqError(f"cost kind {kind!r} is invalid: valid kinds are {', '.join(BUDGET_KINDS)}")

    def constant(self, kind: str) -> float:
        """The part of cost ``kind`` that no layer choice changes."""
        if kind == "mb":
            return self.float_params * 4.0 / MB
        if kind == "bops":
            return float(self.fixed_bops)
        return 0.0

    def cost(self, kind: str, w_bits: npt.ArrayLike, a_bits: npt.ArrayLike) -> float:
        """Total cost ``kind`` of an assignment."""
        return float(self.contributions(kind, w_bits, a_bits).sum()) + self.constant(kind)

    def costs(self, w_bits: npt.ArrayLike, a_bits: npt.ArrayLike) -> dict[str, float]:
        """Every cost metric of an assignment."""
        return {k: self.cost(k, w_bits, a_bits) for k in BUDGET_KINDS}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (without the layers, which are stored beside it)."""
        return {"float_params": self.float_params, "fixed_bops": self.fixed_bops}


@dataclass(frozen=True)
class Assignment:
    """Weight and activation bits of every layer (in :attr:`CostModel.layers` order)."""

    w_bits: tuple[int, ...]
    a_bits: tuple[int, ...]

    def as_dict(self, layers: Sequence[Layer]) -> dict[str, dict[str, int]]:
        """``{fqn: {"w_bits": w, "a_bits": a}}``."""
        return {
            ly.fqn: {"w_bits": int(w), "a_bits": int(a)}
            for ly, w, a in zip(layers, self.w_bits, self.a_bits, strict=True)
        }


def _glob_match(pattern: str, fqn: str) -> bool:
    return fnmatch.fnmatchcase(fqn, pattern)


def parse_pins(specs: Sequence[str], layers: Sequence[Layer], candidates: Sequence[int]) -> dict[int, int]:
    """Resolve ``GLOB`` / ``GLOB=BITS`` pin specs to ``{layer index: bits}`` (both knobs pinned).

    Without ``=BITS`` the layer is pinned at the highest candidate. Later specs win over earlier ones.

    Raises:
        VitqError: a glob matches no layer (every such glob is named, with some layer names), or the
            bits are not a candidate.
    """
    pins: dict[int, int] = {}
    unmatched: list[str] = []
    top = max(candidates)
    for spec in specs:
        pattern, sep, bits_text = spec.partition("=")
        pattern = pattern.strip()
        if not pattern:
            raise VitqError(f"pin {spec!r} is invalid: expected GLOB or GLOB=BITS, e.g. 'head=8'")
        bits = top
        if sep:
            try:
                bits = int(bits_text)
            except ValueError:
                raise VitqError(f"pin {spec!r}: bits {bits_text!r} is not a whole number") from None
            if bits not in candidates:
                raise VitqError(
                    f"pin {spec!r}: {bits} bits is not a candidate (candidates: {', '.join(map(str, candidates))})"
                )
        hits = [i for i, ly in enumerate(layers) if _glob_match(pattern, ly.fqn)]
        if not hits:
            unmatched.append(pattern)
        for i in hits:
            pins[i] = bits
    if unmatched:
        sample = ", ".join(ly.fqn for ly in layers[:6]) + (", ..." if len(layers) > 6 else "")
        raise VitqError(
            f"pin pattern(s) {', '.join(repr(p) for p in unmatched)} match no quantizable layer "
            f"(layers: {sample})"
        )
    return pins


def _group_key(layer: Layer, tie: str) -> str:
    if layer.op == "attn":  # its w knob is the attention map: never tied to weights
        return layer.fqn
    if tie == "attn" and layer.attn:
        return layer.attn
    if tie == "block" and layer.block:
        return layer.block
    return layer.fqn


@dataclass(frozen=True)
class SearchSpace:
    """What the greedy and ILP searches optimize over.

    Args:
        cost: the cost model (holds the layers).
        candidates: bit-width candidates, highest first.
        loss_w: estimated loss of lowering only a layer's weights, shape ``(layers, candidates)``.
        loss_a: the same for the layer's input activations.
        groups: the decision units, each a tuple of layer indices sharing one bit-width per knob.
        pins: layer index -> fixed bits for both knobs (pinned layers are in no group).
        metric: name of the loss metric (for reports).
    """

    cost: CostModel
    candidates: tuple[int, ...]
    loss_w: FloatArray
    loss_a: FloatArray
    groups: tuple[tuple[int, ...], ...]
    pins: Mapping[int, int]
    metric: str = "kl"

    @classmethod
    def build(
        cls,
        layers: Sequence[Layer],
        candidates: Sequence[int],
        loss_w: npt.ArrayLike,
        loss_a: npt.ArrayLike,
        *,
        tie: str = "none",
        pins: Mapping[int, int] | None = None,
        float_params: int = 0,
        fixed_bops: float = 0.0,
        metric: str = "kl",
    ) -> SearchSpace:
        """Check shapes, sort candidates (highest first) and form the tied groups.

        Raises:
            VitqError: bad tie mode, candidates, shapes or non-finite losses.
        """
        if tie not in TIE_MODES:
            raise VitqError(f"tie mode {tie!r} is invalid: valid modes are {', '.join(TIE_MODES)}")
        cands = [int(c) for c in candidates]
        if not cands or len(set(cands)) != len(cands) or any(not 2 <= c <= 16 for c in cands):
            raise VitqError(f"candidates {cands!r} are invalid: expected distinct bit-widths in 2..16")
        order = np.argsort(-np.asarray(cands), kind="stable")
        lw = np.asarray(loss_w, dtype=np.float64)
        la = np.asarray(loss_a, dtype=np.float64)
        shape = (len(layers), len(cands))
        if lw.shape != shape or la.shape != shape:
            raise VitqError(f"loss tables must have shape {shape}, got {lw.shape} and {la.shape}")
        if not (np.isfinite(lw).all() and np.isfinite(la).all()):
            raise VitqError("loss tables hold non-finite values")
        for ly in layers:
            for kind, (lo, hi) in (("w", ly.w_range), ("a", ly.a_range)):
                if not (kind == "w" and ly.w_inert) and not any(lo <= c <= hi for c in cands):
                    raise VitqError(
                        f"{ly.fqn}: no candidate in {cands} lies in the valid {kind} bits {lo}..{hi}"
                    )
        pins = dict(pins or {})
        keys: dict[str, list[int]] = {}
        for i, ly in enumerate(layers):
            if i not in pins:
                keys.setdefault(_group_key(ly, tie), []).append(i)
        return cls(
            CostModel(tuple(layers), float_params, fixed_bops),
            tuple(cands[i] for i in order),
            lw[:, order],
            la[:, order],
            tuple(tuple(g) for g in keys.values()),
            pins,
            metric,
        )

    # --- basic views --------------------------------------------------------------------------
    @property
    def layers(self) -> tuple[Layer, ...]:
        """The layers."""
        return self.cost.layers

    def group_name(self, g: int) -> str:
        """A readable name of group ``g`` (its layer, or the common prefix of its layers)."""
        members = [self.layers[i].fqn for i in self.groups[g]]
        if len(members) == 1:
            return members[0]
        ly = self.layers[self.groups[g][0]]
        return (
            ly.attn if ly.attn and all(self.layers[i].attn == ly.attn for i in self.groups[g]) else ly.block
        )

    def membership(self) -> FloatArray:
        """0/1 matrix ``(groups, layers)``."""
        m = np.zeros((len(self.groups), len(self.layers)))
        for g, members in enumerate(self.groups):
            m[g, list(members)] = 1.0
        return m

    def loss_table(self, kind: str) -> FloatArray:
        """``loss_w`` or ``loss_a``."""
        return self.loss_w if kind == "w" else self.loss_a

    def level_of(self, bits: int) -> int:
        """Index of ``bits`` in :attr:`candidates`."""
        return self.candidates.index(bits)

    def allowed(self, kind: str) -> npt.NDArray[np.bool_]:
        """``(layers, candidates)``: which candidates lie in each layer's valid range for knob ``kind``
        (an inert knob allows every candidate: it costs and loses nothing and is written at the top)."""
        c = np.asarray(self.candidates)
        rng = np.array([ly.w_range if kind == "w" else ly.a_range for ly in self.layers]).reshape(-1, 2)
        ok = (c[None, :] >= rng[:, :1]) & (c[None, :] <= rng[:, 1:])
        if kind == "w":
            ok |= np.array([ly.w_inert for ly in self.layers], dtype=bool)[:, None]
        return np.asarray(ok)

    def group_allowed(self, kind: str) -> npt.NDArray[np.bool_]:
        """``(groups, candidates)``: candidates every member of a group allows for knob ``kind``."""
        ok = self.allowed(kind)
        return np.array([ok[list(m)].all(axis=0) for m in self.groups], dtype=bool).reshape(
            len(self.groups), len(self.candidates)
        )

    def _fit(self, i: int, kind: str, bits: int) -> int:
        """``bits`` for knob ``kind`` of layer ``i``: the top candidate for an inert knob, else the nearest
        candidate inside the layer's valid range (the highest one below ``bits`` first)."""
        ly = self.layers[i]
        if kind == "w" and ly.w_inert:
            return self.candidates[0]
        lo, hi = ly.w_range if kind == "w" else ly.a_range
        if lo <= bits <= hi:
            return bits
        ok = [c for c in self.candidates if lo <= c <= hi]
        below = [c for c in ok if c <= bits]
        return max(below) if below else min(ok)

    # --- assignments --------------------------------------------------------------------------
    def assignment(self, w_levels: Sequence[int], a_levels: Sequence[int]) -> Assignment:
        """The per-layer bits of per-group candidate levels (pins filled in; each knob fitted to its
        valid range, inert knobs at the top candidate)."""
        w = [0] * len(self.layers)
        a = [0] * len(self.layers)
        for i, b in self.pins.items():
            w[i], a[i] = self._fit(i, "w", b), self._fit(i, "a", b)
        for g, members in enumerate(self.groups):
            for i in members:
                w[i] = self._fit(i, "w", self.candidates[w_levels[g]])
                a[i] = self._fit(i, "a", self.candidates[a_levels[g]])
        return Assignment(tuple(w), tuple(a))

    def uniform(self, w_bits: int, a_bits: int) -> Assignment:
        """Every searchable layer at ``w_bits``/``a_bits`` (pins kept); an ``attn`` unit's attention map is an
        activation, so it gets ``a_bits``."""
        maps = [all(self.layers[i].op == "attn" for i in g) for g in self.groups]
        return self.assignment(
            [self.level_of(a_bits if m else w_bits) for m in maps], [self.level_of(a_bits)] * len(self.groups)
        )

    def all_high(self) -> Assignment:
        """Every searchable layer at the highest candidate."""
        return self.uniform(self.candidates[0], self.candidates[0])

    def all_low(self) -> Assignment:
        """Every searchable layer at the lowest candidate."""
        return self.uniform(self.candidates[-1], self.candidates[-1])

    def estimate(self, asg: Assignment) -> float:
        """The additive loss estimate: Σ over layers of loss_w[w] + loss_a[a]."""
        idx = {b: j for j, b in enumerate(self.candidates)}
        rows = np.arange(len(self.layers))
        wl = np.array([idx[b] for b in asg.w_bits], dtype=np.int64)
        al = np.array([idx[b] for b in asg.a_bits], dtype=np.int64)
        return float(self.loss_w[rows, wl].sum() + self.loss_a[rows, al].sum())

    def costs(self, asg: Assignment) -> dict[str, float]:
        """Every cost metric of ``asg``."""
        return self.cost.costs(asg.w_bits, asg.a_bits)

    def smallest(self, kind: str) -> float:
        """The smallest achievable value of cost ``kind`` (searchable layers at the lowest candidate)."""
        low = self.all_low()
        return self.cost.cost(kind, low.w_bits, low.a_bits)

    def check_budgets(self, budgets: Sequence[Budget]) -> None:
        """Raise if a budget is below the smallest achievable value (which the message names).

        Raises:
            VitqError: infeasible budget, or no budget at all.
        """
        if not budgets:
            raise VitqError("no budget given: pass --budget-mb, --avg-bits or --bops")
        for b in budgets:
            low = self.smallest(b.kind)
            if b.value < low * (1 - 1e-12):
                pinned = f", {len(self.pins)} pinned layer(s) kept" if self.pins else ""
                raise VitqError(
                    f"{BUDGET_LABELS[b.kind]} budget {b.describe()} is below the smallest achievable "
                    f"{format_cost(b.kind, low)} (every searchable layer at {self.candidates[-1]} bits{pinned})"
                )
