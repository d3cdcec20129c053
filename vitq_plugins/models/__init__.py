"""Models: the bundled reference ViT, registered names, timm names and local checkpoints."""
