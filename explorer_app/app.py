"""vitq explorer (Streamlit): ``streamlit run explorer_app/app.py``.

A thin layer over library functions. This first page lists what the plugin system has loaded:
plugins, recipes, quantizers, models, datasets and backends.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from vitq_plugins.core.manager import get_host

st.set_page_config(page_title="vitq explorer", layout="wide")


@st.cache_resource
def _host() -> object:
    return get_host()


def registry_page() -> None:
    """Loaded plugins and everything they registered."""
    host = _host()
    st.title("vitq: ViT quantizers for Brevitas and torch.ao")
    st.caption("FQ-ViT (PTS, LIS), I-ViT (Shiftmax, ShiftGELU, I-LayerNorm), MPTQ-style (SQ-b, OPT-m)")
    for f in host.failures:  # type: ignore[attr-defined]
        st.warning(f"Plugin {f.name!r} ({f.origin}) failed to load: {f.error}")
    st.subheader("Plugins")
    st.dataframe(pd.DataFrame(host.plugins()), hide_index=True, use_container_width=True)  # type: ignore[attr-defined]
    for kind in ("recipes", "quantizers", "models", "datasets", "backends"):
        st.subheader(kind.capitalize())
        rows = [e.to_dict() for _, e in host.registry(kind).items()]  # type: ignore[attr-defined]
        st.dataframe(pd.DataFrame(rows).astype(str), hide_index=True, use_container_width=True)


try:
    registry_page()
except Exception as exc:  # noqa: BLE001 - the explorer never shows a traceback
    st.error(f"Something went wrong: {type(exc).__name__}: {exc}")
