"""The all-sites search space of a ViT: every quantized activation tensor as a knob, and taps that observe or
replace those tensors in the float model for the sensitivity measurement.

Units (see :mod:`vitq_plugins.search._space`): Linear/Conv (weights, input), ``ln`` (a LayerNorm input; for a
block's ``norm1``/``norm2`` it is the residual stream, skip path included, as both wings quantize it once)
and ``attn`` (q, k, v and the attention map). The tensor ownership follows the wings (Brevitas
``QuantBlock``/``QuantGELU``, FX ``assign.PRIORITY``): ``fc2``'s input is the GELU output, a block's residual
output is the next LayerNorm's input. The taps mirror the wings' placement: q is quantized after the
``1/sqrt(d)`` scale, the attention map after the softmax (``QuantAttention``). Paper: MPTQ-ViT arXiv
2401.14895 (Greedy MP over a fully quantized ViT).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

from vitq_plugins.search._space import Layer

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["SITE_MODES", "TAPS", "Tap", "all_site_units", "install_tap"]

#: ``sites=`` values of the sensitivity measurement.
SITE_MODES: tuple[str, ...] = ("linear", "all")
#: Tensors per knob of a non-Linear unit: op -> ((slot, count), ...); slot 0 = ``w``, 1 = ``a``.
TAPS: dict[str, tuple[tuple[int, int], ...]] = {"ln": ((1, 1),), "attn": ((0, 1), (1, 3))}

#: ``fn(slot, index, tensor) -> tensor``: observes (returns the tensor) or replaces it.
Tap = Callable[[int, int, "torch.Tensor"], "torch.Tensor"]
_Range = tuple[int, int]


def _both(a: _Range, b: _Range) -> _Range:
    return max(a[0], b[0]), min(a[1], b[1])


def all_site_units(
    model: nn.Module,
    layers: Sequence[Layer],
    matmul_macs: Mapping[str, int],
    input_size: Sequence[int],
    ranges: Mapping[str, _Range],
) -> list[Layer]:
    """Linear/Conv ``layers`` completed into the all-sites space (one forward of one image).

    Args:
        model: the float model.
        layers: its Linear/Conv layers (:func:`~vitq_plugins.search._measure.find_layers`).
        matmul_macs: ``{"<attn>@qk": macs, "<attn>@av": macs}`` per attention module.
        input_size: ``(C, H, W)``.
        ranges: site -> valid ``(min, max)`` bits of the recipe's quantizer there (in every wing); a site
            missing here is not quantized by the recipe and gets no knob.

    Returns:
        The units in module order: Linear/Conv (with ``act_elems``, ``fc2`` serving the GELU), then for each
        LayerNorm and attention module that ran, an ``ln``/``attn`` unit.
    """
    import torch
    from torch import nn

    from vitq_plugins.sites import is_attention
    from vitq_plugins.sites import is_block

    modules = dict(model.named_modules())
    blocks = {n for n, m in modules.items() if n and is_block(m)}
    elems: dict[str, int] = {}
    gelu_out: dict[int, str] = {}
    block_out: dict[int, str] = {}
    alive: list[Any] = []  # outputs kept alive, so that no later tensor reuses their memory address
    fed_by: dict[str, str] = {}  # module -> producer whose output is its input (GELU or block)
    hooks = []

    def pre(name: str) -> Callable[..., None]:
        def hook(_m: Any, inp: tuple[Any, ...]) -> None:
            x = inp[0]
            elems[name] = int(x[0].numel())
            src = gelu_out.get(x.data_ptr()) or block_out.get(x.data_ptr())
            if src:
                fed_by[name] = src
            if is_attention(_m):
                h, n = int(_m.num_heads), int(x.shape[1])
                elems[name + "#map"] = h * n * n

        return hook

    def post(name: str, table: dict[int, str]) -> Callable[..., None]:
        def hook(_m: Any, _inp: Any, out: Any) -> None:
            table[out.data_ptr()] = name
            alive.append(out)

        return hook

    for n, m in modules.items():
        if isinstance(m, nn.Linear | nn.Conv2d | nn.LayerNorm) or is_attention(m):
            hooks.append(m.register_forward_pre_hook(pre(n)))
        if isinstance(m, nn.GELU):
            hooks.append(m.register_forward_hook(post(n, gelu_out)))
        if n in blocks:
            hooks.append(m.register_forward_hook(post(n, block_out)))
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_size))
    finally:
        for h in hooks:
            h.remove()

    units: list[Layer] = []
    for ly in layers:
        src = fed_by.get(ly.fqn, "")
        served = (src,) if src and isinstance(modules[src], nn.GELU) and "gelu_output" in ranges else ()
        a_range = ranges.get("act", (1, 32))
        if served:
            a_range = _both(a_range, ranges["gelu_output"])
        units.append(
            Layer(
                ly.fqn,
                ly.op,
                ly.params,
                ly.macs,
                ly.block,
                ly.attn,
                act_elems=elems.get(ly.fqn, 0),
                served=served,
                w_range=ranges.get("weight", (1, 32)),
                a_range=a_range,
            )
        )

    def owner(fqn: str) -> str:
        hits = [b for b in blocks if fqn.startswith(b + ".")]
        return max(hits, key=len) if hits else ""

    for n, m in modules.items():
        if n not in elems:
            continue
        if isinstance(m, nn.LayerNorm) and "ln_input" in ranges:
            src = fed_by.get(n, "")
            served = (src,) if src in blocks and "residual" in ranges else ()
            rng = _both(ranges["ln_input"], ranges["residual"]) if served else ranges["ln_input"]
            units.append(Layer(n, "ln", 0, 0, owner(n), "", act_elems=elems[n], served=served, a_range=rng))
        elif is_attention(m) and "attn_matmul" in ranges and "softmax_output" in ranges:
            macs = int(matmul_macs.get(n + "@qk", 0)) + int(matmul_macs.get(n + "@av", 0))
            qkv_out = elems[n] // max(int(m.qkv.in_features), 1) * int(m.qkv.out_features)
            units.append(
                Layer(
                    n,
                    "attn",
                    0,
                    macs,
                    owner(n),
                    n,
                    act_elems=qkv_out,
                    map_elems=elems[n + "#map"],
                    w_range=ranges["softmax_output"],
                    a_range=ranges["attn_matmul"],
                )
            )
    return units


def _attn_forward(attn: Any, x: torch.Tensor, fn: Tap) -> torch.Tensor:
    """timm ``Attention`` as the wings run it (``QuantAttention``), with ``fn`` on q, k, v and the map."""
    b, n, _ = x.shape
    h = int(attn.num_heads)
    d = int(getattr(attn, "head_dim", attn.qkv.out_features // (3 * h)))
    qkv = attn.qkv(x).reshape(b, n, 3, h, d).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    q = q * float(getattr(attn, "scale", d**-0.5))
    q, k, v = fn(1, 0, q), fn(1, 1, k), fn(1, 2, v)
    amap = fn(0, 0, (q @ k.transpose(-2, -1)).softmax(dim=-1))
    out = (attn.attn_drop(amap) @ v).transpose(1, 2).reshape(b, n, h * d)
    norm = getattr(attn, "norm", None)
    if norm is not None:
        out = norm(out)
    return attn.proj_drop(attn.proj(out))  # type: ignore[no-any-return]


def _block_forward(blk: Any, x: torch.Tensor, fn: Tap) -> torch.Tensor:
    """timm ``Block`` with ``fn`` on the first residual sum (``norm2``'s input and the skip path)."""
    x = x + blk.drop_path1(blk.ls1(blk.attn(blk.norm1(x))))
    x = fn(1, 0, x)
    return x + blk.drop_path2(blk.ls2(blk.mlp(blk.norm2(x))))  # type: ignore[no-any-return]


def install_tap(modules: Mapping[str, nn.Module], unit: Layer, fn: Tap) -> Callable[[], None]:
    """Put ``fn`` on the tensors of ``unit`` (an ``ln`` or ``attn`` unit); returns the remover.

    A block's ``norm1`` input is the block input (a pre-hook on the block, so the skip path sees it too),
    ``norm2``'s the first residual sum (the block's forward, re-stated); any other LayerNorm's input is
    its own (a pre-hook). An attention module runs the re-stated forward above.
    """
    if unit.op == "attn":
        attn = modules[unit.fqn]
        attn.forward = lambda x, *_a, **_k: _attn_forward(attn, x, fn)
        return lambda: delattr(attn, "forward")
    blk = modules.get(unit.block) if unit.block else None
    if blk is not None and unit.fqn == unit.block + ".norm2":
        blk.forward = lambda x, *_a, **_k: _block_forward(blk, x, fn)
        return lambda: delattr(blk, "forward")
    target = blk if blk is not None and unit.fqn == unit.block + ".norm1" else modules[unit.fqn]
    handle = target.register_forward_pre_hook(lambda _m, inp: (fn(1, 0, inp[0]), *inp[1:]))
    return handle.remove
