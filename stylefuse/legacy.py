"""Network files: official StyleGAN2-ADA snapshot pickles, stylefuse snapshots and Lightning checkpoints.

`load_network_pkl` is the one loader behind every tool (training resume, generation, projection, fusion). It reads
  * official StyleGAN2-ADA PyTorch snapshot pickles WITHOUT importing or executing NVIDIA's code: such a pickle embeds
    the source of `training/networks.py` and asks the reader to exec it. A restricted unpickler instead turns every
    persistent object into a `_PersistentStub` (class name + saved `__dict__`), refuses any global outside a short
    list of plain-data constructors, and our `stylefuse.nn` modules are rebuilt from the stubs' constructor kwargs
    and weights;
  * stylefuse snapshots (`save_network_snapshot`) and PyTorch Lightning `.ckpt` files of the training module, both
    read with `torch.load(weights_only=True)`, which cannot run code either;
from a local path, an http(s):// or file:// URL (downloaded once into a cache folder), or a pretrained name
(`PRETRAINED_URLS`).
"""

from __future__ import annotations

import codecs
import collections
import copy
import hashlib
import io
import os
import pickle
import re
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from stylefuse import nn as networks
from stylefuse.errors import NetworkFileError
from stylefuse.nn import Discriminator, Generator

try:  # numpy >= 2 writes numpy scalars as `numpy._core.multiarray.scalar`, numpy 1 as `numpy.core.multiarray.scalar`.
    from numpy._core.multiarray import scalar as _numpy_scalar
except ImportError:
    from numpy.core.multiarray import scalar as _numpy_scalar

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

SNAPSHOT_FORMAT = "stylefuse-snapshot"
SNAPSHOT_VERSION = 1
NETWORK_KEYS = ("G", "D", "G_ema")

# Every class inside an official StyleGAN2-ADA G or D; stylefuse.nn exports exactly these names.
_STYLEGAN2_CLASS_NAMES = frozenset(name for name in networks.__all__ if isinstance(getattr(networks, name), type))

# First bytes of a legacy (pre-zip) `torch.save` file: the pickled serialization magic number.
_TORCH_LEGACY_PREFIX = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)[:12]


# ---------------------------------------------------------------------------------------------------------------------
# Restricted unpickling of official snapshot pickles.

class _PersistentStub:
    """What `torch_utils.persistence._reconstruct_persistent_obj(meta)` yields here: the class name and the saved
    instance `__dict__`. The pickled module source (`meta['module_src']`) is dropped unread."""

    __slots__ = ("class_name", "state")

    def __init__(self, class_name: str, state: dict):
        self.class_name = class_name
        self.state = state

    @classmethod
    def from_meta(cls, meta: Any) -> _PersistentStub:
        state = meta.get("state") if isinstance(meta, dict) else None
        if not (isinstance(state, dict) and meta.get("type") == "class" and isinstance(meta.get("class_name"), str)
                and all(isinstance(state.get(k, {}), dict) for k in ("_parameters", "_buffers", "_modules"))
                and isinstance(state.get("_non_persistent_buffers_set", set()), set)
                and isinstance(state.get("_init_args", ()), tuple)):
            raise NetworkFileError("a persistent object in the pickle is not a saved torch module; the file is "
                                   "damaged or not a StyleGAN2-ADA snapshot")
        return cls(meta["class_name"], state)


class _EasyDict(dict):
    """Stands in for `dnnlib.util.EasyDict` (a dict with attribute access); converted to plain dicts after loading."""


def _storage_from_bytes(blob: bytes) -> Any:
    """`torch.storage._load_from_bytes`: a tensor storage pickled by `pickle.dump` is a legacy `torch.save` blob."""
    if not isinstance(blob, bytes):
        raise NetworkFileError("a tensor storage in the pickle is not a byte string; the file is damaged")
    return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)


def _plain_dtype(*args: Any) -> np.dtype:
    """`numpy.dtype`, limited to numbers and booleans (an object dtype would let a scalar carry a pickled object)."""
    dtype = np.dtype(*args)
    if dtype.kind not in "biufc":
        raise NetworkFileError(f"the pickle asks for a numpy {dtype} value; network snapshots hold only numbers")
    return dtype


# The only globals a StyleGAN2-ADA snapshot needs; each builds plain data and none can run pickled code.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _PersistentStub.from_meta,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,                  # `_non_persistent_buffers_set` in protocol <= 3 pickles
    ("_codecs", "encode"): codecs.encode,      # byte strings in protocol 2 pickles
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("numpy", "dtype"): _plain_dtype,          # numpy float64 attributes such as `weight_gain`, `act_gain`
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
}


