"""FQ-ViT Log-Int-Softmax (LIS): integer exp, 4-bit log2 attention codes and shift-based attn @ V.

FQ-ViT (arXiv 2111.13824, Sec. 3.3, eqs. 11-16; official ``models/ptq/layers.py::QIntSoftmax`` and
``models/ptq/quantizer/log2.py``):

* :func:`int_exp` - I-BERT (arXiv 2101.01321, Alg. 2) integer exponential: ``x = q * x0 + r`` with
  ``x0 = -0.6931`` (``-ln 2``) and ``r`` in ``(x0, 0]``; ``exp(r) ~= a r^2 + b r + c = a (r^2 + (b/a) r + c/a)``
  with ``a = 0.35815147, b = 0.96963238, c = 1``, in integers ``z = r (r + b_int) + c_int`` with
  ``b_int = floor(b / (a S))``, ``c_int = floor(c / (a S^2))`` and scale ``a S^2``; then
  ``exp_int = z << (n - q)`` (``n = 30``) with scale ``a S^2 / 2^n``. The integer constants are derived
  from the scale in float64 (the official code uses float32 tensors).
* :func:`lis_softmax_int` - ``R = round(sum_j exp_j / exp_i)`` (integer division, ties rounded up),
  ``k = floor(log2 R)`` from the MSB, ``+1`` if the next bit is set (rounds ``R`` to the nearest power of
  two), ``code = k`` if ``k < 2^b`` else the *underflow code* ``2^b`` (dequantizes to 0).
* :func:`log2_quant` - the same quantizer on a float probability (calibration path): ``round(-log2 p)``.
* :func:`lis_attn_v` - ``sum_j 2^-code_ij V_j`` evaluated exactly with integer shifts (see its docstring).

Underflow code: the official code clamps the code to ``[0, 2^b - 1]`` and separately keeps a mask of the
entries with ``round(-log2 p) >= 2^b`` (dequantized to 0). A mask is not an integer code, so here underflow is
returned as the explicit code ``2^b`` (16 for 4 bits): storing it needs one extra bit (or a zero flag), and
every consumer treats ``code >= 2^b`` as probability 0.

Overflow: with ``n = 30`` ``exp_int`` exceeds int32 (issue megvii-research/FQ-ViT#21, e.g. 60129542144). All
integer arithmetic here is int64, and :func:`int_exp` / :func:`lis_softmax_int` raise ``ValueError`` *before*
computing if ``c_int * 2^n`` (the largest ``exp_int``) times the row length could exceed ``2^62``.
"""

from __future__ import annotations

import math

import torch

from vitq_plugins.ops._checks import check_bits
from vitq_plugins.ops._checks import check_finite
from vitq_plugins.ops._checks import check_finite_stats
from vitq_plugins.ops._checks import check_int_tensor
from vitq_plugins.ops._checks import check_nonempty
from vitq_plugins.ops._checks import check_positive
from vitq_plugins.ops._intmath import floor_log2
from vitq_plugins.ops._intmath import refine_codes

__all__ = [
    "IEXP_COEFFS",
    "IEXP_X0",
    "iexp_constants",
    "iexp_unit",
    "int_exp",
    "lis_attn_v",
    "lis_codes",
    "lis_dequant",
    "lis_softmax_int",
    "lis_softmax_unit",
    "refine_to_ln2",
    "log2_fake_quant",
    "log2_quant",
]

IEXP_COEFFS = (0.35815147, 0.96963238, 1.0)
"""Coefficients ``(a, b, c)`` of the I-BERT fit ``exp(x) ~= a x^2 + b x + c`` on ``[-ln 2, 0]``."""
IEXP_X0 = -0.6931
"""``-ln 2`` as used by I-BERT / FQ-ViT."""
_LIMIT = 2**62


def _iexp_constants(scale: float) -> tuple[int, int, int]:
    a, b, c = IEXP_COEFFS
    x0_int = math.floor(IEXP_X0 / scale)
    b_int = math.floor((b / a) / scale)
    c_int = math.floor((c / a) / scale**2)
    return x0_int, b_int, c_int


def _check_scale(scale: torch.Tensor | float) -> float:
    s = torch.as_tensor(scale, dtype=torch.float64)
    if s.numel() != 1:
        raise ValueError(f"scale must be a scalar (per-tensor), got shape {tuple(s.shape)}")
    check_positive(s, "scale")
    return float(s)


