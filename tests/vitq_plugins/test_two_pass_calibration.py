"""Two-pass recipes (mptq: SQ-b statistics, then calibration) re-read a re-iterable instead of listing it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from vitq_plugins.config import QuantConfig
from vitq_plugins.core.manager import get_host
from vitq_plugins.models.reference import vit_test_tiny
from vitq_plugins.pipeline import load_backend


class CountingBatches:
    """A re-iterable that counts its passes and never holds more than one batch."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.passes = 0

    def __iter__(self) -> Iterator[torch.Tensor]:
        self.passes += 1
        g = torch.Generator().manual_seed(0)
        for _ in range(self.n):
            yield torch.randn(2, 3, 32, 32, generator=g)


@pytest.mark.parametrize("backend", ["brevitas", "fx"])
def test_mptq_reads_a_reiterable_twice_and_a_generator_once(backend: str, host: object) -> None:
    impl = load_backend(backend, get_host())
    cfg = QuantConfig("mptq", 8, 8, 8)
    batches = CountingBatches(2)
    q_re = impl.quantize(vit_test_tiny(), cfg, batches, progress=False)
    assert batches.passes == 2
    q_gen = impl.quantize(vit_test_tiny(), cfg, iter(CountingBatches(2)), progress=False)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(q_re(x), q_gen(x))
