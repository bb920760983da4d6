"""The official style-mixing matrix: row seeds take the layers listed in `styles` from column seeds.

    python -m stylefuse.style_mixing network=metfaces rows=[85,100,75,458,1500] cols=[55,821,1789,293]

Writes `{row}-{col}.png` for every pair, `{seed}-{seed}.png` for each unmixed seed, and `grid.png`: a black corner,
the column seeds' images along the top, the row seeds' images down the left, and cell (r, c) = row seed r with the
`styles` layers (default 0-6, the coarse and middle ones) taken from column seed c.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from stylefuse.cli import hydra_job
from stylefuse.errors import ConfigError
from stylefuse.latents import class_label, parse_seeds, seed_to_z, synthesize_uint8
from stylefuse.networks import load_generator
from stylefuse.nn import Generator
from stylefuse.utils.devices import resolve_device
from stylefuse.utils.images import generated_to_uint8, save_image

log = logging.getLogger(__name__)


@torch.no_grad()
def style_mix(G: Generator, row_seeds: Sequence[int], col_seeds: Sequence[int], styles: Sequence[int],
              truncation_psi: float = 1, noise_mode: str = "const",
              class_idx: int | None = None) -> dict[tuple[int, int], np.ndarray]:
    """(row seed, col seed) -> uint8 HWC image, plus (seed, seed) -> the unmixed image of every seed.

    Batches exactly as the official tool does (all seeds' ws and unmixed images in one batch, in the order of
    `set(rows + cols)`; each mixed image alone), because batching changes the last float bits and so some pixels.
    """
    for layer in styles:
        if not 0 <= layer < G.num_ws:
            raise ConfigError(f"styles lists layer {layer} but the network has layers 0..{G.num_ws - 1}: "
                              f"give styles within that range, e.g. styles=0-{min(6, G.num_ws - 1)}")
    device = next(G.parameters()).device
    seeds = list(set(list(row_seeds) + list(col_seeds)))
    z = torch.from_numpy(np.concatenate([seed_to_z(seed, G.z_dim) for seed in seeds])).to(device)  # [S, z_dim]
    label = class_label(G, class_idx, device).repeat(len(seeds), 1)
    ws = G.mapping(z, label)  # [S, num_ws, w_dim]
    w_avg = G.mapping.w_avg
    ws = w_avg + (ws - w_avg) * truncation_psi  # the official tool truncates by hand, on all layers
    w_of = dict(zip(seeds, ws))

    unmixed = generated_to_uint8(G.synthesis(ws, noise_mode=noise_mode)).permute(0, 2, 3, 1).cpu().numpy()
    images = {(seed, seed): img for seed, img in zip(seeds, unmixed)}
    pairs = [(row, col) for row in row_seeds for col in col_seeds]
    for row, col in tqdm(pairs, desc="style mixing", unit="img", disable=len(pairs) < 2):
        w = w_of[row].clone()  # [num_ws, w_dim]
        w[list(styles)] = w_of[col][list(styles)]
        images[(row, col)] = synthesize_uint8(G, w[None], noise_mode)
    return images


def mixing_grid(images: dict[tuple[int, int], np.ndarray], row_seeds: Sequence[int],
                col_seeds: Sequence[int]) -> np.ndarray:
    """The official matrix as one uint8 HWC canvas, [H * (rows + 1), W * (cols + 1), C]."""
    H, W, C = next(iter(images.values())).shape
    canvas = np.zeros([H * (len(row_seeds) + 1), W * (len(col_seeds) + 1), C], dtype=np.uint8)
    for col_idx, col in enumerate(col_seeds, start=1):
        canvas[:H, W * col_idx:W * (col_idx + 1)] = images[(col, col)]
    for row_idx, row in enumerate(row_seeds, start=1):
        canvas[H * row_idx:H * (row_idx + 1), :W] = images[(row, row)]
        for col_idx, col in enumerate(col_seeds, start=1):
            canvas[H * row_idx:H * (row_idx + 1), W * col_idx:W * (col_idx + 1)] = images[(row, col)]
    return canvas


def run(cfg: DictConfig) -> np.ndarray:
    """The job behind `python -m stylefuse.style_mixing`; returns the grid it wrote."""
    out_dir = str(cfg.paths.output_dir)
    rows, cols = parse_seeds(cfg.rows, "rows"), parse_seeds(cfg.cols, "cols")
    styles = parse_seeds(cfg.styles, "styles")
    G = load_generator(cfg.network, resolve_device(cfg.device), cache_dir=cfg.paths.cache_dir)
    images = style_mix(G, rows, cols, styles, cfg.trunc, cfg.noise_mode, cfg.class_idx)
    for (row, col), img in images.items():
        save_image(img, os.path.join(out_dir, f"{row}-{col}.png"))
    grid = mixing_grid(images, rows, cols)
    save_image(grid, os.path.join(out_dir, "grid.png"))
    log.info("Wrote %d images and grid.png to %s", len(images), out_dir)
    return grid


main = hydra_job("style_mixing", run)


if __name__ == "__main__":
    main()