def refine_to_ln2(x_int: torch.Tensor, scale: float) -> tuple[torch.Tensor, float]:
    """``(x_int << k, scale / 2^k)`` with the least ``k`` that makes ``scale / 2^k < ln 2``.

    I-BERT's ``x0_int = floor(-ln2 / S)`` represents ``-ln 2`` only for ``S < ln 2``; a coarser logit grid (6 bits
    and below) is refined by a power of two, which keeps every real value (``ops._intmath.grid_refinement``).
    FQ-ViT's code instead takes ``x0_int = -1`` there.
    """
    return refine_codes(x_int, scale, -IEXP_X0, strict=True)


def int_exp(x_int: torch.Tensor, scale: torch.Tensor | float, n: int = 30) -> tuple[torch.Tensor, float]:
    """I-BERT integer exponential of non-positive integer inputs.

    Args:
        x_int: int tensor with all values ``<= 0`` (max-subtracted logits), real value ``x_int * scale``.
        scale: Positive per-tensor input scale ``S`` (float64 is used for the constants).
        n: Output shift (FQ-ViT: 30). Valid 1..62.

    Returns:
        ``(exp_int, exp_scale)``: int64 tensor and the float scale ``a S^2 / 2^n``.

    Raises:
        ValueError: If ``x_int`` is not an integer tensor, has a positive value, or ``c_int * 2^n >= 2^62``
            (int64 overflow risk). A grid with ``S >= ln 2`` is refined first (:func:`refine_to_ln2`), so the
            returned scale is that of the refined grid.
    """
    check_int_tensor(x_int, "x_int")
    check_nonempty(x_int, "x_int")
    check_bits(n, lo=1, hi=62, what="n")
    x = x_int.to(torch.int64)
    if bool((x > 0).any()):
        raise ValueError(f"int_exp expects x_int <= 0 (subtract the row max first), got max {int(x.max())}")
    x, s = refine_to_ln2(x, _check_scale(scale))
    x0_int, b_int, c_int = _iexp_constants(s)
    if c_int * 2.0**n >= _LIMIT:
        raise ValueError(
            f"int_exp would overflow int64: c_int * 2^n = {c_int} * 2^{n} >= 2^62; use a larger scale or smaller n"
        )
    x = torch.maximum(x, torch.full_like(x, n * x0_int))
    q = torch.div(x, x0_int, rounding_mode="floor")
    r = x - x0_int * q
    z = r * (r + b_int) + c_int
    exp_int = (z << (n - q)).clamp(min=0)
    a = IEXP_COEFFS[0]
    return exp_int, a * s * s / 2.0**n


def lis_softmax_int(
    x_int: torch.Tensor, scale: torch.Tensor | float, bits: int = 4, n: int = 30, dim: int = -1
) -> torch.Tensor:
    """Integer Log-Int-Softmax: attention logits -> log2 codes.

    Args:
        x_int: Integer logits (the zero point, if any, may be left in: softmax is shift invariant).
        scale: Per-tensor logit scale ``S``.
        bits: Code bit-width ``b`` (FQ-ViT: 4). Valid 1..8 (FQ-ViT 8/8/8 uses 8; codes past ~149 underflow to 0 in float32).
        n: i-exp shift (FQ-ViT: 30; n = 20 is the suggested int32-friendly value).
        dim: Softmax dimension.

    Returns:
        int64 codes in ``[0, 2^b]`` with ``softmax ~= 2^-code``; code ``2^b`` means probability 0.

    Raises:
        ValueError: On bad inputs or if ``sum_j exp_int`` could overflow int64.
    """
    check_int_tensor(x_int, "x_int")
    check_nonempty(x_int, "x_int")
    check_bits(bits, lo=1, hi=8, what="bits")
    check_bits(n, lo=1, hi=62, what="n")
    x, s = refine_to_ln2(x_int.to(torch.int64), _check_scale(scale))
    _, _, c_int = _iexp_constants(s)
    row = x.shape[dim]
    if c_int * 2.0**n * row >= _LIMIT:
        raise ValueError(
            f"sum of exp_int would overflow int64: c_int * 2^n * L = {c_int} * 2^{n} * {row} >= 2^62; "
            "use a larger scale or smaller n"
        )
    x = x - x.amax(dim=dim, keepdim=True)
    exp_int, _ = int_exp(x, s, n)
    total = exp_int.sum(dim=dim, keepdim=True)
    safe = exp_int.clamp(min=1)
    ratio = torch.div(2 * total + safe, 2 * safe, rounding_mode="floor")
    k = floor_log2(ratio)
    nxt = (ratio >> (k - 1).clamp(min=0)) & 1
    k = k + torch.where(k > 0, nxt, torch.zeros_like(nxt))
    zero_code = 2**bits
    return torch.where((exp_int == 0) | (k >= zero_code), torch.full_like(k, zero_code), k)


