"""Network URLs and names: downloaded once into the cache, pretrained names mapped to the official URLs."""

from __future__ import annotations

from stylefuse.networks import PRETRAINED_URLS, download


def test_pretrained_names_map_to_official_urls(tmp_path, monkeypatch):
    requested = []
    monkeypatch.setattr(download, "download_cached",
                        lambda url, cache_dir=None, expected=None:
                        requested.append((url, cache_dir, expected.url)) or tmp_path / "x.pkl")
    assert download.resolve_network_path("ffhq256", cache_dir=tmp_path) == tmp_path / "x.pkl"
    download.resolve_network_path("afhqwild")
    assert requested == [(PRETRAINED_URLS["ffhq256"], tmp_path, PRETRAINED_URLS["ffhq256"]),
                         (PRETRAINED_URLS["afhqwild"], None, PRETRAINED_URLS["afhqwild"])]
    assert PRETRAINED_URLS["ffhq256"].endswith("/transfer-learning-source-nets/ffhq-res256-mirror-paper256-noaug.pkl")
    ada = {"ffhq", "metfaces", "afhqcat", "afhqdog", "afhqwild", "cifar10", "brecahad"}
    assert set(PRETRAINED_URLS) == ada | {"ffhq256", "ffhq512", "ffhq1024", "celebahq256", "lsundog256"} | {
        f"lsun-{name}-config-f" for name in ("car", "cat", "church", "horse")} | {"ffhq-config-f"} | {
        f"tf-{name}" for name in ada}
