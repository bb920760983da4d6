"""Network URLs and names: downloaded once into the cache, pretrained names mapped to the official URLs."""

from __future__ import annotations

import pytest
import torch

from stylefuse.errors import NetworkFileError
from stylefuse.networks import PRETRAINED_URLS, download, load_network_pkl, save_network_snapshot
from tests.helpers import assert_one_line
from tests.networks.reference import assert_same_networks


def test_url_downloaded_once_into_cache(tmp_path, nets, inputs, outputs, monkeypatch):
    source = tmp_path / "served" / "network-snapshot-000100.pt"
    save_network_snapshot(source, nets["G"], nets["D"], nets["G_ema"], None, None, kimg=100)
    monkeypatch.setenv("STYLEFUSE_CACHE_DIR", str(tmp_path / "cache"))

    first = load_network_pkl(source.as_uri())
    cached = list((tmp_path / "cache" / "networks").iterdir())
    assert len(cached) == 1 and cached[0].name.endswith("_network-snapshot-000100.pt")
    assert cached[0].read_bytes() == source.read_bytes()
    assert_same_networks(first, nets, inputs, outputs)

    source.unlink()  # the second call must not need the source any more
    second = load_network_pkl(source.as_uri())
    assert torch.equal(second["G_ema"].mapping.w_avg, nets["G_ema"].mapping.w_avg)
    assert list((tmp_path / "cache" / "networks").iterdir()) == cached

    with pytest.raises(NetworkFileError) as err:  # a URL that is not in the cache and cannot be fetched
        load_network_pkl((tmp_path / "served" / "gone.pkl").as_uri(), cache_dir=tmp_path / "other")
    assert_one_line(err, "cannot download")
    assert not any((tmp_path / "other" / "networks").iterdir())  # no partial file under any name


def test_pretrained_names_map_to_official_urls(tmp_path, monkeypatch):
    requested = []
    monkeypatch.setattr(download, "download_cached",
                        lambda url, cache_dir=None: requested.append((url, cache_dir)) or tmp_path / "x.pkl")
    assert download.resolve_network_path("ffhq256", cache_dir=tmp_path) == tmp_path / "x.pkl"
    download.resolve_network_path("afhqwild")
    assert requested == [(PRETRAINED_URLS["ffhq256"], tmp_path), (PRETRAINED_URLS["afhqwild"], None)]
    assert PRETRAINED_URLS["ffhq256"].endswith("/transfer-learning-source-nets/ffhq-res256-mirror-paper256-noaug.pkl")
    assert set(PRETRAINED_URLS) == {"ffhq", "metfaces", "afhqcat", "afhqdog", "afhqwild", "cifar10", "brecahad",
                                    "ffhq256", "ffhq512", "ffhq1024", "celebahq256", "lsundog256"}
