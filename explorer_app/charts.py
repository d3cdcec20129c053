"""Plotly figures of the explorer (plain functions: data in, figure out; static-exportable).

* :func:`tradeoff_figure`: accuracy vs size or BOPs, every evaluated config a point (``customdata`` holds
  its key, so a click loads it), the measured Pareto frontier, labelled uniform baselines, the FP line
  and the current config highlighted;
* :func:`sensitivity_figure`: per-layer loss when one layer is lowered, grouped by candidate bits;
* :func:`layernorm_figure`: per-channel ranges of one LayerNorm input and the per-channel quantization
  error with one scale vs PTS scales (why FQ-ViT's PTS exists);
* :func:`sweep_figure`: the greedy sweep's estimated loss vs cost, with the greedy and ILP picks.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

if TYPE_CHECKING:
    from explorer_app.services import LayerNormStats
    from vitq_plugins.search import SearchResult
    from vitq_plugins.search import SensitivityTable

__all__ = [
    "AXES",
    "layer_error_figure",
    "selected_label",
    "linear_axis",
    "log_axis",
    "percent_axis",
    "layernorm_figure",
    "pareto_front",
    "selected_key",
    "sensitivity_figure",
    "sweep_figure",
    "tradeoff_figure",
]

#: x axes of the trade-off chart: column -> label
AXES: dict[str, str] = {
    "size_mb": "weight size (MB)",
    "bops": "BOPs per image",
    "avg_bits": "average bits",
    "latency_ms": "measured latency (ms/image, ORT QCDQ)",
}
_LABELS = {**AXES, "mb": "weight size (MB)"}
_COLORS = {"uniform": "#1f77b4", "search": "#2ca02c", "manual": "#9467bd", "current": "#d62728"}


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    return arr[np.isfinite(arr)]


def percent_axis(values: Sequence[float] | np.ndarray, pad: float = 0.08) -> dict[str, Any]:
    """A top-1 axis from the data: a range around the values and as many decimals as the span needs.

    Ticks must not repeat (``57, 56, 56, 55 %`` when whole percents label half-percent steps), and an axis
    with no value stays 0..100 % instead of Plotly's default -1..4 (shown as -100..400 %).
    """
    v = _finite(values)
    if not v.size:
        return {"range": [0.0, 1.0], "tickformat": ".0%"}
    lo, hi = float(v.min()), float(v.max())
    span = max(hi - lo, 0.002)  # one point: show +-0.1 point around it at least
    lo, hi = max(lo - pad * span - (0.001 if hi == lo else 0.0), 0.0), min(hi + pad * span, 1.0)
    span = hi - lo
    # Plotly picks about 6-8 ticks: one decimal more for every decade the span is below 10 %
    decimals = 0 if span >= 0.1 else 1 if span >= 0.01 else 2
    return {"range": [lo, hi], "tickformat": f".{decimals}%"}


def linear_axis(values: Sequence[float] | np.ndarray, pad: float = 0.08) -> dict[str, Any]:
    """A linear axis whose range covers ``values`` (from 0 when no value is known)."""
    v = _finite(values)
    if not v.size:
        return {"range": [0.0, 1.0]}
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo if hi > lo else max(abs(hi), 1e-9) * 0.2
    return {"range": [lo - pad * span, hi + pad * span]}


def log_axis(values: Sequence[float] | np.ndarray, max_labels: int = 8) -> dict[str, Any]:
    """A log axis over the positive ``values`` with at most ``max_labels`` labels, one per k decades.

    Plotly's default labels 2 and 5 inside every decade of a wide range, which overlap into noise.
    """
    v = _finite(values)
    v = v[v > 0]
    if not v.size:
        return {"type": "log"}
    lo, hi = np.floor(np.log10(v.min())), np.ceil(np.log10(v.max()))
    hi = max(hi, lo + 1)
    step = max(int(np.ceil((hi - lo) / max_labels)), 1)
    return {
        "type": "log",
        "range": [lo, hi],
        "dtick": step,
        "exponentformat": "power",
        "minor": {"showgrid": False},
    }


def pareto_front(x: Sequence[float], y: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats (smaller-or-equal ``x`` and larger ``y``), by ``x``."""
    order = sorted(range(len(x)), key=lambda i: (x[i], -y[i]))
    out: list[int] = []
    best = -np.inf
    for i in order:
        if y[i] > best:
            out.append(i)
            best = y[i]
    return out


