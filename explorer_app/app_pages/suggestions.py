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


def _budget_range(table: Any, kind: str, s: Any, tie: str, pins: list[str]) -> tuple[float, float]:
    """(smallest, largest) reachable cost with these pins and ties: what the search itself will check."""
    space = table.space("kl", tie=tie, pins=pins, base_a_bits=s.a_bits, attn_bits=s.attn_bits)
    hi = space.costs(space.all_high())[kind]
    lo = space.smallest(kind)
    return float(lo), float(hi)


def _budget_problem(value: float, lo: float, hi: float, kind: str, n_pins: int) -> str | None:
    """Why ``value`` cannot be searched (``None``: it can)."""
    if value < lo * (1 - 1e-9):
        pinned = f" with the {n_pins} pinned layer(s) kept at the highest candidate" if n_pins else ""
        return (
            f"Budget {value:.6g} ({KIND_LABELS[kind]}) is below the smallest reachable {lo:.6g}{pinned}. "
            f"**What to do:** type at least {lo:.6g} here, or unpin layers above (this page)."
        )
    return None


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

    c1, c2, c3 = st.columns([1.2, 1.5, 1])
    kind = c1.selectbox("Budget", list(KIND_LABELS), format_func=KIND_LABELS.__getitem__, key=BUDGET_KIND)
    lo, hi = _budget_range(table, kind, s, str(tie), list(pins))
    if st.session_state.get("budget_for") != kind or BUDGET_VALUE not in st.session_state:
        st.session_state[BUDGET_VALUE] = float(lo + 0.5 * (hi - lo))  # a new kind: start mid-range
        st.session_state["budget_for"] = kind
    # no min/max on the widget: a value outside them was shown in red but never committed, so the search
    # silently used the previous one; the value typed is the value searched, checked below
    value = float(
        c2.number_input(
            f"Budget ({KIND_LABELS[kind]}); reachable {lo:.4g} … {hi:.4g}",
            key=BUDGET_VALUE,
            format="%.6g",
            help="Reachable: every searchable layer at the lowest candidate (pinned layers kept) up to "
            "every layer at the highest.",
        )
    )
    method = c3.radio("Chosen method", ["greedy", "ilp"], horizontal=True, key=METHOD)
    problem = _budget_problem(value, lo, hi, kind, len(pins))
    if problem:
        st.error(problem)
    elif value > hi:
        st.info(
            f"Budget {value:.6g} is above every layer at the highest candidate ({hi:.6g}): nothing to lower."
        )
    if st.button("Run search", key="run_search", type="primary", disabled=problem is not None):
        from vitq_plugins.search import Budget

        hint = "Change the budget, the pins or the ties above on this page (Suggestions) and run again."
        with ui.in_place(hint), st.spinner(f"Greedy sweep and ILP under {KIND_LABELS[kind]} ≤ {value:.6g}…"):
            result = services.search(
                table,
                Budget(kind, value),
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
                "budget": value,
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
    st.caption(f"Last search: {KIND_LABELS[run['kind']]} ≤ {run.get('budget', result.budgets[0].value):.6g}.")
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
