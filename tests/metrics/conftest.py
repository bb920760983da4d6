"""Fixtures of the metrics tests."""

from __future__ import annotations

import urllib.error
import urllib.request
from unittest import mock

import pytest

from stylefuse.metrics import LpipsVGG


@pytest.fixture(scope="module")
def lpips_vgg() -> LpipsVGG:
    # Any download attempt fails the test: pnet_rand must keep lpips offline.
    refuse = mock.Mock(side_effect=AssertionError("tried to download"))
    with mock.patch("torch.hub.load_state_dict_from_url", refuse), mock.patch.object(urllib.request, "urlopen",
                                                                                      refuse):
        net = LpipsVGG(pnet_rand=True)
    refuse.assert_not_called()
    return net
