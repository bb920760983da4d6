"""Network files: official StyleGAN2-ADA snapshot pickles, stylefuse snapshots and Lightning checkpoints.

`load_network_pkl` is the one loader behind every tool (training resume, generation, projection, fusion). It reads
  * official StyleGAN2-ADA PyTorch snapshot pickles without importing or executing NVIDIA's code (`official`);
  * stylefuse snapshots (`save_network_snapshot`) and PyTorch Lightning `.ckpt` files of the training module
    (`snapshot`, `torchfile`);
from a local path or file:// URL (read in place), an http(s):// URL (downloaded once into a cache folder, checked
before it takes its cached name), or a pretrained name (`download.PRETRAINED_URLS`).

Every file goes through the restricted unpickler (`unpickler`): nothing in it can run code, and its size, structure
and constructor arguments are bounded before anything is built. Every failure is one NetworkFileError line.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from stylefuse.networks.download import PRETRAINED_URLS, default_cache_dir, download_cached, resolve_network_path
from stylefuse.networks.official import read_network_pickle
from stylefuse.networks.rebuild import NETWORK_KEYS, copy_params_and_buffers
from stylefuse.networks.snapshot import load_torch_file, save_network_snapshot
from stylefuse.networks.sniff import PICKLE, sniff
from stylefuse.networks.unpickler import reading
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
    with reading(display_name):
        kind = sniff(path, display_name)
        data = read_network_pickle(path, display_name) if kind == PICKLE else load_torch_file(path, display_name, kind)
    for key in NETWORK_KEYS:
        data[key] = data[key].to(device)
    return data


def load_generator(network: str | os.PathLike, device: torch.device | str = "cpu",
                   cache_dir: str | os.PathLike | None = None) -> Generator:
    """G_ema of a network file, URL or pretrained name, in eval mode without gradients, on `device`."""
    return load_network_pkl(network, device=device, cache_dir=cache_dir)["G_ema"]
