"""copy_params_and_buffers: weights copied by name between networks of compatible architectures."""

from __future__ import annotations

import copy

import pytest
import torch

from stylefuse.errors import NetworkFileError
from stylefuse.networks import copy_params_and_buffers
from stylefuse.nn import Generator
from tests.helpers import assert_one_line
from tests.networks.reference import G_KWARGS


def test_copy_params_and_buffers(nets):
    bigger = Generator(**dict(G_KWARGS, img_resolution=64))  # same channels up to 32x32, plus a 64x64 block
    before = copy.deepcopy(bigger.synthesis.b64.state_dict())
    copy_params_and_buffers(nets["G_ema"], bigger)
    for name, tensor in nets["G_ema"].state_dict().items():
        assert torch.equal(bigger.state_dict()[name], tensor), name
    assert all(torch.equal(bigger.synthesis.b64.state_dict()[k], v) for k, v in before.items())
    assert all(p.requires_grad for p in bigger.parameters())  # the destination keeps its own requires_grad

    with pytest.raises(NetworkFileError) as err:
        copy_params_and_buffers(nets["G_ema"], bigger, require_all=True)
    assert_one_line(err, "synthesis.b64")
    with pytest.raises(NetworkFileError) as err:
        copy_params_and_buffers(nets["G_ema"], Generator(**dict(G_KWARGS, w_dim=16)))
    assert_one_line(err, "shape", "[32, 32]", "[32, 16]")
