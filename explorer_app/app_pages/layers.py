"""Layers: the editable per-layer table (bits and quantizer per FQN), bulk edit by regex, live totals."""

from __future__ import annotations

import re

import numpy as np
import streamlit as st

from explorer_app import charts
from explorer_app import evaluations
from explorer_app import layer_error
from explorer_app import services
from explorer_app import state
from explorer_app import ui
from explorer_app.layer_table import EDITABLE
from explorer_app.layer_table import MAX_BITS
from explorer_app.layer_table import MIN_BITS
from explorer_app.layer_table import add_sensitivity
from explorer_app.layer_table import apply_bulk
from explorer_app.layer_table import config_from_table
from explorer_app.layer_table import config_summary
from explorer_app.layer_table import effective_bits
from explorer_app.layer_table import reject_bad_bits
from explorer_app.layer_table import sensitivity_columns
from explorer_app.state import BIT_CHOICES
from vitq_plugins.config import QuantConfig

KEEP = "(keep)"
BULK_REGEX = "bulk_regex"
BULK_W = "bulk_w"
BULK_A = "bulk_a"
BULK_Q = "bulk_q"
BULK_FLOAT = "bulk_float"
UPLOAD = "config_upload"
LAYER_ERRORS = "layer_errors"  # dict[config key, DataFrame fqn/rel_error/sqnr_db]
ERROR_CHART = "layer_error_chart"
BITS_HELP = f"a whole number in {MIN_BITS}..{MAX_BITS} (8, 6, 4 are the usual)"


@ui.callback
def _apply_bulk() -> None:
    ss = st.session_state
    ui.commit_edits()
    pick = {k: ss.get(k, KEEP) for k in (BULK_W, BULK_A, BULK_Q, BULK_FLOAT)}
    df, n = apply_bulk(
        ss[state.LAYERS],
        str(ss.get(BULK_REGEX, "")).strip(),
        w_bits=None if pick[BULK_W] == KEEP else int(pick[BULK_W]),
        a_bits=None if pick[BULK_A] == KEEP else int(pick[BULK_A]),
        quantizer=None if pick[BULK_Q] == KEEP else str(pick[BULK_Q]),
        keep_float=None if pick[BULK_FLOAT] == KEEP else pick[BULK_FLOAT] == "float",
    )
    ss[state.LAYERS] = df
    ui.flash("success", f"Bulk edit applied to {n} layer(s).")


@ui.callback
def _reset_table() -> None:
    ss = st.session_state
    ss.pop(state.LAYERS, None)
    ss.pop(state.EDITOR, None)
    ui.flash("info", "Table reset to the defaults.")


def _costs(fp: services.FPModel, cfg: QuantConfig, w: list[int], a: list[int]) -> dict[str, float]:
    from vitq_plugins.evaluation.bops import bits_by_layer
    from vitq_plugins.evaluation.bops import bops
    from vitq_plugins.evaluation.size import weight_size_mb
    from vitq_plugins.search import CostModel

    avg = CostModel(fp.layers, fp.float_params).cost("avg_bits", np.array(w), np.array(a))
    return {
        "size_mb": weight_size_mb(fp.module, cfg),
        "avg_bits": avg,
        "bops": float(bops(fp.macs, bits_by_layer(fp.macs, cfg))),
        "fp_bops": float(bops(fp.macs, bits_by_layer(fp.macs))),
    }


def _bulk_edit(quantizers: list[str]) -> None:
    with st.expander("Bulk edit by regex", expanded=False):
        st.caption(
            r"The regex must match the whole FQN, as `re:` keys of a config do: `blocks\.\d+\.mlp\.fc2`, "
            r"`.*attn\.(qkv|proj)`, `head`."
        )
        c1, c2, c3, c4, c5 = st.columns([3, 1, 1, 1.3, 1])
        c1.text_input("FQN regex", key=BULK_REGEX, placeholder=r"blocks\.\d+\.mlp\.fc2")
        c2.selectbox("w_bits", [KEEP, *BIT_CHOICES], key=BULK_W)
        c3.selectbox("a_bits", [KEEP, *BIT_CHOICES], key=BULK_A)
        c4.selectbox("quantizer", [KEEP, *quantizers], key=BULK_Q)
        c5.selectbox("float", [KEEP, "float", "quantized"], key=BULK_FLOAT)
        st.button("Apply to matching rows", key="bulk_apply", on_click=_apply_bulk)


