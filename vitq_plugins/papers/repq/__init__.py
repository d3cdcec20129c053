"""RepQ-ViT (Li et al., ICCV 2023, arXiv 2212.08254; code zkkli/RepQ-ViT, Apache-2.0) as a vitq plugin.

* :mod:`.reparam` - the scale reparameterization of post-LayerNorm activations (§3.2, eqs. 5-8): a
  per-channel asymmetric quantizer of the LayerNorm output is turned into a per-tensor one by folding
  ``r = Δ_c / mean(Δ)`` and a shift into the LayerNorm affine and the next Linear's weight and bias.
* :mod:`.transform` - the same as a registered model transform (``repq_reparam``): streaming per-channel
  statistics of every ``norm1 -> attn.qkv`` and ``norm2 -> mlp.fc1`` pair, then the fold.
* :mod:`.logsqrt2` - the log√2 quantizer of the attention map (§3.3, eq. 10): ``2^(-c/2)·Δ`` levels.
* :mod:`.brevitas`, :mod:`.fx` - the log√2 quantizer's adapter in each wing; :mod:`.plugin` registers it all.
"""
