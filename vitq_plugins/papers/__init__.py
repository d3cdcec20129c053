"""The built-in papers, each one package written as a plugin against vitq's public extension API.

* :mod:`vitq_plugins.papers.uniform` - the uniform baselines (MinMax, Percentile, OMSE) and recipe ``minmax``.
* :mod:`vitq_plugins.papers.fqvit` - FQ-ViT (arXiv 2111.13824): PTS and LIS, recipe ``fqvit``.
* :mod:`vitq_plugins.papers.ivit` - I-ViT (arXiv 2207.01405): Shiftmax, ShiftGELU, I-LayerNorm, recipe ``ivit``.
* :mod:`vitq_plugins.papers.mptq` - MPTQ-ViT (arXiv 2401.14895, MPTQ-style): SQ-b, OPT-m, recipe ``mptq``.

A package holds the paper's numerics, its adapter per wing and its ``plugin.py`` (the hook
implementations the plugin host registers, listed in ``vitq_plugins.core.manager.BUILTIN_PLUGINS``).
"""
