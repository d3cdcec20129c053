"""Export: the current config JSON, the results CSV with provenance, QONNX, QCDQ and integer-only ONNX files."""

from __future__ import annotations

import re

import streamlit as st

from explorer_app import evaluations
from explorer_app import services
from explorer_app import state
from explorer_app import ui
from explorer_app.layer_table import config_summary
from explorer_app.results import results_csv
from explorer_app.results import results_frame

FORMATS: dict[str, str] = {"qonnx": "QONNX", "qcdq": "QCDQ ONNX", "int-onnx": "integer-only ONNX"}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "model"


def _export_formats(backend: str) -> list[str]:
    from vitq_plugins.pipeline import load_backend

    info = load_backend(backend, services.get_host()).info()
    return [f for f in info.get("export_formats", []) if f in FORMATS]


def page() -> None:
    st.title("Export")
    fp = ui.current_fp()
    s = ui.settings()
    cfg = ui.current_config(fp)
    key = evaluations.eval_key(s, fp, cfg)
    stem = f"{_slug(s.model)}_{cfg.recipe}_{key[:8]}"

    st.subheader("Config JSON")
    st.caption(
        f"{config_summary(cfg)}. Use it with `vitq quantize --model {s.model} --config config.json` or load it "
        "back on the Layers page."
    )
    st.download_button(
        "Download config JSON",
        cfg.to_json(),
        file_name=f"{stem}.config.json",
        mime="application/json",
        key="download_config",
        type="primary",
    )
    with st.expander("Show the JSON"):
        st.code(cfg.to_json(), language="json")

    st.subheader("Results CSV")
    records = list(st.session_state[state.RESULTS].values())
    prov = services.provenance()
    if records:
        st.dataframe(results_frame(records, prov), hide_index=True, height=min(38 + 35 * len(records), 300))
        st.download_button(
            f"Download results CSV ({len(records)} configs)",
            results_csv(records, prov),
            file_name=f"{_slug(s.model)}_results.csv",
            mime="text/csv",
            key="download_csv",
        )
    else:
        st.info("No config evaluated yet (Layers, Suggestions or Trade-offs).")
    st.caption(
        "Provenance columns: "
        + ", ".join(f"{k}={v}" for k, v in prov.items())
        + f"; seed {s.seed}, data {s.data}."
    )

    st.subheader("ONNX")
    formats = _export_formats(s.backend)
    if not formats:
        st.info(f"Backend {s.backend!r} exports no ONNX; pick the brevitas backend on Model & data.")
        return
    st.caption(
        "Quantizes and calibrates the current config, evaluates it and exports the calibrated model "
        "(`vitq quantize --export`). Open the file in Netron to inspect it. Integer-only ONNX (uint8 input "
        "codes to int32 logits: MatMulInteger, integer Shiftmax/ShiftGELU/I-LayerNorm, dyadic requantization) "
        "exists for the ivit and fqvit recipes on both backends; other recipes get a message "
        "naming the op that stays float."
    )
    exports = st.session_state[state.EXPORTS]
    cols = st.columns(len(formats))
    for col, fmt in zip(cols, formats, strict=True):
        with col:
            if st.button(f"Build {FORMATS[fmt]}", key=f"build_{fmt}"):
                with st.status(f"Quantizing and exporting {FORMATS[fmt]}…", expanded=True) as box:
                    with ui.job_progress(f"Building {FORMATS[fmt]}"):
                        data, result = evaluations.export_model(s, fp, cfg, fmt)
                    exports[(key, fmt)] = data
                    box.update(
                        label=f"{FORMATS[fmt]}: {len(data) / 1e6:.2f} MB, top-1 {result['q_top1']:.2%}",
                        state="complete",
                        expanded=False,
                    )
            data = exports.get((key, fmt))
            if data is not None:
                st.download_button(
                    f"Download {FORMATS[fmt]} ({len(data) / 1e6:.2f} MB)",
                    data,
                    file_name=f"{stem}.{fmt}.onnx",
                    mime="application/octet-stream",
                    key=f"download_{fmt}",
                )


ui.guarded(page)
