"""Uniform affine baselines (MinMax, Percentile, OMSE; FQ-ViT arXiv 2111.13824 §4.1, OMSE Choukroun et al.
2019). Their numerics are the shared core :mod:`vitq_plugins.ops.uniform`; this package registers them."""
