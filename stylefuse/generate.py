"""Image generation from seeds or from projected W, as the official `generate.py` computes it.

    python -m stylefuse.generate network=ffhq seeds=0-7 trunc=0.7
    python -m stylefuse.generate network=cifar10 seeds=[0,1,2] class_idx=1
    python -m stylefuse.generate network=ffhq projected_w=outputs/project/.../projected_w.npz
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from stylefuse.cli import hydra_job
from stylefuse.latents import class_label, load_w, parse_seeds, seed_to_z, synthesize_uint8
from stylefuse.networks import load_generator
from stylefuse.nn import Generator
from stylefuse.utils.devices import resolve_device
from stylefuse.utils.images import generated_to_uint8, save_image, save_image_grid

log = logging.getLogger(__name__)

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


def run(cfg: DictConfig) -> list[str]:
    """The job behind `python -m stylefuse.generate`; returns the paths of the images it wrote."""
    out_dir = str(cfg.paths.output_dir)
    device = resolve_device(cfg.device)
    G = load_generator(cfg.network, device, cache_dir=cfg.paths.cache_dir)
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


main = hydra_job("generate", run)


if __name__ == "__main__":
    main()
