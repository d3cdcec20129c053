"""vitq explorer (Streamlit): ``make run`` or ``streamlit run explorer_app/app.py``.

A thin layer over the library functions the ``vitq`` CLI uses. Pages (``st.navigation``): Model & data,
Layers, Suggestions, Trade-offs, Export and Plugins; each page file lives in ``explorer_app/app_pages/``
(not ``pages/``, which Streamlit would also auto-discover).
"""

from __future__ import annotations

from pathlib import Path
import sys

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:  # `streamlit run` puts only explorer_app/ on sys.path
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from explorer_app import state  # noqa: E402
from explorer_app import ui  # noqa: E402

PAGES: dict[str, tuple[str, str]] = {
    "app_pages/model_data.py": ("Model & data", ":material/memory:"),
    "app_pages/layers.py": ("Layers", ":material/table_chart:"),
    "app_pages/suggestions.py": ("Suggestions", ":material/tips_and_updates:"),
    "app_pages/tradeoffs.py": ("Trade-offs", ":material/scatter_plot:"),
    "app_pages/export.py": ("Export", ":material/download:"),
    "app_pages/plugins.py": ("Plugins", ":material/extension:"),
}

st.set_page_config(page_title="vitq explorer", page_icon=":material/tune:", layout="wide")
state.init_state(st.session_state)
page = st.navigation(
    [
        st.Page(path, title=title, icon=icon, default=i == 0)
        for i, (path, (title, icon)) in enumerate(PAGES.items())
    ]
)
page.run()
ui.guarded(lambda: ui.sidebar(None))  # after the page, so its counts include what the page just did
