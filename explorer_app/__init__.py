"""The vitq explorer: a Streamlit app over the library functions the ``vitq`` CLI uses.

Run it with ``make run`` (``streamlit run explorer_app/app.py``). The modules below hold no Streamlit
page code except :mod:`explorer_app.ui` and :mod:`explorer_app.app_pages`; the others are plain functions
that the tests call directly:

* :mod:`explorer_app.state` - settings and session-state keys;
* :mod:`explorer_app.layer_table` - the per-layer table <-> :class:`vitq_plugins.QuantConfig`;
* :mod:`explorer_app.services` - cached model/data and the calls into ``vitq_plugins`` (evaluate,
  sensitivity, search, LayerNorm ranges, export), with the evaluation cache;
* :mod:`explorer_app.charts` - Plotly figures;
* :mod:`explorer_app.results` - the results table and its provenance columns.
"""
