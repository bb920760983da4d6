"""Network names and URLs -> local files: official pretrained names, http(s):// URLs (downloaded into a cache folder
and checked before they take their cached name), file:// URLs and local paths (read in place, never cached)."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from stylefuse.errors import NetworkFileError
from stylefuse.networks.sniff import check_complete, sniff
from stylefuse.networks.unpickler import first_line

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pretrained:
    """An official network file. NVIDIA publishes neither sizes nor checksums for these files, so `size` and
    `sha256` are None until they are known from a trustworthy source: a download is then checked for a complete
    transfer (Content-Length) and a complete network file of a known format, and the cached copy is reused as is.
    When they are set, a download (and a cached copy, by size) that does not match them is refused."""

    url: str
    size: int | None = None
    sha256: str | None = None


_ADA_PYTORCH = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/"
_TRANSFER = _ADA_PYTORCH + "transfer-learning-source-nets/"
_STYLEGAN2_TF = "https://nvlabs-fi-cdn.nvidia.com/stylegan2/networks/"   # NVlabs/stylegan2 README
_ADA_TF = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada/pretrained/"   # NVlabs/stylegan2-ada README

# Official pretrained networks by short name: StyleGAN2-ADA PyTorch (spec 13) and its transfer-learning sources
# (spec 1.4, `--resume`); the TensorFlow-era StyleGAN2 config-f networks (FFHQ 1024, LSUN Car 512x384 in 512x512,
# Cat/Church/Horse 256) and the StyleGAN2-ADA TensorFlow releases (`tf-*`, the same networks before conversion).
PRETRAINED: dict[str, Pretrained] = {
    "ffhq": Pretrained(_ADA_PYTORCH + "ffhq.pkl"),
    "metfaces": Pretrained(_ADA_PYTORCH + "metfaces.pkl"),
    "afhqcat": Pretrained(_ADA_PYTORCH + "afhqcat.pkl"),
    "afhqdog": Pretrained(_ADA_PYTORCH + "afhqdog.pkl"),
    "afhqwild": Pretrained(_ADA_PYTORCH + "afhqwild.pkl"),
    "cifar10": Pretrained(_ADA_PYTORCH + "cifar10.pkl"),
    "brecahad": Pretrained(_ADA_PYTORCH + "brecahad.pkl"),
    "ffhq256": Pretrained(_TRANSFER + "ffhq-res256-mirror-paper256-noaug.pkl"),
    "ffhq512": Pretrained(_TRANSFER + "ffhq-res512-mirror-stylegan2-noaug.pkl"),
    "ffhq1024": Pretrained(_TRANSFER + "ffhq-res1024-mirror-stylegan2-noaug.pkl"),
    "celebahq256": Pretrained(_TRANSFER + "celebahq-res256-mirror-paper256-kimg100000-ada-target0.5.pkl"),
    "lsundog256": Pretrained(_TRANSFER + "lsundog-res256-paper256-kimg100000-noaug.pkl"),
    "ffhq-config-f": Pretrained(_STYLEGAN2_TF + "stylegan2-ffhq-config-f.pkl"),
    "lsun-car-config-f": Pretrained(_STYLEGAN2_TF + "stylegan2-car-config-f.pkl"),
    "lsun-cat-config-f": Pretrained(_STYLEGAN2_TF + "stylegan2-cat-config-f.pkl"),
    "lsun-church-config-f": Pretrained(_STYLEGAN2_TF + "stylegan2-church-config-f.pkl"),
    "lsun-horse-config-f": Pretrained(_STYLEGAN2_TF + "stylegan2-horse-config-f.pkl"),
    **{f"tf-{name}": Pretrained(f"{_ADA_TF}{name}.pkl")
       for name in ("ffhq", "metfaces", "afhqcat", "afhqdog", "afhqwild", "cifar10", "brecahad")},
}
PRETRAINED_URLS: dict[str, str] = {name: network.url for name, network in PRETRAINED.items()}

_CHUNK = 1 << 20


# Networks shipped inside the package, by name: loaded from the installed files, never downloaded.
# `toy`: the tiny model trained on the embedded toy faces (README, "The shipped toy network").
PACKAGED_NETWORKS: dict[str, Path] = {
    "toy": Path(__file__).resolve().parents[1] / "assets" / "toy-network.pt",
}


def default_cache_dir() -> Path:
    """The cache root shared with `conf/paths` (`paths.cache_dir`): `$STYLEFUSE_CACHE_DIR` or ~/.cache/stylefuse."""
    return Path(os.environ.get("STYLEFUSE_CACHE_DIR") or Path.home() / ".cache" / "stylefuse")


def _is_url(text: str) -> bool:
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text) is not None


def _cache_folder(cache_dir: str | os.PathLike | None) -> Path:
    folder = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) / "networks"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise NetworkFileError(f"cannot use the download cache folder {folder} ({err.strerror or first_line(err)}); "
                               f"set paths.cache_dir (or STYLEFUSE_CACHE_DIR) to a writable folder") from err
    if not os.access(folder, os.W_OK | os.X_OK):
        raise NetworkFileError(f"cannot write to the download cache folder {folder} (permission denied); set "
                               f"paths.cache_dir (or STYLEFUSE_CACHE_DIR) to a writable folder")
    return folder


def _cached_name(url: str) -> str:
    basename = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    basename = re.sub(r"[^A-Za-z0-9._-]", "_", basename) or "network"
    return f"{hashlib.sha256(url.encode()).hexdigest()[:16]}_{basename}"


def download_cached(url: str, cache_dir: str | os.PathLike | None = None, expected: Pretrained | None = None) -> Path:
    """Downloads `url` once into `<cache_dir>/networks/` and returns the cached file. The download goes to a
    temporary file in that folder and takes the cached name only when it is complete (Content-Length), a complete
    network file (not an HTML page or a cut-off pickle/zip) and, for a known network, of the published size/sha256."""
    folder = _cache_folder(cache_dir)
    dest = folder / _cached_name(url)
    if dest.is_file():
        if expected is None or expected.size is None or dest.stat().st_size == expected.size:
            return dest
        log.warning("The cached %s has the wrong size; downloading it again", dest)
    tmp = folder / f".{dest.name}.{os.getpid()}.tmp"
    try:
        _fetch(url, tmp)
        _verify(url, tmp, expected)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _fetch(url: str, tmp: Path) -> None:
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            if "text/html" in (response.headers.get("Content-Type") or ""):
                raise NetworkFileError(f"{url} answered with a web page (HTML), not a network file; the link "
                                       f"probably leads to a login, error or download page: check the URL")
            total = int(response.headers.get("Content-Length") or 0) or None
            with open(tmp, "wb") as file, tqdm(total=total, unit="B", unit_scale=True,
                                               desc=f"Downloading {Path(tmp.name[1:]).stem}") as progress:
                while chunk := response.read(_CHUNK):
                    file.write(chunk)
                    received += len(chunk)
                    progress.update(len(chunk))
    except NetworkFileError:
        raise
    except http.client.IncompleteRead as err:
        received += len(err.partial)
        total = received + (err.expected or 0)
        raise NetworkFileError(f"the download of {url} was cut off after {received} of {total} bytes; try again") \
            from err
    except urllib.error.URLError as err:
        raise NetworkFileError(f"cannot download {url} ({first_line(err)}); check the URL and the connection, or "
                               f"download the file yourself and pass its local path") from err
    except OSError as err:  # writing the cache (disk full, ...) or a dropped connection
        raise NetworkFileError(f"cannot download {url} into {tmp.parent} ({err.strerror or first_line(err)}); "
                               f"check the connection and the free space, or set paths.cache_dir") from err
    except ValueError as err:  # a malformed URL
        raise NetworkFileError(f"cannot download {url} ({first_line(err)}); check the URL") from err
    if total is not None and received != total:
        raise NetworkFileError(f"the download of {url} was cut off after {received} of {total} bytes; try again")


def _verify(url: str, tmp: Path, expected: Pretrained | None) -> None:
    size = tmp.stat().st_size
    if expected is not None and expected.size is not None and size != expected.size:
        raise NetworkFileError(f"the download of {url} has {size} bytes, the published file {expected.size}; the "
                               f"download is damaged or the file changed: try again")
    check_complete(tmp, url, sniff(tmp, url))  # an HTML page, a cut-off pickle or zip never reaches the cache
    if expected is not None and expected.sha256 is not None:
        digest = hashlib.sha256()
        with open(tmp, "rb") as file:
            while chunk := file.read(_CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != expected.sha256:
            raise NetworkFileError(f"the download of {url} does not match its published sha256 checksum; the download "
                                   f"is damaged or the file changed: try again")
    elif expected is not None:
        log.info("No published checksum for %s: checked the transfer and the file format only", url)


def resolve_network_path(path_or_url: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """A pretrained name, URL or local path -> a local file (http(s):// downloaded into the cache if needed;
    file:// URLs and paths are read in place, so a changed file is always read as it is now)."""
    text = os.fspath(path_or_url)
    if text in PACKAGED_NETWORKS:
        if not PACKAGED_NETWORKS[text].is_file():
            raise NetworkFileError(f"the packaged network {text!r} is missing from this installation "
                                   f"({PACKAGED_NETWORKS[text]}); reinstall stylefuse")
        return PACKAGED_NETWORKS[text]
    expected = PRETRAINED.get(text)
    url = expected.url if expected is not None else text
    if _is_url(url):
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme == "file":
            if parsed.netloc not in ("", "localhost"):
                raise NetworkFileError(f"cannot read {url}: file:// URLs of other hosts are not supported; mount the "
                                       f"file and pass its path")
            text = urllib.request.url2pathname(parsed.path)
        elif parsed.scheme in ("http", "https"):
            return download_cached(url, cache_dir, expected)
        else:
            raise NetworkFileError(f"cannot read {url}: only http(s):// and file:// URLs are supported")
    path = Path(text).expanduser()
    if not path.is_file():
        raise NetworkFileError(f"network file not found: {text}; pass an existing .pkl/.pt/.ckpt path, an http(s):// "
                               f"or file:// URL, a packaged name ({', '.join(PACKAGED_NETWORKS)}) or a "
                               f"pretrained name ({', '.join(PRETRAINED)})")
    return path
