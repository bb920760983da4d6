"""The fusion job (`fuse.py`): image 1's latent code with a range of its style layers taken from image 2.

Each of the `num_ws` rows of w drives one synthesis layer, from 4x4 up to the output resolution. Replacing coarse
rows (low indices) carries over pose and face shape, fine rows colour and detail; the layer range is the degree of
fusion. Inputs are latent codes in the official `projected_w.npz` format, images (projected first, see
`stylefuse.projection`) or `seed:N` for quick looks without projection.

    python fuse.py network=ffhq image1=a.png image2=b.png ranges=paper
    python fuse.py network=ffhq image1=seed:85 image2=seed:821 ranges=[[0,6],[8,14]] strength=0.7 sweep=range
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from stylefuse.fusion.figure import labelled_row
from stylefuse.fusion.ranges import fuse_ws, range_label, range_name, resolve_ranges
from stylefuse.fusion.sweep import sweep
from stylefuse.latents import load_latent, save_w, synthesize_uint8
from stylefuse.networks import load_generator
from stylefuse.nn import Generator
from stylefuse.utils.devices import resolve_device
from stylefuse.utils.images import save_image
from stylefuse.utils.video import VIDEO_HINT, video_available, write_video

log = logging.getLogger(__name__)


def image_projector(G: Generator, projector_cfg: DictConfig, out_dir: str) -> Callable[[str, str], np.ndarray]:
    """`project(path, name)` -> w [1, num_ws, w_dim]: projects an image input into `<out_dir>/<name>/`. The projector
    is built at the first call only: LPIPS and the W statistics take time, and seed or npz inputs need neither."""
    # Imported here for the same reason: projection loads LPIPS.
    from stylefuse.projection import project_image_file
    from stylefuse.projection.job import build_projector

    projector = None

    def project(path: str, name: str) -> np.ndarray:
        nonlocal projector
        if projector is None:
            projector = build_projector(G, projector_cfg, next(G.parameters()).device)
        return project_image_file(G, projector, path, os.path.join(out_dir, name))

    return project


def run(cfg: DictConfig) -> np.ndarray:
    """The job behind `fuse.py`: inputs -> codes -> one fused image per range, the figure and the sweep.

    Writes image{1,2}.png/.npz, fused_<start>-<end>.png/.npz (w in the official npz format; the PNG is what the
    official generate.py renders from it), figure.png and, with a sweep, sweep_<kind>.png (+ .mp4). Returns the
    figure, a uint8 HWC canvas.
    """
    out_dir = str(cfg.paths.output_dir)
    G = load_generator(cfg.network, resolve_device(cfg.device), cache_dir=cfg.paths.cache_dir)
    ranges = cfg.ranges if isinstance(cfg.ranges, str) else OmegaConf.to_object(cfg.ranges)
    ranges = resolve_ranges(ranges, OmegaConf.to_object(cfg.fusion), G.num_ws)

    project = image_projector(G, cfg.projector, out_dir)
    w1 = load_latent(cfg.image1, G, cfg.trunc, cfg.class_idx, lambda path: project(path, "image1"))
    w2 = load_latent(cfg.image2, G, cfg.trunc, cfg.class_idx, lambda path: project(path, "image2"))
    cells = [("image1", "image 1", w1), ("image2", "image 2", w2)]  # (file name, label, w)
    cells += [(f"fused_{range_name(r)}", range_label(r, cfg.strength), fuse_ws(w1, w2, r, cfg.strength))
              for r in ranges]
    images = []
    for name, _, w in tqdm(cells, desc="synthesizing", unit="img"):
        images.append(synthesize_uint8(G, w, cfg.noise_mode))
        save_w(os.path.join(out_dir, f"{name}.npz"), w)
        save_image(images[-1], os.path.join(out_dir, f"{name}.png"))
    figure = labelled_row(images, [label for _, label, _ in cells])
    save_image(figure, os.path.join(out_dir, "figure.png"))

    if cfg.sweep != "none":
        first_range = next((pair for pair in ranges if pair is not None), None)
        frames, frame_labels = sweep(G, w1, w2, first_range, cfg.sweep, cfg.strength, cfg.sweep_width,
                                     cfg.sweep_frames, cfg.noise_mode)
        save_image(labelled_row(frames, frame_labels), os.path.join(out_dir, f"sweep_{cfg.sweep}.png"))
        if video_available():
            write_video(os.path.join(out_dir, f"sweep_{cfg.sweep}.mp4"), frames, cfg.video_fps)
        else:
            log.warning("sweep_%s.mp4 skipped: %s", cfg.sweep, VIDEO_HINT)
    log.info("Wrote figure.png and %d fused images to %s", len(ranges), out_dir)
    return figure
