"""Unit tests train tiny models: torch runs them on one thread. Its default (a thread per core)
only adds synchronisation at this size, and on a machine whose cores other processes share it
makes each step several times slower. The thread count is restored when the unit tests end: a
run's floating-point sums depend on it, and the replay test retrains stored trials bit for bit
with torch's default."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="package")
def _one_torch_thread() -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
