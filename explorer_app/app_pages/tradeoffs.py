"""Trade-offs: accuracy vs size / BOPs of every evaluated config, sensitivity bars, LayerNorm ranges."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer_app import charts
from explorer_app import compare
from explorer_app import evaluations
from explorer_app import latency
from explorer_app import services
from explorer_app import state
from explorer_app import ui
from explorer_app.layer_table import effective_bits
from explorer_app.results import points_frame
from explorer_app.state import Settings
from vitq_plugins.config import QuantConfig

CHART = "tradeoff_chart"
X_AXIS = "tradeoff_x"
PICK = "tradeoff_pick"
LN_PICK = "ln_pick"
SENS_KIND = "sens_kind"


def _load_key(key: str, fp: services.FPModel) -> None:
    rec = st.session_state[state.RESULTS][key]
    ui.load_config(QuantConfig.from_dict(rec["config"]), fp)
    st.session_state[state.SELECTED] = key
    st.success(f"Loaded **{rec['label']}** into the Layers table.")


@ui.callback
def _load_picked() -> None:
    key = st.session_state.get(PICK)
    if key:
        fp = ui.current_fp()
        rec = st.session_state[state.RESULTS][key]
        ui.load_config(QuantConfig.from_dict(rec["config"]), fp)
        st.session_state[state.SELECTED] = key
        ui.flash("success", f"Loaded {rec['label']} into the Layers table.")


def _tradeoff(fp: services.FPModel, s: Settings) -> None:
    from vitq_plugins.search import CostModel

    results = st.session_state[state.RESULTS]
    c1, c2, c3 = st.columns([1.3, 1.6, 2])
    if c1.button("Evaluate current config", key="evaluate_current_t", type="primary"):
        cfg = ui.current_config(fp)
        n = sum(1 for r in results.values() if r.get("source") == "manual") + 1
        ui.evaluate_with_status(fp, cfg, label=f"manual {n}", source="manual")
    if c2.button("Evaluate uniform baselines", key="evaluate_uniform", help="W8A8, W6A6, W4A8, W4A4"):
        ui.evaluate_many(fp, evaluations.uniform_configs(s), "uniform")
    x = c3.radio(
        "x axis", list(charts.AXES), format_func=charts.AXES.__getitem__, horizontal=True, key=X_AXIS
    )

    cfg = ui.current_config(fp)
    cur_key = evaluations.eval_key(s, fp, cfg)
    df, _ = ui.table_state(fp)
    w, a = effective_bits(df)
    cost = CostModel(fp.layers, fp.float_params)
    records = list(results.values())
    avg = {}
    for rec in records:
        rc = QuantConfig.from_dict(rec["config"])
        rw = [32 if rc.resolve(ly.fqn).keep_float else rc.resolve(ly.fqn).w_bits for ly in fp.layers]
        ra = [32 if rc.resolve(ly.fqn).keep_float else rc.resolve(ly.fqn).a_bits for ly in fp.layers]
        avg[rec["key"]] = cost.cost("avg_bits", np.array(rw), np.array(ra))
    points = points_frame(records, avg)
    if not len(points):
        st.info("No config evaluated yet: press *Evaluate uniform baselines* or *Evaluate current config*.")
    from vitq_plugins.evaluation.bops import bits_by_layer
    from vitq_plugins.evaluation.bops import bops
    from vitq_plugins.evaluation.size import weight_size_mb

    cur_lat = (results.get(cur_key) or {}).get("latency") or {}
    cur_x = {
        "size_mb": weight_size_mb(fp.module, cfg),
        "bops": float(bops(fp.macs, bits_by_layer(fp.macs, cfg))),
        "avg_bits": cost.cost("avg_bits", np.array(w), np.array(a)),
        "latency_ms": cur_lat.get("ms"),  # measured or nothing: latency is never estimated
    }[x]
    if x == "latency_ms" and len(points) and points["latency_ms"].isna().all():
        st.info("No latency measured yet: pick a config below and press *Measure latency (QCDQ, ORT)*.")
    fp_top1 = float(points["fp_top1"].iloc[0]) if len(points) else None
    fig = charts.tradeoff_figure(points, x, fp_top1=fp_top1, current_key=cur_key, current_x=cur_x)
    event = st.plotly_chart(fig, key=CHART, on_select="rerun", selection_mode="points")
    clicked = charts.selected_key(event)
    if clicked and clicked != st.session_state.get(state.SELECTED) and clicked in results:
        _load_key(clicked, fp)
    if len(points):
        st.caption("Click a point to load its config into the Layers table, or pick one here:")
        c1, c2 = st.columns([3, 1])
        c1.selectbox(
            "Evaluated configs",
            list(points["key"]),
            format_func=lambda k: f"{results[k]['label']}: {results[k]['result']['q_top1']:.2%}",
            key=PICK,
            label_visibility="collapsed",
        )
        c2.button("Load", key="load_pick", on_click=_load_picked)
        _latency(fp, s)
        _compare(fp, list(points["key"]))


def _latency(fp: services.FPModel, s: Settings) -> None:
    """Measure the picked config's QCDQ export in ONNX Runtime (then it shows on the latency axis)."""
    key = st.session_state.get(PICK)
    rec = st.session_state[state.RESULTS].get(key) if key else None
    if rec is None:
        return
    measured = (rec.get("latency") or {}).get("ms")
    c1, c2 = st.columns([1.3, 3])
    label = "Re-measure latency" if measured is not None else "Measure latency (QCDQ, ORT)"
    if c1.button(label, key="measure_latency", help="export the picked config as QCDQ ONNX and time it"):
        with ui.in_place(), ui.job_progress(f"Latency of {rec['label']}"):
            lat = latency.measure_latency(s, fp, rec)
            measured = lat["ms"]
    if measured is not None:
        lat = rec["latency"]
        c2.caption(
            f"{rec['label']}: {measured:.2f} ms/image ({lat['runtime']}, {lat['threads']} threads, "
            f"median of {lat['runs']}); pick the x axis *measured latency* to plot it."
        )


