"""Fixtures shared by the whole suite: golden tensors and the networks they hold, tiny networks (in memory and as
snapshot files), LPIPS with a random trunk. The plain functions behind them are in tests/helpers.py."""

from __future__ import annotations

import socket
from pathlib import Path

import lpips
import pytest
import torch

from stylefuse.nn import Discriminator, Generator
from tests.helpers import load_golden, random_lpips, tiny_discriminator, tiny_generator, tiny_network


@pytest.fixture(scope="session")
def golden() -> dict:
    """The official networks' golden tensors: a 32x32 skip G and resnet D, their weights, inputs and outputs."""
    return load_golden("g32_skip_resnet.pt")


@pytest.fixture(scope="session")
def golden_nets(golden) -> tuple[Generator, Discriminator]:
    """Our G and D (eval) holding the golden weights."""
    G = Generator(**golden["official_kwargs"]["G"]).eval()
    D = Discriminator(**golden["official_kwargs"]["D"]).eval()
    G.load_state_dict(golden["G_state_dict"], strict=True)
    D.load_state_dict(golden["D_state_dict"], strict=True)
    return G, D


@pytest.fixture(scope="session")
def tiny_G():
    """Factory of random tiny generators: tiny_G(c_dim=0, res=32, seed=None, noise_strength=None, **synthesis)."""
    return tiny_generator


@pytest.fixture(scope="session")
def tiny_D():
    """Factory of random tiny discriminators: tiny_D(c_dim=0, res=32, **kwargs)."""
    return tiny_discriminator


@pytest.fixture
def network(tmp_path) -> tuple[Path, Generator]:
    """A tiny G with visible noise and a non-zero w_avg, saved as a snapshot in tmp_path: (path, G)."""
    path = tmp_path / "tiny.pt"
    return path, tiny_network(path)


@pytest.fixture(scope="session")
def lpips_model() -> lpips.LPIPS:
    """LPIPS-VGG with a random trunk drawn from seed 1; building it must not touch the network."""
    def refuse(*args, **kwargs):
        raise AssertionError("network access")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.hub, "load_state_dict_from_url", refuse)
        patch.setattr(torch.hub, "download_url_to_file", refuse)
        patch.setattr(socket.socket, "connect", refuse)
        return random_lpips(seed=1)
