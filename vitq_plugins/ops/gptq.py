"""GPTQ / OPTQ error-compensating weight rounding (Frantar et al., arXiv 2210.17323), closed form, on the wings' grid.

GPTQ quantizes a layer ``y = x W^T`` one input column at a time and spreads each column's rounding error over
the columns not yet quantized so that the layer *output* error ``||X W^T - X Q^T||^2`` stays small:

* Hessian of the layer-wise objective (paper eq. 1-2): ``H = 2 X^T X`` over the calibration inputs, streamed
  batch by batch by :class:`HessianAccumulator` (memory ``d^2``, independent of the number of images; we use
  the mean ``2 X^T X / N``, which only rescales ``H``).
* Dampening (paper §4 "Step 3"): ``H += lambda * mean(diag H) * I`` (``lambda = 0.01``); dead inputs
  (``H_jj = 0``) get ``H_jj = 1`` and a zero weight column.
* OBS update of the remaining columns after quantizing column ``q`` (paper eq. 3, rewritten with the Cholesky
  factor in §4 "Step 3"): ``delta_F = -(w_q - quant(w_q)) / [U]_qq * U_{q,F}`` where ``U`` is the upper Cholesky
  factor of ``H^{-1}`` (``H^{-1} = U^T U``).
* Lazy batch updates (§4 "Step 2"): columns are processed in blocks of ``B`` (128); inside a block the update is
  applied to the block only, the accumulated errors ``E`` update the rest once per block: ``W_{:,rest} -= E
  U_{block,rest}``. All updates are vectorized over the output rows; the only Python loop is over columns.

**The wings' grid.** Both wings re-quantize the weights they get with a per-output-row symmetric MinMax
quantizer (:func:`vitq_plugins.ops.uniform.qparams_from_minmax`, FQ-ViT convention ``scale = absmax / h`` with
``h = (qmax - qmin) / 2 = 2^(b-1) - 1/2``). The row's largest magnitude therefore always sits on the half-code
``±h``, a rounding tie. GPTQ fixes each row's scale ``s`` first (:func:`wing_scale`) and stores its result so that
the wing recovers exactly ``s`` and GPTQ's codes: one element per row, the *anchor* (its largest-magnitude
weight), is pinned to the end code ``qmin`` (negative) or ``qmax`` (positive) and stored as a float32 value
next to ``∓h * s`` that is the row's magnitude maximum (so the wing's scale is ``s``) and that rounds to the end
code in both wings' arithmetic: Brevitas ``round(w / s)`` (clamped to the range) and torch.ao's convert
``torch.quantize_per_channel``, which computes ``round(w * fl32(1 / s))`` in a qint8 container *without* clamping
to ``b`` bits (at ``b < 8`` the MinMax tie ``+h`` becomes the out-of-range code ``2^(b-1)``). Every other code
``c`` is stored as ``c * s``. On rows pinned at ``qmax`` the code ``qmin`` is not used (it would be a second
tie, which torch.ao rounds the wrong way), so those rows have ``2^b - 1`` levels.

Example:
    >>> import torch
    >>> x = torch.randn(256, 16) @ torch.randn(16, 16)
    >>> acc = HessianAccumulator(16); acc.update(x)
    >>> w = torch.randn(8, 16)
    >>> res = gptq_quantize(w, acc.hessian(), bits=4)
    >>> bool((res.codes >= -8).all() and (res.codes <= 7).all())
    True
"""

from __future__ import annotations

from dataclasses import dataclass
import math
import warnings

import torch

from vitq_plugins.ops._checks import check_bits
from vitq_plugins.ops.uniform import FLOAT32_EPS
from vitq_plugins.ops.uniform import qrange

__all__ = [
    "GPTQResult",
    "HessianAccumulator",
    "WingGrid",
    "anchor_codes",
    "gptq_quantize",
    "layer_output_error",
    "rtn_codes",
    "stored_weight",
    "wing_scale",
]

_NUDGES = 128
_GRID = 26


