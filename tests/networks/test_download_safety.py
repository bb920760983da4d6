"""Downloads through a local HTTP server (127.0.0.1, in this process): only a complete network file of the right
size and checksum takes its cached name; cut-off transfers, web pages and bad checksums leave nothing in the cache.
file:// URLs and paths are read in place; cache-folder problems are one line."""

from __future__ import annotations

import hashlib
import importlib
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from stylefuse.errors import NetworkFileError
from stylefuse.networks import download, load_network_pkl, save_network_snapshot
from stylefuse.nn import Discriminator, Generator
from tests.networks.test_official import _write_official_style_pickle


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    """A valid stylefuse snapshot and official-style pickle of tiny networks, as bytes to serve."""
    folder = tmp_path_factory.mktemp("served")
    torch.manual_seed(0)
    G_kwargs = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3,
                    mapping_kwargs=dict(num_layers=1), synthesis_kwargs=dict(channel_base=64, channel_max=8))
    nets = dict(G=Generator(**G_kwargs).eval(), G_ema=Generator(**G_kwargs).eval(),
                D=Discriminator(c_dim=0, img_resolution=8, img_channels=3, channel_base=64, channel_max=8).eval())
    save_network_snapshot(folder / "snapshot.pt", nets["G"], nets["D"], nets["G_ema"], None, None, kimg=0)
    _write_official_style_pickle(folder / "official.pkl", nets)
    return {name: (folder / name).read_bytes() for name in ("snapshot.pt", "official.pkl")}


