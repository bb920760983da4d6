"""Image generation from seeds or from projected W, as the official `generate.py` computes it.

Also the small pieces the other inference jobs (style mixing, fusion) share: seed lists, seed -> z, class labels,
loading G from a network file, reading and writing `w` files in the official npz format.

    python -m stylefuse.generate network=ffhq seeds=0-7 trunc=0.7
    python -m stylefuse.generate network=cifar10 seeds=[0,1,2] class_idx=1
    python -m stylefuse.generate network=ffhq projected_w=outputs/project/.../projected_w.npz
"""

from __future__ import annotations

import logging
import math
import os
import re
import warnings
import zipfile
from collections.abc import Sequence

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, ListConfig
from tqdm import tqdm

from stylefuse.cli import user_errors
from stylefuse.config import CONF_DIR
from stylefuse.errors import ConfigError
from stylefuse.legacy import load_network_pkl
from stylefuse.nn import Generator
from stylefuse.utils.devices import resolve_device
from stylefuse.utils.images import generated_to_uint8, save_image, save_image_grid

log = logging.getLogger(__name__)

_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


def parse_seeds(spec: int | str | Sequence[int | str] | None, what: str = "seeds") -> list[int]:
    """`5`, `'a,b,c'`, `'a-b'` (inclusive) or a list of those -> a flat list of non-negative ints."""
    if isinstance(spec, bool) or spec is None:
        raise ConfigError(f"{what} is not set: give a list [0,1,2], a range 0-7 or a quoted list '0,1,2'")
    if isinstance(spec, int):
        values = [spec]
    elif isinstance(spec, str):
        match = _RANGE.match(spec)
        try:
            if match:
                values = list(range(int(match.group(1)), int(match.group(2)) + 1))
            else:
                values = [int(item) for item in spec.split(",")]
        except ValueError:
            raise ConfigError(f"cannot read {what}={spec!r}: give a list [0,1,2], a range 0-7 or a quoted list "
                              f"'0,1,2'") from None
    elif isinstance(spec, (Sequence, ListConfig)):
        values = [value for item in spec for value in parse_seeds(item, what)]
    else:
        raise ConfigError(f"cannot read {what}={spec!r}: give a list [0,1,2], a range 0-7 or a quoted list '0,1,2'")
    if not values:
        raise ConfigError(f"{what}={spec!r} is empty: give at least one number, e.g. {what}=[0]")
    for value in values:
        if not 0 <= value < 2**32:
            raise ConfigError(f"{what} must lie in 0..2**32-1 (numpy RandomState seeds), got {value}")
    return values


def seed_to_z(seed: int, z_dim: int) -> np.ndarray:
    """The official latent of a seed: float64 [1, z_dim] (the mapping casts it to float32)."""
    return np.random.RandomState(seed).randn(1, z_dim)


def class_label(G: Generator, class_idx: int | None, device: torch.device) -> torch.Tensor:
    """One-hot label [1, c_dim]; conditional networks need `class_idx`, unconditional ones ignore it (a warning)."""
    label = torch.zeros([1, G.c_dim], device=device)
    if G.c_dim == 0:
        if class_idx is not None:
            warnings.warn(f"class_idx={class_idx} is ignored: the network is unconditional", stacklevel=2)
        return label
    if class_idx is None:
        raise ConfigError(f"the network is conditional ({G.c_dim} classes): give class_idx=<0..{G.c_dim - 1}>")
    if not 0 <= class_idx < G.c_dim:
        raise ConfigError(f"class_idx={class_idx} is out of range: the network has classes 0..{G.c_dim - 1}")
    label[:, class_idx] = 1
    return label


def load_generator(network: str, device: torch.device) -> Generator:
    """G_ema of a network file, URL or pretrained name, in eval mode without gradients."""
    return load_network_pkl(str(network), device=str(device))["G_ema"].eval().requires_grad_(False).to(device)