def tradeoff_figure(
    points: pd.DataFrame,
    x: str = "size_mb",
    *,
    fp_top1: float | None = None,
    current_key: str | None = None,
    current_x: float | None = None,
) -> go.Figure:
    """Top-1 vs ``x`` for every evaluated config.

    Args:
        points: one row per evaluated config with ``key, label, kind, summary, q_top1, agreement`` and the
            ``x`` column (``kind``: ``uniform``, ``search`` or ``manual``).
        x: ``size_mb``, ``bops`` or ``avg_bits``.
        fp_top1: the FP model's top-1 (a horizontal line).
        current_key: key of the current config (highlighted when evaluated).
        current_x: the current config's estimated ``x`` (a vertical line when it is not evaluated).
    """
    if len(points) and x in points.columns:
        points = points[points[x].notna()]  # measured axes (latency) only show the measured configs
    fig = go.Figure()
    hover = (
        "<b>%{customdata[1]}</b><br>%{customdata[2]}<br>top-1 %{y:.2%}<br>"
        + AXES.get(x, x)
        + " %{x:.4g}<br>agreement %{customdata[3]:.2%}<extra></extra>"
    )
    if len(points):
        for kind, name in (
            ("manual", "evaluated"),
            ("search", "suggestions"),
            ("uniform", "uniform baselines"),
        ):
            sub = points[points["kind"] == kind]
            if not len(sub):
                continue
            fig.add_trace(
                go.Scatter(
                    x=sub[x],
                    y=sub["q_top1"],
                    mode="markers+text" if kind == "uniform" else "markers",
                    text=sub["label"] if kind == "uniform" else None,
                    textposition="top center",
                    name=name,
                    marker={"size": 11, "color": _COLORS[kind], "line": {"width": 1, "color": "white"}},
                    customdata=sub[["key", "label", "summary", "agreement"]].to_numpy(),
                    hovertemplate=hover,
                )
            )
        front = pareto_front(list(points[x]), list(points["q_top1"]))
        fr = points.iloc[front]
        fig.add_trace(
            go.Scatter(
                x=fr[x],
                y=fr["q_top1"],
                mode="lines",
                line={"shape": "hv", "dash": "dot", "color": "#444"},
                name="Pareto frontier",
                hoverinfo="skip",
            )
        )
        cur = points[points["key"] == current_key] if current_key else points.iloc[0:0]
        if len(cur):
            fig.add_trace(
                go.Scatter(
                    x=cur[x],
                    y=cur["q_top1"],
                    mode="markers",
                    name="current config",
                    marker={"size": 20, "symbol": "star", "color": _COLORS["current"]},
                    customdata=cur[["key", "label", "summary", "agreement"]].to_numpy(),
                    hovertemplate=hover,
                )
            )
    if current_x is not None and not (current_key and (points["key"] == current_key).any()):
        fig.add_vline(
            x=current_x,
            line={"dash": "dash", "color": _COLORS["current"]},
            annotation_text="current config (not evaluated)",
            annotation_position="bottom right",
        )
    if fp_top1 is not None:
        fig.add_hline(
            y=fp_top1,
            line={"dash": "dash", "color": "black"},
            annotation_text=f"FP {fp_top1:.2%}",
            annotation_position="bottom left",
        )
    ys = list(points["q_top1"]) if len(points) else []
    xs = list(points[x]) if len(points) else []
    fig.update_yaxes(**percent_axis([*ys, *([fp_top1] if fp_top1 is not None else [])]))
    xs_all = [*xs, *([current_x] if current_x is not None else [])]
    fig.update_xaxes(**(log_axis(xs_all) if x == "bops" else linear_axis(xs_all)))
    if x == "size_mb":
        fig.update_xaxes(tickformat=".3~f", ticksuffix=" MB")
    fig.update_layout(
        xaxis_title=AXES.get(x, x),
        yaxis_title="top-1 accuracy",
        legend={"orientation": "h", "y": -0.2},
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        height=460,
        clickmode="event+select",
    )
    return fig


def selected_key(selection: Mapping[str, Any] | None) -> str | None:
    """The config key of the first clicked point of a ``st.plotly_chart(on_select="rerun")`` event."""
    if not selection:
        return None
    sel = selection.get("selection", selection)
    for p in list(sel.get("points", []) or []):
        data = p.get("customdata") if isinstance(p, Mapping) else None
        if isinstance(data, list | tuple) and data and isinstance(data[0], str):
            return data[0]
    return None


def selected_label(selection: Mapping[str, Any] | None) -> str | None:
    """The x label (a layer's FQN) of the first clicked bar of a ``st.plotly_chart`` selection."""
    if not selection:
        return None
    sel = selection.get("selection", selection)
    for p in list(sel.get("points", []) or []):
        x = p.get("x") if isinstance(p, Mapping) else None
        if isinstance(x, str):
            return x
    return None


