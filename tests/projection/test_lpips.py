"""LpipsDistance, the LPIPS of the projector and of PPL: equal to the lpips package, refused without the learned layer
weights; the random trunk stays offline."""

from __future__ import annotations

import socket

import hydra
import lpips
import pytest
import torch
import torch.nn.functional as F

from stylefuse.errors import ConfigError
from stylefuse.projection import LpipsDistance


@pytest.mark.parametrize("resolution", [32, 512])
def test_lpips_distance_equals_lpips_package(lpips_model, resolution):
    torch.manual_seed(2)
    a = torch.randint(0, 256, [2, 3, resolution, resolution]).float()
    b = (a + torch.randn_like(a) * 40).clamp(0, 255)
    distance = LpipsDistance(lpips_model)
    ours = distance.distance(distance.features(a), distance.features(b))  # the projector's form
    assert torch.equal(distance(a, b), ours)  # PPL's
    if resolution > 256:  # the projector compares 256x256 area-downsampled images
        a, b = (F.interpolate(x, size=(256, 256), mode="area") for x in (a, b))
    expected = lpips_model(a / 127.5 - 1, b / 127.5 - 1).flatten()
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-6)
    assert (ours > 0).all()


@pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")
def test_lpips_without_learned_layer_weights_is_refused():
    torch.manual_seed(0)
    with pytest.raises(ConfigError, match="learned, non-negative LPIPS layer weights") as err:
        LpipsDistance(lpips.LPIPS(net="vgg", pnet_rand=True, lpips=False, verbose=False))  # plain VGG distances
    assert "\n" not in str(err.value)


@pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")
def test_lpips_with_random_trunk_downloads_nothing(project_cfg, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    model = hydra.utils.instantiate(project_cfg().projector.lpips_model)
    assert isinstance(model, lpips.LPIPS) and model.pnet_rand
