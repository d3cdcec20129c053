"""Model & data: the model (registered, timm name or uploaded checkpoint), data, sizes, backend and recipe."""

from __future__ import annotations

import streamlit as st

from explorer_app import services
from explorer_app import settings_form
from explorer_app import state
from explorer_app import ui
from explorer_app.settings_form import OTHER
from explorer_app.state import BIT_CHOICES
from explorer_app.state import Settings
from vitq_plugins.core.errors import VitqError

CALIBRATE_BUTTON = "calibrate"
LOAD_BUTTON = "load_model"
UPLOAD = "form_upload"


def _form(s: Settings) -> bool:
    """The settings form, every widget under its one key (:mod:`explorer_app.settings_form`); Apply pressed."""
    host = services.get_host()
    models = host.models.list()
    datasets = host.datasets.list()
    settings_form.seed(st.session_state, s, models, datasets)
    k = settings_form.key
    with st.form("settings_form"):
        st.subheader("Model")
        c1, c2 = st.columns([2, 1])
        c1.selectbox(
            "Model",
            [*models, OTHER],
            key=k("pick"),
            help="Registered models; the bundled reference model vit_tiny_cifar10 is the default.",
        )
        c1.text_input(
            "timm name or checkpoint path (when 'other' is picked)",
            key=k("other"),
            placeholder="vit_tiny_patch16_224 or /path/to/weights.safetensors",
        )
        c1.file_uploader(
            "…or upload a checkpoint (safetensors, or a torch state dict read with weights_only=True)",
            type=["safetensors", "pt", "pth", "bin", "ckpt"],
            key=UPLOAD,
        )
        c2.text_input(
            "Architecture of a checkpoint",
            key=k("arch"),
            help="Registered or timm name; empty: the reference architecture (vit_tiny_cifar10).",
        )
        c2.checkbox("Pretrained weights", key=k("pretrained"), help="Untick for random weights.")

        st.subheader("Data")
        c1, c2, c3, c4 = st.columns(4)
        c1.selectbox(
            "Dataset",
            datasets,
            key=k("data"),
            help="cifar10_bundled ships with vitq: 512 calibration and 2,000 test images.",
        )
        c1.text_input("…or a dataset path", key=k("data_path"))
        c2.number_input("Calibration images", 1, 100_000, step=64, key=k("n_calib"))
        c3.number_input("Evaluation images (0: all)", 0, 100_000, step=100, key=k("n_eval"))
        c4.number_input("Sensitivity images", 1, 100_000, step=32, key=k("sens_calib"))
        c1, c2, c3 = st.columns(3)
        c1.number_input("Seed", 0, 2**31 - 1, key=k("seed"))
        c2.number_input("Batch size", 1, 4096, key=k("batch_size"))
        c3.multiselect("Candidate bits (sensitivity, search)", list(BIT_CHOICES), key=k("candidates"))

        st.subheader("Backend and recipe")
        c1, c2, c3, c4, c5 = st.columns(5)
        c1.selectbox("Backend", host.backends.list(), key=k("backend"))
        c2.selectbox("Recipe", host.recipes.list(), key=k("recipe"))
        c3.selectbox("Default weight bits", BIT_CHOICES, key=k("w_bits"))
        c4.selectbox("Default activation bits", BIT_CHOICES, key=k("a_bits"))
        c5.selectbox("Attention-map bits", BIT_CHOICES, key=k("attn_bits"))
        return bool(st.form_submit_button("Apply", type="primary"))


def _submitted(s: Settings) -> Settings:
    """The new settings from the form; a new model is loaded first, so a bad one is never applied.

    Raises:
        VitqError: a field or a model that cannot be used; an uploaded file is named by its upload name.
    """
    upload = st.session_state.get(UPLOAD)
    model = None
    if upload is not None:
        model = str(services.save_upload(upload.name, upload.getvalue()))
    new = settings_form.read(st.session_state, s, model)
    if new.model_key != s.model_key:
        try:
            services.load_fp_model(new.model, new.pretrained, new.arch)
        except VitqError as exc:
            if model is None:
                raise
            msg = str(exc).replace(repr(model), repr(upload.name)).replace(model, upload.name)
            msg = msg if upload.name in msg else f"uploaded file {upload.name!r}: {msg}"
            raise VitqError(
                f"{msg}. The previous model stays; remove the upload (its ×) to use the Model box instead"
            ) from exc
    return new


def _model_card(fp: services.FPModel, s: Settings) -> None:
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Parameters", f"{fp.n_params:,}")
    c2.metric("FP weight size", f"{fp.fp_size_mb:.3f} MB")
    c3.metric("MACs per image", f"{sum(fp.macs.values()) / 1e6:.1f} M")
    c4.metric("Quantizable layers", len(fp.layers))
    calib, calib_name = services.load_dataset(s.data, "calib", s.model, s.pretrained, s.arch)
    evald, eval_name = services.load_dataset(s.data, "eval", s.model, s.pretrained, s.arch)
    st.caption(
        f"Input {fp.input_size} · calibration split **{calib_name}** ({len(calib):,} images, using "
        f"{min(s.n_calib, len(calib)):,}) · evaluation split **{eval_name}** ({len(evald):,} images, using "
        f"{s.n_eval or len(evald):,}) · {len(fp.layernorms)} LayerNorms"
    )


def page() -> None:
    st.title("Model & data")
    st.caption(
        "Pick what to quantize and how. Nothing heavy runs until you press a button; the FP model and the "
        "data are loaded once and shared (never quantized in place)."
    )
    s = ui.settings()
    new = None
    if _form(s):
        try:
            new = _submitted(s)
        except VitqError as exc:  # shown in place, under the form; the typed values stay in the form
            st.error(ui.error_text(exc))
    if new is not None and new != s:
        old = s
        state.set_settings(st.session_state, new)
        st.session_state[settings_form.SEEDED] = new  # the keys already hold it
        if old.model_key == new.model_key and (
            (old.recipe, old.w_bits, old.a_bits, old.attn_bits)
            != (new.recipe, new.w_bits, new.a_bits, new.attn_bits)
        ):
            ui.rebase_defaults(ui.current_fp(), new)
        st.success("Settings applied.")
        s = new
    elif new is not None:
        st.info("Nothing changed: the settings already hold these values.")
    loaded = st.session_state.get(state.MODEL_LOADED) == s.model_key
    if not loaded:
        st.info(
            f"Model **{s.model}** and data **{s.data}** are loaded on the first page that needs them, or here."
        )
        if not st.button("Load model & data", key=LOAD_BUTTON, type="primary"):
            return
    fp = ui.current_fp()
    _model_card(fp, s)
    st.divider()
    st.subheader("Calibrate")
    st.caption(
        "Runs the FP model over calibration images and records the per-channel range of every LayerNorm input "
        "(the Trade-offs page plots them: this is why FQ-ViT's PTS exists). Quantization itself calibrates "
        "inside each evaluation."
    )
    if st.button("Calibrate", key=CALIBRATE_BUTTON, type="primary"):
        ui.calibrate(fp)
    if ui.current_ln_stats(fp) is not None:
        st.success("LayerNorm statistics are ready: see the range plot on Trade-offs.")


ui.guarded(page)