def layer_error_figure(errors: pd.DataFrame) -> go.Figure:
    """SQNR of every layer's output against float (higher is better), the worst layers in red."""
    worst = errors["sqnr_db"].nsmallest(min(3, len(errors)))
    colors = ["#d62728" if i in worst.index else "#1f77b4" for i in errors.index]
    fig = go.Figure(
        go.Bar(
            x=errors["fqn"],
            y=errors["sqnr_db"],
            marker_color=colors,
            customdata=errors[["rel_error"]].to_numpy(),
            hovertemplate="%{x}<br>SQNR %{y:.1f} dB<br>relative error %{customdata[0]:.3g}<extra></extra>",
        )
    )
    fig.update_yaxes(title_text="output SQNR vs float (dB)", **linear_axis([0.0, *errors["sqnr_db"]]))
    fig.update_layout(
        xaxis_tickangle=-60,
        height=380,
        margin={"l": 10, "r": 10, "t": 20, "b": 10},
        clickmode="event+select",
    )
    return fig


def sensitivity_figure(table: SensitivityTable, metric: str = "kl", kind: str = "w") -> go.Figure:
    """Per-layer loss of lowering only that layer's weights (``kind="w"``) or input (``"a"``), per candidate."""
    losses = table.loss(metric, kind)
    fqns = [ly.fqn for ly in table.layers]
    fig = go.Figure()
    for j, bits in enumerate(table.candidates):
        fig.add_trace(go.Bar(x=fqns, y=losses[:, j], name=f"{kind.upper()}{bits}"))
    what = "weights" if kind == "w" else "input activations"
    fig.update_yaxes(**log_axis(losses))
    fig.update_layout(
        barmode="group",
        title=f"Sensitivity: {metric} when one layer's {what} are lowered (the rest float)",
        yaxis_title=metric,
        xaxis_tickangle=-60,
        height=430,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "y": 1.08},
    )
    return fig


def layernorm_figure(stats: LayerNormStats) -> go.Figure:
    """Per-channel input ranges of a LayerNorm, and the per-channel error of one scale vs PTS."""
    ch = np.arange(stats.min.size)
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=(
            f"{stats.fqn} input: per-channel min/max (range ratio {stats.range_ratio:.0f}x)",
            f"{stats.bits}-bit quantization MSE per channel: one layer-wide scale vs PTS (s*2^alpha, K={stats.k})",
        ),
    )
    fig.add_trace(
        go.Bar(x=ch, y=stats.max - stats.min, base=stats.min, name="channel range", marker_color="#1f77b4"),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=ch,
            y=np.maximum(stats.mse_tensor, 1e-12),
            mode="markers",
            name="one scale (per-tensor)",
            marker={"size": 4, "color": "#d62728"},
        ),
        row=2,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=ch,
            y=np.maximum(stats.mse_pts, 1e-12),
            mode="markers",
            name="PTS",
            marker={"size": 4, "color": "#2ca02c"},
            customdata=stats.alpha,
            hovertemplate="channel %{x}<br>MSE %{y:.3g}<br>alpha %{customdata}<extra>PTS</extra>",
        ),
        row=2,
        col=1,
    )
    fig.update_yaxes(title_text="value", row=1, col=1)
    mse = np.concatenate([np.maximum(stats.mse_tensor, 1e-12), np.maximum(stats.mse_pts, 1e-12)])
    fig.update_yaxes(title_text="MSE", row=2, col=1, **log_axis(mse, max_labels=6))
    fig.update_xaxes(title_text="channel", row=2, col=1)
    fig.update_layout(height=560, margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend={"orientation": "h"})
    return fig


def sweep_figure(result: SearchResult, kind: str) -> go.Figure:
    """Estimated loss vs ``kind`` cost along the greedy sweep, with the greedy and ILP picks and the budget."""
    steps = result.sweep.steps
    xs = [s.costs[kind] for s in steps]
    ys = [s.loss for s in steps]
    fig = go.Figure(
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines+markers",
            name="greedy sweep",
            marker={"size": 5},
            text=[s.unit for s in steps],
            hovertemplate="%{text}<br>cost %{x:.4g}<br>est. loss %{y:.4g}<extra></extra>",
        )
    )
    space = result.space
    for name, asg, color in (("greedy", result.greedy, "#2ca02c"), ("ILP", result.ilp.assignment, "#ff7f0e")):
        fig.add_trace(
            go.Scatter(
                x=[space.costs(asg)[kind]],
                y=[space.estimate(asg)],
                mode="markers",
                name=f"{name} pick",
                marker={"size": 14, "symbol": "diamond", "color": color},
            )
        )
    for b in result.budgets:
        if b.kind == kind:
            fig.add_vline(x=b.value, line={"dash": "dash"}, annotation_text="budget")
    fig.update_layout(
        xaxis_title=_LABELS.get(kind, kind),
        yaxis_title=f"estimated {space.metric} (additive)",
        height=380,
        margin={"l": 10, "r": 10, "t": 20, "b": 10},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig
