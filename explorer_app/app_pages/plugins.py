"""Plugins: what the plugin system has loaded (plugins, recipes, quantizers, models, datasets, backends)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from explorer_app import services
from explorer_app import ui


def page() -> None:
    host = services.get_host()
    st.title("Plugins")
    st.caption("FQ-ViT (PTS, LIS), I-ViT (Shiftmax, ShiftGELU, I-LayerNorm), MPTQ-style (SQ-b, OPT-m)")
    for f in host.failures:
        st.warning(f"Plugin {f.name!r} ({f.origin}) failed to load: {f.error}")
    st.subheader("Plugins")
    st.dataframe(pd.DataFrame(host.plugins()), hide_index=True)
    for kind in ("recipes", "quantizers", "models", "datasets", "backends"):
        st.subheader(kind.capitalize())
        rows = [e.to_dict() for _, e in host.registry(kind).items()]
        st.dataframe(pd.DataFrame(rows).astype(str), hide_index=True)


ui.guarded(page)
