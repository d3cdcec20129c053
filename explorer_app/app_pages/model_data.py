"""Model & data: the model (registered, timm name or uploaded checkpoint), data, sizes, backend and recipe."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from explorer_app import services
from explorer_app import state
from explorer_app import ui
from explorer_app.state import BIT_CHOICES
from explorer_app.state import Settings

OTHER = "other: timm name or checkpoint path…"
CALIBRATE_BUTTON = "calibrate"
LOAD_BUTTON = "load_model"


def _settings_form(s: Settings) -> Settings | None:
    """The settings form; the new settings when *Apply* was pressed."""
    host = services.get_host()
    models = host.models.list()
    datasets = host.datasets.list()
    with st.form("settings_form"):
        st.subheader("Model")
        c1, c2 = st.columns([2, 1])
        pick = c1.selectbox(
            "Model",
            [*models, OTHER],
            index=models.index(s.model) if s.model in models else len(models),
            help="Registered models; the bundled reference model vit_tiny_cifar10 is the default.",
        )
        other = c1.text_input(
            "timm name or checkpoint path (when 'other' is picked)",
            value="" if s.model in models else s.model,
            placeholder="vit_tiny_patch16_224 or /path/to/weights.safetensors",
        )
        upload = c1.file_uploader(
            "…or upload a checkpoint (safetensors, or a torch state dict read with weights_only=True)",
            type=["safetensors", "pt", "pth", "bin", "ckpt"],
        )
        arch = c2.text_input(
            "Architecture of a checkpoint",
            value=s.arch or "",
            help="Registered or timm name; empty: the reference architecture (vit_tiny_cifar10).",
        )
        pretrained = c2.checkbox("Pretrained weights", value=s.pretrained, help="Untick for random weights.")

        st.subheader("Data")
        c1, c2, c3, c4 = st.columns(4)
        data = c1.selectbox(
            "Dataset",
            datasets,
            index=datasets.index(s.data) if s.data in datasets else 0,
            help="cifar10_bundled ships with vitq: 512 calibration and 2,000 test images.",
        )
        data_path = c1.text_input("…or a dataset path", value="" if s.data in datasets else s.data)
        n_calib = c2.number_input("Calibration images", 1, 100_000, s.n_calib, step=64)
        n_eval = c3.number_input("Evaluation images (0: all)", 0, 100_000, s.n_eval, step=100)
        sens_calib = c4.number_input("Sensitivity images", 1, 100_000, s.sens_calib, step=32)
        c1, c2, c3 = st.columns(3)
        seed = c1.number_input("Seed", 0, 2**31 - 1, s.seed)
        batch_size = c2.number_input("Batch size", 1, 4096, s.batch_size)
        candidates = c3.multiselect(
            "Candidate bits (sensitivity, search)",
            list(BIT_CHOICES),
            default=[b for b in s.candidates if b in BIT_CHOICES],
        )

        st.subheader("Backend and recipe")
        c1, c2, c3, c4, c5 = st.columns(5)
        backends = host.backends.list()
        recipes = host.recipes.list()
        backend = c1.selectbox(
            "Backend", backends, index=backends.index(s.backend) if s.backend in backends else 0
        )
        recipe = c2.selectbox("Recipe", recipes, index=recipes.index(s.recipe) if s.recipe in recipes else 0)
        w_bits = c3.selectbox("Default weight bits", BIT_CHOICES, index=BIT_CHOICES.index(s.w_bits))
        a_bits = c4.selectbox("Default activation bits", BIT_CHOICES, index=BIT_CHOICES.index(s.a_bits))
        attn_bits = c5.selectbox("Attention-map bits", BIT_CHOICES, index=BIT_CHOICES.index(s.attn_bits))
        submitted = st.form_submit_button("Apply", type="primary")
    if not submitted:
        return None
    if upload is not None:
        model = str(services.save_upload(upload.name, upload.getvalue()))
    elif pick == OTHER:
        model = other.strip()
        if not model:
            st.error("Type a timm model name or a checkpoint path, or pick a registered model.")
            return None
    else:
        model = str(pick)
    if not candidates:
        st.error("Pick at least one candidate bit-width.")
        return None
    return replace(
        s,
        model=model,
        pretrained=bool(pretrained),
        arch=arch.strip() or None,
        data=data_path.strip() or str(data),
        n_calib=int(n_calib),
        n_eval=int(n_eval),
        sens_calib=int(sens_calib),
        seed=int(seed),
        batch_size=int(batch_size),
        candidates=tuple(sorted({int(c) for c in candidates}, reverse=True)),
        backend=str(backend),
        recipe=str(recipe),
        w_bits=int(w_bits),
        a_bits=int(a_bits),
        attn_bits=int(attn_bits),
    )


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
    new = _settings_form(s)
    if new is not None and new != s:
        old = s
        state.set_settings(st.session_state, new)
        if old.model_key == new.model_key and (
            (old.recipe, old.w_bits, old.a_bits, old.attn_bits)
            != (new.recipe, new.w_bits, new.a_bits, new.attn_bits)
        ):
            ui.rebase_defaults(ui.current_fp(), new)
        st.success("Settings applied.")
        s = new
    if new is not None:
        st.session_state[state.MODEL_LOADED] = s.model_key
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