def load_w(path: str | os.PathLike, G: Generator) -> np.ndarray:
    """Reads the key `w` of an npz file (the projector's format) -> float32 [K, num_ws, w_dim]."""
    fix = "give the projected_w.npz written by the projector"
    if not os.path.isfile(path):
        raise ConfigError(f"w file not found: {path} ({fix})")
    try:
        data = np.load(path, allow_pickle=False)
        arrays = {}  # a plain .npy file holds one unnamed array
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                arrays = {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise ConfigError(f"cannot read {path} as an npz file ({err}): {fix}") from None
    if "w" not in arrays:
        raise ConfigError(f"{path} has no array named 'w' (it has {sorted(arrays)}): {fix}")
    w = arrays["w"]
    if w.ndim != 3 or w.shape[1:] != (G.num_ws, G.w_dim):
        raise ConfigError(f"w in {path} has shape {list(w.shape)}, this network needs [K, {G.num_ws}, {G.w_dim}] "
                          f"(num_ws, w_dim): project with the same network")
    return w.astype(np.float32)


def save_w(path: str | os.PathLike, w: torch.Tensor) -> None:
    """Writes w [K, num_ws, w_dim] as float32 under the key `w`, readable by the official generate.py."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez(path, w=w.detach().cpu().numpy().astype(np.float32))


@torch.no_grad()
def synthesize_uint8(G: Generator, ws: torch.Tensor, noise_mode: str) -> np.ndarray:
    """ws [1, num_ws, w_dim] -> uint8 HWC image, with the official generate.py conversion."""
    return generated_to_uint8(G.synthesis(ws, noise_mode=noise_mode))[0].permute(1, 2, 0).cpu().numpy()


@torch.no_grad()
def generate_images(G: Generator, seeds: Sequence[int], truncation_psi: float = 1, class_idx: int | None = None,
                    noise_mode: str = "const") -> dict[int, np.ndarray]:
    """seed -> uint8 HWC image, one seed per forward pass like the official tool (batching changes the last bits)."""
    device = next(G.parameters()).device
    label = class_label(G, class_idx, device)
    images = {}
    for seed in tqdm(seeds, desc="seeds", unit="img", disable=len(seeds) < 2):
        z = torch.from_numpy(seed_to_z(seed, G.z_dim)).to(device)
        img = G(z, label, truncation_psi=truncation_psi, noise_mode=noise_mode)  # [1, C, H, W]
        images[seed] = generated_to_uint8(img)[0].permute(1, 2, 0).cpu().numpy()
    return images


def save_grid(images: Sequence[np.ndarray], path: str | os.PathLike) -> np.ndarray:
    """uint8 HWC images -> one near-square PNG grid, empty cells black; returns the canvas."""
    gw = math.ceil(math.sqrt(len(images)))
    gh = math.ceil(len(images) / gw)
    batch = np.stack([img.transpose(2, 0, 1) for img in images])  # [N, C, H, W]
    batch = np.concatenate([batch, np.zeros((gw * gh - len(images), *batch.shape[1:]), np.uint8)])
    return save_image_grid(batch, path, grid_size=(gw, gh))


def run_generate(cfg: DictConfig) -> list[str]:
    """The job behind `python -m stylefuse.generate`; returns the paths of the images it wrote."""
    out_dir = str(cfg.paths.output_dir)
    device = resolve_device(cfg.device)
    G = load_generator(cfg.network, device)
    written = []
    if cfg.projected_w is not None:
        if cfg.seeds is not None:
            warnings.warn("seeds are ignored when projected_w is given", stacklevel=2)
        ws = torch.from_numpy(load_w(cfg.projected_w, G)).to(device)
        images = [synthesize_uint8(G, w[None], cfg.noise_mode) for w in ws]
        names = [f"proj{idx:02d}.png" for idx in range(len(images))]
    else:
        seeds = parse_seeds(cfg.seeds)
        images = list(generate_images(G, seeds, cfg.trunc, cfg.class_idx, cfg.noise_mode).values())
        names = [f"seed{seed:04d}.png" for seed in seeds]
    for name, img in zip(names, images):
        written.append(os.path.join(out_dir, name))
        save_image(img, written[-1])
    save_grid(images, os.path.join(out_dir, "grid.png"))
    log.info("Wrote %d images and grid.png to %s", len(images), out_dir)
    return written


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="generate")
@user_errors
def main(cfg: DictConfig) -> None:
    run_generate(cfg)


if __name__ == "__main__":
    main()
