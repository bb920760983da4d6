"""Network files: official StyleGAN2-ADA snapshot pickles, stylefuse snapshots and Lightning checkpoints.

`load_network_pkl` is the one loader behind every tool (training resume, generation, projection, fusion). It reads
  * official StyleGAN2-ADA PyTorch snapshot pickles without importing or executing NVIDIA's code (`official`);
  * stylefuse snapshots (`save_network_snapshot`) and PyTorch Lightning `.ckpt` files of the training module, read
    with `torch.load(weights_only=True)`, which cannot run code either (`snapshot`);
from a local path, an http(s):// or file:// URL (downloaded once into a cache folder), or a pretrained name
(`download.PRETRAINED_URLS`).
"""

from __future__ import annotations

import os
import zipfile
from typing import Any

import torch

from stylefuse.networks.download import PRETRAINED_URLS, default_cache_dir, download_cached, resolve_network_path
from stylefuse.networks.official import load_official_pickle
from stylefuse.networks.rebuild import NETWORK_KEYS, copy_params_and_buffers
from stylefuse.networks.snapshot import TORCH_LEGACY_PREFIX, load_torch_file, save_network_snapshot
from stylefuse.nn import Generator

__all__ = [
    "NETWORK_KEYS", "PRETRAINED_URLS", "copy_params_and_buffers", "default_cache_dir", "download_cached",
    "load_generator", "load_network_pkl", "resolve_network_path", "save_network_snapshot",
]


def load_network_pkl(path_or_url: str | os.PathLike, device: torch.device | str = "cpu",
                     cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Loads G, D and G_ema (stylefuse.nn modules in eval mode without gradients, on `device`) from an official
    StyleGAN2-ADA snapshot pickle, a stylefuse snapshot or a Lightning checkpoint, given as a local path, a URL or
    a pretrained name. Returns {'G', 'D', 'G_ema', 'augment_p': float | None, 'training_set_kwargs': dict | None}.
    No code stored in the file is ever run; anything that is not plain data is refused with a NetworkFileError."""
    display_name = os.fspath(path_or_url)
    path = resolve_network_path(path_or_url, cache_dir)
    with open(path, "rb") as file:
        head = file.read(len(TORCH_LEGACY_PREFIX))
    if zipfile.is_zipfile(path) or head == TORCH_LEGACY_PREFIX:
        data = load_torch_file(path, display_name)
    else:
        data = load_official_pickle(path, display_name)
    for key in NETWORK_KEYS:
        data[key] = data[key].to(device)
    return data


def load_generator(network: str | os.PathLike, device: torch.device | str = "cpu",
                   cache_dir: str | os.PathLike | None = None) -> Generator:
    """G_ema of a network file, URL or pretrained name, in eval mode without gradients, on `device`."""
    return load_network_pkl(network, device=device, cache_dir=cache_dir)["G_ema"]
