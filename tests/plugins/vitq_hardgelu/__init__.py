"""An out-of-tree vitq plugin (issue #16 acceptance test): an integer hard-GELU for the ``gelu_output`` site.

GELU(x) ~ x * sigmoid(1.702 x) (Hendrycks & Gimpel, arXiv 1606.08415 §2) with the sigmoid replaced by the
"hard sigmoid" of MobileNetV3's h-swish (Howard et al., arXiv 1905.02244 §5.2: ``ReLU6(x + 3) / 6``):

    hardgelu(x) = x * clip(1.702 x / 6 + 1/2, 0, 1)

computed on integer codes (:mod:`.kernel`). It is written only against vitq's public API: the plugin hooks
(:mod:`.plugin`, installed through the ``vitq`` entry point), the Brevitas extension API (:mod:`.brevitas`),
the FX extension API (:mod:`.fx`) and the integer-program extension API (:mod:`.integer`).
"""
