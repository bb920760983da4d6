"""Fixtures of the metrics tests."""

from __future__ import annotations

import pytest

from stylefuse.projection import LpipsDistance


@pytest.fixture(scope="session")
def lpips_vgg(lpips_model) -> LpipsDistance:
    """PPL's detector on the random-trunk LPIPS (nothing is downloaded)."""
    return LpipsDistance(lpips_model)
