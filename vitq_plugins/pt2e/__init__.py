"""The torchao PT2E wing (``vitq --backend pt2e``): ``torch.export`` + ``prepare_pt2e``/``convert_pt2e`` with a
vitq :class:`~vitq_plugins.pt2e.quantizer.VitqQuantizer` built from a ``QuantConfig``.

torchao is an optional extra (``pip install 'vitq[pt2e]'``); nothing here is imported by ``import vitq_plugins``:
the wing is reached through the ``backends`` registry (``vitq_plugins.pt2e.backend:BACKEND``). Importing torchao
0.18 logs a warning about torch's ``_pytree.register_constant`` on one of its Enums (third-party noise, not
actionable by users); it is silenced while this package imports torchao.
"""

from __future__ import annotations

import logging

_pytree_log = logging.getLogger("torch.utils._pytree")
_level = _pytree_log.level
_pytree_log.setLevel(logging.ERROR)
try:
    import torchao  # noqa: F401
finally:
    _pytree_log.setLevel(_level)