class _Server:
    """Serves `routes[path](handler)` on 127.0.0.1; counts requests per path."""

    def __init__(self, routes):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                routes[self.path](self)

            def log_message(self, *args):
                pass

        self.hits: dict[str, int] = {}
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _send(body: bytes, content_type: str = "application/octet-stream", length: int | None = None,
          cut: int | None = None):
    def respond(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        if length is not None:
            handler.send_header("Content-Length", str(length))
        handler.end_headers()
        handler.wfile.write(body[:cut])
        handler.close_connection = True
    return respond


def _missing(handler):
    handler.send_error(404, "Not Found")


@pytest.fixture(scope="module")
def server(files):
    snapshot, official = files["snapshot.pt"], files["official.pkl"]
    page = b"<!DOCTYPE html><html><body>Please sign in</body></html>"
    routes = {
        "/snapshot.pt": _send(snapshot, length=len(snapshot)),
        "/official.pkl": _send(official, length=len(official)),
        "/cut-with-length.pt": _send(snapshot, length=len(snapshot), cut=len(snapshot) // 2),
        "/cut-without-length.pkl": _send(official, cut=len(official) // 2),
        "/cut-zip-without-length.pt": _send(snapshot, cut=len(snapshot) - 100),
        "/login.pkl": _send(page, content_type="text/html; charset=utf-8", length=len(page)),
        "/page-as-binary.pkl": _send(page, length=len(page)),
        "/missing.pkl": _missing,
    }
    srv = _Server(routes)
    yield srv
    srv.close()


def _cache_files(cache: Path) -> list[str]:
    folder = cache / "networks"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@pytest.mark.parametrize("path, expected", [
    ("/cut-with-length.pt", "cut off"),
    ("/cut-without-length.pkl", "truncated"),
    ("/cut-zip-without-length.pt", "truncated or damaged zip"),
    ("/login.pkl", "answered with a web page (HTML)"),
    ("/page-as-binary.pkl", "it is an HTML page"),
    ("/missing.pkl", "HTTP Error 404"),
])
def test_failed_downloads_leave_nothing_in_the_cache(tmp_path, server, path, expected):
    cache = tmp_path / "cache"
    for _ in range(2):  # and the second attempt downloads again instead of serving a poisoned copy
        with pytest.raises(NetworkFileError) as err:
            load_network_pkl(server.url(path), cache_dir=cache)
        message = str(err.value)
        assert "\n" not in message and expected in message and server.url(path) in message, message
        assert _cache_files(cache) == []
    assert server.hits[path] == 2


@pytest.mark.parametrize("path", ["/snapshot.pt", "/official.pkl"])
def test_complete_download_is_cached_once(tmp_path, server, files, path):
    cache = tmp_path / "cache"
    before = server.hits.get(path, 0)
    first = load_network_pkl(server.url(path), cache_dir=cache)
    second = load_network_pkl(server.url(path), cache_dir=cache)
    assert server.hits[path] == before + 1
    (cached,) = _cache_files(cache)
    assert cached.endswith(path.rsplit("/", 1)[1]) and (cache / "networks" / cached).read_bytes() == files[path[1:]]
    assert torch.equal(first["G_ema"].mapping.fc0.weight, second["G_ema"].mapping.fc0.weight)


def test_known_network_is_verified_by_size_and_sha256(tmp_path, server, files, monkeypatch):
    url, data = server.url("/snapshot.pt"), files["snapshot.pt"]
    sha256 = hashlib.sha256(data).hexdigest()
    cache = tmp_path / "cache"
    for pretrained, expected in [
        (download.Pretrained(url, size=len(data) + 1), f"has {len(data)} bytes, the published file {len(data) + 1}"),
        (download.Pretrained(url, sha256="0" * 64), "does not match its published sha256"),
    ]:
        monkeypatch.setitem(download.PRETRAINED, "test-net", pretrained)
        with pytest.raises(NetworkFileError, match=expected):
            load_network_pkl("test-net", cache_dir=cache)
        assert _cache_files(cache) == []

    monkeypatch.setitem(download.PRETRAINED, "test-net", download.Pretrained(url, size=len(data), sha256=sha256))
    load_network_pkl("test-net", cache_dir=cache)
    (cached,) = _cache_files(cache)
    cached = cache / "networks" / cached
    cached.write_bytes(data[:100])  # a cached copy of the wrong size (written by anything else) is downloaded again
    hits = server.hits["/snapshot.pt"]
    load_network_pkl("test-net", cache_dir=cache)
    assert server.hits["/snapshot.pt"] == hits + 1 and cached.read_bytes() == data


def test_network_without_published_checksum_is_checked_and_said_so(tmp_path, server, monkeypatch, caplog):
    monkeypatch.setitem(download.PRETRAINED, "test-net", download.Pretrained(server.url("/official.pkl")))
    with caplog.at_level("INFO", logger=download.__name__):
        load_network_pkl("test-net", cache_dir=tmp_path)
    assert "No published checksum" in caplog.text


def test_file_urls_and_paths_are_read_in_place(tmp_path, files, monkeypatch):
    monkeypatch.setenv("STYLEFUSE_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "served" / "network.pkl"
    path.parent.mkdir()
    path.write_bytes(files["official.pkl"])
    first = load_network_pkl(path.as_uri())
    path.write_bytes(files["snapshot.pt"])  # the file changes: the next load sees the new contents
    second = load_network_pkl(path.as_uri())
    assert first["augment_p"] == 0.25 and second["augment_p"] is None
    assert not (tmp_path / "cache").exists()
    path.unlink()
    with pytest.raises(NetworkFileError, match="network file not found"):
        load_network_pkl(path.as_uri())


def test_cache_folder_problems_are_one_line(tmp_path, server):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(NetworkFileError) as err:
        load_network_pkl(server.url("/snapshot.pt"), cache_dir=blocker / "cache")
    message = str(err.value)
    assert "\n" not in message and "cannot use the download cache folder" in message and "paths.cache_dir" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable_cache_folder_is_one_line(tmp_path, server):
    cache = tmp_path / "cache"
    (cache / "networks").mkdir(parents=True)
    (cache / "networks").chmod(0o500)
    try:
        with pytest.raises(NetworkFileError, match="cannot write to the download cache folder"):
            load_network_pkl(server.url("/snapshot.pt"), cache_dir=cache)
    finally:
        (cache / "networks").chmod(0o700)


@pytest.mark.parametrize("job, module, args", [
    ("generate", "stylefuse.generate", ["seeds=[0]"]),
    ("style_mixing", "stylefuse.style_mixing", ["rows=[0]", "cols=[1]"]),
    ("project", "stylefuse.projection.job", ["target={png}"]),
    ("fuse", "stylefuse.fusion.job", ["image1=seed:0", "image2=seed:1"]),
    ("metrics", "stylefuse.metrics.job", ["metrics=[fid50k_full]"]),
])
def test_every_job_downloads_into_paths_cache_dir(tmp_path, server, monkeypatch, job, module, args):
    """`paths.cache_dir` (and so $STYLEFUSE_CACHE_DIR) is where each job's network download goes."""
    from stylefuse import networks
    from tests.helpers import compose_cfg, save_png

    seen = []

    def resolve(path_or_url, cache_dir=None):
        seen.append(cache_dir)
        raise _Reached()

    monkeypatch.setattr(networks, "resolve_network_path", resolve)
    cache, png = tmp_path / "cache", save_png(tmp_path / "target.png", np.zeros((3, 8, 8), np.uint8))
    args = [arg.format(png=png) for arg in args]
    cfg = compose_cfg(job, [f"network={server.url('/snapshot.pt')}", f"paths.cache_dir={cache}",
                            f"paths.output_dir={tmp_path / 'out'}", "device=cpu", *args])
    with pytest.raises(_Reached):
        importlib.import_module(module).run(cfg)
    assert seen == [str(cache)]


class _Reached(Exception):
    """Raised where the job resolves its network: the job got that far with the cache folder it was given."""
