"""The integer-program tests need Brevitas (their fixtures, in ``tests/vitq_plugins/conftest.py``, build
Brevitas and torch.ao FX programs of the bundled reference model)."""

from __future__ import annotations

import pytest

pytest.importorskip("brevitas")
