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
from collections.abc import Sequence

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from stylefuse.errors import ConfigError
from stylefuse.fusion.figure import labelled_row
from stylefuse.fusion.ranges import LayerRange, fuse_ws, range_label, range_name, resolve_ranges
from stylefuse.latents import class_label, load_w, save_w, seed_to_z, synthesize_uint8
from stylefuse.networks import load_generator
from stylefuse.nn import Generator
from stylefuse.utils.devices import resolve_device
from stylefuse.utils.images import save_image
from stylefuse.utils.video import VIDEO_HINT, video_available, write_video

log = logging.getLogger(__name__)

SWEEPS = ("none", "range", "strength")


def load_latent(source: str, G: Generator, cfg: DictConfig, out_dir: str) -> torch.Tensor:
    """`seed:N`, a `projected_w.npz` or an image (projected into `out_dir`) -> w [1, num_ws, w_dim]."""
    device = next(G.parameters()).device
    source = str(source)
    if source.startswith("seed:"):
        try:
            seed = int(source[len("seed:"):])
        except ValueError:
            raise ConfigError(f"cannot read {source!r}: write a seed as seed:<number>, e.g. seed:85") from None
        z = torch.from_numpy(seed_to_z(seed, G.z_dim)).to(device)
        with torch.no_grad():
            return G.mapping(z, class_label(G, cfg.class_idx, device), truncation_psi=cfg.trunc)
    if source.endswith(".npz"):
        w = load_w(source, G)
        if w.shape[0] != 1:
            raise ConfigError(f"{source} holds {w.shape[0]} codes, fusion needs one ([1, {G.num_ws}, {G.w_dim}]): "
                              f"give the projected_w.npz of a single image")
        return torch.from_numpy(w).to(device)
    if not os.path.isfile(source):
        raise ConfigError(f"input not found: {source} (give an image, a projected_w.npz or seed:<number>)")
    # Imported here: projection loads LPIPS, which seed and npz inputs do not need.
    from stylefuse.projection.job import project_image_file

    w = project_image_file(G, source, cfg.projector, device, out_dir)
    return torch.from_numpy(np.asarray(w, dtype=np.float32)).to(device)


def sweep(G: Generator, w1: torch.Tensor, w2: torch.Tensor, ranges: Sequence[LayerRange | None],
          cfg: DictConfig) -> tuple[list[np.ndarray], list[str]]:
    """Frames and labels: a window sliding over the layers (`range`) or strength 0..1 on the first range."""
    layer_range = next((pair for pair in ranges if pair is not None), None)
    if layer_range is None:
        raise ConfigError(f"sweep={cfg.sweep} needs a layer range: give ranges=paper or e.g. ranges=[[0,6]]")
    if cfg.sweep == "range":
        width = cfg.sweep_width or layer_range[1] - layer_range[0] + 1
        if not 1 <= width <= G.num_ws:
            raise ConfigError(f"sweep_width={width} does not fit this network's {G.num_ws} layers: "
                              f"give 1..{G.num_ws}")
        windows = [(start, start + width - 1) for start in range(G.num_ws - width + 1)]
        frames = [(window, cfg.strength) for window in windows]
        labels = [f"{start}-{end}" for start, end in windows]
    else:
        assert cfg.sweep == "strength", cfg.sweep
        strengths = np.linspace(0, 1, cfg.sweep_frames)
        frames = [(layer_range, float(s)) for s in strengths]
        labels = [f"{s:.2f}" for s in strengths]
    images = [synthesize_uint8(G, fuse_ws(w1, w2, pair, s), cfg.noise_mode) for pair, s in frames]
    return images, labels


def run(cfg: DictConfig) -> np.ndarray:
    """The job behind `fuse.py`: inputs -> codes -> one fused image per range, the figure and the sweep.

    Writes image{1,2}.png/.npz, fused_<start>-<end>.png/.npz (w in the official npz format; the PNG is what the
    official generate.py renders from it), figure.png and, with a sweep, sweep_<kind>.png (+ .mp4). Returns the
    figure, a uint8 HWC canvas.
    """
    out_dir = str(cfg.paths.output_dir)
    G = load_generator(cfg.network, resolve_device(cfg.device))
    ranges = resolve_ranges(cfg.ranges, cfg.fusion, G.num_ws)
    if cfg.sweep not in SWEEPS:  # checked before any projection starts
        raise ConfigError(f"unknown sweep={cfg.sweep!r}: use one of {', '.join(SWEEPS)}")

    w1 = load_latent(cfg.image1, G, cfg, os.path.join(out_dir, "image1"))
    w2 = load_latent(cfg.image2, G, cfg, os.path.join(out_dir, "image2"))
    cells = [("image1", "image 1", w1), ("image2", "image 2", w2)]  # (file name, label, w)
    cells += [(f"fused_{range_name(r)}", range_label(r), fuse_ws(w1, w2, r, cfg.strength)) for r in ranges]
    images = []
    for name, _, w in tqdm(cells, desc="synthesizing", unit="img"):
        images.append(synthesize_uint8(G, w, cfg.noise_mode))
        save_w(os.path.join(out_dir, f"{name}.npz"), w)
        save_image(images[-1], os.path.join(out_dir, f"{name}.png"))
    figure = labelled_row(images, [label for _, label, _ in cells])
    save_image(figure, os.path.join(out_dir, "figure.png"))

    if cfg.sweep != "none":
        frames, frame_labels = sweep(G, w1, w2, ranges, cfg)
        save_image(labelled_row(frames, frame_labels), os.path.join(out_dir, f"sweep_{cfg.sweep}.png"))
        if video_available():
            write_video(os.path.join(out_dir, f"sweep_{cfg.sweep}.mp4"), frames, cfg.video_fps)
        else:
            log.warning("sweep_%s.mp4 skipped: %s", cfg.sweep, VIDEO_HINT)
    log.info("Wrote figure.png and %d fused images to %s", len(ranges), out_dir)
    return figure