class HessianAccumulator:
    """Streaming ``H = 2 X^T X / N`` of a layer's inputs (GPTQ, arXiv 2210.17323, eq. 2).

    ``X^T X`` is summed in float64 over batches of any leading shape; memory is ``d x d``, independent of the
    number of images.

    Args:
        features: Input width ``d`` (``in_features`` of a Linear, ``C * kh * kw`` of an unfolded Conv2d).

    Raises:
        ValueError: ``features < 1``.
    """

    def __init__(self, features: int) -> None:
        if features < 1:
            raise ValueError(f"features must be >= 1, got {features}")
        self.features = int(features)
        self._sum = torch.zeros(self.features, self.features, dtype=torch.float64)
        self.count = 0

    def update(self, x: torch.Tensor) -> None:
        """Fold the rows of ``x`` (shape ``(..., d)``) into the running sum."""
        if x.shape[-1] != self.features:
            raise ValueError(f"expected inputs of width {self.features}, got shape {tuple(x.shape)}")
        flat = x.detach().reshape(-1, self.features).float()
        self._sum += (flat.T @ flat).double()
        self.count += int(flat.shape[0])

    def hessian(self) -> torch.Tensor:
        """``2 X^T X / N`` (float64).

        Raises:
            ValueError: no rows were seen.
        """
        if self.count == 0:
            raise ValueError(
                "HessianAccumulator saw no inputs: run calibration batches through the layer first"
            )
        return self._sum * (2.0 / self.count)


