"""Fixtures of the training tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks trained in this process on one thread: on a busy machine OpenMP's spinning threads cost them 20x
    the CPU time. The thread count of the other tests is left alone."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
