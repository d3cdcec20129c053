"""Suggestions: mixed precision under a budget (size, average bits or BOPs), greedy MP vs ILP."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from explorer_app import charts
from explorer_app import services
from explorer_app import state
from explorer_app import ui

KIND_LABELS = {"mb": "weight size (MB)", "avg_bits": "average bits (W+A)/2", "bops": "BOPs per image"}
BUDGET_KIND = "budget_kind"
BUDGET_VALUE = "budget_value"
METHOD = "search_method"
TIE = "search_tie"
PINS = "search_pins"
METRIC = "search_metric"


def _config_of(which: str) -> Any:
    from vitq_plugins.search import to_quant_config

    run = st.session_state[state.SEARCH]
    result = run["result"]
    asg = result.greedy if which == "greedy" else result.ilp.assignment
    return to_quant_config(
        result.space, asg, run["recipe"], base_a_bits=run["base_a_bits"], attn_bits=run["attn_bits"]
    )


@ui.callback
def _apply(which: str) -> None:
    fp = ui.current_fp()
    ui.load_config(_config_of(which), fp)
    name = "Greedy MP" if which == "greedy" else "ILP"
    ui.flash("success", f"{name} suggestion applied: the Layers table now holds it.")


def _budget_range(table: Any, kind: str, s: Any) -> tuple[float, float]:
    space = table.space("kl", base_a_bits=s.a_bits, attn_bits=s.attn_bits)
    hi = space.costs(space.all_high())[kind]
    lo = space.smallest(kind)
    return float(lo), float(hi)


def page() -> None:
    st.title("Suggestions")
    fp = ui.current_fp()
    s = ui.settings()
    st.caption(
        "Per-layer sensitivity (KL to FP when one layer is lowered) drives a greedy mixed-precision sweep "
        "(MPTQ-style Greedy MP) and an exact integer program (HAWQ-V3 ILP) under one budget. Applying a "
        "suggestion fills the Layers table; evaluate it there or on Trade-offs."
    )
    table = ui.current_sensitivity(fp)
    if table is None:
        st.info(
            f"Measure the sensitivity first: {len(fp.layers)} layers x 2 knobs x {len(s.candidates)} candidates "
            f"on {s.sens_calib} images (cached on disk afterwards)."
        )
        if st.button("Measure sensitivity", key="measure_sensitivity_s", type="primary"):
            ui.measure_sensitivity(fp)
            st.rerun()
        return

    c1, c2, c3 = st.columns([1.2, 1.5, 1])
    kind = c1.selectbox("Budget", list(KIND_LABELS), format_func=KIND_LABELS.__getitem__, key=BUDGET_KIND)
    lo, hi = _budget_range(table, kind, s)
    default = lo + 0.5 * (hi - lo)
    if st.session_state.get("budget_for") != (kind, lo, hi):
        st.session_state[BUDGET_VALUE] = float(default)
        st.session_state["budget_for"] = (kind, lo, hi)
    value = c2.number_input(
        f"Budget ({KIND_LABELS[kind]}); reachable {lo:.4g} … {hi:.4g}",
        min_value=float(lo),
        max_value=float(hi),
        key=BUDGET_VALUE,
        format="%.6g",
    )
    method = c3.radio("Chosen method", ["greedy", "ilp"], horizontal=True, key=METHOD)
    c1, c2, c3 = st.columns([1, 2, 1])
    tie = c1.selectbox(
        "Tie layers", ["none", "attn", "block"], key=TIE, help="attn: qkv with proj; block: whole blocks"
    )
    pins = c2.multiselect(
        "Pin to the highest candidate",
        [ly.fqn for ly in fp.layers],
        default=[ly.fqn for ly in fp.layers if ly.fqn.startswith("patch_embed") or ly.fqn == "head"],
        key=PINS,
    )
    metric = c3.selectbox("Metric", ["kl", "agreement", "mse"], key=METRIC)
    if st.button("Run search", key="run_search", type="primary"):
        from vitq_plugins.search import Budget

        with st.spinner("Greedy sweep and ILP…"):
            result = services.search(
                table,
                Budget(kind, float(value)),
                method=str(method),
                metric=str(metric),
                tie=str(tie),
                pins=list(pins),
                base_a_bits=s.a_bits,
                attn_bits=s.attn_bits,
            )
        st.session_state[state.SEARCH] = {
            "result": result,
            "recipe": s.recipe,
            "base_a_bits": s.a_bits,
            "attn_bits": s.attn_bits,
            "kind": kind,
        }

    run = st.session_state.get(state.SEARCH)
    if not run:
        return
    result = run["result"]
    space = result.space
    rows = []
    for name, asg in (("greedy", result.greedy), ("ILP", result.ilp.assignment)):
        costs = space.costs(asg)
        rows.append(
            {
                "method": name,
                f"est. {space.metric}": space.estimate(asg),
                "size (MB)": costs["mb"],
                "average bits": costs["avg_bits"],
                "BOPs": costs["bops"],
                "chosen": name.lower() == result.method,
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    diff = result.comparison.get("differences", [])
    st.caption(
        f"ILP status: {result.ilp.status}. "
        + (
            "Greedy and ILP agree."
            if not diff
            else f"Greedy and ILP differ on {len(diff)} knob(s): "
            + ", ".join(f"{d['layer']}:{d['kind']} {d['greedy']}→{d['ilp']}" for d in diff[:10])
        )
    )
    st.plotly_chart(charts.sweep_figure(result, run["kind"]), key="sweep_chart")
    c1, c2, c3 = st.columns([1.3, 1, 2])
    c1.button(
        "Apply Greedy MP suggestion", key="apply_greedy", type="primary", on_click=_apply, args=("greedy",)
    )
    c2.button("Apply ILP suggestion", key="apply_ilp", on_click=_apply, args=("ilp",))
    if c3.button("Evaluate both", key="evaluate_suggestions"):
        label = f"{KIND_LABELS[run['kind']].split(' (')[0]} ≤ {result.budgets[0].value:.4g}"
        ui.evaluate_many(
            fp, {f"greedy, {label}": _config_of("greedy"), f"ILP, {label}": _config_of("ilp")}, "search"
        )
        st.success("Evaluated: see Trade-offs.")


ui.guarded(page)
