"""Fixtures of the kernel tests."""

from __future__ import annotations

import pytest

from tests.helpers import torch_threads


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with torch_threads(1):  # a few hundred float64 values per test: gradcheck runs thousands of tiny passes
        yield