class _SnapshotUnpickler(pickle.Unpickler):
    """Resolves only `_ALLOWED_GLOBALS`; any other global is refused before it can be called."""

    def __init__(self, file: Any, display_name: str):
        super().__init__(file)
        self.display_name = display_name

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":  # protocol 2 pickles spell `builtins` the Python 2 way
            module = "builtins"
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        if module.startswith("dnnlib.tflib"):
            raise NetworkFileError(
                f"{self.display_name} is a TensorFlow-era StyleGAN2 pickle; convert it with the official "
                f"stylegan2-ada-pytorch `python legacy.py --source=<file> --dest=<new.pkl>` and load the new pickle")
        raise NetworkFileError(
            f"{self.display_name} refers to {module}.{name}, which is not part of a plain network snapshot; refusing "
            f"to load it (it could run code) -- use only StyleGAN2-ADA snapshot pickles or stylefuse files you trust")

    def persistent_load(self, pid: Any) -> Any:
        raise NetworkFileError(f"{self.display_name} holds torch.save references, not a pickled snapshot; the file is "
                               f"damaged or not a StyleGAN2-ADA network")


def _plain(obj: Any) -> Any:
    """EasyDicts, OmegaConf containers, numpy scalars -> plain dicts, lists and Python numbers (for kwargs/files)."""
    if isinstance(obj, Mapping):
        return {key: _plain(value) for key, value in obj.items()}
    if isinstance(obj, tuple):
        return tuple(_plain(value) for value in obj)
    if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)):
        return [_plain(value) for value in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _stub_class_names(stub: _PersistentStub) -> set[str]:
    names = {stub.class_name}
    for child in stub.state.get("_modules", {}).values():
        if isinstance(child, _PersistentStub):
            names |= _stub_class_names(child)
    return names


def _stub_state_dict(stub: _PersistentStub, prefix: str = "", out: dict | None = None) -> dict[str, torch.Tensor]:
    """The flat `state_dict()` of the pickled module: parameters, then persistent buffers, then children.
    Frozen (Freeze-D) layers keep their weights in `_buffers`, so they are picked up under the same names."""
    out = {} if out is None else out
    state = stub.state
    skipped = state.get("_non_persistent_buffers_set", set())
    tensors = list(state.get("_parameters", {}).items())
    tensors += [(name, tensor) for name, tensor in state.get("_buffers", {}).items() if name not in skipped]
    for name, tensor in tensors:
        if tensor is None:
            continue
        if not isinstance(tensor, torch.Tensor):
            raise NetworkFileError(f"{prefix + name} is a {type(tensor).__name__}, not a tensor; the file is damaged "
                                   f"or not a StyleGAN2-ADA snapshot")
        out[prefix + name] = tensor.detach()
    for name, child in state.get("_modules", {}).items():
        if isinstance(child, _PersistentStub):
            _stub_state_dict(child, prefix + name + ".", out)
        elif child is not None:
            raise NetworkFileError(f"submodule {prefix + name} is not a persistent StyleGAN2-ADA object; the file is "
                                   f"not a StyleGAN2-ADA snapshot")
    return out


def _module_from_stub(data: dict, key: str, display_name: str) -> torch.nn.Module:
    stub = data.get(key)
    cls = Discriminator if key == "D" else Generator
    if not isinstance(stub, _PersistentStub):
        raise NetworkFileError(f"{display_name} has no StyleGAN2-ADA network '{key}' (found {type(stub).__name__}); "
                               f"use a StyleGAN2-ADA snapshot pickle")
    unknown = sorted(_stub_class_names(stub) - _STYLEGAN2_CLASS_NAMES)
    if stub.class_name != cls.__name__ or unknown:
        found = unknown or [stub.class_name]
        raise NetworkFileError(
            f"{display_name}: network '{key}' is made of {', '.join(found)}, which StyleGAN2-ADA does not have (a "
            f"StyleGAN3 or other non-StyleGAN2-ADA pickle?); stylefuse loads only StyleGAN2-ADA networks")
    args = tuple(_plain(stub.state.get("_init_args", ())))
    kwargs = _plain(stub.state.get("_init_kwargs", {}))
    return _build_network(cls, args, kwargs, _stub_state_dict(stub), f"{display_name}: network '{key}'")


def _load_official_pickle(path: Path, display_name: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            data = _SnapshotUnpickler(file, display_name).load()
    except NetworkFileError:
        raise
    except Exception as err:  # any parse failure of a damaged/foreign file becomes one clear line
        raise NetworkFileError(f"cannot read {display_name} as a network pickle ({type(err).__name__}: "
                               f"{_first_line(err)}); the file is damaged or not a StyleGAN2-ADA snapshot") from err
    if not isinstance(data, dict):
        raise NetworkFileError(f"{display_name} holds a {type(data).__name__}, not a StyleGAN2-ADA snapshot dict with "
                               f"G, D and G_ema; use a network-snapshot-*.pkl")

    networks = {key: _module_from_stub(data, key, display_name) for key in NETWORK_KEYS}
    augment_p = None
    pipe = data.get("augment_pipe")
    if isinstance(pipe, _PersistentStub) and isinstance(pipe.state.get("_buffers", {}).get("p"), torch.Tensor):
        augment_p = float(pipe.state["_buffers"]["p"])
    training_set_kwargs = data.get("training_set_kwargs")
    return dict(networks, augment_p=augment_p,
                training_set_kwargs=None if training_set_kwargs is None else _plain(training_set_kwargs))


# ---------------------------------------------------------------------------------------------------------------------
# stylefuse snapshots and Lightning checkpoints (torch.save files, read with weights_only=True).

def _cpu_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().cpu() for name, tensor in module.state_dict().items()}


def save_network_snapshot(path: str | os.PathLike, G: Generator, D: Discriminator, G_ema: Generator,
                          augment_p: float | None, training_set_kwargs: Mapping | None, kimg: float) -> None:
    """Writes a stylefuse network snapshot (atomically) that `load_network_pkl` reads back."""
    assert G.init_kwargs == G_ema.init_kwargs, "G and G_ema must share one architecture"
    data = {
        "format": SNAPSHOT_FORMAT,
        "version": SNAPSHOT_VERSION,
        "G_kwargs": _plain(G.init_kwargs),
        "D_kwargs": _plain(D.init_kwargs),
        "G": _cpu_state_dict(G),
        "D": _cpu_state_dict(D),
        "G_ema": _cpu_state_dict(G_ema),
        "augment_p": None if augment_p is None else float(augment_p),
        "training_set_kwargs": None if training_set_kwargs is None else _plain(training_set_kwargs),
        "kimg": float(kimg),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(data, tmp)
        os.replace(tmp, path)  # readers never see a half-written snapshot
    finally:
        tmp.unlink(missing_ok=True)


def _load_torch_file(path: Path, display_name: str) -> dict[str, Any]:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # weights_only refuses any global that is not plain data
        refused = _unsupported(err)
        if refused is not None:
            raise NetworkFileError(f"{display_name} refers to objects that are not plain data ({refused}); refusing "
                                   f"to load it -- store hyper-parameters as plain dicts, lists and numbers") from err
        raise NetworkFileError(f"cannot read {display_name} ({type(err).__name__}: {_first_line(err)}); the file is "
                               f"damaged or not a network file") from err
    if isinstance(data, dict) and data.get("format") == SNAPSHOT_FORMAT:
        return _from_stylefuse_snapshot(data, display_name)
    if isinstance(data, dict) and "state_dict" in data and "hyper_parameters" in data:
        return _from_lightning_checkpoint(data, display_name)
    raise NetworkFileError(f"{display_name} is a torch.save file but neither a stylefuse snapshot nor a Lightning "
                           f"checkpoint of the training module; pass a network-snapshot file or a training .ckpt")


def _from_stylefuse_snapshot(data: dict, display_name: str) -> dict[str, Any]:
    if data.get("version") != SNAPSHOT_VERSION:
        raise NetworkFileError(f"{display_name} is a stylefuse snapshot of version {data.get('version')}, this "
                               f"stylefuse reads version {SNAPSHOT_VERSION}; use the stylefuse release that wrote it")
    networks = {
        key: _build_network(Discriminator if key == "D" else Generator, (),
                            data.get("D_kwargs" if key == "D" else "G_kwargs"), data.get(key),
                            f"{display_name}: network '{key}'")
        for key in NETWORK_KEYS
    }
    return dict(networks, augment_p=data.get("augment_p"), training_set_kwargs=data.get("training_set_kwargs"))


def _from_lightning_checkpoint(data: dict, display_name: str) -> dict[str, Any]:
    hparams = data["hyper_parameters"] or {}
    missing = [name for name in ("G_kwargs", "D_kwargs") if not isinstance(hparams.get(name), Mapping)]
    if missing:
        raise NetworkFileError(f"{display_name} is a Lightning checkpoint without hyper-parameters "
                               f"{' and '.join(missing)}; use a checkpoint written by stylefuse's training job")
    state_dict = data["state_dict"]
    networks = {}
    for key in NETWORK_KEYS:
        prefix = key + "."
        weights = {name[len(prefix):]: tensor for name, tensor in state_dict.items() if name.startswith(prefix)}
        networks[key] = _build_network(Discriminator if key == "D" else Generator, (),
                                       _plain(hparams["D_kwargs" if key == "D" else "G_kwargs"]), weights,
                                       f"{display_name}: network '{key}'")
    augment_p = state_dict.get("augment_pipe.p")
    training_set_kwargs = hparams.get("training_set_kwargs")
    return dict(networks, augment_p=None if augment_p is None else float(augment_p),
                training_set_kwargs=None if training_set_kwargs is None else _plain(training_set_kwargs))


# ---------------------------------------------------------------------------------------------------------------------
# Shared: rebuilding a network, resolving names/URLs, the public loader.

def _build_network(cls: type[torch.nn.Module], args: tuple, kwargs: dict, state_dict: Mapping[str, torch.Tensor],
                   what: str) -> torch.nn.Module:
    """`cls(*args, **kwargs)` with exactly the given weights (strict), frozen for inference."""
    if not isinstance(kwargs, dict) or not isinstance(state_dict, Mapping):
        raise NetworkFileError(f"{what} has no constructor arguments or no weights; the file is damaged or not a "
                               f"StyleGAN2-ADA network")
    try:
        module = cls(*args, **copy.deepcopy(kwargs))
    except (TypeError, ValueError, KeyError, AssertionError) as err:
        raise NetworkFileError(f"{what} has constructor arguments StyleGAN2-ADA's {cls.__name__} does not accept "
                               f"({_first_line(err)}); the file is not a StyleGAN2-ADA network") from err
    expected = module.state_dict()
    missing = [name for name in expected if name not in state_dict]
    unexpected = [name for name in state_dict if name not in expected]
    mismatched = [name for name in expected if name in state_dict
                  and tuple(state_dict[name].shape) != tuple(expected[name].shape)]
    if missing or unexpected or mismatched:
        details = "; ".join(f"{label} {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
                            for label, names in (("missing", missing), ("unexpected", unexpected),
                                                 ("wrong shape", mismatched)) if names)
        raise NetworkFileError(f"{what} weights do not fit its architecture ({details}); the file is damaged or not "
                               f"a StyleGAN2-ADA network")
    module.load_state_dict(state_dict, strict=True)
    return module.eval().requires_grad_(False)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _unsupported(err: BaseException) -> str | None:
    """The informative line of torch's multi-line weights_only refusal (`Unsupported global: GLOBAL x.y`)."""
    for line in str(err).splitlines():
        if "Unsupported global" in line:
            return line.strip().removeprefix("WeightsUnpickler error: ")
    return None


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
        raise NetworkFileError(f"cannot download {url} ({_first_line(err)}); check the URL and the connection, or "
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


def load_network_pkl(path_or_url: str | os.PathLike, device: torch.device | str = "cpu",
                     cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Loads G, D and G_ema (stylefuse.nn modules in eval mode without gradients, on `device`) from an official
    StyleGAN2-ADA snapshot pickle, a stylefuse snapshot or a Lightning checkpoint, given as a local path, a URL or
    a pretrained name. Returns {'G', 'D', 'G_ema', 'augment_p': float | None, 'training_set_kwargs': dict | None}.
    No code stored in the file is ever run; anything that is not plain data is refused with a NetworkFileError."""
    display_name = os.fspath(path_or_url)
    path = resolve_network_path(path_or_url, cache_dir)
    with open(path, "rb") as file:
        head = file.read(len(_TORCH_LEGACY_PREFIX))
    if zipfile.is_zipfile(path) or head == _TORCH_LEGACY_PREFIX:
        data = _load_torch_file(path, display_name)
    else:
        data = _load_official_pickle(path, display_name)
    for key in NETWORK_KEYS:
        data[key] = data[key].to(device)
    return data


def copy_params_and_buffers(src_module: torch.nn.Module, dst_module: torch.nn.Module,
                            require_all: bool = False) -> None:
    """Copies every parameter and buffer of `dst_module` that `src_module` has under the same name (resume and
    transfer learning); with `require_all`, a name missing from the source is an error."""
    src_tensors = dict(src_module.named_parameters())
    src_tensors.update(src_module.named_buffers())
    dst_tensors = dict(dst_module.named_parameters())
    dst_tensors.update(dst_module.named_buffers())
    with torch.no_grad():
        for name, dst in dst_tensors.items():
            src = src_tensors.get(name)
            if src is None:
                if require_all:
                    raise NetworkFileError(f"the source network has no '{name}'; resume from a network with the same "
                                           f"architecture")
                continue
            if src.shape != dst.shape:
                raise NetworkFileError(f"cannot copy '{name}': shape {list(src.shape)} in the source network, "
                                       f"{list(dst.shape)} here; resume from a network with the same architecture "
                                       f"(resolution, channels, c_dim)")
            dst.copy_(src.detach())
