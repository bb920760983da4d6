"""Network fixtures of the network-file tests: random networks, inputs and their outputs, built once per module."""

from __future__ import annotations

import pytest
import torch

from stylefuse.nn import Discriminator, Generator
from tests.networks.reference import D_KWARGS, G_KWARGS, randomize


@pytest.fixture(scope="module")
def nets() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return dict(G=randomize(Generator(**G_KWARGS), 1), D=randomize(Discriminator(**D_KWARGS), 2),
                G_ema=randomize(Generator(**G_KWARGS), 3))


@pytest.fixture(scope="module")
def inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    return torch.randn([4, 32], generator=gen), torch.zeros([4, 0]), torch.randn([4, 3, 32, 32], generator=gen)


@pytest.fixture(scope="module")
def outputs(nets, inputs) -> dict[str, torch.Tensor]:
    """The original networks' outputs, computed once."""
    z, c, img = inputs
    return dict(G_ema=nets["G_ema"](z, c, noise_mode="const"), G=nets["G"](z, c, noise_mode="const"),
                D=nets["D"](img, c))
