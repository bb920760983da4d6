"""Shared test helpers: the config tree through Hydra's compose API, tiny networks, the official uint8 rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from stylefuse.cli import CONF_DIR, register_resolvers
from stylefuse.networks import save_network_snapshot
from stylefuse.nn import Discriminator, Generator

REPO = Path(__file__).resolve().parents[1]
GOLDEN_DIR = REPO.parent / "shared" / "golden"  # CI has shared/ beside its clone, like this checkout


def compose_cfg(config_name: str | None, overrides: list[str], return_hydra_config: bool = False):
    """Composes `conf/<config_name>.yaml` (None = groups only) with command-line style overrides."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name, overrides=overrides, return_hydra_config=return_hydra_config)


def tiny_network(path: Path, c_dim: int = 0, seed: int = 0) -> Generator:
    """A random 32x32 G (num_ws 8) with visible noise and a non-zero w_avg, saved as a stylefuse snapshot."""
    torch.manual_seed(seed)
    G = Generator(z_dim=32, c_dim=c_dim, w_dim=32, img_resolution=32, img_channels=3,
                  mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=512, channel_max=32)).eval()
    D = Discriminator(c_dim=c_dim, img_resolution=32, img_channels=3, channel_base=512, channel_max=32)
    with torch.no_grad():
        G.mapping.w_avg.normal_()  # truncation must move towards something other than zero
        for name, param in G.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(0.5)  # so that noise_mode changes the image
    save_network_snapshot(path, G, D, G, augment_p=None, training_set_kwargs=None, kimg=0.0)
    return G


def official_uint8(img: torch.Tensor) -> np.ndarray:
    """The official generate.py conversion, written out: (x * 127.5 + 128) clamped, truncated to uint8, HWC."""
    return (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].numpy()