def _wing_codes_of_tie(
    tie: torch.Tensor, scale: torch.Tensor, bits: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes the two wings give the per-row value ``tie`` under per-row ``scale``: (Brevitas, torch.ao).

    torch.ao holds weights in qint8, so above 8 bits only the Brevitas arithmetic applies.
    """
    brevitas = torch.round(tie / scale)
    if bits > 8:
        return brevitas, brevitas
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qt = torch.quantize_per_channel(
            tie.reshape(-1, 1),
            scale.double(),
            torch.zeros(scale.numel(), dtype=torch.int64),
            0,
            torch.qint8,
        )
    return brevitas, qt.int_repr().reshape(-1).to(brevitas.dtype)


def anchor_codes(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The anchor of each row, its largest-magnitude element, and the end code it is pinned to (``qmin`` if it is
    negative, else ``qmax``): where the wing's own MinMax rounding puts it too."""
    qmin, qmax = qrange(bits, signed=True)
    w = weight.reshape(weight.shape[0], -1)
    anchor = torch.argmax(w.abs(), dim=1)
    negative = w.gather(1, anchor[:, None]).squeeze(1) < 0
    code = torch.where(negative, float(qmin), float(qmax)).to(w.dtype)
    return anchor, code


def _search_scale(w: torch.Tensor, qmin: int, qmax: int, half: float) -> torch.Tensor:
    """Per-row scale minimising the squared weight error of anchored round-to-nearest over ``s = f * absmax / h``,
    ``f`` in ``[0.5, 1]`` (``f = 1`` is the wing's own MinMax scale). Vectorized over rows and columns."""
    absmax = w.abs().max(dim=1).values
    anchor, code = anchor_codes(w, int(math.log2(qmax - qmin + 1)))
    lo = torch.where(code == qmin, float(qmin), float(qmin + 1))[:, None]
    best_err = torch.full_like(absmax, float("inf"))
    best = (absmax / half).clamp(min=FLOAT32_EPS)
    for f in torch.linspace(1.0, 0.5, _GRID, dtype=w.dtype):  # _GRID candidates, each vectorized
        s = (f * absmax / half).clamp(min=FLOAT32_EPS)
        q = torch.minimum(torch.maximum(torch.round(w / s[:, None]), lo), torch.full_like(lo, float(qmax)))
        q.scatter_(1, anchor[:, None], code[:, None])
        err = (w - q * s[:, None]).pow(2).sum(dim=1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best = torch.where(better, s, best)
    return best


@dataclass(frozen=True)
class WingGrid:
    """Per-row grid that the wings recover exactly from a stored weight.

    Attributes:
        scale: float32 scales ``(rows,)``.
        end_code: the code the row's anchor is pinned to (``qmin`` or ``qmax``), float ``(rows,)``.
        end_value: the float32 value stored for ``end_code``: next to ``±h * scale``, the row's magnitude
            maximum, so that the wing's MinMax gives back ``scale`` and rounds it to ``end_code``.
        bits: bit-width.
    """

    scale: torch.Tensor
    end_code: torch.Tensor
    end_value: torch.Tensor
    anchor: torch.Tensor
    bits: int

    def low_code(self) -> torch.Tensor:
        """Smallest usable code per row: ``qmin`` where the anchor is negative, else ``qmin + 1`` (``qmin`` would
        need a second tie, which torch.ao rounds the other way)."""
        qmin, _ = qrange(self.bits, signed=True)
        return torch.where(self.end_code == qmin, float(qmin), float(qmin + 1))


def wing_scale(weight: torch.Tensor, bits: int) -> WingGrid:
    """Per-row grid whose scale the wings recover exactly from GPTQ's stored weight (see module doc).

    The target scale minimises the row's squared weight error under anchored round-to-nearest over shrunk
    versions of the wing's own ``absmax / h`` (a clipping search like GPTQ's official ``mse`` option). It is
    nudged up by float32 ulps, and the stored end value is taken within two ulps of ``±h * s``, until the wing's ``max|w| / h`` is ``s`` in float32 and the end value rounds to
    the anchor's code in Brevitas' (``round(w / s)``) and torch.ao's (``round(w * (1 / s))``) arithmetic.

    Args:
        weight: ``(rows, cols)`` float weight.
        bits: Signed bit-width, 2..16.

    Returns:
        :class:`WingGrid`.

    Raises:
        ValueError: bad ``bits``, or no candidate satisfies the checks (never seen in practice).
    """
    check_bits(bits, lo=2, hi=16, what="bits")
    qmin, qmax = qrange(bits, signed=True)
    half = (qmax - qmin) / 2.0
    w = weight.detach().float().reshape(weight.shape[0], -1)
    target = _search_scale(w, qmin, qmax, half)
    anchor, end = anchor_codes(w, bits)
    scale, value = _recoverable(target, end, bits, qmin, qmax, half)
    # rare rows pinned at qmax where no float32 candidate rounds to qmax under torch.ao's reciprocal: pin
    # them at their most negative weight instead (the qmin tie rounds to even, in the right direction)
    redo = torch.isnan(scale)
    if bool(redo.any()):
        end = torch.where(redo, float(qmin), end)
        anchor = torch.where(redo, torch.argmin(w, dim=1), anchor)
        s2, v2 = _recoverable(target, end, bits, qmin, qmax, half)
        scale, value = torch.where(redo, s2, scale), torch.where(redo, v2, value)
    bad = int(torch.isnan(scale).sum())
    if bad:
        raise ValueError(f"wing_scale: {bad} row(s) found no exactly recoverable scale in {_NUDGES} nudges")
    return WingGrid(scale, end, value, anchor, bits)


def _recoverable(
    target: torch.Tensor, end: torch.Tensor, bits: int, qmin: int, qmax: int, half: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """First ``(s, end_value)`` near ``target`` passing the wings' checks (NaN where none does); each nudge only
    revisits the rows still open."""
    sign = torch.where(end == qmin, -1.0, 1.0)
    scale = torch.full_like(target, float("nan"))
    value = torch.full_like(target, float("nan"))
    open_rows = torch.arange(target.numel())
    for step in range(_NUDGES):
        s = (target[open_rows].double() * (1.0 + step * 2.0**-20)).float()
        tie = s * half
        found = torch.zeros_like(s, dtype=torch.bool)
        for off in (0, -1, 1, -2, 2, -3, 3):
            v = tie
            for _ in range(abs(off)):
                v = torch.nextafter(v, torch.full_like(v, float("inf") if off > 0 else 0.0))
            stored = sign[open_rows] * v
            recovered = v / half  # the wing's qparams_from_minmax on the stored row (max |w| = v)
            brevitas, torchao = _wing_codes_of_tie(stored, s, bits)
            e = end[open_rows]
            ok = (recovered == s) & (brevitas.clamp(qmin, qmax) == e) & (torchao == e) & ~found
            idx = open_rows[ok]
            scale[idx], value[idx] = s[ok], stored[ok]
            found |= ok
        open_rows = open_rows[~found]
        if open_rows.numel() == 0:
            break
    return scale, value


@dataclass(frozen=True)
class GPTQResult:
    """GPTQ output for one layer.

    Attributes:
        codes: int64 codes ``(rows, cols)`` in ``[qmin, qmax]``.
        grid: the per-row :class:`WingGrid` (scales and anchors).
        weight: the float weight to store in the model, which the wing re-quantizes to exactly ``codes``
            and ``grid.scale`` (see :func:`stored_weight`).
    """

    codes: torch.Tensor
    grid: WingGrid
    weight: torch.Tensor

    @property
    def scale(self) -> torch.Tensor:
        """Per-row scales."""
        return self.grid.scale

    def dequantized(self) -> torch.Tensor:
        """``codes * scale``: the weight the quantized model computes with."""
        return self.codes.float() * self.grid.scale[:, None]


def stored_weight(codes: torch.Tensor, grid: WingGrid) -> torch.Tensor:
    """The float weight whose per-row MinMax re-quantization gives back ``codes`` and ``grid.scale`` exactly.

    The anchor's end code is stored as ``grid.end_value`` (next to ``±h * s``, the row's magnitude maximum), the
    other codes as ``c * s``.

    Raises:
        ValueError: a row has no end code (its anchor), or a code below the row's :meth:`WingGrid.low_code`.
    """
    end = grid.end_code[:, None]
    if not bool((codes == end).any(dim=1).all()):
        raise ValueError("every row needs its anchor's end code to pin the wing's scale")
    if bool((codes < grid.low_code()[:, None]).any()):
        raise ValueError("a row pinned at qmax holds code qmin, which the wings cannot recover")
    s = grid.scale.float()[:, None]
    return torch.where(codes == end, grid.end_value[:, None], codes.float() * s)


def rtn_codes(weight: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    """Round-to-nearest codes ``clamp(round(w / s), qmin, qmax)`` per row (the baseline GPTQ improves on)."""
    qmin, qmax = qrange(bits, signed=True)
    return torch.clamp(torch.round(weight.float() / scale.float()[:, None]), qmin, qmax).to(torch.int64)


def layer_output_error(weight: torch.Tensor, quantized: torch.Tensor, hessian: torch.Tensor) -> float:
    """``tr((W - Q) H (W - Q)^T)``: the summed squared output error ``||X W^T - X Q^T||^2`` (GPTQ eq. 1, up to the
    factor ``2 / N`` of the mean Hessian)."""
    d = (weight.double() - quantized.double()).reshape(weight.shape[0], -1)
    return float(torch.einsum("ij,jk,ik->", d, hessian.double(), d))


def _inverse_cholesky(hessian: torch.Tensor, damp: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Upper Cholesky factor of the dampened ``H^{-1}`` and the dead-input mask (GPTQ §4, Step 3)."""
    h = hessian.double().clone()
    dead = torch.diagonal(h) == 0
    h[dead, dead] = 1.0
    h.diagonal().add_(damp * float(torch.diagonal(h).mean()))
    lower = torch.linalg.cholesky(h)
    hinv = torch.cholesky_inverse(lower)
    return torch.linalg.cholesky(hinv, upper=True), dead


def gptq_quantize(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    bits: int,
    *,
    grid: WingGrid | None = None,
    block_size: int = 128,
    damp: float = 0.01,
) -> GPTQResult:
    """GPTQ (arXiv 2210.17323, Algorithm 1) onto the wings' per-row symmetric grid.

    Args:
        weight: ``(rows, cols)`` float weight (a Conv2d weight is flattened to ``(out, C*kh*kw)``).
        hessian: ``(cols, cols)`` ``2 X^T X / N`` from :class:`HessianAccumulator`.
        bits: Signed bit-width, 2..16.
        grid: Per-row grid; default :func:`wing_scale` of ``weight`` (recovered exactly by the wings).
        block_size: Lazy-batch block ``B`` (paper §4, Step 2).
        damp: Dampening ``lambda`` relative to ``mean(diag H)`` (paper: 0.01).

    Returns:
        :class:`GPTQResult` with the codes, scales and the float weight to store.

    Raises:
        ValueError: shape mismatch, non-finite input, bad ``bits``, ``block_size < 1`` or ``damp`` outside
            ``(0, 1]``.
    """
    check_bits(bits, lo=2, hi=16, what="bits")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if not 0.0 < damp <= 1.0:
        raise ValueError(f"damp must be in (0, 1], got {damp}")
    rows = weight.shape[0]
    w = weight.detach().reshape(rows, -1).double().clone()
    cols = w.shape[1]
    if hessian.shape != (cols, cols):
        raise ValueError(
            f"hessian must be ({cols}, {cols}) for a weight of {cols} columns, got {tuple(hessian.shape)}"
        )
    if not bool(torch.isfinite(w).all()) or not bool(torch.isfinite(hessian).all()):
        raise ValueError("gptq_quantize: weight and hessian must be finite")
    qmin, qmax = qrange(bits, signed=True)
    grid = wing_scale(w, bits) if grid is None else grid
    s = grid.scale.double()
    anchor = grid.anchor  # pinned to its end code: fixes the wing's scale (module doc)
    anchor_code = grid.end_code.double()
    lo = grid.low_code().double()
    u, dead = _inverse_cholesky(hessian, damp)
    w[:, dead] = 0.0
    codes = torch.empty(rows, cols, dtype=torch.int64)
    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        w1 = w[:, i1:i2].clone()
        err1 = torch.zeros_like(w1)
        u1 = u[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = w1[:, i]
            q = torch.clamp(torch.maximum(torch.round(col / s), lo), max=qmax)
            q = torch.where(anchor == i1 + i, anchor_code, q)
            codes[:, i1 + i] = q.to(torch.int64)
            e = (col - q * s) / u1[i, i]
            w1[:, i:] -= e[:, None] * u1[i, i:][None, :]
            err1[:, i] = e
        w[:, i2:] -= err1 @ u[i1:i2, i2:]
    return GPTQResult(codes, grid, stored_weight(codes, grid).reshape(weight.shape).to(weight.dtype))
