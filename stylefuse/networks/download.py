"""Network names and URLs -> local files: official pretrained names, http(s):// and file:// URLs, a download cache."""

from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from stylefuse.errors import NetworkFileError
from stylefuse.networks.rebuild import first_line

_PRETRAINED_BASE = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/"
_TRANSFER_BASE = _PRETRAINED_BASE + "transfer-learning-source-nets/"

# Official pretrained networks (spec 13) and transfer-learning sources (spec 1.4, `--resume`), by short name.
PRETRAINED_URLS: dict[str, str] = {
    "ffhq": _PRETRAINED_BASE + "ffhq.pkl",
    "metfaces": _PRETRAINED_BASE + "metfaces.pkl",
    "afhqcat": _PRETRAINED_BASE + "afhqcat.pkl",
    "afhqdog": _PRETRAINED_BASE + "afhqdog.pkl",
    "afhqwild": _PRETRAINED_BASE + "afhqwild.pkl",
    "cifar10": _PRETRAINED_BASE + "cifar10.pkl",
    "brecahad": _PRETRAINED_BASE + "brecahad.pkl",
    "ffhq256": _TRANSFER_BASE + "ffhq-res256-mirror-paper256-noaug.pkl",
    "ffhq512": _TRANSFER_BASE + "ffhq-res512-mirror-stylegan2-noaug.pkl",
    "ffhq1024": _TRANSFER_BASE + "ffhq-res1024-mirror-stylegan2-noaug.pkl",
    "celebahq256": _TRANSFER_BASE + "celebahq-res256-mirror-paper256-kimg100000-ada-target0.5.pkl",
    "lsundog256": _TRANSFER_BASE + "lsundog-res256-paper256-kimg100000-noaug.pkl",
}


def default_cache_dir() -> Path:
    """The cache root shared with `conf/paths` (`paths.cache_dir`): `$STYLEFUSE_CACHE_DIR` or ~/.cache/stylefuse."""
    return Path(os.environ.get("STYLEFUSE_CACHE_DIR") or Path.home() / ".cache" / "stylefuse")


def _is_url(text: str) -> bool:
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text) is not None


def download_cached(url: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Downloads `url` once into `<cache_dir>/networks/` (atomic rename) and returns the cached file's path."""
    basename = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    basename = re.sub(r"[^A-Za-z0-9._-]", "_", basename) or "network"
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    dest = folder / "networks" / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}_{basename}"
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as file:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"Downloading {basename}") as progress:
                while chunk := response.read(1 << 20):
                    file.write(chunk)
                    progress.update(len(chunk))
        os.replace(tmp, dest)  # a partial download never takes the cached name
    except (OSError, ValueError) as err:  # urllib.error.URLError is an OSError
        raise NetworkFileError(f"cannot download {url} ({first_line(err)}); check the URL and the connection, or "
                               f"download the file yourself and pass its local path") from err
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def resolve_network_path(path_or_url: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """A pretrained name, URL or local path -> a local file (downloading into the cache if needed)."""
    text = os.fspath(path_or_url)
    url = PRETRAINED_URLS.get(text, text)
    if _is_url(url):
        return download_cached(url, cache_dir)
    path = Path(text).expanduser()
    if not path.is_file():
        raise NetworkFileError(f"network file not found: {text}; pass an existing .pkl/.pt/.ckpt path, an http(s):// "
                               f"or file:// URL, or a pretrained name ({', '.join(PRETRAINED_URLS)})")
    return path