def log2_quant(p: torch.Tensor, bits: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Float-calibration log2 quantizer of probabilities (FQ-ViT ``Log2Quantizer``).

    ``code = round(-log2 p)`` (ties to even); codes ``>= 2^b`` (including ``p = 0``) become the underflow
    code ``2^b`` and dequantize to 0; otherwise the dequantized value is ``2^-code``.

    Args:
        p: Probabilities in ``[0, 1]``.
        bits: Code bit-width (FQ-ViT: 4). Valid 1..8 (FQ-ViT 8/8/8 uses 8; codes past ~149 underflow to 0 in float32).

    Returns:
        ``(codes, dequant)``: int64 codes in ``[0, 2^b]`` and float dequantized values (dtype of ``p``).

    Raises:
        ValueError: On empty/non-finite input or values outside ``[0, 1]``.
    """
    check_nonempty(p, "p")
    check_finite(p, "p")
    check_bits(bits, lo=1, hi=8, what="bits")
    if bool((p < 0).any()) or bool((p > 1).any()):
        raise ValueError(f"p must be probabilities in [0, 1], got range [{p.min().item()}, {p.max().item()}]")
    pf = p if p.is_floating_point() else p.float()
    with torch.no_grad():
        rounds = torch.round(-torch.log2(pf))
        zero_code = 2**bits
        under = rounds >= zero_code
        codes = torch.where(under, torch.full_like(rounds, zero_code), rounds.clamp(min=0)).to(torch.int64)
    return codes, lis_dequant(codes, bits).to(pf.dtype)


def log2_fake_quant(p: torch.Tensor, bits: int = 4) -> torch.Tensor:
    """The dequantized value of :func:`log2_quant` only, in one allocation (the fake-quant hot path).

    Equal to ``log2_quant(p, bits)[1]``: ``2^-round(-log2 p)``, 0 where the code reaches ``2^b``. The input
    checks use one ``aminmax`` pass (NaN/Inf propagate into it) instead of three full passes.

    Raises:
        ValueError: On empty/non-finite input or values outside ``[0, 1]``.
    """
    check_nonempty(p, "p")
    check_bits(bits, lo=1, hi=8, what="bits")
    pf = p if p.is_floating_point() else p.float()
    lo, hi = torch.aminmax(pf.detach())
    check_finite_stats("p", lo, hi)
    if bool(lo < 0) or bool(hi > 1):
        raise ValueError(f"p must be probabilities in [0, 1], got range [{lo.item()}, {hi.item()}]")
    zero_code = 2**bits
    with torch.no_grad():
        r = torch.log2(pf).neg_().round_().clamp_(0, zero_code)
        under = r >= zero_code
        return torch.pow(2.0, r.neg_()).masked_fill_(under, 0.0).to(pf.dtype)


def lis_dequant(codes: torch.Tensor, bits: int = 4) -> torch.Tensor:
    """Dequantize log2 codes: ``2^-code``, and 0 for the underflow code ``>= 2^b``.

    Returns:
        float32 tensor.
    """
    check_int_tensor(codes, "codes")
    check_bits(bits, lo=1, hi=8, what="bits")
    c = codes.to(torch.int64)
    val = torch.pow(2.0, -c.clamp(min=0, max=2**bits).to(torch.float32))
    return torch.where(c >= 2**bits, torch.zeros_like(val), val)


def lis_attn_v(
    codes: torch.Tensor, v_int: torch.Tensor, bits: int = 4, frac_bits: int | None = None
) -> torch.Tensor:
    """Shift-based ``attn @ V``: ``out_id = sum_j (v_jd << F) >> code_ij`` (FQ-ViT eq. 16, as a matmul).

    Paper eq. 16 writes ``V_q >> Attn_q``; as users noted (issue megvii-research/FQ-ViT#49) this is a
    matrix product where every term ``V_jd`` is right-shifted by ``code_ij``. To keep the fraction bits,
    ``V`` is pre-shifted left by ``F = frac_bits`` (default ``2^b - 1``, so every shift is exact and
    ``out = sum_j V_jd * 2^(F - code_ij)`` exactly, real scale ``S_V * 2^-F``). With a smaller ``F`` the
    shifts truncate (floor), reproducing a literal hardware shift ``(V << F) >> code``; ``F = 0`` is the
    paper's literal ``V >> code``.

    Evaluation: for ``F >= 2^b - 1`` a single matmul with weights ``2^(F - code)`` in float64 (exact while
    ``max|V| * 2^F * L < 2^53``, otherwise int64); for ``F < 2^b - 1`` one matmul per code value (``2^b``
    fixed iterations, never a loop over tokens). Codes ``>= 2^b`` contribute 0.

    Args:
        codes: int codes ``(..., Lq, Lk)`` from :func:`lis_softmax_int`.
        v_int: int values ``(..., Lk, D)``; batch dims must broadcast with ``codes``.
        bits: Code bit-width ``b``.
        frac_bits: Pre-shift ``F`` in ``[0, 30]`` (default ``2^b - 1``).

    Returns:
        int64 ``(..., Lq, D)`` in units of ``S_V * 2^-F``.

    Raises:
        ValueError: On non-integer inputs, incompatible shapes, negative codes or overflow risk.
    """
    check_int_tensor(codes, "codes")
    check_int_tensor(v_int, "v_int")
    check_nonempty(codes, "codes")
    check_nonempty(v_int, "v_int")
    check_bits(bits, lo=1, hi=6, what="bits")
    zero_code = 2**bits
    f = zero_code - 1 if frac_bits is None else check_bits(frac_bits, lo=0, hi=30, what="frac_bits")
    if codes.dim() < 2 or v_int.dim() < 2 or codes.shape[-1] != v_int.shape[-2]:
        raise ValueError(
            f"codes (..., Lq, Lk) and v_int (..., Lk, D) must agree on Lk, got {tuple(codes.shape)} and {tuple(v_int.shape)}"
        )
    c = codes.to(torch.int64)
    if bool((c < 0).any()):
        raise ValueError(f"codes must be >= 0, got min {int(c.min())}")
    v = v_int.to(torch.int64)
    vmax = int(v.abs().max())
    lk = codes.shape[-1]
    if vmax * 2.0**f * lk >= _LIMIT:
        raise ValueError(f"lis_attn_v would overflow int64: max|v|={vmax}, F={f}, Lk={lk}")
    valid = c < zero_code
    if f >= zero_code - 1:
        exps = (f - c.clamp(max=f)).clamp(min=0)
        if vmax * 2.0**f * lk < 2.0**53:
            w = torch.where(valid, torch.pow(2.0, exps.double()), torch.zeros((), dtype=torch.float64))
            return torch.matmul(w, v.double()).to(torch.int64)
        wi = torch.where(valid, torch.ones_like(exps) << exps, torch.zeros_like(exps))
        return torch.matmul(wi, v)
    vs = v << f
    use_float = vmax * 2.0**f * lk < 2.0**53
    out: torch.Tensor | None = None
    for code in range(zero_code):
        mask = c == code
        shifted = vs >> code
        term = (
            torch.matmul(mask.double(), shifted.double()).to(torch.int64)
            if use_float
            else torch.matmul(mask.to(torch.int64), shifted)
        )
        out = term if out is None else out + term
    assert out is not None
    return out


def iexp_constants(scale: float) -> tuple[int, int, int]:
    """``(x0_int, b_int, c_int)`` of :func:`int_exp` for the logit scale ``S`` (computed once, in float64).

    Raises:
        ValueError: If ``S`` is not positive or ``S >= ln 2`` (``x0_int`` would not represent ``-ln 2``).
    """
    s = float(scale)
    if not (math.isfinite(s) and 0.0 < s < -IEXP_X0):
        raise ValueError(f"scale must be in (0, {-IEXP_X0}), got {s}")
    return _iexp_constants(s)


_SQRT2_Q31 = round(math.sqrt(2.0) * 2**31)
_LOG_FRAC = 16


def lis_softmax_unit(
    x_int: torch.Tensor,
    constants: tuple[int, int, int],
    bits: int = 4,
    n: int = 30,
    dim: int = -1,
    rounding: str = "linear",
) -> torch.Tensor:
    """:func:`lis_softmax_int` with precomputed :func:`iexp_constants`: integer tensor ops only.

    With ``rounding="linear"`` bit-identical to ``lis_softmax_int(x_int, S, bits, n, dim)`` for
    ``constants = iexp_constants(S)``: ``R = sum/exp`` is rounded to the nearest power of two in linear space
    (FQ-ViT's integer path: up when ``R >= 1.5 * 2^k``). ``rounding="log"`` rounds ``log2 R`` instead (up when
    ``R >= sqrt(2) * 2^k``), which is what the float path ``round(-log2 p)`` (:func:`log2_quant`, the fake-quant
    model) computes; it uses ``R`` with 16 fraction bits, so it needs ``c_int * 2^n * L < 2^46``.
    The caller guarantees ``c_int * 2^n * L < 2^62`` (``L`` = row length; checked by :func:`lis_softmax_int`).

    Returns:
        int64 codes in ``[0, 2^b]`` (``2^b`` = probability 0).
    """
    check_int_tensor(x_int, "x_int")
    check_nonempty(x_int, "x_int")
    check_bits(bits, lo=1, hi=8, what="bits")
    check_bits(n, lo=1, hi=62, what="n")
    x = x_int.to(torch.int64)
    exp_int = iexp_unit(x - x.amax(dim=dim, keepdim=True), constants, n)
    return lis_codes(exp_int, bits, dim, rounding)


def iexp_unit(x: torch.Tensor, constants: tuple[int, int, int], n: int = 30) -> torch.Tensor:
    """I-BERT's integer exponential (arXiv 2101.01321 Alg. 2) of max-subtracted codes ``x <= 0``, scale ``S / 2^n``.

    The first half of :func:`lis_softmax_unit`: ``x`` is clipped at ``n * x0``, split as ``x = q x0 + r``, the
    second-order polynomial ``r (r + b) + c`` is shifted left by ``n - q`` and negatives become 0.
    """
    x0_int, b_int, c_int = constants
    x = torch.maximum(x.to(torch.int64), torch.full_like(x, n * x0_int, dtype=torch.int64))
    q = torch.div(x, x0_int, rounding_mode="floor")
    r = x - x0_int * q
    z = r * (r + b_int) + c_int
    return (z << (n - q)).clamp(min=0)


def lis_codes(exp_int: torch.Tensor, bits: int = 4, dim: int = -1, rounding: str = "linear") -> torch.Tensor:
    """Log2 codes ``round(log2(sum_j e_j / e_i))`` of non-negative integer exponentials (integer ops only).

    The second half of :func:`lis_softmax_unit`, usable with any integer exponential (see ``rounding`` there;
    ``"log"`` needs ``sum e < 2^46``).

    Returns:
        int64 codes in ``[0, 2^b]`` (``2^b`` = probability 0).
    """
    total = exp_int.sum(dim=dim, keepdim=True)
    safe = exp_int.clamp(min=1)
    if rounding == "log":
        ratio = torch.div(total << _LOG_FRAC, safe, rounding_mode="floor")
        t = floor_log2(ratio.clamp(min=1))
        mant = torch.where(t >= 31, ratio >> (t - 31).clamp(min=0), ratio << (31 - t).clamp(min=0))
        k = t - _LOG_FRAC + (mant >= _SQRT2_Q31).to(torch.int64)
    elif rounding == "linear":
        ratio = torch.div(2 * total + safe, 2 * safe, rounding_mode="floor")
        k = floor_log2(ratio)
        nxt = (ratio >> (k - 1).clamp(min=0)) & 1
        k = k + torch.where(k > 0, nxt, torch.zeros_like(nxt))
    else:
        raise ValueError(f"rounding must be 'linear' or 'log', got {rounding!r}")
    zero_code = 2**bits
    return torch.where((exp_int == 0) | (k >= zero_code), torch.full_like(k, zero_code), k)
