"""The align= knob: auto aligns for the FFHQ-aligned network names (with a note), ffhq always, none never."""

from __future__ import annotations

import logging

import pytest

from stylefuse.align.aligners import resolve_aligner
from stylefuse.errors import ConfigError


@pytest.mark.parametrize("network", ["ffhq", "ffhq256", "celebahq256", "metfaces", "/nets/FFHQ-res512.pkl",
                                     "https://example.org/pretrained/ffhq.pkl?download=1"])
def test_auto_aligns_for_ffhq_networks_and_says_so(network, caplog):
    with caplog.at_level(logging.INFO, logger="stylefuse.align.aligners"):
        assert resolve_aligner("auto", network) == "ffhq"
    assert f"align=auto: photos are aligned as FFHQ for network {network} (align=none" in caplog.text


@pytest.mark.parametrize("network", ["afhqcat", "lsundog256", "/ffhq/net.pkl", "outputs/snapshot.pt"])
def test_auto_leaves_other_networks_alone(network, caplog):
    with caplog.at_level(logging.INFO, logger="stylefuse.align.aligners"):
        assert resolve_aligner("auto", network) is None
    assert caplog.text == ""


def test_explicit_choices_and_a_typo():
    assert resolve_aligner("ffhq", "outputs/snapshot.pt") == "ffhq"
    assert resolve_aligner("none", "ffhq") is None
    with pytest.raises(ConfigError, match=r"unknown align='dlib': use one of auto, ffhq, none"):
        resolve_aligner("dlib", "ffhq")
