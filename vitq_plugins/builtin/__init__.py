"""Built-in plugins: one per paper (FQ-ViT, I-ViT, MPTQ-ViT), the uniform baselines, the bundled
reference model and data, and the two framework backends. They are registered before entry points."""