def _load_upload(fp: services.FPModel) -> None:
    with st.expander("Load a config JSON", expanded=False):
        up = st.file_uploader(
            "config.json (as written by Export or `vitq search`)", type=["json"], key=UPLOAD
        )
        if up is not None and st.button("Load into the table", key="load_config"):
            cfg = QuantConfig.from_json(up.getvalue().decode("utf-8", errors="replace"), source=up.name)
            ui.load_config(cfg, fp)
            st.rerun()


@ui.callback
def _select_layer_from_chart() -> None:
    """A click on a bar of the error chart puts that layer into the bulk edit (the table's editor by name)."""
    fqn = charts.selected_label(st.session_state.get(ERROR_CHART))
    if fqn:
        st.session_state[BULK_REGEX] = re.escape(fqn)
        ui.flash("info", f"{fqn} is in *Bulk edit by regex* above: set its bits there and apply.")


def _layer_error_view(fp: services.FPModel, cfg: QuantConfig) -> None:
    """Each quantized layer's output error against float for the current config; bars click into the table."""
    s = ui.settings()
    st.subheader("Per-layer error of this config")
    key = evaluations.eval_key(s, fp, cfg)
    store = st.session_state.setdefault(LAYER_ERRORS, {})
    n = min(64, s.n_calib)
    if st.button(
        "Measure per-layer error vs float",
        key="measure_layer_error",
        help=f"quantize and calibrate this config, then compare every layer's output with float on {n} images",
    ):
        with ui.in_place(), ui.job_progress("Per-layer error"):
            store[key] = layer_error.layer_errors(s, fp, cfg, n_images=n)
            st.rerun()  # the table gets its SQNR column
    errors = store.get(key)
    if errors is None:
        st.caption(
            "Measures each quantized layer's output against the FP model's on calibration images (like AIMET's "
            "QuantAnalyzer, live for the table's config). A click on a bar selects the layer for editing."
        )
        return
    st.plotly_chart(
        charts.layer_error_figure(errors),
        key=ERROR_CHART,
        on_select=_select_layer_from_chart,
        selection_mode="points",
    )


