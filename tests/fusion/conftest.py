"""Fixtures of the fusion tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
@torch.no_grad()
def codes(network):
    """Two w codes [1, num_ws, w_dim] of the tiny network, from seeded z."""
    _, G = network
    torch.manual_seed(1)
    return G.mapping(torch.randn(1, G.z_dim), None), G.mapping(torch.randn(1, G.z_dim), None)
