"""Fixtures of the projection tests: one thread, the project config with an offline LPIPS model."""

from __future__ import annotations

import pytest

from tests.helpers import compose_cfg, torch_threads


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with torch_threads(1):  # the tensors here are tiny
        yield


@pytest.fixture(scope="session")
def project_cfg():
    """Factory: conf/project.yaml with overrides, its LPIPS model built with a random trunk (no download)."""
    def compose(*overrides: str):
        return compose_cfg("project", ["projector.lpips_model.pnet_rand=true", *overrides])

    return compose