def page() -> None:
    st.title("Layers")
    fp = ui.current_fp()
    s = ui.settings()
    df, defaults = ui.table_state(fp)
    quantizers = services.act_quantizers(s.backend)
    sens = ui.current_sensitivity(fp)
    st.caption(
        f"One row per quantizable layer of **{s.model}**. Edit `w_bits`, `a_bits`, the input-activation "
        f"`quantizer` and `keep_float`; defaults: **{defaults.recipe}** W{defaults.w_bits}A{defaults.a_bits}, "
        f"attention map {defaults.attn_bits} bits. Other sites (LayerNorm inputs, softmax, GELU, residuals) "
        "follow the recipe and the default bits."
    )
    _bulk_edit(quantizers)
    with ui.in_place(
        "Fix the file named above, or pick another config JSON (this page: Load a config JSON)."
    ):
        # a bad file: the message here, the table and its buttons below as before
        _load_upload(fp)

    shown = add_sensitivity(df, sens)
    sens_cols = [c for c in shown.columns if str(c).startswith("sens_")]
    errors = st.session_state.setdefault(LAYER_ERRORS, {}).get(
        evaluations.eval_key(s, fp, ui.current_config(fp))
    )
    if errors is not None:  # the per-layer error of this very config, measured below
        shown["sqnr_db"] = shown["fqn"].map(dict(zip(errors["fqn"], errors["sqnr_db"], strict=True)))
    narrow = bool(sens_cols)  # with the KL columns: fixed narrow widths so all of them fit beside the edits
    col_cfg = {
        # the FQN stays pinned on the left and wide enough for `blocks.11.attn.qkv`
        "fqn": st.column_config.TextColumn("FQN", width=150 if narrow else "medium", pinned=True),
        "type": st.column_config.TextColumn("type", width="small"),
        "params": st.column_config.NumberColumn("params", format="localized"),
        "macs": st.column_config.NumberColumn("MACs", format="localized"),
        # number cells, not select boxes: typing 1 into a select box picked 16 (the first option containing it)
        "w_bits": st.column_config.NumberColumn(
            "w_bits", help=BITS_HELP, step=1, format="%d", required=True, width=60 if narrow else "small"
        ),
        "a_bits": st.column_config.NumberColumn(
            "a_bits", help=BITS_HELP, step=1, format="%d", required=True, width=60 if narrow else "small"
        ),
        "quantizer": st.column_config.SelectboxColumn(
            "quantizer", options=quantizers, required=True, width=95 if narrow else None
        ),
        "keep_float": st.column_config.CheckboxColumn("float", width=50 if narrow else None),
    }
    for c in sens_cols:
        col_cfg[c] = st.column_config.NumberColumn(
            f"KL {c[5:].upper()}",
            help=f"KL to FP when only this layer's {'weights' if c[5] == 'w' else 'input'} go to {c[6:]} bits",
            format="%.1e",
            width=70,
        )
    # with sensitivity, type/params/MACs give way to the KL columns (the role is in the FQN; the totals are
    # the metrics below the table)
    col_cfg["sqnr_db"] = st.column_config.NumberColumn(
        "SQNR dB",
        help="this layer's output vs float on calibration images, in the current config (higher is better)",
        format="%.1f",
        width=70,
    )
    order = [c for c in shown.columns if not (narrow and c in ("type", "params", "macs"))]
    edited = st.data_editor(
        shown,
        key=state.EDITOR,
        column_config=col_cfg,
        column_order=order,
        disabled=[c for c in shown.columns if c not in EDITABLE],
        num_rows="fixed",
        hide_index=True,
        height=min(38 + 35 * len(shown), 700),
    )
    edited, refused = reject_bad_bits(edited[[c for c in df.columns]], df)
    for msg in refused:
        st.error(msg)
    st.session_state[state.LAYERS] = edited
    cfg = config_from_table(edited, defaults)
    cfg.validate(services.get_host(), fp.module_names)

    w, a = effective_bits(edited)
    costs = _costs(fp, cfg, w, a)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(
        "Weight size (est.)",
        f"{costs['size_mb']:.3f} MB",
        f"{costs['size_mb'] / fp.fp_size_mb:.1%} of FP",
        delta_color="off",
        delta_arrow="off",
    )
    c2.metric("Average bits (W+A)/2", f"{costs['avg_bits']:.2f}")
    c3.metric(
        "BOPs / image",
        f"{costs['bops']:.3g}",
        f"{costs['bops'] / costs['fp_bops']:.1%} of FP",
        delta_color="off",
        delta_arrow="off",
    )
    c4.metric("Overrides", len(cfg.layers))
    st.caption(config_summary(cfg))

    c1, c2, c3, c4 = st.columns([1.2, 1.2, 1, 3])
    if c1.button("Evaluate current config", key="evaluate_current", type="primary"):
        n = sum(1 for r in st.session_state[state.RESULTS].values() if r.get("source") == "manual") + 1
        ui.evaluate_with_status(fp, cfg, label=f"manual {n}", source="manual")
    if c2.button(
        "Measure sensitivity" if sens is None else "Sensitivity measured",
        key="measure_sensitivity",
        disabled=sens is not None,
        help=f"{len(fp.layers)} layers x 2 x {len(s.candidates)} candidates on {s.sens_calib} images",
    ):
        ui.measure_sensitivity(fp)
        st.rerun()
    c3.button("Reset table", key="reset_table", on_click=_reset_table)
    key = evaluations.eval_key(s, fp, cfg)
    rec = st.session_state[state.RESULTS].get(key)
    if rec is not None:
        res = rec["result"]
        c4.success(
            f"This config was evaluated ({rec['label']}): top-1 {res['q_top1']:.2%} vs FP {res['fp_top1']:.2%}, "
            f"agreement {res['agreement']:.2%}, {res['size_mb']:.3f} MB"
        )
    _layer_error_view(fp, cfg)
    if sens is None:
        st.caption(
            f"Sensitivity columns ({', '.join(sensitivity_columns(s.candidates))}) appear once measured."
        )


ui.guarded(page)
