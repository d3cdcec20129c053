"""The torchao PT2E wing (``vitq --backend pt2e``): ``torch.export`` + ``prepare_pt2e``/``convert_pt2e`` with a
vitq :class:`~vitq_plugins.pt2e.quantizer.VitqQuantizer` built from a ``QuantConfig``.

torchao is an optional extra (``pip install 'vitq[pt2e]'``); nothing here is imported by ``import vitq_plugins``:
the wing is reached through the ``backends`` registry (``vitq_plugins.pt2e.backend:BACKEND``).
"""
