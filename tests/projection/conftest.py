"""Fixtures of the projection tests: one thread, the project config with an offline LPIPS model."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import compose_cfg


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # The tensors here are tiny: a second thread only adds synchronisation (and contention with parallel jobs).
    num_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(num_threads)


@pytest.fixture(scope="session")
def project_cfg():
    """Factory: conf/project.yaml with overrides, its LPIPS model built with a random trunk (no download)."""
    def compose(*overrides: str):
        return compose_cfg("project", ["projector.lpips_model.pnet_rand=true", *overrides])

    return compose