def _compare(fp: services.FPModel, keys: list[str]) -> None:
    """Two evaluated configs side by side."""
    results = st.session_state[state.RESULTS]
    with st.expander("Compare two configs", expanded=False):
        if len(keys) < 2:
            st.caption("Evaluate at least two configs to compare them.")
            return
        c1, c2 = st.columns(2)
        fmt = lambda k: f"{results[k]['label']}: {results[k]['result']['q_top1']:.2%}"  # noqa: E731
        a = c1.selectbox("A", keys, index=0, format_func=fmt, key="compare_a")
        b = c2.selectbox("B", keys, index=1, format_func=fmt, key="compare_b")
        st.dataframe(compare.metric_table(results[a], results[b]), hide_index=True)
        diff = compare.layer_differences(results[a], results[b], [ly.fqn for ly in fp.layers])
        if len(diff):
            st.caption(f"{len(diff)} layer(s) quantized differently:")
            st.dataframe(diff, hide_index=True)
        else:
            st.caption(
                "Both quantize every layer the same way (the defaults or options differ, if anything)."
            )


def _sensitivity(fp: services.FPModel) -> None:
    st.subheader("Per-layer sensitivity")
    table = ui.current_sensitivity(fp)
    if table is None:
        st.caption("Not measured yet for these settings.")
        if st.button("Measure sensitivity", key="measure_sensitivity_t"):
            ui.measure_sensitivity(fp)
            st.rerun()
        return
    kind = st.radio(
        "Knob",
        ["w", "a"],
        format_func={"w": "weights", "a": "input activations"}.__getitem__,
        horizontal=True,
        key=SENS_KIND,
    )
    st.plotly_chart(charts.sensitivity_figure(table, "kl", str(kind)), key="sensitivity_chart")


def _layernorm(fp: services.FPModel) -> None:
    st.subheader("LayerNorm inputs: why PTS exists")
    st.caption(
        "LayerNorm inputs of a ViT differ by orders of magnitude between channels. One layer-wide scale wastes "
        "the few codes on the wide channels and rounds the narrow ones to nothing; FQ-ViT's Power-of-Two Factor "
        "gives channel c the scale s·2^αc (αc ∈ 0..K) at the cost of a shift."
    )
    stats = ui.current_ln_stats(fp)
    if stats is None:
        st.caption("Needs calibration statistics.")
        if st.button("Calibrate", key="calibrate_t"):
            ui.calibrate(fp)
            st.rerun()
        return
    names = list(stats)
    worst = max(names, key=lambda n: stats[n].range_ratio)
    name = st.selectbox(
        "LayerNorm",
        names,
        index=names.index(worst),
        format_func=lambda n: f"{n} (range ratio {stats[n].range_ratio:.0f}x)",
        key=LN_PICK,
    )
    st.plotly_chart(charts.layernorm_figure(stats[str(name)]), key="layernorm_chart")
    ln = stats[str(name)]
    st.caption(
        f"Mean MSE with one scale {ln.mse_tensor.mean():.3g} vs PTS {ln.mse_pts.mean():.3g} "
        f"({ln.mse_tensor.mean() / max(ln.mse_pts.mean(), 1e-30):.1f}x lower); α histogram "
        + ", ".join(f"{k}: {int((ln.alpha == k).sum())}" for k in range(ln.k + 1))
    )


def page() -> None:
    st.title("Trade-offs")
    fp = ui.current_fp()
    s = ui.settings()
    _tradeoff(fp, s)
    st.divider()
    _sensitivity(fp)
    st.divider()
    _layernorm(fp)


ui.guarded(page)
